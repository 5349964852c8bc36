"""Group commit on SQLite: writes waiting for the writer's turn commit together, each one's
outcome its own, and a group that cannot commit leaves nothing written."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError, OperationalError

from graph.db.engine import Database


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'x.db'}")
    async with database.write() as session:
        await session.execute(text("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)"))
    yield database
    await database.dispose()


def _insert(k: int, v: str | None = "x"):
    def write(connection: Connection) -> int:
        connection.execute(text("INSERT INTO t VALUES (:k, :v)"), {"k": k, "v": v})
        return connection.execute(text("SELECT count(*) FROM t")).scalar_one()

    return write


async def _keys(db: Database) -> list[int]:
    async with db.read() as session:
        return list((await session.scalars(text("SELECT k FROM t ORDER BY k"))).all())


async def test_writes_waiting_together_commit_together_each_with_its_result(db) -> None:
    sent: list[str] = []

    def seen(_conn, _cursor, statement: str, *_args) -> None:
        sent.append(statement.split()[0].upper())

    event.listen(db.engine.sync_engine, "before_cursor_execute", seen)
    counts = await asyncio.gather(*(db.together(_insert(k)) for k in range(20)))
    event.remove(db.engine.sync_engine, "before_cursor_execute", seen)
    # each write saw the ones before it in its group: one transaction, in the order called
    assert counts == list(range(1, 21))
    assert await _keys(db) == list(range(20))
    assert sent.count("BEGIN") == 1 and sent.count("INSERT") == 20
    # a write queued while a group runs goes in the next group, after the first commits
    first = asyncio.ensure_future(db.together(_insert(100)))
    await asyncio.sleep(0)
    second = db.together(_insert(101))
    assert await asyncio.gather(first, second) == [21, 22]


async def test_a_write_that_fails_undoes_its_own_writes_only(db) -> None:
    def half_then_fail(connection: Connection) -> None:
        connection.execute(text("INSERT INTO t VALUES (50, 'half')"))
        raise ValueError("the write's own error")

    outcomes = await asyncio.gather(
        db.together(_insert(1)),
        db.together(half_then_fail),
        db.together(_insert(1)),  # the key the first took
        db.together(_insert(2, None)),  # NOT NULL
        db.together(_insert(3)),
        return_exceptions=True,
    )
    assert outcomes[0] == 1 and outcomes[4] == 2
    assert isinstance(outcomes[1], ValueError) and str(outcomes[1]) == "the write's own error"
    assert isinstance(outcomes[2], IntegrityError) and "UNIQUE" in str(outcomes[2])
    assert isinstance(outcomes[3], IntegrityError) and "NOT NULL" in str(outcomes[3])
    assert await _keys(db) == [1, 3]


async def test_a_group_that_cannot_commit_fails_every_caller_and_writes_nothing(db) -> None:
    async with db.write() as session:  # a deferred foreign key fails only at COMMIT
        await session.execute(
            text(
                "CREATE TABLE child (parent INTEGER REFERENCES t (k) DEFERRABLE INITIALLY DEFERRED)"
            )
        )

    def orphan(connection: Connection) -> None:
        connection.execute(text("INSERT INTO child VALUES (999)"))

    outcomes = await asyncio.gather(
        db.together(_insert(1)), db.together(orphan), return_exceptions=True
    )
    assert all(isinstance(o, IntegrityError) and "FOREIGN KEY" in str(o) for o in outcomes)
    assert await _keys(db) == []
    assert await db.together(_insert(2)) == 1  # the next group commits as usual


async def test_a_caller_that_stops_waiting_is_left_out_and_others_go_on(db) -> None:
    async with db.write():  # holds the writer's turn: the group waits for it
        gone = asyncio.ensure_future(db.together(_insert(1)))
        kept = asyncio.ensure_future(db.together(_insert(2)))
        await asyncio.sleep(0.05)
        gone.cancel()
    assert await kept == 1
    assert gone.cancelled() and await _keys(db) == [2]


async def test_group_commit_is_sqlite_s(tmp_path) -> None:
    db = Database("postgresql+asyncpg://nobody@127.0.0.1:1/none")
    try:
        with pytest.raises(TypeError, match="SQLite"):
            await db.together(_insert(1))
    finally:
        await db.dispose()


async def test_a_group_whose_turn_never_comes_fails_as_a_locked_database_does(
    db, monkeypatch
) -> None:
    monkeypatch.setattr("graph.db.engine._BUSY_SECONDS", 0.2)
    async with db.write():  # holds the writer's turn past the (shortened) busy timeout
        waited = await asyncio.gather(
            db.together(_insert(1)), db.together(_insert(2)), return_exceptions=True
        )
    assert all(isinstance(w, OperationalError) and "locked" in str(w) for w in waited)
    assert await db.together(_insert(3)) == 1  # the next group goes as usual
    assert await _keys(db) == [3]
