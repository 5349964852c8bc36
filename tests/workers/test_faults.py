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
