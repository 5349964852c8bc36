"""The engine: SQLite pragmas, whole-or-nothing write transactions, concurrent writers."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select, text

from graph.db.engine import Database
from graph.db.tables import Project
from graph.domain import projects
from graph.domain.errors import Conflict


async def test_sqlite_connections_use_wal_foreign_keys_and_a_busy_timeout(tmp_path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        async with db.read() as session:
            assert (await session.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
            assert (await session.execute(text("PRAGMA foreign_keys"))).scalar() == 1
            assert (await session.execute(text("PRAGMA busy_timeout"))).scalar() >= 10000
    finally:
        await db.dispose()


async def test_write_rolls_back_whole_on_error(platform, owner) -> None:
    with pytest.raises(RuntimeError):
        async with platform.db.write() as session:
            session.add(Project(name="half"))
            await session.flush()
            raise RuntimeError("boom")
    async with platform.db.read() as session:
        assert await session.scalar(select(func.count()).where(Project.name == "half")) == 0


async def test_a_bare_transaction_commits_together_or_not_at_all(platform, owner) -> None:
    """``transaction()``: Core statements that commit together, or roll back whole on error,
    and take their turn beside concurrent writers."""
    table = Project.__table__
    with pytest.raises(RuntimeError):
        async with platform.db.transaction() as connection:
            await connection.execute(table.insert().values(id="p-half", name="half"))
            raise RuntimeError("boom")

    async def both(n: int) -> None:
        async with platform.db.transaction() as connection:
            for part in "ab":
                await connection.execute(table.insert().values(id=f"p{n}{part}", name=f"{n}{part}"))

    await asyncio.gather(
        *(both(n) for n in range(10)),
        *(projects.create_project(platform, owner[0], f"other{n}") for n in range(10)),
    )
    async with platform.db.read() as session:
        names = set(await session.scalars(select(Project.name)))
    assert "half" not in names
    assert {f"{n}{part}" for n in range(10) for part in "ab"} <= names


async def test_many_concurrent_writers_all_succeed(platform, owner) -> None:
    names = [f"p{i}" for i in range(30)]
    await asyncio.gather(*(projects.create_project(platform, owner[0], n) for n in names))
    listed = await projects.list_projects(platform, owner[0], first=100)
    assert sorted(p.name for p in listed.rows) == sorted(names)


async def test_concurrent_creates_of_one_name_give_one_winner(platform, owner) -> None:
    results = await asyncio.gather(
        *(projects.create_project(platform, owner[0], "same") for _ in range(8)),
        return_exceptions=True,
    )
    assert sum(1 for r in results if isinstance(r, Project)) == 1
    assert all(isinstance(r, Conflict) for r in results if not isinstance(r, Project))


async def test_warming_opens_the_kept_connections_once_and_prepares_a_pull(platform) -> None:
    """After ``warm`` (done when the API starts) a burst of requests finds its PostgreSQL
    connections open, each with a pull's statements prepared; SQLite has nothing to open."""
    db = platform.db
    await platform.warm()
    if db.is_sqlite:
        async with db.read() as session:
            assert await session.scalar(text("SELECT 1")) == 1
        return
    pool = db.engine.pool
    assert pool.checkedin() == pool.size() == 20  # open, idle, kept
    held = [db.engine.connect() for _ in range(pool.size())]
    await asyncio.gather(*(connection.start() for connection in held))
    try:
        for connection in held:  # every kept connection, none opened anew
            prepared = list(
                await connection.scalars(text("SELECT statement FROM pg_prepared_statements"))
            )
            assert any("FROM loopline_pull(" in s for s in prepared)
        assert pool.checkedout() == pool.size()
    finally:
        await asyncio.gather(*(connection.close() for connection in held))
    async with db.read() as session:  # the values that prepared them changed nothing
        assert await session.scalar(text("SELECT count(*) FROM task_counts")) == 0
