"""SQLite for asyncio with one thread hop per statement: the ``sqlite+threaded`` dialect.

Each connection is a ``sqlite3`` connection owned by a thread of its own, as with aiosqlite,
but a statement crosses to that thread once: it is executed, its rows fetched and its cursor
closed in one call, where SQLAlchemy's aiosqlite adapter makes four crossings (cursor, execute,
fetch, close). The ``BEGIN`` that SQLAlchemy emits (see ``graph.db.engine``) waits to go with
the transaction's first statement, and a transaction that ran none ends with no crossing at all.

A crossing wakes two threads and costs 30-150 us on a virtual machine, more than a
first page of an indexed query takes to read, so a list request (role check, probe, page) went
from about 16 crossings to 4.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections import deque
from collections.abc import Callable, Sequence
from queue import SimpleQueue
from typing import Any, TypeVar

from sqlalchemy import pool
from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.engine.url import URL
from sqlalchemy.util.concurrency import await_, in_greenlet

__all__ = ["DRIVER", "Connection", "on_this_driver"]

DRIVER = "threaded"
"""The driver name in a database URL: ``sqlite+threaded:///path``."""


def on_this_driver(url: str) -> str:
    """An SQLite URL (``sqlite://``, or ``sqlite+aiosqlite://`` as earlier versions wrote it)
    on this driver."""
    scheme, rest = url.split("://", 1)
    if scheme not in ("sqlite", "sqlite+aiosqlite", f"sqlite+{DRIVER}"):
        raise ValueError(f"not an SQLite URL this platform runs on: {scheme}://")
    return f"sqlite+{DRIVER}://{rest}"


T = TypeVar("T")

_BEGINS = frozenset({"BEGIN", "BEGIN IMMEDIATE", "BEGIN DEFERRED", "BEGIN EXCLUSIVE"})


class _Thread:
    """The thread that owns one sqlite3 connection and runs every call on it, in order."""

    def __init__(self) -> None:
        self._calls: SimpleQueue[tuple[Any, ...] | None] = SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="loopline-sqlite", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (call := self._calls.get()) is not None:
            loop, future, work = call
            try:
                result, error = work(), None
            except BaseException as exc:  # handed to the caller, whatever it is
                result, error = None, exc
            try:
                loop.call_soon_threadsafe(_settle, future, result, error)
            except RuntimeError:  # the caller's loop has closed: nobody waits
                pass

    def is_current(self) -> bool:
        return threading.get_ident() == self._thread.ident

    async def call(self, work: Callable[[], Any]) -> Any:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._calls.put((loop, future, work))
        return await future

    def stop(self) -> None:
        self._calls.put(None)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class _Outcome:
    """What a statement left: its description, rows, row count and last row id."""

    __slots__ = ("description", "lastrowid", "rowcount", "rows")

    def __init__(self, cursor: sqlite3.Cursor, fetch: bool) -> None:
        self.description = cursor.description
        self.rows: list[Any] = cursor.fetchall() if fetch and cursor.description else []
        self.rowcount = cursor.rowcount
        self.lastrowid = cursor.lastrowid


class Cursor:
    """A DBAPI cursor over :class:`Connection`; the rows are fetched with the statement."""

    arraysize = 1

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self.description: Any = None
        self.rowcount = -1
        self.lastrowid: int | None = None
        self._rows: deque[Any] = deque()

    def execute(self, operation: str, parameters: Sequence[Any] | None = None) -> Cursor:
        if operation.strip().upper() in _BEGINS:
            self._connection.begin_later(operation)
            return self
        self._keep(self._connection.run(_statement, operation, parameters or ()))
        return self

    def executemany(self, operation: str, parameters: Sequence[Sequence[Any]]) -> Cursor:
        self._keep(self._connection.run(_statement, operation, parameters, many=True))
        return self

    def _keep(self, outcome: _Outcome) -> None:
        self.description = outcome.description
        self.rowcount = outcome.rowcount
        self.lastrowid = outcome.lastrowid
        self._rows = deque(outcome.rows)

    def fetchone(self) -> Any:
        return self._rows.popleft() if self._rows else None

    def fetchmany(self, size: int | None = None) -> list[Any]:
        rows = self._rows
        return [rows.popleft() for _ in range(min(size or self.arraysize, len(rows)))]

    def fetchall(self) -> list[Any]:
        rows = list(self._rows)
        self._rows.clear()
        return rows

    def close(self) -> None:
        self._rows.clear()

    def setinputsizes(self, *sizes: Any) -> None:
        pass

    async def _async_soft_close(self) -> None:
        """(SQLAlchemy's asyncio results call this; the rows are already here.)"""


def _statement(
    raw: sqlite3.Connection, operation: str, parameters: Any, *, many: bool = False
) -> _Outcome:
    cursor = raw.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        else:
            cursor.execute(operation, parameters)
        return _Outcome(cursor, fetch=not many)
    finally:
        cursor.close()


class Connection:
    """A DBAPI connection whose work runs on its own thread (see the module's docstring)."""

    def __init__(self, thread: _Thread, raw: sqlite3.Connection) -> None:
        self._thread = thread
        self._raw = raw
        self._begin: str | None = None  # the BEGIN to run before the next statement

    def begin_later(self, operation: str) -> None:
        self._begin = operation

    def run(self, work: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        begin, self._begin = self._begin, None
        raw = self._raw

        def call() -> Any:
            if begin is not None:
                raw.execute(begin)
            return work(raw, *args, **kwargs)

        if self._thread.is_current():  # sent by work running here (see ``here``)
            return call()
        return await_(self._thread.call(call))

    async def here(self, work: Callable[[], T]) -> T:
        """Run ``work`` on this connection's thread, in one crossing: the statements it sends
        on this connection (through SQLAlchemy's synchronous API) run there directly, with no
        crossing each. For a group commit (graph/db/grouped.py)."""
        return await self._thread.call(work)

    def cursor(self) -> Cursor:
        return Cursor(self)

    def commit(self) -> None:
        self._end(_commit)

    def rollback(self) -> None:
        self._end(sqlite3.Connection.rollback)

    def _end(self, how: Callable[[sqlite3.Connection], None]) -> None:
        if self._begin is not None:  # nothing ran since BEGIN: there is no transaction to end
            self._begin = None
            return
        if self._raw.in_transaction:  # (read here: it changes only on this connection's thread)
            self.run(lambda raw: how(raw))

    @property
    def isolation_level(self) -> str | None:
        return self._raw.isolation_level

    @isolation_level.setter
    def isolation_level(self, value: str | None) -> None:
        self.run(lambda raw: setattr(raw, "isolation_level", value))

    def create_function(self, *args: Any, **kwargs: Any) -> None:
        self.run(lambda raw: raw.create_function(*args, **kwargs))

    def close(self) -> None:
        self._begin = None
        if in_greenlet():
            try:
                self.run(lambda raw: raw.close())
            finally:
                self._thread.stop()
        else:  # garbage collection: close on the thread without waiting
            raw = self._raw
            self._thread._calls.put((_NoLoop, None, raw.close))
            self._thread.stop()


def _commit(raw: sqlite3.Connection) -> None:
    """COMMIT; one that fails (a deferred foreign key, a full disk) rolls back, as on
    PostgreSQL: SQLite would keep the transaction open, and SQLAlchemy, whose transaction has
    ended, would return the connection to the pool inside it (it resets none, see
    ``graph.db.engine``)."""
    try:
        raw.commit()
    except BaseException:
        if raw.in_transaction:
            raw.rollback()
        raise


class _NoLoop:
    """Stands in for an event loop when nobody waits for a call's outcome."""

    @staticmethod
    def call_soon_threadsafe(*_: Any) -> None:
        pass


class _Module:
    """The DBAPI module SQLAlchemy is handed: sqlite3's names, and :meth:`connect`."""

    paramstyle = "qmark"
    Error = sqlite3.Error
    Warning = sqlite3.Warning
    InterfaceError = sqlite3.InterfaceError
    DatabaseError = sqlite3.DatabaseError
    DataError = sqlite3.DataError
    OperationalError = sqlite3.OperationalError
    IntegrityError = sqlite3.IntegrityError
    InternalError = sqlite3.InternalError
    ProgrammingError = sqlite3.ProgrammingError
    NotSupportedError = sqlite3.NotSupportedError
    Binary = sqlite3.Binary
    PARSE_COLNAMES = sqlite3.PARSE_COLNAMES
    PARSE_DECLTYPES = sqlite3.PARSE_DECLTYPES
    sqlite_version = sqlite3.sqlite_version
    sqlite_version_info = sqlite3.sqlite_version_info

    def connect(self, *args: Any, **kwargs: Any) -> Connection:
        kwargs["check_same_thread"] = False  # made on its thread, whose calls alone use it
        thread = _Thread()
        try:
            raw = await_(thread.call(lambda: sqlite3.connect(*args, **kwargs)))
        except BaseException:
            thread.stop()
            raise
        return Connection(thread, raw)


class SQLiteDialect_threaded(SQLiteDialect_pysqlite):
    driver = DRIVER
    is_async = True
    supports_statement_cache = True
    supports_server_side_cursors = False

    @classmethod
    def import_dbapi(cls) -> Any:
        return _Module()

    @classmethod
    def get_pool_class(cls, url: URL) -> type[pool.Pool]:
        if cls._is_url_file_db(url):
            return pool.AsyncAdaptedQueuePool
        return pool.StaticPool

    def get_driver_connection(self, connection: Any) -> Any:
        return connection._raw


registry.register(f"sqlite.{DRIVER}", __name__, "SQLiteDialect_threaded")
