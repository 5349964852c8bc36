"""Execution engine throughput and trigger latency, beside raw RQ in the same run.

Run: ``python -m tests.bench.executions [--n 1000] [--postgres URL] [--redis URL]``
(``--throughput-only`` skips the latency and recovery runs and the forking-worker anchor).

- Throughput: ``n`` no-op executions are created and queued, then one worker process (RQ's
  ``SimpleWorker`` as ``loopline worker`` runs it) works the queue empty: each execution is
  claimed (conditional UPDATE + lease), run, finished (status row, status log, event). The anchor
  is RQ alone: ``n`` jobs of a no-op function on a ``SimpleWorker`` and on the forking ``Worker``.
- Trigger latency: a real scheduler (the dispatcher loop) and a worker process run; an item is
  created and the time until its execution is claimed (``startedAt``) is taken, ``--triggers``
  times; p50 and p95.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from redis import Redis
from rq import Queue, SimpleWorker, Worker
from sqlalchemy import select

from graph.config import Settings, normalise_database_url
from graph.db.migrate import upgrade
from graph.db.tables import Execution
from graph.domain import datasets, executions, items, projects, services, triggers, users
from graph.domain.access import Actor
from graph.domain.platform import Platform
from graph.processes import Supervisor, private_redis, python_module
from tests.servers import postgres_server_url

FUNCTIONS = "tests.workers.functions"


def noop() -> None:
    return None


def raw_rq(redis_url: str, n: int, worker_class: type[Worker]) -> float:
    connection = Redis.from_url(redis_url)
    connection.flushdb()
    queue = Queue("bench", connection=connection)
    queue.enqueue_many([Queue.prepare_data(noop, timeout=-1, result_ttl=0) for _ in range(n)])
    worker = worker_class([queue], connection=connection)
    start = time.perf_counter()
    worker.work(burst=True, logging_level="ERROR")
    return n / (time.perf_counter() - start)


async def _setup(settings: Settings) -> tuple[Platform, Actor, str, str]:
    platform = Platform.from_settings(settings)
    await upgrade(platform.db)
    run = uuid.uuid4().hex[:8]  # runs may share a database
    user = await users.create_user(platform, None, f"bench-{run}@bench.test")
    actor = Actor(user.id, user.email)
    project = await projects.create_project(platform, actor, f"bench-{run}")
    service = await services.deploy_service(
        platform, actor, project.id, "bench", "test-functions", concurrency=1000
    )
    return platform, actor, project.id, service.id


async def _create(platform: Platform, actor: Actor, service_id: str, n: int) -> None:
    for _ in range(n):
        await executions.create_execution(platform, actor, service_id, "noop")


def throughput(settings: Settings, n: int) -> float:
    from workers.worker import run_worker

    async def prepare() -> None:
        platform, actor, _, service_id = await _setup(settings)
        await _create(platform, actor, service_id, n)
        await platform.close()

    Redis.from_url(settings.redis_url or "").flushdb()
    asyncio.run(prepare())
    start = time.perf_counter()
    run_worker(settings, ["default"], burst=True)
    rate = n / (time.perf_counter() - start)

    async def check() -> None:
        platform = Platform.from_settings(settings)
        async with platform.db.read() as session:
            statuses = set(
                await session.scalars(select(Execution.status).where(Execution.queue == "default"))
            )
        await platform.close()
        assert statuses == {"success"}, statuses

    asyncio.run(check())
    return rate


def trigger_latency(settings: Settings, count: int) -> list[float]:
    async def run() -> list[float]:
        platform = Platform.from_settings(settings)
        user = await users.create_user(platform, None, "latency@bench.test")
        actor = Actor(user.id, user.email)
        project = await projects.create_project(platform, actor, "latency")
        service = await services.deploy_service(platform, actor, project.id, "t", "test-functions")
        await triggers.create_trigger(
            platform, actor, service.id, "on-item", "on_item", resource="Item"
        )
        dataset = await datasets.create_dataset(platform, actor, project.id, "ds")
        latencies = []
        for n in range(count):
            async with platform.db.write() as session:
                [made], _ = await items.insert_items(
                    session, actor, dataset, [items.ItemSpec(path=f"/{n}.jpg")]
                )
            created = time.time()
            while True:
                async with platform.db.read() as session:
                    started = await session.scalar(
                        select(Execution.started_at).where(
                            Execution.input["item"]["item_id"].as_string() == made.item_id
                        )
                    )
                if started is not None:
                    break
                await asyncio.sleep(0.005)
            latencies.append(
                (
                    started.timestamp()
                    if started.tzinfo
                    else started.replace(tzinfo=__import__("datetime").UTC).timestamp()
                )
                - created
            )
            await asyncio.sleep(0.05)
        await platform.close()
        return latencies

    env = {
        "LOOPLINE_HOME": str(settings.home),
        "LOOPLINE_DATABASE_URL": settings.database_url,
        "LOOPLINE_REDIS_URL": settings.redis_url or "",
        "LOOPLINE_PLUGINS": FUNCTIONS,
    }
    supervisor = Supervisor(grace=5)
    supervisor.add("worker", python_module("workers", "work", "--queues", "default"), env)
    supervisor.add("scheduler", python_module("workers", "scheduler"), env)
    time.sleep(3)  # let them start
    try:
        return asyncio.run(run())
    finally:
        supervisor.stop()


def recovery(settings: Settings, lease: int, count: int) -> list[float]:
    """Seconds from ``kill -9`` of the worker running an execution to its next attempt's start."""
    import signal

    env = {
        "LOOPLINE_HOME": str(settings.home),
        "LOOPLINE_DATABASE_URL": settings.database_url,
        "LOOPLINE_REDIS_URL": settings.redis_url or "",
        "LOOPLINE_PLUGINS": FUNCTIONS,
        "LOOPLINE_EXECUTION_LEASE": str(lease),
    }
    supervisor = Supervisor(grace=5)
    worker = supervisor.add("worker", python_module("workers", "work", "--queues", "default"), env)
    supervisor.add("scheduler", python_module("workers", "scheduler"), env)
    supervisor.watch()

    async def run() -> list[float]:
        platform = Platform.from_settings(settings)
        user = await users.create_user(platform, None, "recovery@bench.test")
        actor = Actor(user.id, user.email)
        project = await projects.create_project(platform, actor, "recovery")
        service = await services.deploy_service(
            platform, actor, project.id, "r", "test-functions", on_reset="rerun", max_attempts=10
        )
        times = []
        for _ in range(count):
            created = await executions.create_execution(
                platform, actor, service.id, "sleep", {"seconds": 3600}
            )
            attempt = 1
            while True:
                row = await executions.get_execution(platform, actor, created.id)
                if row.status == "in-progress" and row.attempts == attempt:
                    break
                await asyncio.sleep(0.02)
            assert worker.process is not None
            os.kill(worker.process.pid, signal.SIGKILL)
            killed = time.monotonic()
            while True:
                row = await executions.get_execution(platform, actor, created.id)
                if row.status == "in-progress" and row.attempts == attempt + 1:
                    break
                await asyncio.sleep(0.02)
            times.append(time.monotonic() - killed)
            await executions.terminate_execution(platform, actor, created.id)
        await platform.close()
        return times

    try:
        return asyncio.run(run())
    finally:
        supervisor.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--triggers", type=int, default=50)
    parser.add_argument("--lease", type=int, default=5, help="lease seconds for the recovery run")
    parser.add_argument("--repeat", type=int, default=3, help="throughput runs (median shown)")
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--postgres", default=os.environ.get("LOOPLINE_TEST_DATABASE_URL"))
    parser.add_argument("--redis", default=None, help="Redis URL (default: a private server)")
    parser.add_argument(
        "--throughput-only", action="store_true", help="skip latency, recovery, forking anchor"
    )
    args = parser.parse_args()
    supervisor = Supervisor(grace=2)
    folder = Path(tempfile.mkdtemp(prefix="bench-exec-"))
    redis_url = args.redis or private_redis(supervisor, folder / "redis")
    rows = []
    try:
        simple = [raw_rq(redis_url, args.n, SimpleWorker) for _ in range(args.repeat)]
        rows.append(("raw RQ SimpleWorker (anchor)", "-", simple))
        if not args.throughput_only:
            forking = [raw_rq(redis_url, args.n, Worker)]
            rows.append(("raw RQ forking Worker (anchor)", "-", forking))
        urls = [("SQLite", f"sqlite+aiosqlite:///{folder / 'bench.db'}")]
        postgres = postgres_server_url() if args.postgres else None
        if postgres is not None:
            os.environ.setdefault("LOOPLINE_TEST_DATABASE_URL", args.postgres)
            urls.append(("PostgreSQL", normalise_database_url(postgres.__enter__())))
        latency_rows: list[tuple[str, float, float]] = []
        recovery_rows: list[tuple[str, float, float]] = []
        for dialect, url in urls:
            settings = Settings(
                home=folder / f"home-{dialect}",
                database_url=url,
                redis_url=redis_url,
                plugin_modules=(FUNCTIONS,),
                plugins_enabled=False,
            )
            settings.home.mkdir(parents=True, exist_ok=True)
            rates = [throughput(settings, args.n)]  # migrates the database the rest uses
            for n in range(1, args.repeat):
                each = dataclasses.replace(settings, home=settings.home / str(n))
                each.home.mkdir(parents=True, exist_ok=True)
                if dialect == "SQLite":  # a fresh file; PostgreSQL runs share the database
                    sqlite = f"sqlite+aiosqlite:///{folder / f'bench{n}.db'}"
                    each = dataclasses.replace(each, database_url=sqlite)
                rates.append(throughput(each, args.n))
            rows.append((f"Loopline no-op executions, {dialect}", "1 worker", rates))
            if args.throughput_only:
                continue
            lat = trigger_latency(dataclasses.replace(settings), args.triggers)
            recovered = recovery(settings, args.lease, args.kills)
            recovery_rows.append((dialect, max(recovered), statistics.median(recovered)))
            latency_rows.append(
                (dialect, statistics.median(lat) * 1000, statistics.quantiles(lat, n=20)[18] * 1000)
            )
        if postgres is not None:
            postgres.__exit__(None, None, None)
    finally:
        supervisor.stop()
    print(f"\nExecution throughput ({args.n} no-op jobs, {os.cpu_count()} cores)\n")
    print(f"| method | workers | per second, median of {args.repeat} | best |\n|---|---|---|---|")
    for name, workers, rates in rows:
        print(f"| {name} | {workers} | {statistics.median(rates):,.0f} | {max(rates):,.0f} |")
    if latency_rows:
        print(f"\nTrigger latency, item created -> execution started ({args.triggers} items)\n")
        print("| database | p50 ms | p95 ms |\n|---|---|---|")
        for dialect, p50, p95 in latency_rows:
            print(f"| {dialect} | {p50:.0f} | {p95:.0f} |")
        print(
            f"\nRecovery after kill -9 of the worker, lease {args.lease} s ({args.kills} kills)\n"
        )
        print("| database | median s | worst s | target (lease + 10 s) |\n|---|---|---|---|")
        for dialect, worst, median in recovery_rows:
            print(f"| {dialect} | {median:.1f} | {worst:.1f} | {args.lease + 10} |")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
