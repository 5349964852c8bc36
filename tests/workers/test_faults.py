"""Real worker processes (``python -m workers work``, supervised as ``loopline serve`` does) and a
real scheduler process: terminate and timeouts honoured within seconds, a function that will not
stop ends its process (which comes back), and ``kill -9`` during 200 executions loses nothing and
duplicates nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from redis import Redis
from sqlalchemy import func, select

from graph.config import Settings
from graph.db.tables import Annotation, Execution
from graph.domain import datasets, executions, items, services
from graph.processes import Supervisor, python_module
from tests.workers.functions import PACKAGE


def _env(settings: Settings) -> dict[str, str]:
    return {
        "LOOPLINE_HOME": str(settings.home),
        "LOOPLINE_DATABASE_URL": settings.database_url,
        "LOOPLINE_REDIS_URL": settings.redis_url or "",
        "LOOPLINE_PLUGINS": ",".join(settings.plugin_modules),
        "LOOPLINE_DISABLE_PLUGINS": "1",
        "LOOPLINE_EXECUTION_LEASE": "2",
        "LOOPLINE_EXECUTION_STOP_GRACE": "1",
    }


@pytest.fixture
def processes(settings: Settings) -> Iterator[Supervisor]:
    """Two worker processes and a scheduler, restarted when they die."""
    supervisor = Supervisor(grace=5)
    env = _env(settings)
    for n in range(2):
        supervisor.add(f"worker-{n}", python_module("workers", "work", "--queues", "default"), env)
    supervisor.add("scheduler", python_module("workers", "scheduler"), env)
    supervisor.watch()
    yield supervisor
    supervisor.stop()


async def _until(check, timeout: float = 30.0, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(every)


async def _status(platform, owner, execution_id, *wanted):
    async def check():
        execution = await executions.get_execution(platform, owner[0], execution_id)
        return execution if execution.status in wanted else None

    return check


async def test_terminate_and_timeout_stop_a_running_function_within_seconds(
    platform, owner, project, processes
) -> None:
    service = await services.deploy_service(
        platform, owner[0], project.id, "slow", PACKAGE, execution_timeout=2, max_attempts=1
    )
    waiting = await executions.create_execution(
        platform, owner[0], service.id, "stubborn", {"seconds": 0.1}
    )
    await _until(await _status(platform, owner, waiting.id, "success"))  # the workers are up
    running = await executions.create_execution(
        platform, owner[0], service.id, "sleep", {"seconds": 60}
    )
    await _until(await _status(platform, owner, running.id, "in-progress"))
    asked = time.monotonic()
    await executions.terminate_execution(platform, owner[0], running.id)
    stopped = await _until(await _status(platform, owner, running.id, "terminated"), timeout=10)
    assert time.monotonic() - asked < 5
    assert stopped.ended_at is not None
    timed = await executions.create_execution(
        platform, owner[0], service.id, "sleep", {"seconds": 60}
    )
    failed = await _until(await _status(platform, owner, timed.id, "failed"), timeout=15)
    assert failed.error == "timed out after 2 s"


async def test_a_function_that_will_not_stop_ends_its_worker_which_comes_back(
    platform, owner, project, processes
) -> None:
    service = await services.deploy_service(
        platform, owner[0], project.id, "stubborn", PACKAGE, execution_timeout=1, max_attempts=1
    )
    stuck = await executions.create_execution(
        platform, owner[0], service.id, "stubborn", {"seconds": 60}
    )
    failed = await _until(await _status(platform, owner, stuck.id, "failed"), timeout=20)
    assert "did not stop" in failed.error and "timed out after 1 s" in failed.error

    async def restarted() -> int:
        return sum(c.restarts for c in processes.children if c.name.startswith("worker"))

    assert await _until(restarted, timeout=10) == 1
    after = await executions.create_execution(
        platform, owner[0], service.id, "greet", {"name": "z"}
    )
    assert (
        await _until(await _status(platform, owner, after.id, "success"))
    ).output == "hello z (1)"


async def test_kill_9_during_200_executions_loses_nothing_and_duplicates_nothing(
    platform, owner, project, processes, settings
) -> None:
    service = await services.deploy_service(
        platform, owner[0], project.id, "labeller", PACKAGE, on_reset="rerun", max_attempts=5
    )
    dataset = await datasets.create_dataset(platform, owner[0], project.id, "ds")
    async with platform.db.write() as session:
        await items.insert_items(
            session, owner[0], dataset, [items.ItemSpec(path=f"/{n:03}.jpg") for n in range(200)]
        )
    count = await executions.create_executions_by_query(
        platform, owner[0], service.id, "label", dataset.id, input={"label": "cat"}
    )
    assert count == 200

    async def finished() -> int:
        async with platform.db.read() as session:
            return int(
                await session.scalar(select(func.count()).where(Execution.status == "success")) or 0
            )

    killed = 0
    for _ in range(3):  # kill a worker (and whatever it runs) three times while work remains
        await _until(lambda n=killed: _more_than(finished, 20 + 40 * n), timeout=60, every=0.05)
        victim = processes.children[killed % 2].process
        assert victim is not None
        os.kill(victim.pid, signal.SIGKILL)
        killed += 1
    await _until(lambda: _more_than(finished, 199), timeout=120, every=0.2)
    async with platform.db.read() as session:
        statuses = dict(
            (
                await session.execute(
                    select(Execution.status, func.count()).group_by(Execution.status)
                )
            ).all()
        )
        annotations = await session.scalar(select(func.count()).select_from(Annotation))
        per_item = await session.scalar(select(func.count(func.distinct(Annotation.item_id))))
        logs = (await session.scalars(select(Execution.status_log))).all()
    assert statuses == {"success": 200}
    assert (annotations, per_item) == (200, 200)
    # every execution ended in success exactly once, however often it was started
    assert [sum(e["status"] == "success" for e in log) for log in logs] == [1] * 200


async def _more_than(counter, n: int) -> bool:
    return await counter() > n


async def test_redis_killed_and_restarted_with_1000_queued_loses_nothing(
    platform, owner, project, settings, tmp_path
) -> None:
    """A private Redis of this test's (the shared one serves other tests): 1,000 executions are
    queued, Redis is killed and comes back empty, then workers and a scheduler start; every
    execution completes, once, from the database's state."""
    import dataclasses

    from graph.domain.platform import Platform
    from graph.processes import private_redis

    supervisor = Supervisor(grace=5)
    try:
        redis_url = private_redis(supervisor, tmp_path / "redis")
        own = dataclasses.replace(settings, redis_url=redis_url)
        local = Platform(own, platform.db, platform.plugins)  # same database, this Redis
        service = await services.deploy_service(
            platform, owner[0], project.id, "many", PACKAGE, concurrency=1000
        )
        dataset = await datasets.create_dataset(platform, owner[0], project.id, "ds")
        async with platform.db.write() as session:
            await items.insert_items(
                session, owner[0], dataset, [items.ItemSpec(path=f"/{n}.jpg") for n in range(1000)]
            )
        assert (
            await executions.create_executions_by_query(
                local, owner[0], service.id, "on_item", dataset.id
            )
            == 1000
        )
        assert Redis.from_url(redis_url).llen("rq:queue:default") == 1000
        [redis] = supervisor.children
        assert redis.process is not None
        os.kill(redis.process.pid, signal.SIGKILL)
        supervisor.watch()  # brings it back, empty: nothing is persisted

        async def restarted() -> bool:
            try:
                return Redis.from_url(redis_url).ping() and redis.restarts == 1
            except Exception:
                return False

        await _until(restarted, timeout=15)
        assert Redis.from_url(redis_url).llen("rq:queue:default") == 0
        env = {**_env(own), "LOOPLINE_REDIS_URL": redis_url}
        for n in range(2):
            supervisor.add(
                f"worker-{n}", python_module("workers", "work", "--queues", "default"), env
            )
        supervisor.add("scheduler", python_module("workers", "scheduler"), env)

        async def all_done() -> bool:
            async with platform.db.read() as session:
                done = await session.scalar(
                    select(func.count()).where(Execution.status == "success")
                )
            return done == 1000

        await _until(all_done, timeout=240, every=0.5)
        async with platform.db.read() as session:
            logs = (await session.scalars(select(Execution.status_log))).all()
        assert [sum(e["status"] == "success" for e in log) for log in logs] == [1] * 1000
    finally:
        supervisor.stop()


def _serve(settings: Settings, port: int) -> Supervisor:
    """``loopline serve`` (API only) as its own process, on ``port``."""
    supervisor = Supervisor(grace=5)
    env = {**_env(settings), "LOOPLINE_PORT": str(port)}
    supervisor.add(
        "api", python_module("workers", "serve", "--workers", "0", "--no-scheduler"), env
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return supervisor
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "the API did not start"
        time.sleep(0.1)


async def test_the_api_killed_during_a_bulk_upload_leaves_whole_batches_only(
    platform, owner, project, settings
) -> None:
    import socket
    import threading

    from graph.db.tables import Blob, Item
    from tests.graph.test_uploads import voc_images

    token = owner[1]
    dataset = await datasets.create_dataset(platform, owner[0], project.id, "uploads")
    images = voc_images(100)
    batches = [images[n : n + 10] for n in range(0, 100, 10)]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/datasets/{dataset.id}/items"
    headers = {"Authorization": f"Bearer {token}"}

    def post(batch: list) -> int:
        files = [("file", (p.name, p.read_bytes(), "image/jpeg")) for p in batch]
        return httpx.post(url, files=files, headers=headers, timeout=60).status_code

    api = await asyncio.to_thread(_serve, settings, port)
    sent: list[int] = []
    try:

        def upload() -> None:
            for batch in batches:
                try:
                    sent.append(post(batch))
                except httpx.TransportError:
                    return  # the server is gone

        uploader = threading.Thread(target=upload)
        uploader.start()
        while len(sent) < 4:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)  # into the next batch
        [child] = api.children
        assert child.process is not None
        os.kill(child.process.pid, signal.SIGKILL)
        uploader.join(timeout=60)
    finally:
        api.stop()
    assert set(sent) == {200} and 4 <= len(sent) < 10

    async def state() -> tuple[int, list[Any]]:
        async with platform.db.read() as session:
            files = (
                await session.execute(
                    select(Item.filename, Blob.key, Item.thumbnail_blob_id)
                    .join(Blob, Blob.id == Item.blob_id)
                    .where(Item.dataset_id == dataset.id, Item.type == "file")
                )
            ).all()
            counted = (await datasets.get_dataset(platform, owner[0], dataset.id)).items_count
        return counted, files

    counted, files = await state()
    # every request was one transaction: whole batches only, counters agreeing, bytes in place
    assert len(files) % 10 == 0 and len(files) >= 10 * len(sent)
    assert counted == len(files)
    assert all(platform.blobs.exists(key) for _, key, _ in files)
    assert all(thumbnail is not None for *_, thumbnail in files)
    if platform.db.is_sqlite:
        async with platform.db.read() as session:
            from sqlalchemy import text

            assert (await session.execute(text("PRAGMA integrity_check"))).scalar() == "ok"
    # after a restart the rest uploads; what was stored is skipped, not duplicated
    api = await asyncio.to_thread(_serve, settings, port)
    try:
        assert {await asyncio.to_thread(post, batch) for batch in batches} == {200}
    finally:
        api.stop()
    _, files = await state()
    assert sorted(name for name, *_ in files) == sorted(f"/{p.name}" for p in images)
