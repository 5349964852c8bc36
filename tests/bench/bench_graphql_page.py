"""A GraphQL page of 100 items with 5 annotations each, beside the raw SQL that feeds it.

Run: ``python -m tests.bench.bench_graphql_page [--items 10000] [--repeat 200]``.

The dataset (``--items`` linked items, 5 box annotations each) lives in a fresh SQLite file. The
GraphQL request goes through the whole application in process (httpx over ASGI: authentication,
roles, keyset page, DataLoader, strawberry, JSON) and is timed per request, median of
``--repeat``. The anchor is the same rows read with ``sqlite3`` alone: the page of items and the
annotations of those items, two statements, decoded into Python rows. The design targets are at
most 4 SQL statements and under 60 ms per page.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from graph.app import create_app, settle
from graph.config import Settings
from graph.db.migrate import upgrade
from graph.domain import annotations, datasets, links, projects, users
from graph.domain.access import Actor
from graph.domain.platform import Platform
from tests.asserts import count_statements

QUERY = """query($d: ID!, $first: Int!, $after: String) {
  items(datasetId: $d, first: $first, after: $after, folders: false) {
    edges { cursor node { id filename url metadata
      annotations { id type label coordinates attributes model { confidence } } } }
    pageInfo { hasNextPage endCursor }
  }
}"""
BOX = [{"x": 10, "y": 20, "z": 0}, {"x": 110, "y": 220, "z": 0}]


async def _fill(platform: Platform, n: int) -> tuple[Actor, str, str]:
    await upgrade(platform.db)
    user = await users.create_user(platform, None, "bench@bench.test")
    token = await users.create_token(platform, None, user.id)
    actor = Actor(user.id, user.email)
    project = await projects.create_project(platform, actor, "bench")
    dataset = await datasets.create_dataset(platform, actor, project.id, "bench")
    report = await links.add_links(
        platform,
        actor,
        dataset.id,
        [links.LinkSpec(f"https://cdn.example.com/{i:06d}.jpg") for i in range(n)],
    )
    spec = annotations.AnnotationSpec(type="box", label="car", coordinates=BOX, confidence=0.9)
    for item_id in report.item_ids[:200]:  # the pages measured below
        await annotations.create_annotations(platform, actor, item_id, [spec] * 5)
    return actor, token, dataset.id


async def graphql_pages(
    platform: Platform, token: str, dataset_id: str, repeat: int
) -> tuple[list[float], int]:
    app = create_app(platform, migrate=False)
    settle()  # what the app's startup does (httpx's ASGI transport runs no lifespan)
    transport = httpx.ASGITransport(app=app)
    times: list[float] = []
    async with httpx.AsyncClient(
        transport=transport, base_url="http://bench", headers={"Authorization": f"Bearer {token}"}
    ) as client:
        variables = {"d": dataset_id, "first": 100}
        with count_statements(platform.db.engine) as log:
            body = (
                await client.post("/graphql", json={"query": QUERY, "variables": variables})
            ).json()
        edges = body["data"]["items"]["edges"]
        assert len(edges) == 100 and all(len(e["node"]["annotations"]) == 5 for e in edges), body
        for _ in range(repeat):
            start = time.perf_counter()
            response = await client.post("/graphql", json={"query": QUERY, "variables": variables})
            times.append(time.perf_counter() - start)
            assert response.status_code == 200
    return times, len(log)


def raw_pages(path: Path, dataset_id: str, repeat: int) -> list[float]:
    connection = sqlite3.connect(path)
    times = []
    try:
        for _ in range(repeat):
            start = time.perf_counter()
            rows = connection.execute(
                "SELECT id, * FROM items WHERE dataset_id = ? AND hidden = 0 AND type = 'file' "
                "ORDER BY type, filename, id LIMIT 101",
                (dataset_id,),
            ).fetchall()
            ids = [row[0] for row in rows[:100]]
            marks = ", ".join("?" for _ in ids)
            found = connection.execute(
                f"SELECT * FROM annotations WHERE item_id IN ({marks}) ORDER BY item_id, id", ids
            ).fetchall()
            times.append(time.perf_counter() - start)
            assert len(found) == 500, len(found)
    finally:
        connection.close()
    return times


async def run(items: int, repeat: int) -> None:
    root = Path(tempfile.mkdtemp(prefix="loopline-bench-"))
    try:
        db_path = root / "bench.db"
        settings = Settings(home=root, database_url=f"sqlite+aiosqlite:///{db_path}")
        platform = Platform.from_settings(settings)
        try:
            _, token, dataset_id = await _fill(platform, items)
            graphql, statements = await graphql_pages(platform, token, dataset_id, repeat)
        finally:
            await platform.close()
        raw = raw_pages(db_path, dataset_id, repeat)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"page of 100 items x 5 annotations, {items:,} items in the dataset, median of {repeat}")
    print(f"{'method':<44}  {'statements':>10}  {'median ms':>9}  {'p95 ms':>7}")
    for name, times, count in (
        ("raw sqlite3, 2 statements (anchor)", raw, 2),
        ("GraphQL over ASGI (auth, roles, loaders)", graphql, statements),
    ):
        p95 = sorted(times)[int(len(times) * 0.95) - 1]
        print(
            f"{name:<44}  {count:>10}  {statistics.median(times) * 1000:>9.2f}  {p95 * 1000:>7.2f}"
        )
    print("targets: <= 4 statements, < 60 ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(run(args.items, args.repeat))


if __name__ == "__main__":
    main()
