"""DQL at scale: 1M items with realistic metadata and ~2.5M annotations, beside raw SQL.

Run: ``python -m tests.bench.dql_1m [--items 1000000] [--postgres URL] [--repeat 20]
[--postgres-only] [--quick]``; ``--only compile`` measures parsing and compiling alone, for both
dialects, without data.

Builds the data with bulk inserts in a fresh SQLite file, and with ``--postgres`` (default
``LOOPLINE_TEST_DATABASE_URL``) in a fresh database on that server, dropped afterwards; gathers
statistics (and on PostgreSQL vacuums) as a live database would have; declares metadata indexes
on the filtered paths through ``graph.domain.indexes``. Each question is then timed through the
domain layer (``items.list_items`` / ``items.count_items``: role check, parse, compile, keyset
page, ORM rows) beside an anchor measured in the same run on the bare driver (sqlite3 / asyncpg):
the same SQL statement (what the database itself costs), ``OFFSET`` paging, the hand-written
``GROUP BY``, or a full scan of the same JSON expression. Figures are medians of ``--repeat``
runs after a warm-up. ``--keep PATH --reuse`` measures again data a previous run kept.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import shutil
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import DBAPIError

from dql import compiler, parse
from dql.compiler import compile_query
from graph.config import Settings, normalise_database_url
from graph.db.bulk import insert_many
from graph.db.engine import SQLITE_MMAP_BYTES
from graph.db.ids import new_ids
from graph.db.migrate import upgrade
from graph.db.tables import Annotation, Dataset, Item, User
from graph.domain import (
    datasets,
    explain,
    facets,
    indexes,
    items,
    label_counts,
    planning,
    projects,
    queries,
    users,
)
from graph.domain.access import Actor
from graph.domain.paging import encode_cursor
from graph.domain.platform import Platform
from tests.servers import postgres_server_url

CAMERAS = ("front", "back", "left", "right")
TAGS = ("day", "night", "rain", "urban", "highway", "snow")
LABELS = tuple(
    "car truck bus bicycle person dog cat bird sign light pole tree cone barrier rider "
    "scooter stroller train boat kite".split()
)
DIRS = 1000
CHUNK = 50_000
BENCH_USER = "bench@bench.test"


@dataclass(frozen=True)
class Fixture:
    actor: Actor
    dataset_id: str
    items: int
    annotations: int


def _item_rows(dataset_id: str, n: int, rng: random.Random) -> tuple[list[dict[str, Any]], int]:
    """Folder rows and file rows; files per folder, user metadata of a camera fleet."""
    start = datetime(2024, 1, 1, tzinfo=UTC)
    folder_ids = new_ids(DIRS)
    rows: list[dict[str, Any]] = []
    for d, folder_id in enumerate(folder_ids):
        name = f"batch_{d:04d}"
        rows.append(
            {
                "id": folder_id,
                "dataset_id": dataset_id,
                "dir": "/",
                "name": name,
                "filename": f"/{name}",
                "type": "dir",
                "metadata": {},
                "created_at": start,
                "updated_at": start,
            }
        )
    ids = new_ids(n)
    for i, item_id in enumerate(ids):
        folder = f"/batch_{i % DIRS:04d}"
        name = f"frame_{i:07d}.jpg"
        user: dict[str, Any] = {
            "camera": CAMERAS[rng.randrange(4)],
            "score": rng.random(),
            "tags": rng.sample(TAGS, rng.randrange(3)),
            "site": f"site{rng.randrange(10)}",
        }
        if rng.random() < 0.3:
            user["reviewed"] = rng.random() < 0.5
        when = start + timedelta(seconds=i)
        rows.append(
            {
                "id": item_id,
                "dataset_id": dataset_id,
                "dir": folder,
                "name": name,
                "filename": f"{folder}/{name}",
                "type": "file",
                "mimetype": "image/jpeg",
                "size": 50_000 + rng.randrange(200_000),
                "width": 1920,
                "height": 1080,
                "url": f"https://cdn.example.com/{folder}/{name}",
                "metadata": {"system": {"originalname": name}, "user": user},
                "created_at": when,
                "updated_at": when,
            }
        )
    return rows, DIRS


async def build(platform: Platform, n: int, seed: int = 7) -> Fixture:
    """A user, project and dataset made through the domain; items and annotations bulk-inserted."""
    await upgrade(platform.db)
    user = await users.create_user(platform, None, BENCH_USER)
    actor = Actor(user.id, user.email)
    project = await projects.create_project(platform, actor, "bench")
    dataset = await datasets.create_dataset(platform, actor, project.id, "bench")
    rng = random.Random(seed)
    rows, folders = _item_rows(dataset.id, n, rng)
    file_ids = [r["id"] for r in rows[folders:]]
    async with platform.db.write() as session:
        for at in range(0, len(rows), CHUNK):
            await insert_many(session, Item.__table__, _full(Item.__table__, rows[at : at + CHUNK]))
    del rows
    total = 0
    async with platform.db.write() as session:
        batch: list[dict[str, Any]] = []
        counts: list[tuple[str, int]] = []
        for item_id in file_ids:
            k = rng.randrange(6)  # 0..5, 2.5 a item on average
            counts.append((item_id, k))
            for label_at in rng.choices(range(len(LABELS)), k=k):
                x, y = rng.randrange(1800), rng.randrange(1000)
                batch.append(
                    {
                        "item_id": item_id,
                        "dataset_id": dataset.id,
                        "type": "box",
                        "label": LABELS[label_at],
                        "coordinates": [{"x": x, "y": y}, {"x": x + 80, "y": y + 60}],
                        "attributes": {"occluded": rng.random() < 0.2},
                        "confidence": rng.random(),
                    }
                )
            if len(batch) >= CHUNK:
                total += await _annotations(session, batch)
                batch = []
        total += await _annotations(session, batch)
        await session.execute(
            update(Dataset)
            .where(Dataset.id == dataset.id)
            .values(items_count=n + folders, annotations_count=total)
        )
    await _set_counts(platform, counts)
    await analyze(platform)
    return Fixture(actor, dataset.id, n, total)


def _full(table: Any, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows with every column, scalar defaults filled in (insert_many needs one key set)."""
    defaults = {
        c.key: c.default.arg if c.default is not None and c.default.is_scalar else None
        for c in table.c
    }
    return [{**defaults, **row} for row in rows]


async def _annotations(session: Any, batch: list[dict[str, Any]]) -> int:
    if not batch:
        return 0
    now = datetime.now(UTC)
    ids = new_ids(len(batch))
    for row, annotation_id in zip(batch, ids, strict=True):
        row.update(id=annotation_id, created_at=now, updated_at=now, metadata={})
    await insert_many(session, Annotation.__table__, _full(Annotation.__table__, batch))
    return len(batch)


async def _set_counts(platform: Platform, counts: Sequence[tuple[str, int]]) -> None:
    async with platform.db.write() as session:
        connection = await session.connection()
        statement = "UPDATE items SET annotations_count = {p}, annotated = {q} WHERE id = {r}"
        marks = ("?", "?", "?") if platform.db.is_sqlite else ("$1", "$2", "$3")
        sql = statement.format(p=marks[0], q=marks[1], r=marks[2])
        rows = [(k, k > 0, item_id) for item_id, k in counts if k]
        for at in range(0, len(rows), CHUNK):
            await connection.exec_driver_sql(sql, rows[at : at + CHUNK])


async def analyze(platform: Platform) -> None:
    """The state a live database is in: statistics for the planner (SQLite gathers them when
    asked) and, on PostgreSQL, the all-visible marks index-only scans need (autovacuum's work)."""
    if platform.db.is_sqlite:
        async with platform.db.write() as session:
            await session.execute(text("ANALYZE"))
        return
    async with platform.db.engine.connect() as connection:
        autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
        await autocommit.exec_driver_sql("VACUUM ANALYZE")


async def declare_indexes(platform: Platform, actor: Actor) -> float:
    """The metadata indexes the measured filters use, declared through the domain; seconds."""
    start = time.perf_counter()
    for path in INDEXED:
        await indexes.create_index(platform, actor, "items", path)
    await analyze(platform)
    return time.perf_counter() - start


INDEXED = ("metadata.user.camera", "metadata.user.score")
TEN_CLAUSES = (
    'dir = "/batch_0001" and metadata.user.camera in ("front", "back") and width >= {n} '
    'and not has metadata.user.reviewed and annotations.any(label = "cat" and confidence < 0.5) '
    'and annotations.count(type = "box") >= 2 and metadata.user.score > 0.3 '
    'and name like "frame_*" and height <= 2000 and mimetype = "image/jpeg" '
    "order by metadata.user.score desc"
)


@dataclass
class Row:
    work: str
    ours: float
    anchor: float | None
    anchor_name: str
    target: str
    note: str = ""


class Raw:
    """The bare driver (sqlite3 / asyncpg) on the same database, for the anchors."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.dialect = platform.db.engine.dialect
        self.connection: Any = None

    async def __aenter__(self) -> Raw:
        url = self.platform.db.engine.url
        if self.platform.db.is_sqlite:
            self.connection = sqlite3.connect(url.database)
            # the platform's own read settings, so the anchor is the same database work
            self.connection.execute(f"PRAGMA mmap_size={SQLITE_MMAP_BYTES}")
        else:
            self.connection = await asyncpg.connect(
                user=url.username,
                password=url.password,
                host=url.host,
                port=url.port,
                database=url.database,
            )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.platform.db.is_sqlite:
            self.connection.close()
        else:
            await self.connection.close()

    async def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        if self.platform.db.is_sqlite:
            return self.connection.execute(sql, params).fetchall()
        return await self.connection.fetch(sql, *params)

    def statement(self, statement: Any, params: Mapping[str, Any]) -> tuple[str, list[Any]]:
        """A SQLAlchemy statement (its DQL parameters' values in ``params``) as the driver gets
        it: SQL text and positional values."""
        compiled = statement.compile(dialect=self.dialect)
        state = compiled.construct_expanded_state(dict(params))  # `in` lists spelled out
        return state.statement, [state.parameters[name] for name in state.positiontup or ()]


def _sql(platform: Platform, sqlite: str, postgresql: str) -> str:
    return sqlite if platform.db.is_sqlite else postgresql


async def compile_rows(dialect: str, dataset_id: str, repeat: int) -> list[Row]:
    """Parse + compile of TEN_CLAUSES: a new text of a shape compiled before (only the values
    differ: the compiled expression is reused), a text of a shape never seen (a path no query
    named before: that condition is compiled, the others are those earlier shapes held), the
    same with every cache emptied first, and the same text again (the domain's caches)."""
    fields = queries.item_fields(dataset_id)
    counter = iter(range(10**9))

    async def parsed() -> Any:
        return parse(TEN_CLAUSES.format(n=640 + next(counter)))

    async def known_shape() -> Any:
        return compile_query(parse(TEN_CLAUSES.format(n=640 + next(counter))), fields, dialect)

    async def new_shape() -> Any:
        k = next(counter)
        text = TEN_CLAUSES.format(n=640 + k).replace("user.reviewed", f"user.reviewed{k}")
        return compile_query(parse(text), fields, dialect)

    async def cold() -> Any:
        # nothing compiled before: every condition and JSON path expression built anew
        compiler.clear_caches()
        return compile_query(parse(TEN_CLAUSES.format(n=640 + next(counter))), fields, dialect)

    async def cached() -> Any:
        query = queries.parse_query(TEN_CLAUSES.format(n=640))
        return queries.compile_for(query, "items", dialect, dataset_id)

    parse_ms, _ = await timed(parsed, repeat * 10)
    known_ms, _ = await timed(known_shape, repeat * 10)
    new_ms, _ = await timed(new_shape, repeat * 10)
    cold_ms, _ = await timed(cold, repeat * 10)
    cached_ms, _ = await timed(cached, repeat * 10)
    alone = "parse alone"
    return [
        Row(
            "parse + compile, 10 clauses, new text, known shape", known_ms, parse_ms, alone, "< 0.3"
        ),
        Row("parse + compile, 10 clauses, never-seen shape", new_ms, parse_ms, alone, "< 0.3"),
        Row("parse + compile, 10 clauses, cold (no caches)", cold_ms, parse_ms, alone, "-"),
        Row("parse + compile, 10 clauses, same text (cached)", cached_ms, None, "", "< 0.3"),
    ]


async def measure(
    platform: Platform, fixture: Fixture, repeat: int, quick: bool = False
) -> list[Row]:
    """The rows of the table; ``quick``: up to the indexed counts (not the paging, quantifier
    and scan rows, which take minutes on PostgreSQL)."""
    actor, dataset_id, dialect = fixture.actor, fixture.dataset_id, platform.db.dialect
    rows = await compile_rows(dialect, dataset_id, repeat)

    async def listed(dql: str) -> tuple[Any, Mapping[str, Any]]:
        """The page's statement as ``list_items`` plans it (the probe itself is not in it)."""
        async with platform.db.read() as session:
            statement, params, _ = await planning.page_select(
                session,
                parse(dql),
                "items",
                dataset_id,
                items.listing(dataset_id),
                fixture.items + DIRS,
                items.LISTING,
                100,
                None,
            )
        return statement, params

    async with platform.db.read() as session:
        stored = await indexes.stored(session)

    def counted(dql: str, stored: queries.Stored = stored) -> tuple[Any, Mapping[str, Any]]:
        compiled = queries.compile_for(parse(dql), "items", dialect, dataset_id, stored=stored)
        statement = select(func.count()).where(*items.listing(dataset_id), compiled.where)
        return statement, compiled.params

    async with Raw(platform) as raw:

        async def same(statement: tuple[Any, Mapping[str, Any]]) -> float:
            sql, params = raw.statement(*statement)
            ms, _ = await timed(lambda: raw.rows(sql, params), repeat)
            return ms

        async def page(dql: str) -> Any:
            return await items.list_items(platform, actor, dataset_id, dql=dql, first=100)

        async def count(dql: str) -> int:
            return await items.count_items(platform, actor, dataset_id, dql=dql)

        for dql, share in (
            ('metadata.user.camera = "front"', "25%"),
            ("metadata.user.score > 0.999", "0.1%"),
            ("metadata.user.score > 0.9", "10%"),  # SQLite: the probe's longest count
        ):
            ms, result = await timed(lambda dql=dql: page(dql), repeat)
            assert result.rows
            anchor = await same(await listed(dql))
            rows.append(
                Row(f"indexed filter ({share}), first page of 100", ms, anchor, "same SQL", "< 5")
            )
        dql = "metadata.user.score > 0.9"
        ms, found = await timed(lambda: count(dql), repeat)
        anchor = await same(counted(dql))
        limit = "< 50" if platform.db.is_sqlite else "< 100"
        note = "" if platform.db.is_sqlite else "same SQL: on the generated columns"
        rows.append(
            Row(f"count of a 10% match, indexed ({found:,})", ms, anchor, "same SQL", limit, note)
        )
        if not platform.db.is_sqlite:
            # the count as it reads the JSON expressions when the path is not stored in columns
            # (what it ran before generated columns, there beside an expression index)
            anchor = await same(counted(dql, stored=frozenset()))
            rows.append(
                Row(
                    "the same count on the JSON expressions",
                    math.nan,
                    anchor,
                    "same SQL, JSON",
                    "-",
                    "no index serves it once the path is stored in columns",
                )
            )
        if quick:
            return rows

        # a page at depth 900k: the cursor of the row there, as the previous page gave it out
        position = min(900_000, fixture.items - 101)
        deep = await raw.rows(
            _sql(
                platform,
                "SELECT type, filename, id FROM items WHERE dataset_id = ? AND hidden = 0 "
                "ORDER BY type, filename, id LIMIT 1 OFFSET ?",
                "SELECT type, filename, id FROM items WHERE dataset_id = $1 AND NOT hidden "
                "ORDER BY type, filename, id LIMIT 1 OFFSET $2",
            ),
            (dataset_id, position),
        )
        cursor = encode_cursor(tuple(deep[0]))

        async def deep_page() -> Any:
            return await items.list_items(platform, actor, dataset_id, first=100, after=cursor)

        ms, result = await timed(deep_page, repeat)
        assert len(result.rows) == 100
        offset_sql = _sql(
            platform,
            "SELECT * FROM items WHERE dataset_id = ? AND hidden = 0 "
            "ORDER BY type, filename, id LIMIT 100 OFFSET ?",
            "SELECT * FROM items WHERE dataset_id = $1 AND NOT hidden "
            "ORDER BY type, filename, id LIMIT 100 OFFSET $2",
        )
        anchor, _ = await timed(lambda: raw.rows(offset_sql, (dataset_id, position)), repeat)
        rows.append(Row(f"page at depth {position:,} (keyset)", ms, anchor, "raw OFFSET", "< 5"))

        for dql, work, target, note in (
            (
                'annotations.any(label = "cat")',
                'annotations.any(label="cat"), first page',
                "< 20",
                "",
            ),
            (  # 0.01% of the items, and no index on confidence
                'annotations.any(label = "cat" and confidence < 0.001)',
                "the same, rare (and confidence < 0.001)",
                "-",
                _sql(
                    platform,
                    "the probe's worst case: it reads every cat, then the page again",
                    "reads every annotation (the planner's choice)",
                ),
            ),
        ):
            ms, result = await timed(lambda dql=dql: page(dql), repeat)
            assert result.rows
            anchor = await same(await listed(dql))
            rows.append(Row(work, ms, anchor, "same SQL", target, note))
        dql = 'annotations.count(label = "cat") >= 2'
        ms, found = await timed(lambda: count(dql), repeat)
        grouped = _sql(
            platform,
            "SELECT count(*) FROM (SELECT item_id FROM annotations WHERE dataset_id = ? "
            "AND label = 'cat' GROUP BY item_id HAVING count(*) >= 2)",
            "SELECT count(*) FROM (SELECT item_id FROM annotations WHERE dataset_id = $1 "
            "AND label = 'cat' GROUP BY item_id HAVING count(*) >= 2) AS two",
        )
        anchor, _ = await timed(lambda: raw.rows(grouped, (dataset_id,)), repeat)
        rows.append(
            Row(
                f">= 2 annotations of one label, count ({found:,})",
                ms,
                anchor,
                "raw GROUP BY",
                "< 50",
            )
        )
        await label_counts.fold(platform)  # as the scheduler does every second
        facet = _sql(
            platform,
            "SELECT label, count(*) FROM annotations WHERE dataset_id = ? GROUP BY label",
            "SELECT label, count(*) FROM annotations WHERE dataset_id = $1 GROUP BY label",
        )
        ms, found = await timed(
            lambda: facets.annotation_facet(platform, actor, dataset_id), repeat
        )
        anchor, _ = await timed(lambda: raw.rows(facet, (dataset_id,)), repeat)
        rows.append(
            Row(
                f"facet: annotations per label ({found.distinct} labels)",
                ms,
                anchor,
                "raw GROUP BY",
                "< 150",
                "counts kept by the database (graph/domain/label_counts.py)",
            )
        )

        dql = 'metadata.user.site = "site3"'
        ms, found = await timed(lambda: count(dql), repeat)
        scan = _sql(
            platform,
            "SELECT count(*) FROM items WHERE json_extract(metadata, '$.user.site') = 'site3'",
            "SELECT count(*) FROM items WHERE metadata #>> '{user,site}' = 'site3'",
        )
        anchor, _ = await timed(lambda: raw.rows(scan, ()), repeat)
        rows.append(
            Row(
                f"unindexed filter, count ({found:,})",
                ms,
                anchor,
                "raw full scan",
                "<= 1.2x anchor",
                f"{ms / anchor:.2f}x",
            )
        )
    return rows


async def verdicts(platform: Platform, fixture: Fixture) -> list[str]:
    """What ``explain`` says of the measured filters."""
    out = []
    for dql in (
        'metadata.user.camera = "front"',
        "metadata.user.score > 0.9",
        'annotations.any(label = "cat")',
        'metadata.user.site = "site3"',
    ):
        found = await explain.explain(platform, fixture.actor, "items", fixture.dataset_id, dql)
        out.append(f"  {dql}: {found.verdict}")
    return out


def table(dialect: str, rows: Sequence[Row]) -> str:
    def figure(value: float | None) -> str:
        return "-" if value is None or math.isnan(value) else f"{value:.2f}"

    lines = [
        f"{'work (' + dialect + ')':<52}  {'ours ms':>8}  {'anchor ms':>9}  {'anchor':<14}  "
        f"{'target ms':<14}  note",
    ]
    for row in rows:
        lines.append(
            f"{row.work:<52}  {figure(row.ours):>8}  {figure(row.anchor):>9}  "
            f"{row.anchor_name:<14}  {row.target:<14}  {row.note}"
        )
    return "\n".join(lines)


async def timed(work: Callable[[], Awaitable[Any]], repeat: int) -> tuple[float, Any]:
    """Median milliseconds of ``repeat`` runs after a warm-up, and the last result."""
    result = await work()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = await work()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000, result


async def run_one(url: str, n: int, repeat: int, reuse: bool, quick: bool = False) -> None:
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
        seconds = await declare_indexes(platform, fixture.actor)
        print(f"indexes on {', '.join(INDEXED)} declared and built in {seconds:.1f} s")
        print(
            "statistics gathered"
            + ("" if platform.db.is_sqlite else " and the tables vacuumed (VACUUM ANALYZE)")
            + " after building and declaring, as a live database's autovacuum would"
        )
        print(table(platform.db.dialect, await measure(platform, fixture, repeat, quick)))
        print("explain:")
        print("\n".join(await verdicts(platform, fixture)))
    finally:
        await platform.close()
        shutil.rmtree(settings.home, ignore_errors=True)


async def existing(platform: Platform) -> Fixture | None:
    """The data a previous run built in this database (``--reuse``), if any, migrated to the
    current schema."""
    try:
        await upgrade(platform.db)
        async with platform.db.read() as session:
            dataset = await session.scalar(select(Dataset))
            user = await session.scalar(select(User).where(User.email == BENCH_USER))
    except DBAPIError:
        return None
    if dataset is None or user is None:
        return None
    actor = Actor(user.id, user.email)
    return Fixture(actor, dataset.id, dataset.items_count - DIRS, dataset.annotations_count)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--postgres", default=os.environ.get("LOOPLINE_TEST_DATABASE_URL"))
    parser.add_argument(
        "--keep",
        type=Path,
        default=None,
        help="Keep the SQLite file here (and the PostgreSQL "
        "database at the --postgres URL itself, not a fresh one).",
    )
    parser.add_argument(
        "--reuse", action="store_true", help="With --keep: measure the data a run kept."
    )
    parser.add_argument(
        "--postgres-only", action="store_true", help="Measure PostgreSQL alone (not SQLite)."
    )
    parser.add_argument(
        "--quick", action="store_true", help="Only the rows up to the indexed counts."
    )
    parser.add_argument(
        "--only",
        choices=["compile"],
        help="compile: parse + compile alone, both dialects, no data built.",
    )
    args = parser.parse_args()
    if args.only == "compile":
        for dialect in ("sqlite", "postgresql"):
            print(table(dialect, asyncio.run(compile_rows(dialect, "bench", args.repeat))))
        return
    root = Path(tempfile.mkdtemp(prefix="loopline-bench-db-"))
    try:
        path = args.keep or root / "bench.db"
        reuse = args.reuse and args.keep is not None
        if not args.postgres_only:
            sqlite_url = f"sqlite+aiosqlite:///{path}"
            asyncio.run(run_one(sqlite_url, args.items, args.repeat, reuse, args.quick))
        if args.postgres and args.keep:
            url = normalise_database_url(args.postgres)
            asyncio.run(run_one(url, args.items, args.repeat, reuse, args.quick))
        elif args.postgres:
            os.environ["LOOPLINE_TEST_DATABASE_URL"] = args.postgres
            with postgres_server_url() as url:  # a fresh database on that server, dropped after
                url = normalise_database_url(url)
                asyncio.run(run_one(url, args.items, args.repeat, False, args.quick))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
