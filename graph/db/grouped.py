"""Group commit on SQLite: short writes that wait for the writer's turn together commit together.

SQLite runs one writer at a time, so concurrent short writes (20 annotators pulling work back to
back) queue, and each pays for its own BEGIN and COMMIT (the commit writes the WAL) and three
thread crossings: about 2 ms a pull, of which its statement is a quarter, and the twentieth in
line waited for the nineteen before it. Here the writes that queue while a group runs go
together as the next group, in one crossing to a connection's thread: one ``BEGIN IMMEDIATE``,
each write in a savepoint of its own (one that raises undoes its own writes only, and its caller
alone gets the error), one ``COMMIT``. A caller gets its result once its group has committed; a
group that fails to commit fails each of its callers, having written nothing.

A write is a synchronous function of a SQLAlchemy :class:`~sqlalchemy.engine.Connection`: it
runs on the connection's thread (``sqlite_driver.Connection.here``), where its statements go to
SQLite directly, with SQLAlchemy's compiled cache, types and events as on any other path.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Generic, TypeVar

from sqlalchemy.engine import Connection

__all__ = ["Group", "Write"]

T = TypeVar("T")

Write = Callable[[Connection], T]
"""A write of a group: its statements on the group's connection, and what it returns."""

_MOST = 64  # writes per group: a group's commit is not put off without bound


class _Waiting(Generic[T]):
    __slots__ = ("future", "write")

    def __init__(self, write: Write[T], future: asyncio.Future[T]) -> None:
        self.write = write
        self.future = future


class Group:
    """One event loop's writes waiting to commit together, and the task that runs them in turn:
    ``turn`` is the writer's turn (an async context), ``run`` runs a group's writes on a
    connection's thread (:func:`run_together` there) and gives each one's outcome."""

    def __init__(
        self,
        turn: Callable[[], AbstractAsyncContextManager[None]],
        run: Callable[[list[Write[Any]]], Any],
    ) -> None:
        self._turn = turn
        self._run = run
        self._waiting: list[_Waiting[Any]] = []
        self._runner: asyncio.Task[None] | None = None

    async def write(self, write: Write[T]) -> T:
        """What ``write`` returned, once it is committed with the others of its group. A caller
        that stops waiting (cancelled) before its group starts is left out of it; after, its
        write is committed all the same."""
        loop = asyncio.get_running_loop()
        waiting = _Waiting(write, loop.create_future())
        self._waiting.append(waiting)
        if self._runner is None:
            self._runner = loop.create_task(self._run_groups())
        return await waiting.future

    async def _run_groups(self) -> None:
        try:
            while self._waiting:
                try:
                    # the writes that queued while the previous group ran, or while this one
                    # waited for its turn, go together
                    async with self._turn():
                        group = self._next()
                        if group:
                            await self._commit(group)
                except Exception as exc:  # no turn came (waited past the busy timeout)
                    _fail(self._next(), exc)
        finally:
            self._runner = None

    def _next(self) -> list[_Waiting[Any]]:
        """The next group: the writes waiting longest whose callers still wait."""
        group = [w for w in self._waiting[:_MOST] if not w.future.done()]
        del self._waiting[:_MOST]
        return group

    async def _commit(self, group: list[_Waiting[Any]]) -> None:
        try:
            outcomes = await self._run([w.write for w in group])
        except BaseException as exc:
            _fail(group, exc)
            if not isinstance(exc, Exception):  # cancelled (the loop is closing): stop here
                raise
            return
        for waiting, (result, error) in zip(group, outcomes, strict=True):
            if waiting.future.done():
                continue
            if error is not None:
                waiting.future.set_exception(error)
            else:
                waiting.future.set_result(result)


def _fail(group: list[_Waiting[Any]], error: BaseException) -> None:
    for waiting in group:
        if not waiting.future.done():
            waiting.future.set_exception(error)


def run_together(
    connection: Connection, writes: list[Write[Any]]
) -> list[tuple[Any, Exception | None]]:
    """On the connection's thread: ``writes`` in one transaction, each in a savepoint; each
    one's result or error. Raises (having rolled back) when the transaction itself fails."""
    outcomes: list[tuple[Any, Exception | None]] = []
    with connection.begin():
        for write in writes:
            savepoint = connection.begin_nested()
            try:
                result = write(connection)
            except Exception as exc:
                if savepoint.is_active:
                    savepoint.rollback()
                outcomes.append((None, exc))
            else:
                savepoint.commit()
                outcomes.append((result, None))
    return outcomes
