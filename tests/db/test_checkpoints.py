"""SQLite's WAL checkpoints run beside the writers: committed data reaches the database file,
the WAL file stays bounded, and no commit pays for a checkpoint."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import shutil
import sqlite3
import threading
import time
from pathlib import Path

from sqlalchemy import text

from graph.db.engine import Database

_MB = 1 << 20


def _checkpointers() -> int:
    return sum(t.name == "loopline-checkpoint" and t.is_alive() for t in threading.enumerate())


async def _write_mb(db: Database, megabytes: int) -> None:
    async with db.write() as session:
        await session.execute(text("CREATE TABLE IF NOT EXISTS blobs (b BLOB)"))
        for _ in range(megabytes):
            await session.execute(text("INSERT INTO blobs VALUES (randomblob(:n))"), {"n": _MB})


async def _until(condition, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


def _rows_in_file_alone(path: Path, copy: Path) -> int:
    """Rows of ``blobs`` in a copy of the database file without its WAL (as a file copy would
    back it up); -1 while the copy is torn by a checkpoint in progress."""
    shutil.copyfile(path, copy)
    try:
        with contextlib.closing(sqlite3.connect(copy)) as connection:
            return connection.execute("SELECT count(*) FROM blobs").fetchone()[0]
    except sqlite3.Error:
        return -1


async def test_commits_reach_the_database_file_and_the_wal_stays_bounded(tmp_path) -> None:
    path, copy = tmp_path / "x.db", tmp_path / "copy.db"
    db = Database(f"sqlite:///{path}")
    try:
        async with db.read() as session:  # commits leave the checkpoints to the thread
            assert (await session.execute(text("PRAGMA wal_autocheckpoint"))).scalar() == 0
        for round_ in range(1, 5):
            await _write_mb(db, 4)
            assert await _until(lambda r=round_: _rows_in_file_alone(path, copy) == 4 * r)
            await asyncio.sleep(1)  # the checkpoint that copied the rows has ended
        # the WAL is written again from its start once all of it is in the database file:
        # 16 MB were written, one round's worth at a time
        assert Path(f"{path}-wal").stat().st_size < 8 * _MB
    finally:
        await db.dispose()


async def test_the_thread_ends_with_its_database(tmp_path) -> None:
    before = _checkpointers()
    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    assert _checkpointers() == before  # none until the first connection
    await _write_mb(db, 1)
    assert _checkpointers() == before + 1
    await db.dispose()
    assert _checkpointers() == before

    dropped = Database(f"sqlite:///{tmp_path / 'y.db'}")
    await _write_mb(dropped, 1)
    await dropped.engine.dispose()
    del dropped  # never disposed: the thread stops when the database object goes
    gc.collect()
    assert await _until(lambda: _checkpointers() == before)


async def test_an_in_memory_database_has_no_checkpoints() -> None:
    before = _checkpointers()
    db = Database("sqlite://")
    try:
        await _write_mb(db, 1)
        assert _checkpointers() == before
    finally:
        await db.dispose()
