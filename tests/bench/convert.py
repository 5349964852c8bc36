"""COCO export and import at scale, beside a plain ``json.dump`` of the same dicts.

Run: ``python -m tests.bench.convert [--annotations 100000] [--items 10000]
[--sizes 10000,100000,1000000] [--postgres URL] [--repeat 3] [--postgres-only]``.

Builds, with bulk inserts, one dataset of ``--annotations`` boxes over ``--items`` images, a twin
with the same images and no annotations (what the import fills), and for each of ``--sizes`` a
dataset of that many boxes at the same density (10 an image for the defaults) — in a fresh SQLite
file, and with ``--postgres`` (default ``LOOPLINE_TEST_DATABASE_URL``) in a fresh database on
that server, dropped afterwards.

What is measured, and how:

- **export**: ``export_dataset`` in COCO, run in this process exactly as a worker runs a platform
  operation (``operations.run`` with a ``Work``), spool, converter and blob included; only the
  progress reports (one a page) and log lines are dropped instead of written to an execution's
  row. Median of ``--repeat`` runs after a warm-up.
- **memory**: each size exported once in a fresh process (``--child``) that has loaded
  everything and opened the database first: the growth of its peak anonymous memory
  (``RssAnon``, sampled every 5 ms: Python's and the drivers' heaps, not a tracemalloc count of
  Python objects) — flat in dataset size is the target. Beside it the growth of the peak
  resident set (``VmHWM`` over ``VmRSS``), which also counts the database file's pages SQLite
  reads through its memory map: the operating system's file cache, shared and reclaimable, that
  grows with what is read, not memory the export holds.
- **import**: ``import_annotations`` in COCO of the archive the export made, into the twin
  (archive received as an upload is, then the operation run as a worker runs it). Once: a second
  run would import into a dataset that has the annotations.
- **anchors**: the archive's ``annotations.json`` loaded, then a plain ``json.dump`` of those
  dicts to a file (beside the export) and ``json.load`` of it (beside the import); medians of the
  same ``--repeat``.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import math
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from graph.config import Settings, normalise_database_url
from graph.db.bulk import insert_many
from graph.db.ids import new_ids
from graph.db.migrate import upgrade
from graph.db.tables import Annotation, Blob, Dataset, Item, User
from graph.domain import datasets, exports, imports, operations, projects, users
from graph.domain.access import Actor
from graph.domain.platform import Platform
from graph.domain.work import Work
from tests.bench.dql_1m import analyze
from tests.servers import postgres_server_url

LABELS = tuple(
    "car truck bus bicycle person dog cat bird sign light pole tree cone barrier rider "
    "scooter stroller train boat kite".split()
)
FOLDERS = 100
CHUNK = 50_000
BENCH_USER = "bench@bench.test"


@dataclass(frozen=True)
class Built:
    dataset_id: str
    items: int
    annotations: int


def _row(table: Any, **values: Any) -> dict[str, Any]:
    """A row with every column (insert_many needs one key set), scalar defaults filled in."""
    row = {
        c.key: c.default.arg if c.default is not None and c.default.is_scalar else None
        for c in table.c
    }
    row.update(values)
    return row


async def build(
    platform: Platform, actor: Actor, project_id: str, name: str, n_items: int, n_boxes: int
) -> Built:
    """A dataset of ``n_items`` images, ``n_boxes`` boxes spread over them (as evenly as the
    division allows), of 20 labels; bulk-inserted, counters set."""
    dataset = await datasets.create_dataset(platform, actor, project_id, name)
    rng = random.Random(n_boxes)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    ids = new_ids(n_items)
    per_item = [n_boxes // n_items + (i < n_boxes % n_items) for i in range(n_items)]
    async with platform.db.write() as session:
        for at in range(0, n_items, CHUNK):
            rows = []
            for i in range(at, min(at + CHUNK, n_items)):
                folder, file = f"/batch_{i % FOLDERS:03d}", f"frame_{i:07d}.jpg"
                when = start + timedelta(seconds=i)
                rows.append(
                    _row(
                        Item.__table__,
                        id=ids[i],
                        dataset_id=dataset.id,
                        dir=folder,
                        name=file,
                        filename=f"{folder}/{file}",
                        type="file",
                        mimetype="image/jpeg",
                        size=100_000,
                        width=1920,
                        height=1080,
                        url=f"https://cdn.example.com{folder}/{file}",
                        metadata={"system": {"originalname": file}},
                        annotations_count=per_item[i],
                        annotated=per_item[i] > 0,
                        created_at=when,
                        updated_at=when,
                    )
                )
            await insert_many(session, Item.__table__, rows)
        batch: list[dict[str, Any]] = []
        now = datetime.now(UTC)
        for item_id, k in zip(ids, per_item, strict=True):
            for _ in range(k):
                x, y = rng.uniform(0, 1800), rng.uniform(0, 1000)
                batch.append(
                    _row(
                        Annotation.__table__,
                        item_id=item_id,
                        dataset_id=dataset.id,
                        type="box",
                        label=rng.choice(LABELS),
                        coordinates=[{"x": x, "y": y}, {"x": x + 80.5, "y": y + 60.25}],
                        creator=BENCH_USER,
                        metadata={},
                        created_at=now,
                        updated_at=now,
                    )
                )
            if len(batch) >= CHUNK:
                await _insert_annotations(session, batch)
                batch = []
        await _insert_annotations(session, batch)
        await session.execute(
            update(Dataset)
            .where(Dataset.id == dataset.id)
            .values(items_count=n_items, annotations_count=n_boxes)
        )
    return Built(dataset.id, n_items, n_boxes)


async def _insert_annotations(session: Any, batch: list[dict[str, Any]]) -> None:
    for row, annotation_id in zip(batch, new_ids(len(batch)), strict=True):
        row["id"] = annotation_id
    if batch:
        await insert_many(session, Annotation.__table__, batch)


def _work() -> Work:
    return Work(new_ids(1)[0], lambda done, total, noun: None, lambda line: None)


async def export(platform: Platform, actor: Actor, dataset_id: str) -> dict[str, Any]:
    """One COCO export of the dataset, as a worker runs it; its output."""
    input = {"datasetId": dataset_id, "format": "coco"}
    return await operations.run(platform, actor, exports.FUNCTION, input, _work())


async def import_archive(
    platform: Platform, actor: Actor, dataset_id: str, archive: bytes
) -> tuple[float, dict[str, Any]]:
    """Seconds to import the COCO archive into the dataset (received, then the operation run as
    a worker runs it), and the operation's output."""
    start = time.perf_counter()
    blob_id = await imports.receive_archive(platform, actor, dataset_id, archive)
    input = {"datasetId": dataset_id, "format": "coco", "blobId": blob_id}
    output = await operations.run(platform, actor, imports.FUNCTION, input, _work())
    return time.perf_counter() - start, output


async def archive_of(platform: Platform, blob_id: str) -> bytes:
    """The bytes of an export's archive, from the platform's blob store."""
    async with platform.db.read() as session:
        blob = await session.get(Blob, blob_id)
    assert blob is not None
    return b"".join(platform.blobs.open(blob.key))


def _median(seconds: list[float]) -> float:
    return statistics.median(seconds)


def anchors(coco: bytes, repeat: int, folder: Path) -> tuple[float, float]:
    """Median seconds of ``json.dump`` of the COCO dicts to a file, and of ``json.load`` of it."""
    data = json.loads(coco)
    path = folder / "anchor.json"
    dumps, loads = [], []
    for _ in range(repeat + 1):
        start = time.perf_counter()
        with path.open("w") as handle:
            json.dump(data, handle)
        dumps.append(time.perf_counter() - start)
        start = time.perf_counter()
        with path.open() as handle:
            json.load(handle)
        loads.append(time.perf_counter() - start)
    path.unlink()
    return _median(dumps[1:]), _median(loads[1:])


def _memory_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


async def _child(url: str, home: Path, dataset_id: str) -> dict[str, float]:
    """In a fresh process: one export, its seconds and the growth of the peak resident set."""
    platform = Platform.from_settings(Settings(home=home, database_url=url))
    try:
        actor = await _actor(platform)
        async with platform.db.read() as session:  # the pool and the dialect warmed up
            await session.scalar(select(Dataset.id).where(Dataset.id == dataset_id))
        before, anonymous = _memory_kb("VmRSS"), _memory_kb("RssAnon")
        peak = [anonymous]
        done = threading.Event()

        def sample() -> None:  # the peak of anonymous memory has no counter of its own
            while not done.wait(0.005):
                peak[0] = max(peak[0], _memory_kb("RssAnon"))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        start = time.perf_counter()
        await export(platform, actor, dataset_id)
        seconds = time.perf_counter() - start
        done.set()
        sampler.join()
        peak[0] = max(peak[0], _memory_kb("RssAnon"))
        return {
            "seconds": seconds,
            "growth_mb": (peak[0] - anonymous) / 1024,
            "resident_mb": (_memory_kb("VmHWM") - before) / 1024,
        }
    finally:
        await platform.close()


async def _actor(platform: Platform) -> Actor:
    async with platform.db.read() as session:
        user = await session.scalar(select(User).where(User.email == BENCH_USER))
    assert user is not None
    return Actor(user.id, user.email)


def in_child(url: str, home: Path, dataset_id: str) -> dict[str, float]:
    found = subprocess.run(
        [sys.executable, "-m", "tests.bench.convert", "--child", url, str(home), dataset_id],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(found.stdout.strip().splitlines()[-1])


@dataclass
class Row:
    work: str
    ours: float
    anchor: float | None
    anchor_name: str
    target: str
    note: str = ""


def header(dialect: str) -> str:
    return (
        f"{'work (' + dialect + ')':<46}  {'ours s':>7}  {'anchor s':>8}  {'anchor':<12}  "
        f"{'target':<8}  note"
    )


def line(row: Row) -> str:
    def figure(value: float | None) -> str:
        return "-" if value is None or math.isnan(value) else f"{value:.2f}"

    return (
        f"{row.work:<46}  {figure(row.ours):>7}  {figure(row.anchor):>8}  "
        f"{row.anchor_name:<12}  {row.target:<8}  {row.note}"
    )


async def run_one(url: str, args: argparse.Namespace, home: Path) -> None:
    platform = Platform.from_settings(Settings(home=home, database_url=url))
    dialect = platform.db.dialect
    try:
        await upgrade(platform.db)
        user = await users.create_user(platform, None, BENCH_USER)
        actor = Actor(user.id, user.email)
        project = await projects.create_project(platform, actor, "bench")
        start = time.perf_counter()
        main = await build(platform, actor, project.id, "main", args.items, args.annotations)
        twin = await build(platform, actor, project.id, "twin", args.items, 0)
        density = args.annotations / args.items
        sized = {
            n: await build(platform, actor, project.id, f"n{n}", max(1, round(n / density)), n)
            for n in args.sizes
        }
        await analyze(platform)
        print(
            f"{dialect}: built {args.items:,} images with {args.annotations:,} boxes, a twin "
            f"without, and {', '.join(f'{n:,}' for n in args.sizes)} boxes at the same density "
            f"in {time.perf_counter() - start:.0f} s"
        )

        await export(platform, actor, main.dataset_id)  # warm-up
        times, output = [], {}
        for _ in range(args.repeat):
            start = time.perf_counter()
            output = await export(platform, actor, main.dataset_id)
            times.append(time.perf_counter() - start)
        assert output["annotations"] == args.annotations, output
        archive = await archive_of(platform, output["blobId"])
        coco = zipfile.ZipFile(io.BytesIO(archive)).read("annotations.json")
        dump, load = anchors(coco, args.repeat, home)
        work = f"{args.annotations:,} boxes over {args.items:,} images"
        # each row printed as soon as it is measured: the import is the longest
        print(header(dialect))
        print(line(Row(f"COCO export, {work}", _median(times), dump, "json.dump", "< 3")))
        print(
            f"{'':<46}  archive {len(archive) / 1e6:.1f} MB zipped, annotations.json "
            f"{len(coco) / 1e6:.1f} MB",
            flush=True,
        )
        for n, built in sized.items():
            found = in_child(url, home, built.dataset_id)
            work_n = f"COCO export, {n:,} boxes, fresh process"
            growth = (
                f"peak anonymous memory growth {found['growth_mb']:.1f} MB "
                f"(resident {found['resident_mb']:.1f} MB, with mapped database pages)"
            )
            print(line(Row(work_n, found["seconds"], None, "", "", growth)), flush=True)
        seconds, imported = await import_archive(platform, actor, twin.dataset_id, archive)
        assert imported["annotations"] == args.annotations, imported
        rate = f"one run, {args.annotations / seconds:,.0f} annotations/s"
        print(line(Row(f"COCO import, {work}", seconds, load, "json.load", "< 5", rate)))
    finally:
        await platform.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--annotations", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument(
        "--sizes",
        type=lambda text: [int(n) for n in text.split(",") if n],
        default=[10_000, 100_000, 1_000_000],
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--postgres", default=os.environ.get("LOOPLINE_TEST_DATABASE_URL"))
    parser.add_argument(
        "--postgres-only", action="store_true", help="Measure PostgreSQL alone (not SQLite)."
    )
    parser.add_argument(
        "--child", nargs=3, metavar=("URL", "HOME", "DATASET"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.child:
        url, home, dataset_id = args.child
        print(json.dumps(asyncio.run(_child(url, Path(home), dataset_id))))
        return
    root = Path(tempfile.mkdtemp(prefix="loopline-bench-convert-"))
    try:
        if not args.postgres_only:
            home = root / "sqlite"
            home.mkdir()
            asyncio.run(run_one(f"sqlite+aiosqlite:///{home / 'bench.db'}", args, home))
        if args.postgres:
            os.environ["LOOPLINE_TEST_DATABASE_URL"] = args.postgres
            with postgres_server_url() as url:  # a fresh database on that server, dropped after
                home = root / "postgresql"
                home.mkdir()
                asyncio.run(run_one(normalise_database_url(url), args, home))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
