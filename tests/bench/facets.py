"""Facets at scale: the 1M-item / 2.5M-annotation data of :mod:`tests.bench.dql_1m`, beside raw SQL.

Run: ``python -m tests.bench.facets [--items 1000000] [--postgres URL] [--repeat 10]
[--keep PATH --reuse]`` (``--keep``/``--reuse`` as in ``dql_1m``: a kept database is measured
again, and data ``dql_1m --keep`` built can be reused).

Each facet is timed through the domain layer (role check, parse, compile, one ``GROUP BY``)
beside, on the bare driver, the hand-written ``GROUP BY`` a developer would type for the same
rows (grouping a JSON path by its text, which merges ``1``, ``"1"`` and ``true``) and the very
statement the facet sent (what the database itself costs); then the database's plan of the
facet's statement shows whether it reads a declared index.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sqlalchemy import event

from graph.config import Settings, normalise_database_url
from graph.domain import facets, label_counts
from graph.domain.platform import Platform
from tests.bench.dql_1m import (
    Fixture,
    Raw,
    Row,
    build,
    declare_indexes,
    existing,
    table,
    timed,
)
from tests.servers import postgres_server_url


class Sent:
    """The last statement and parameters the platform's engine sent, for replay and EXPLAIN."""

    def __init__(self, platform: Platform) -> None:
        self.engine = platform.db.engine.sync_engine
        self.sql, self.params = "", ()

    def __enter__(self) -> Sent:
        event.listen(self.engine, "before_cursor_execute", self.seen)
        return self

    def __exit__(self, *exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self.seen)

    def seen(self, _conn: Any, _cursor: Any, sql: str, params: Any, *_: Any) -> None:
        self.sql, self.params = sql, tuple(params or ())


async def measure(platform: Platform, fixture: Fixture, repeat: int) -> tuple[list[Row], list[str]]:
    actor, dataset_id = fixture.actor, fixture.dataset_id
    sqlite = platform.db.is_sqlite
    mark = "?" if sqlite else "$1"
    rows: list[Row] = []
    plans: list[str] = []

    def value(key: str) -> str:
        return (
            f"json_extract(metadata, '$.user.{key}')"
            if sqlite
            else f"metadata #>> '{{user,{key}}}'"
        )

    # the files of the dataset, as the facets (and the lists) count them
    files = f"dataset_id = {mark} AND hidden = {'0' if sqlite else 'false'} AND type = 'file'"

    cases: list[tuple[str, Callable[[], Awaitable[facets.Facet]], str, str]] = [
        (
            "annotations per label",
            lambda: facets.annotation_facet(platform, actor, dataset_id),
            f"SELECT label, count(*) FROM annotations WHERE dataset_id = {mark} GROUP BY label",
            "< 150",
        ),
        (
            "annotations per label, front-camera files",
            lambda: facets.annotation_facet(
                platform, actor, dataset_id, item_dql='metadata.user.camera = "front"'
            ),
            f"SELECT label, count(*) FROM annotations WHERE dataset_id = {mark} AND item_id IN "
            f"(SELECT id FROM items WHERE {files} AND {value('camera')} = 'front') GROUP BY label",
            "",
        ),
        (
            "files per metadata.user.camera (indexed)",
            lambda: facets.item_facet(platform, actor, dataset_id, "metadata.user.camera"),
            f"SELECT {value('camera')}, count(*) FROM items WHERE {files} GROUP BY 1",
            "",
        ),
        (
            "files per metadata.user.site (not indexed)",
            lambda: facets.item_facet(platform, actor, dataset_id, "metadata.user.site"),
            f"SELECT {value('site')}, count(*) FROM items WHERE {files} GROUP BY 1",
            "",
        ),
        (
            "files per dir (column)",
            lambda: facets.item_facet(platform, actor, dataset_id, "dir"),
            f"SELECT dir, count(*) FROM items WHERE {files} GROUP BY dir",
            "",
        ),
    ]
    explain = "EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN "
    async with Raw(platform) as raw:
        for work, run, hand, target in cases:
            with Sent(platform) as sent:
                ms, found = await timed(run, repeat)
            params = (dataset_id,) * hand.count(mark) if sqlite else (dataset_id,)
            anchor, _ = await timed(lambda hand=hand, p=params: raw.rows(hand, p), repeat)
            same, _ = await timed(lambda s=sent: raw.rows(s.sql, s.params), repeat)
            top = ", ".join(f"{v.value}: {v.count:,}" for v in found.values[:3])
            note = f"same SQL {same:.1f} ms; {found.total:,} rows, {found.distinct} values ({top})"
            rows.append(Row(work, ms, anchor, "raw GROUP BY", target, note))
            plan = await raw.rows(explain + sent.sql, sent.params)
            lines = [str(p[-1]) if sqlite else str(p[0]) for p in plan]
            plans.append(f"  {work}:\n" + "\n".join(f"    {line}" for line in lines))
    return rows, plans


async def run_one(url: str, n: int, repeat: int, reuse: bool) -> None:
    settings = Settings(home=Path(tempfile.mkdtemp(prefix="loopline-bench-")), database_url=url)
    platform = Platform.from_settings(settings)
    try:
        start = time.perf_counter()
        fixture = await existing(platform) if reuse else None
        if fixture is None:
            fixture = await build(platform, n)
            print(
                f"{platform.db.dialect}: {fixture.items:,} items, {fixture.annotations:,} "
                f"annotations built in {time.perf_counter() - start:.0f} s"
            )
        await declare_indexes(platform, fixture.actor)
        await label_counts.fold(platform)  # as the scheduler does every second
        measured, plans = await measure(platform, fixture, repeat)
        print(table(platform.db.dialect, measured))
        print("plans of the facets' statements:")
        print("\n".join(plans))
    finally:
        await platform.close()
        shutil.rmtree(settings.home, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--postgres", default=os.environ.get("LOOPLINE_TEST_DATABASE_URL"))
    parser.add_argument("--keep", type=Path, default=None, help="As in tests.bench.dql_1m.")
    parser.add_argument("--reuse", action="store_true", help="With --keep: measure kept data.")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="loopline-bench-db-"))
    try:
        path = args.keep or root / "bench.db"
        reuse = args.reuse and args.keep is not None
        asyncio.run(run_one(f"sqlite+aiosqlite:///{path}", args.items, args.repeat, reuse))
        if args.postgres and args.keep:
            url = normalise_database_url(args.postgres)
            asyncio.run(run_one(url, args.items, args.repeat, reuse))
        elif args.postgres:
            os.environ["LOOPLINE_TEST_DATABASE_URL"] = args.postgres
            with postgres_server_url() as url:  # a fresh database on that server, dropped after
                asyncio.run(run_one(normalise_database_url(url), args.items, args.repeat, False))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
