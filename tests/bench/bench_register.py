"""Bulk registration of linked items: ``links.add_links`` beside a raw executemany of the same rows.

Run: ``python -m tests.bench.bench_register [--n 100000] [--postgres URL]``.

Each method fills a fresh dataset in a fresh database. ``add_links`` does everything a user's
registration does (URL and path checks, folders, clash detection, item rows, counters, one event
row per item, one transaction). The anchor is the driver alone inserting the same number of
prebuilt item rows into the same ``items`` table in one transaction (``sqlite3`` and, with
``--postgres`` or ``LOOPLINE_TEST_DATABASE_URL``, ``asyncpg``). The design target is 20,000 linked
items/s on SQLite.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from graph.config import Settings, normalise_database_url
from graph.db.engine import Database
from graph.db.ids import new_ids
from graph.db.migrate import upgrade
from graph.db.tables import Event, Item
from graph.domain import datasets, links, projects, users
from graph.domain.access import Actor
from graph.domain.platform import Platform
from plugins.manager import Plugins
from tests.servers import postgres_server_url

TARGET = 20_000.0
_COLUMNS = (
    "id", "dataset_id", "dir", "name", "filename", "type", "hidden", "annotated",
    "annotations_count", "mimetype", "url", "metadata", "creator", "created_at", "updated_at",
)  # fmt: skip


def link_specs(n: int) -> list[links.LinkSpec]:
    """What a user registers: URLs in a few folders, with two user metadata keys each."""
    return [
        links.LinkSpec(
            f"https://cdn.example.com/cam{i % 4}/{i:07d}.jpg",
            path=f"/cam{i % 4}/{i:07d}.jpg",
            metadata={"frame": i, "camera": f"cam{i % 4}"},
        )
        for i in range(n)
    ]


async def _prepare(url: str, home: Path) -> tuple[Platform, Actor, str]:
    platform = Platform(
        Settings(home=home, database_url=url), Database(url), Plugins(entry_points=False)
    )
    await upgrade(platform.db)
    user = await users.create_user(platform, None, "bench@bench.test")
    actor = Actor(user.id, user.email)
    project = await projects.create_project(platform, actor, "bench")
    dataset = await datasets.create_dataset(platform, actor, project.id, "bench")
    return platform, actor, dataset.id


async def domain_register(url: str, home: Path, n: int) -> float:
    """Seconds for ``add_links`` to register ``n`` links; checks every item and event is there."""
    platform, actor, dataset_id = await _prepare(url, home)
    try:
        specs = link_specs(n)
        start = time.perf_counter()
        report = await links.add_links(platform, actor, dataset_id, specs)
        elapsed = time.perf_counter() - start
        assert report.created == n, report.created
        async with platform.db.read() as session:
            files = await session.scalar(
                select(func.count()).where(Item.dataset_id == dataset_id, Item.type == "file")
            )
            created = await session.scalar(
                select(func.count()).where(Event.resource == "item", Event.action == "created")
            )
        assert files == n and created == n + 4, (files, created)  # + the 4 folders
        return elapsed
    finally:
        await platform.close()


def anchor_rows(dataset_id: str, n: int) -> list[tuple[Any, ...]]:
    """Item rows as the driver takes them, built before the clock starts."""
    now = datetime.now(UTC)
    rows = []
    for i, item_id in enumerate(new_ids(n)):
        url = f"https://cdn.example.com/cam{i % 4}/{i:07d}.jpg"
        metadata = {
            "system": {"linkInfo": {"type": "url", "ref": url, "mimetype": "image/jpeg"}},
            "user": {"frame": i, "camera": f"cam{i % 4}"},
        }
        rows.append(
            (
                item_id, dataset_id, f"/cam{i % 4}", f"{i:07d}.jpg", f"/cam{i % 4}/{i:07d}.jpg",
                "file", False, False, 0, "image/jpeg", url, json.dumps(metadata), "bench",
                now, now,
            )
        )  # fmt: skip
    return rows


async def sqlite_anchor(url: str, home: Path, n: int) -> float:
    platform, _, dataset_id = await _prepare(url, home)
    await platform.close()
    rows = [
        tuple(v.isoformat(" ") if isinstance(v, datetime) else v for v in row)
        for row in anchor_rows(dataset_id, n)
    ]
    connection = sqlite3.connect(make_url(url).database, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        sql = (
            f"INSERT INTO items ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' for _ in _COLUMNS)})"
        )
        start = time.perf_counter()
        connection.execute("BEGIN IMMEDIATE")
        connection.executemany(sql, rows)
        connection.execute("COMMIT")
        return time.perf_counter() - start
    finally:
        connection.close()


async def postgres_anchor(url: str, home: Path, n: int) -> float:
    import asyncpg

    platform, _, dataset_id = await _prepare(url, home)
    await platform.close()
    rows = anchor_rows(dataset_id, n)
    connection = await asyncpg.connect(
        make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    )
    try:
        placeholders = ", ".join(
            f"${i + 1}::jsonb" if c == "metadata" else f"${i + 1}" for i, c in enumerate(_COLUMNS)
        )
        sql = f"INSERT INTO items ({', '.join(_COLUMNS)}) VALUES ({placeholders})"
        start = time.perf_counter()
        async with connection.transaction():
            await connection.executemany(sql, rows)
        return time.perf_counter() - start
    finally:
        await connection.close()


Method = Callable[[str, Path, int], Awaitable[float]]


def _sqlite(root: Path, method: Method, name: str, n: int) -> float:
    home = root / name
    home.mkdir()
    return asyncio.run(method(f"sqlite+aiosqlite:///{home / 'bench.db'}", home, n))


def _postgres(root: Path, base: str, method: Method, name: str, n: int) -> float:
    os.environ["LOOPLINE_TEST_DATABASE_URL"] = base
    with postgres_server_url() as url:
        home = root / name
        home.mkdir()
        return asyncio.run(method(normalise_database_url(url), home, n))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="links to register")
    parser.add_argument("--repeat", type=int, default=3, help="runs per method; the median counts")
    parser.add_argument(
        "--postgres",
        default=os.environ.get("LOOPLINE_TEST_DATABASE_URL"),
        help="a PostgreSQL server URL; a scratch database is made on it and dropped",
    )
    args = parser.parse_args()
    n = args.n
    root = Path(tempfile.mkdtemp(prefix="loopline-bench-"))
    methods: list[tuple[str, Callable[[str], float]]] = [
        ("raw sqlite3 executemany (anchor)", lambda d: _sqlite(root, sqlite_anchor, d, n)),
        ("add_links, SQLite", lambda d: _sqlite(root, domain_register, d, n)),
    ]
    if args.postgres:
        base = args.postgres
        methods += [
            (
                "raw asyncpg executemany (anchor)",
                lambda d: _postgres(root, base, postgres_anchor, d, n),
            ),
            ("add_links, PostgreSQL", lambda d: _postgres(root, base, domain_register, d, n)),
        ]
    results: dict[str, list[float]] = {name: [] for name, _ in methods}
    try:
        # interleaved, so a slow spell of the machine hits every method alike
        for run in range(args.repeat):
            for index, (name, method) in enumerate(methods):
                results[name].append(method(f"{run}-{index}"))
    finally:
        shutil.rmtree(root, ignore_errors=True)

    width = max(len(name) for name in results)
    print(f"{'method':<{width}}  {'items':>8}  {'median s':>8}  {'items/s':>9}  {'best/s':>9}")
    for name, times in results.items():
        median = statistics.median(times)
        print(
            f"{name:<{width}}  {n:>8}  {median:>8.2f}  {n / median:>9,.0f}  {n / min(times):>9,.0f}"
        )
    print(f"target: add_links on SQLite >= {TARGET:,.0f} items/s (median of {args.repeat} runs)")


if __name__ == "__main__":
    main()
