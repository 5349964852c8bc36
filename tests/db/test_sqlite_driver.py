"""The one-hop SQLite driver (graph.db.sqlite_driver) behaves as a DBAPI driver must."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError

from graph.config import normalise_database_url
from graph.db.engine import Database


@pytest.fixture
async def db(tmp_path):
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'd.db'}")  # (as earlier versions wrote)
    async with database.write() as session:
        await session.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE)"))
    yield database
    await database.dispose()


def test_sqlite_urls_run_on_the_driver() -> None:
    assert normalise_database_url("sqlite:///x.db") == "sqlite+threaded:///x.db"
    assert normalise_database_url("sqlite+aiosqlite:///x.db") == "sqlite+threaded:///x.db"
    with pytest.raises(ValueError, match="sqlite\\+pysqlite"):
        normalise_database_url("sqlite+pysqlite:///x.db")


async def test_rows_counts_and_ids(db) -> None:
    async with db.write() as session:
        inserted = await session.execute(text("INSERT INTO t (name) VALUES ('a')"))
        assert inserted.lastrowid == 1
        await session.execute(text("INSERT INTO t (name) VALUES (:n)"), [{"n": "b"}, {"n": "c"}])
        updated = await session.execute(text("UPDATE t SET name = name || '!' WHERE id > 1"))
        assert updated.rowcount == 2
    async with db.read() as session:
        rows = (await session.execute(text("SELECT id, name FROM t ORDER BY id"))).all()
        assert [tuple(r) for r in rows] == [(1, "a"), (2, "b!"), (3, "c!")]
        assert (await session.execute(text("SELECT name FROM t WHERE id = 9"))).first() is None


async def test_an_error_rolls_the_whole_transaction_back_and_the_connection_goes_on(db) -> None:
    with pytest.raises(IntegrityError, match="UNIQUE"):
        async with db.write() as session:
            await session.execute(text("INSERT INTO t (name) VALUES ('x')"))
            await session.execute(text("INSERT INTO t (name) VALUES ('x')"))
    with pytest.raises(OperationalError, match="no such table"):
        async with db.read() as session:
            await session.execute(text("SELECT * FROM missing"))
    async with db.read() as session:
        assert (await session.execute(text("SELECT count(*) FROM t"))).scalar() == 0
        assert (await session.execute(text("SELECT regexp('^a', 'abc')"))).scalar() == 1


async def test_a_commit_that_fails_rolls_back_and_the_connection_goes_on(db) -> None:
    async with db.write() as session:  # a deferred foreign key fails only at COMMIT
        await session.execute(
            text("CREATE TABLE c (t_id INTEGER REFERENCES t (id) DEFERRABLE INITIALLY DEFERRED)")
        )
    for _ in range(2):  # the pooled connection is not left inside the failed transaction
        with pytest.raises(IntegrityError, match="FOREIGN KEY"):
            async with db.write() as session:
                await session.execute(text("INSERT INTO t (name) VALUES ('kept?')"))
                await session.execute(text("INSERT INTO c VALUES (99)"))
    async with db.transaction() as connection:
        await connection.execute(text("INSERT INTO t (name) VALUES ('after')"))
    async with db.read() as session:
        assert (await session.execute(text("SELECT name FROM t"))).scalars().all() == ["after"]


async def test_a_transaction_that_runs_nothing_ends_cleanly(db) -> None:
    async with db.write():
        pass
    async with db.read():
        pass
    async with db.write() as session:
        await session.execute(text("INSERT INTO t (name) VALUES ('after')"))
    async with db.read() as session:
        assert (await session.execute(text("SELECT name FROM t"))).scalar() == "after"


async def test_writers_of_two_engines_wait_their_turn(db, tmp_path) -> None:
    other = Database(f"sqlite:///{tmp_path / 'd.db'}")  # another process's engine, in effect
    try:

        async def write(database: Database, name: str) -> None:
            async with database.write() as session:
                await session.execute(text("INSERT INTO t (name) VALUES (:n)"), {"n": name})
                await asyncio.sleep(0.01)  # hold the write lock a while

        await asyncio.gather(*(write((db, other)[i % 2], f"n{i}") for i in range(20)))
        async with other.read() as session:
            assert (await session.execute(text("SELECT count(*) FROM t"))).scalar() == 20
    finally:
        await other.dispose()


async def test_a_read_sees_one_snapshot_while_a_writer_commits(db, tmp_path) -> None:
    async with db.write() as session:
        await session.execute(text("INSERT INTO t (name) VALUES ('first')"))
    async with db.read() as reading:
        before = (await reading.execute(text("SELECT count(*) FROM t"))).scalar()
        async with db.write() as session:
            await session.execute(text("INSERT INTO t (name) VALUES ('second')"))
        assert (await reading.execute(text("SELECT count(*) FROM t"))).scalar() == before == 1
