"""The async engine: SQLite (WAL, foreign keys, busy timeout, one writer at a time) or PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import weakref
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import orjson
from sqlalchemy import event, text
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.sql import Executable

from graph.db import sqlite_driver
from graph.db.checkpoints import Checkpointer
from graph.db.grouped import Group, Write, run_together

__all__ = ["SQLITE_MMAP_BYTES", "Database", "dialect_insert"]

T = TypeVar("T")

_WRITE = "loopline_write"
_AUTOCOMMIT = "loopline_autocommit"


def json_dumps(value: Any) -> str:
    """JSON for the database: orjson (several times faster than ``json``), falling back to
    ``json`` for what orjson refuses (integers beyond 64 bits)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value)


def json_loads(value: Any) -> Any:
    """JSON from the database. SQLite gives a JSON column numeric affinity, so a document that
    is a bare number comes back as that number, not as text."""
    if isinstance(value, int | float):
        return value
    return orjson.loads(value)


_BUSY_SECONDS = 30
SQLITE_MMAP_BYTES = 1 << 36
"""How much of an SQLite database is read through a memory map (address space, not memory: the
pages are the operating system's file cache, shared by every connection and process). SQLite
caps it at its build's maximum (2 GiB in the common builds); the rest is read page by page."""


def _configure_sqlite(engine: AsyncEngine, on_connect: Callable[[], None]) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        on_connect()
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin (see _on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in (
            "PRAGMA journal_mode=WAL",
            # checkpoints run on a thread of their own (graph/db/checkpoints.py)
            "PRAGMA wal_autocheckpoint=0",
            "PRAGMA synchronous=NORMAL",
            "PRAGMA foreign_keys=ON",
            f"PRAGMA busy_timeout={_BUSY_SECONDS * 1000}",
            # read pages through a shared memory map, not a small private cache per connection
            # filled by a system call per page: a first page that walks a few thousand rows of
            # a 1M-item dataset in list order takes 1.4 ms instead of 7 (dql_1m bench)
            f"PRAGMA mmap_size={SQLITE_MMAP_BYTES}",
        ):
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # A write transaction takes the write lock up front: a deferred one that upgrades later
        # fails at once with SQLITE_BUSY instead of waiting for the busy timeout. A single
        # writing statement outside a transaction takes it up front too (and waits).
        options = conn.get_execution_options()
        if not options.get(_AUTOCOMMIT, False):
            conn.exec_driver_sql("BEGIN IMMEDIATE" if options.get(_WRITE, False) else "BEGIN")


class Database:
    """One engine and its session factory; ``read()`` and ``write()`` open a transaction each."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            url = sqlite_driver.on_this_driver(url)
        self.url = url
        options: dict[str, Any] = {
            "echo": echo,
            "json_serializer": json_dumps,
            "json_deserializer": json_loads,
        }
        if self.is_sqlite:
            # no ROLLBACK when a connection returns to the pool (a thread hop each): SQLAlchemy
            # ends its transactions itself, and the driver opens none (see _configure_sqlite)
            options["pool_reset_on_return"] = None
        else:
            # no ping per checkout (a round trip each transaction): a connection the server
            # dropped fails once, the pool then renews them all; idle ones are renewed hourly.
            # 20 kept of 30 at most: a connection opened beyond the kept ones is closed when
            # it comes back, and opening one costs more than a pull (20 annotators pulling back
            # to back with 10 kept opened 12-16 connections per 200 pulls: p99 55-78 ms, 25 ms
            # with 20 kept)
            options.update(pool_size=20, max_overflow=10, pool_recycle=3600)
            # JIT compiles a query's expressions once its estimated cost is high, which a count
            # over 1M items easily is, and the compiling costs more than it saves on queries of
            # a few hundred ms at most (a DQL count quantifier: 400 -> 360 ms). The platform's
            # queries are interactive, so it is off for its connections.
            # A prepared statement (asyncpg prepares every one) is planned for its values each
            # time: after five runs PostgreSQL may otherwise keep a generic plan, made without
            # the values, and a DQL range's rows run from none to all with its bound.
            settings = {"jit": "off", "plan_cache_mode": "force_custom_plan"}
            options["connect_args"] = {"server_settings": settings}
        self.engine = create_async_engine(url, **options)
        self._checkpointer: Checkpointer | None = None
        if self.is_sqlite:
            _configure_sqlite(self.engine, self._checkpoint)
            self._autocommit = self.engine.execution_options(**{_AUTOCOMMIT: True})
        else:
            # its own small pool: connections that autocommit and do not wait for the WAL flush
            settings = {"jit": "off", "synchronous_commit": "off"}
            self._autocommit = create_async_engine(
                url,
                **{
                    **options,
                    "pool_size": 2,
                    "max_overflow": 10,
                    "connect_args": {"server_settings": settings},
                },
                isolation_level="AUTOCOMMIT",
            )
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        # one lock per event loop (a Database may serve more than one in turn): see _turn
        self._writers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )
        self._groups: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Group] = (
            weakref.WeakKeyDictionary()
        )

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        # closing (not rolling back) ends the transaction and keeps loaded rows readable
        async with self._sessions() as session:
            yield session

    @asynccontextmanager
    async def write(self, *, durable: bool = True) -> AsyncIterator[AsyncSession]:
        """A transaction that commits when the block ends and rolls back, whole, on any error.

        ``durable=False`` (PostgreSQL) commits without waiting for the WAL to reach the disk: a
        server crash may lose the last few milliseconds of such commits, never a part of one.
        For writes that are redone anyway when lost (an execution's claim, heartbeat, end: the
        reaper runs a lost one again), where the flush costs more than the work."""
        async with self._turn(), self._sessions() as session:
            await session.connection(execution_options={_WRITE: True})
            if not durable and not self.is_sqlite:
                await session.execute(text("SET LOCAL synchronous_commit = off"))
            try:
                yield session
                await session.commit()
            except BaseException:
                await session.rollback()
                raise

    @asynccontextmanager
    async def transaction(self, *, durable: bool = True) -> AsyncIterator[AsyncConnection]:
        """A write transaction on a bare connection, no ORM session: for a few Core statements
        that must commit together, on a hot path (a pull, an execution's end on SQLite).
        ``durable`` as for :meth:`write`."""
        async with self._turn(), self.engine.connect() as connection:
            connection = await connection.execution_options(**{_WRITE: True})
            async with connection.begin():
                if not durable and not self.is_sqlite:
                    await connection.execute(text("SET LOCAL synchronous_commit = off"))
                yield connection

    async def together(self, write: Write[T]) -> T:
        """SQLite: run ``write`` (synchronous, given a connection) in a write transaction with
        the other writes waiting for the writer's turn, each in a savepoint of its own; what it
        returned, once committed (graph/db/grouped.py). For short writes on a hot path (a
        pull): one BEGIN, COMMIT and thread crossing for the whole group. Not from inside
        another write of this process: the group waits for that write's turn to end."""
        if not self.is_sqlite:
            raise TypeError("group commit is SQLite's: on PostgreSQL writers do not take turns")
        loop = asyncio.get_running_loop()
        group = self._groups.get(loop)
        if group is None:
            group = self._groups[loop] = Group(self._turn, self._run_together)
        return await group.write(write)

    async def _run_together(self, writes: list[Write[Any]]) -> list[tuple[Any, Exception | None]]:
        async with self.engine.connect() as connection:
            connection = await connection.execution_options(**{_WRITE: True})
            driver = (await connection.get_raw_connection()).dbapi_connection
            assert isinstance(driver, sqlite_driver.Connection)
            sync = connection.sync_connection
            assert sync is not None
            return await driver.here(lambda: run_together(sync, writes))

    @asynccontextmanager
    async def _turn(self) -> AsyncIterator[None]:
        """SQLite: this process's writers take turns in order on an asyncio lock, rather than
        each waiting in SQLite's busy handler, which sleeps up to 100 ms between tries (20
        concurrent pulls of a task: p99 1.5 s). Other processes still meet the busy handler.
        Waiting longer than the busy timeout fails as SQLite would."""
        if not self.is_sqlite:
            yield
            return
        loop = asyncio.get_running_loop()
        lock = self._writers.get(loop)
        if lock is None:
            lock = self._writers[loop] = asyncio.Lock()
        try:
            async with asyncio.timeout(_BUSY_SECONDS):
                await lock.acquire()
        except TimeoutError:
            raise OperationalError(
                "waiting for this process's other writers", None, Exception("database is locked")
            ) from None
        try:
            yield
        finally:
            lock.release()

    @asynccontextmanager
    async def statements(self, *, durable: bool = False) -> AsyncIterator[AsyncConnection]:
        """A connection whose statements each commit on their own, with no BEGIN and COMMIT
        (round trips, or thread hops on SQLite): for a write that is one statement, atomic by
        itself. ``durable`` as for :meth:`write`: by default for writes that are redone when
        lost; durable ones (a pull) use the main pool on PostgreSQL."""
        if durable and not self.is_sqlite:
            async with self.engine.connect() as connection:
                connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
                yield connection
            return
        async with self._autocommit.connect() as connection:
            yield connection
            await connection.commit()  # ends SQLAlchemy's transaction; the database has none

    async def warm(self, statements: Sequence[tuple[Executable, Mapping[str, Any]]] = ()) -> None:
        """Open the connections the pool keeps (PostgreSQL) now rather than on demand, and run
        ``statements`` (with values that match nothing) on each: the first burst of requests
        after a start (20 annotators pulling at once) otherwise waits while each of its
        connections is opened and set up, one after another on the loop, and then prepares
        its statements (asyncpg prepares each statement on each connection the first time it
        runs there: a round trip and a plan)."""
        if self.is_sqlite:
            return
        opened = [self.engine.connect() for _ in range(self.engine.pool.size())]  # type: ignore[attr-defined]
        try:
            await asyncio.gather(*(connection.start() for connection in opened))
            await asyncio.gather(*(_prepare(connection, statements) for connection in opened))
        finally:
            await asyncio.gather(*(connection.close() for connection in opened))

    def _checkpoint(self) -> None:
        """Start the file's checkpoints with its first connection (an in-memory database has
        no WAL)."""
        path = self.engine.url.database
        if self._checkpointer is None and path and path != ":memory:":
            self._checkpointer = Checkpointer(path, self)

    async def dispose(self) -> None:
        if self._checkpointer is not None:
            await asyncio.to_thread(self._checkpointer.stop)
            self._checkpointer = None
        await self.engine.dispose()
        if not self.is_sqlite:  # on SQLite it shares the engine's pool
            await self._autocommit.dispose()


async def _prepare(
    connection: AsyncConnection, statements: Sequence[tuple[Executable, Mapping[str, Any]]]
) -> None:
    for statement, values in statements:
        await connection.execute(statement, dict(values))
    await connection.rollback()


def dialect_insert(session: AsyncSession) -> Any:
    """``insert`` of the session's dialect, for ``ON CONFLICT`` clauses (SQLite and PostgreSQL)."""
    return postgresql_insert if session.bind.dialect.name == "postgresql" else sqlite_insert
