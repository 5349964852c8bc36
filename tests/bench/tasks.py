"""Tasks at scale: a task over 100k items, concurrent pulls, progress, beside raw SQL.

Run: ``python -m tests.bench.tasks [--items 100000] [--pullers 20] [--pulls 10]
[--postgres URL] [--repeat 5]``.

Builds the items of :mod:`tests.bench.dql_1m` (bulk-inserted) in a fresh SQLite file, and with
``--postgres`` (default ``LOOPLINE_TEST_DATABASE_URL``) in a fresh database on that server, then
times through the domain layer:

- creating a task over every file with 10 assignees at 10% each (role check, DQL, the workload
  split, one INSERT ... SELECT), beside the bare driver inserting the same number of rows from
  the same SELECT into a plain table (what the database costs to write that many rows);
- ``--pullers`` annotators pulling batches of 10 at the same time, ``--pulls`` each, from a
  pulling task over every file: back to back (each pulls again as soon as it has its batch:
  every pull waits for the others ahead of it), the first such round since the platform
  started (its connections prepare their statements) and a second one, and paced (each waits up to half a second before
  a pull, as annotators between batches do); latency of each pull as its caller sees it, p50
  and p99, every pulled item counted to show none went out twice; beside one bare UPDATE;
- the progress of the 100k-item task, beside the bare ``GROUP BY`` it runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from graph.config import Settings, normalise_database_url
from graph.db.tables import Dataset, TaskItem
from graph.domain import assignments, projects, tasks, users
from graph.domain.access import Actor
from graph.domain.platform import Platform
from tests.bench.dql_1m import Fixture, Raw, Row, build, table, timed
from tests.servers import postgres_server_url

ASSIGNEES = 10
BATCH = 10
THINK = 0.5  # seconds an annotator of the paced round may wait between pulls


async def _members(platform: Platform, fixture: Fixture, prefix: str, n: int) -> list[Actor]:
    """``n`` new users, annotators in the fixture's project."""
    async with platform.db.read() as session:
        project_id = await session.scalar(
            select(Dataset.project_id).where(Dataset.id == fixture.dataset_id)
        )
    out = []
    for k in range(n):
        user = await users.create_user(platform, None, f"{prefix}{k}@bench.test")
        await projects.add_member(platform, fixture.actor, str(project_id), user.email, "annotator")
        out.append(Actor(user.id, user.email))
    return out


def _sql(platform: Platform, sqlite: str, postgresql: str) -> str:
    return sqlite if platform.db.is_sqlite else postgresql


async def measure(
    platform: Platform, fixture: Fixture, repeat: int, pullers: int, pulls: int
) -> list[Row]:
    actor, dataset_id = fixture.actor, fixture.dataset_id
    annotators = await _members(platform, fixture, "ann", ASSIGNEES)
    workload = [(a.email, 100 / ASSIGNEES) for a in annotators]
    rows: list[Row] = []
    counter = iter(range(10**6))

    async def create() -> Any:
        return await tasks.create_task(
            platform, actor, dataset_id, f"t{next(counter)}", dql="", workload=workload
        )

    ms, task = await timed(create, repeat)
    async with Raw(platform) as raw:
        files = _sql(
            platform,
            "SELECT id FROM items WHERE dataset_id = ? AND hidden = 0 AND type = 'file'",
            "SELECT id FROM items WHERE dataset_id = $1 AND NOT hidden AND type = 'file'",
        )

        async def insert_anchor() -> None:  # written, then rolled back
            if platform.db.is_sqlite:
                raw.connection.execute("CREATE TEMP TABLE IF NOT EXISTS copied (item_id TEXT)")
                raw.connection.execute(f"INSERT INTO copied {files}", (dataset_id,))
                raw.connection.rollback()
                return
            try:
                async with raw.connection.transaction():
                    await raw.connection.execute("CREATE TEMP TABLE copied (item_id TEXT)")
                    await raw.connection.execute(f"INSERT INTO copied {files}", dataset_id)
                    raise _Rollback
            except _Rollback:
                pass

        anchor, _ = await timed(insert_anchor, repeat)
        rows.append(
            Row(
                f"create a task over {task.items_count:,} items, {ASSIGNEES} assignees",
                ms,
                anchor,
                "raw INSERT SELECT",
                "< 3000",
            )
        )

        ms, progress = await timed(lambda: tasks.progress(platform, actor, task.id), repeat * 4)
        grouped = _sql(
            platform,
            "SELECT assignment_id, status, count(*) FROM task_items WHERE task_id = ? "
            "GROUP BY assignment_id, status",
            "SELECT assignment_id, status, count(*) FROM task_items WHERE task_id = $1 "
            "GROUP BY assignment_id, status",
        )
        anchor, _ = await timed(lambda: raw.rows(grouped, (task.id,)), repeat * 4)
        rows.append(
            Row(
                f"progress of a {progress.total:,}-item task",
                ms,
                anchor,
                "raw GROUP BY",
                "< 20",
            )
        )

        people = await _members(platform, fixture, "puller", pullers)

        async def round_of(name: str, think: float) -> tuple[list[float], list[str], float]:
            """Every puller pulls ``pulls`` times from a new pulling task; between pulls (and
            before the first) it waits up to ``think`` seconds. Latencies, items, seconds."""
            pulling = await tasks.create_task(
                platform,
                actor,
                dataset_id,
                name,
                dql="",
                pulling=assignments.Pulling([p.email for p in people], BATCH, BATCH * pulls),
            )
            latencies: list[float] = []

            async def annotator(person: Actor) -> list[str]:
                got: list[str] = []
                for _ in range(pulls):
                    await asyncio.sleep(rng.uniform(0, think))
                    start = time.perf_counter()
                    got += await assignments.pull(platform, person, pulling.id)
                    latencies.append((time.perf_counter() - start) * 1000)
                return got

            start = time.perf_counter()
            batches = await asyncio.gather(*(annotator(p) for p in people))
            wall = time.perf_counter() - start
            pulled = [item for batch in batches for item in batch]
            async with platform.db.read() as session:
                given = await session.scalar(
                    select(func.count())
                    .select_from(TaskItem)
                    .where(TaskItem.task_id == pulling.id, TaskItem.assignment_id.is_not(None))
                )
            twice = len(pulled) - len(set(pulled))
            assert twice == 0 and given == len(pulled) == pullers * pulls * BATCH, (twice, given)
            pulling_id.append(pulling.id)
            return latencies, pulled, wall

        rng = random.Random(7)
        pulling_id: list[str] = []
        cold = await round_of("cold", 0.0)  # each connection prepares its statements once
        burst = await round_of("burst", 0.0)
        paced = await round_of("paced", THINK)
        one = _sql(
            platform,
            "UPDATE task_items SET assignment_id = NULL WHERE task_id = ? AND (item_id, copy) IN "
            "(SELECT item_id, copy FROM task_items WHERE task_id = ? AND assignment_id IS NULL "
            f"AND status IS NULL ORDER BY item_id, copy LIMIT {BATCH})",
            "UPDATE task_items SET assignment_id = NULL WHERE task_id = $1 AND (item_id, copy) IN "
            "(SELECT item_id, copy FROM task_items WHERE task_id = $1 AND assignment_id IS NULL "
            f"AND status IS NULL ORDER BY item_id, copy LIMIT {BATCH} FOR UPDATE SKIP LOCKED)",
        )

        async def pull_raw() -> None:  # written, then rolled back: the next run finds the same
            if platform.db.is_sqlite:
                raw.connection.execute(one, (pulling_id[0], pulling_id[0]))
                raw.connection.rollback()
                return
            try:
                async with raw.connection.transaction():
                    await raw.connection.execute(one, pulling_id[0])
                    raise _Rollback
            except _Rollback:
                pass

        anchor, _ = await timed(pull_raw, repeat * 4)
        for how, (latencies, pulled, wall) in (
            ("back to back, the first pulls since start", cold),
            ("back to back", burst),
            (f"each waiting 0-{THINK * 1000:.0f} ms between pulls", paced),
        ):
            for share, figure, target in (
                ("p50", statistics.median(latencies), "-"),
                ("p99", statistics.quantiles(latencies, n=100)[98], "< 50"),
            ):
                rows.append(
                    Row(
                        f"pull {BATCH}, {pullers} annotators {how} ({share})",
                        figure,
                        anchor,
                        "raw UPDATE, alone",
                        target,
                        f"{len(pulled):,} pulled, none twice; {len(pulled) / wall:,.0f} items/s"
                        if share == "p50"
                        else "",
                    )
                )
    return rows


class _Rollback(Exception):
    """Ends the anchor's PostgreSQL transaction without keeping what it wrote."""


async def run_one(url: str, n: int, repeat: int, pullers: int, pulls: int) -> None:
    settings = Settings(home=Path(tempfile.mkdtemp(prefix="loopline-bench-")), database_url=url)
    platform = Platform.from_settings(settings)
    try:
        start = time.perf_counter()
        fixture = await build(platform, n)  # migrates the database first
        print(
            f"{platform.db.dialect}: {fixture.items:,} items built in "
            f"{time.perf_counter() - start:.0f} s"
        )
        await platform.warm()  # as `loopline serve` does once it has migrated the database
        print(table(platform.db.dialect, await measure(platform, fixture, repeat, pullers, pulls)))
    finally:
        await platform.close()
        shutil.rmtree(settings.home, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--pullers", type=int, default=20)
    parser.add_argument("--pulls", type=int, default=10, help="pulls per annotator")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--postgres", default=os.environ.get("LOOPLINE_TEST_DATABASE_URL"))
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="loopline-bench-db-"))
    try:
        sqlite = f"sqlite+aiosqlite:///{root / 'bench.db'}"
        asyncio.run(run_one(sqlite, args.items, args.repeat, args.pullers, args.pulls))
        if args.postgres:
            os.environ["LOOPLINE_TEST_DATABASE_URL"] = args.postgres
            with postgres_server_url() as url:  # a fresh database on that server, dropped after
                asyncio.run(
                    run_one(
                        normalise_database_url(url),
                        args.items,
                        args.repeat,
                        args.pullers,
                        args.pulls,
                    )
                )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
