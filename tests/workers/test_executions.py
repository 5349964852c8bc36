"""Executions end to end on a real Redis and a real RQ worker: created, queued, claimed, run,
finished; retries, termination, batches by DQL, and the bad inputs refused before anything runs."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from graph.db.tables import Annotation, Execution
from graph.domain import annotations, datasets, executions, items, projects, runs, services
from graph.domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from tests.conftest import make_user
from tests.workers.conftest import burst
from tests.workers.functions import PACKAGE


@pytest.fixture
async def service(platform, owner, project):
    return await services.deploy_service(
        platform,
        owner[0],
        project.id,
        "fns",
        PACKAGE,
        init_params={"greeting": "hi"},
        max_attempts=2,
    )


@pytest.fixture
async def dataset(platform, owner, project):
    dataset = await datasets.create_dataset(platform, owner[0], project.id, "ds")
    async with platform.db.write() as session:
        await items.insert_items(
            session,
            owner[0],
            dataset,
            [items.ItemSpec(path=f"/{d}/{n}.jpg") for d in ("train", "val") for n in range(3)],
        )
    return dataset


async def _item_ids(platform, owner, dataset, dql=None):
    page = await items.list_items(platform, owner[0], dataset.id, dql=dql, folders=False)
    return [i.id for i in page.rows]


async def _statuses(platform, owner, execution_id):
    execution = await executions.get_execution(platform, owner[0], execution_id)
    return [
        entry["status"] + (f": {entry['message']}" if entry["message"] else "")
        for entry in execution.status_log
    ]


async def test_an_execution_runs_on_a_worker_with_the_services_init_params(
    platform, owner, service, settings
) -> None:
    created = await executions.create_execution(
        platform, owner[0], service.id, "greet", {"name": "ada"}
    )
    assert created.status == "created" and created.job_id
    burst(settings)
    done = await executions.get_execution(platform, owner[0], created.id)
    assert (done.status, done.output, done.attempts, done.progress) == (
        "success",
        "hi ada (1)",
        1,
        100,
    )
    assert done.started_at is not None and done.ended_at is not None
    history = await _statuses(platform, owner, created.id)
    assert history[0] == "created" and history[-1] == "success"
    assert history[1].startswith("in-progress: on ")
    assert [e["attempt"] for e in done.status_log] == [0, 1, 1]
    # the module was built once per worker process: a second call sees the same instance
    again = await executions.create_execution(
        platform, owner[0], service.id, "greet", {"name": "bo"}
    )
    burst(settings)
    assert (await executions.get_execution(platform, owner[0], again.id)).output == "hi bo (2)"


async def test_a_worker_whose_queues_are_empty_ends_at_once(
    platform, owner, service, settings
) -> None:
    """A burst worker (and a stopped one) ends once its work is done, not when RQ's listener
    for commands next wakes (up to a minute with redis-py 8.2)."""
    for name in ("ada", "bo"):
        await executions.create_execution(platform, owner[0], service.id, "greet", {"name": name})
        started = time.monotonic()
        burst(settings)
        assert time.monotonic() - started < 10


def test_rq_sees_a_worker_alive_and_its_state_with_one_heartbeat_a_second(settings) -> None:
    """RQ's view of a worker (``rq info``, dashboards) stays right though its worker key is
    renewed at most once a second, not three times per job: a heartbeat after a pause renews
    it at once, and its state is the last one set."""
    from redis import Redis
    from rq import Worker

    from workers.worker import _Worker

    connection = Redis.from_url(settings.redis_url)
    worker = _Worker(["default"], connection=connection)
    worker.register_birth()
    born = connection.hget(worker.key, "last_heartbeat")
    worker.heartbeat()  # within the second: the key is as fresh as it needs to be
    assert connection.hget(worker.key, "last_heartbeat") == born
    worker.last_heartbeat -= timedelta(seconds=2)
    worker.heartbeat()
    assert connection.hget(worker.key, "last_heartbeat") != born
    assert connection.ttl(worker.key) > worker.worker_ttl
    for state in ("busy", "idle", "idle", "busy"):
        worker.set_state(state)
    [seen] = Worker.all(connection)
    assert (seen.name, seen.get_state()) == (worker.name, "busy")
    worker.register_death()
    assert Worker.all(connection) == []


async def test_rq_keeps_its_books_on_the_jobs_and_honours_rq_suspend(
    platform, owner, service, settings
) -> None:
    """RQ's view of a worker's jobs (``rq info``, dashboards) stays right though the worker
    writes an execution job's end in one pipeline: the jobs counted as done, none left started,
    the worker idle; and a suspended burst worker runs nothing."""
    import dataclasses

    from redis import Redis
    from rq import Queue
    from rq.suspension import resume, suspend

    from workers.worker import run_worker

    connection = Redis.from_url(settings.redis_url)
    made = [
        await executions.create_execution(platform, owner[0], service.id, "greet", {"name": n})
        for n in ("ada", "bo")
    ]
    settings = dataclasses.replace(settings, plugins_enabled=False)
    suspend(connection)
    run_worker(settings, ["default"], burst=True, name="books")
    for m in made:
        assert (await executions.get_execution(platform, owner[0], m.id)).status == "created"
    resume(connection)
    run_worker(settings, ["default"], burst=True, name="books")
    for m in made:
        assert (await executions.get_execution(platform, owner[0], m.id)).status == "success"
    books = connection.hgetall("rq:worker:books")
    assert (books[b"successful_job_count"], books[b"state"]) == (b"2", b"idle")
    assert float(books[b"total_working_time"]) > 0
    queue = Queue("default", connection=connection)
    assert (queue.count, queue.started_job_registry.get_job_ids()) == (0, [])


async def test_effects_carry_the_execution_and_a_retry_does_not_repeat_them(
    platform, owner, service, dataset, settings
) -> None:
    [item_id, *_] = await _item_ids(platform, owner, dataset)
    created = await executions.create_execution(
        platform, owner[0], service.id, "label", {"item": item_id, "label": "dog"}
    )
    assert created.input["item"] == {"item_id": item_id, "dataset_id": dataset.id}
    burst(settings)
    done = await executions.get_execution(platform, owner[0], created.id)
    assert (done.status, done.action) == ("success", "done"), done.error
    async with platform.db.read() as session:
        [annotation] = (
            await session.scalars(select(Annotation).where(Annotation.item_id == item_id))
        ).all()
    assert (annotation.label, annotation.execution_id, annotation.source) == (
        "dog",
        created.id,
        "function",
    )
    assert done.output == {"result": {"annotation": annotation.id}}
    # provenance: what a function made is found by the execution that made it
    made_by = f'executionId = "{created.id}" and source = "function"'
    assert await annotations.count_annotations(platform, owner[0], dataset.id, dql=made_by) == 1
    item = await items.get_item(platform, owner[0], item_id)
    assert item.metadata_["user"] == {"labelled": True}
    # running it again (as a retry after a lost worker would) writes the same annotation, not a new one
    await executions.rerun_execution(platform, owner[0], created.id)
    burst(settings)
    async with platform.db.read() as session:
        count = len(
            (await session.scalars(select(Annotation).where(Annotation.item_id == item_id))).all()
        )
    assert count == 1
    assert (await executions.get_execution(platform, owner[0], created.id)).status == "success"


async def test_a_function_that_raises_is_retried_then_fails_with_its_traceback(
    platform, owner, service, settings
) -> None:
    created = await executions.create_execution(
        platform, owner[0], service.id, "fail", {"message": "no luck"}
    )
    burst(settings)
    done = await executions.get_execution(platform, owner[0], created.id)
    assert (done.status, done.attempts, done.error) == ("failed", 2, "ValueError: no luck")
    history = await _statuses(platform, owner, created.id)
    assert any("retrying (attempt 2 of 2)" in line for line in history)
    stderr = await executions.list_logs(platform, owner[0], created.id, stream="stderr")
    text = "\n".join(line.line for line in stderr)
    assert "Traceback" in text and "ValueError: no luck" in text and "in fail" in text


async def test_output_and_logs_of_a_chatty_function_are_kept_within_a_budget(
    platform, owner, service, settings
) -> None:
    created = await executions.create_execution(
        platform, owner[0], service.id, "chatty", {"lines": 20_000}
    )
    burst(settings)
    done = await executions.get_execution(platform, owner[0], created.id)
    assert (done.status, done.output) == ("success", 20_000)
    stdout = await executions.list_logs(platform, owner[0], created.id, stream="stdout", first=1000)
    assert stdout[0].line.startswith("line 0 ")
    async with platform.db.read() as session:
        from graph.db.tables import ExecutionLog

        kept = (
            await session.scalars(
                select(ExecutionLog.line).where(ExecutionLog.execution_id == created.id)
            )
        ).all()
    # 20,000 lines of ~110 bytes is 2.2 MB: about 1 MB is kept, and the rest is counted
    assert 8_000 < len(kept) < 11_000
    assert any(line.startswith("log truncated: ") for line in kept)


async def test_a_batch_runs_once_per_item_the_query_selects(
    platform, owner, service, dataset, settings
) -> None:
    count = await executions.create_executions_by_query(
        platform, owner[0], service.id, "on_item", dataset.id, dql='dir = "/train"'
    )
    assert count == 3
    burst(settings)
    page = await executions.list_executions(
        platform, owner[0], service.project_id, dql='functionName = "on_item"'
    )
    assert sorted(e.output for e in page.rows) == ["/train/0.jpg", "/train/1.jpg", "/train/2.jpg"]
    assert {e.status for e in page.rows} == {"success"}
    with pytest.raises(InvalidInput, match="exactly one Item input"):
        await executions.create_executions_by_query(
            platform, owner[0], service.id, "greet", dataset.id
        )


async def test_executions_are_listed_with_dql(platform, owner, service, settings) -> None:
    for name in ("a", "b"):
        await executions.create_execution(platform, owner[0], service.id, "greet", {"name": name})
    await executions.create_execution(platform, owner[0], service.id, "fail")
    burst(settings)
    failed = await executions.list_executions(
        platform, owner[0], service.project_id, dql='status = "failed"'
    )
    assert [e.function_name for e in failed.rows] == ["fail"]
    named = await executions.list_executions(
        platform, owner[0], service.project_id, dql='input.name = "b"'
    )
    assert [e.output for e in named.rows] == ["hi b (2)"] or [e.input for e in named.rows] == [
        {"name": "b"}
    ]
    with pytest.raises(InvalidInput, match="nope"):
        await executions.list_executions(platform, owner[0], service.project_id, dql="nope = 1")


async def test_bad_inputs_are_refused_before_anything_is_written(
    platform, owner, service, dataset, project
) -> None:
    other = await projects.create_project(platform, owner[0], "other")
    elsewhere = await datasets.create_dataset(platform, owner[0], other.id, "ds")
    async with platform.db.write() as session:
        [far], _ = await items.insert_items(
            session, owner[0], elsewhere, [items.ItemSpec(path="/x.jpg")]
        )
    cases = [
        ("greet", {"name": 3}, "input.name must be String"),
        ("greet", {}, "input.name .String. is required"),
        ("greet", {"name": "a", "extra": 1}, "unknown input 'extra'"),
        ("label", {"item": far.item_id}, "does not exist in the project"),
        ("label", {"item": {"dataset_id": dataset.id}}, "must be a Item id"),
        ("sleep", {"seconds": True}, "input.seconds must be Number"),
        ("nope", {}, "has no function 'nope'"),
    ]
    for function, given, message in cases:
        with pytest.raises(InvalidInput, match=message):
            await executions.create_execution(platform, owner[0], service.id, function, given)
    async with platform.db.read() as session:
        assert (await session.scalars(select(Execution.id))).all() == []
    with pytest.raises(NotFound):
        await executions.create_execution(platform, owner[0], "0" * 24, "greet", {"name": "a"})


async def test_roles(platform, owner, service, project) -> None:
    annotator, _ = await make_user(platform, "ann@example.com")
    stranger, _ = await make_user(platform, "who@example.com")
    await projects.add_member(platform, owner[0], project.id, annotator.email, "annotator")
    with pytest.raises(Forbidden):
        await executions.create_execution(platform, annotator, service.id, "greet", {"name": "a"})
    with pytest.raises(Forbidden):
        await services.deploy_service(platform, annotator, project.id, "mine", PACKAGE)
    with pytest.raises(NotFound):
        await executions.create_execution(platform, stranger, service.id, "greet", {"name": "a"})
    created = await executions.create_execution(
        platform, owner[0], service.id, "greet", {"name": "a"}
    )
    assert (await executions.get_execution(platform, annotator, created.id)).id == created.id
    with pytest.raises(NotFound):
        await executions.get_execution(platform, stranger, created.id)


async def test_a_paused_service_keeps_its_executions_waiting(
    platform, owner, service, settings
) -> None:
    await services.set_active(platform, owner[0], service.id, False)
    created = await executions.create_execution(
        platform, owner[0], service.id, "greet", {"name": "p"}
    )
    burst(settings)
    assert (await executions.get_execution(platform, owner[0], created.id)).status == "created"
    await services.set_active(platform, owner[0], service.id, True)
    assert await runs.requeue_lost(platform, grace=0) == 1
    burst(settings)
    assert (await executions.get_execution(platform, owner[0], created.id)).status == "success"


async def test_a_service_runs_at_most_its_concurrency_at_once(platform, owner, project) -> None:
    service = await services.deploy_service(
        platform, owner[0], project.id, "one", PACKAGE, concurrency=1
    )
    first, second = [
        await executions.create_execution(platform, owner[0], service.id, "noop") for _ in range(2)
    ]
    claimed = await runs.claim(platform, first.id, "worker-a")
    assert claimed is not None and claimed.attempt == 1
    assert claimed.init_params == {} and claimed.service_creator == owner[0].email
    assert await runs.claim(platform, second.id, "worker-b") is None  # the service is busy
    assert await runs.claim(platform, first.id, "worker-b") is None  # already claimed
    assert await runs.finish(platform, claimed, "success")
    assert (await runs.claim(platform, second.id, "worker-b")) is not None
    assert (await executions.get_execution(platform, owner[0], second.id)).worker == "worker-b"


async def test_terminate_and_rerun(platform, owner, service, settings) -> None:
    created = await executions.create_execution(
        platform, owner[0], service.id, "greet", {"name": "t"}
    )
    stopped = await executions.terminate_execution(platform, owner[0], created.id)
    assert stopped.status == "terminated"
    burst(settings)  # its job finds nothing to claim
    assert (await executions.get_execution(platform, owner[0], created.id)).status == "terminated"
    with pytest.raises(Conflict, match="already ended"):
        await executions.terminate_execution(platform, owner[0], created.id)
    again = await executions.rerun_execution(platform, owner[0], created.id)
    assert again.status == "created"
    burst(settings)
    assert (await executions.get_execution(platform, owner[0], created.id)).status == "success"


async def _expire(platform, execution_id) -> None:
    async with platform.db.write() as session:
        await session.execute(
            update(Execution)
            .where(Execution.id == execution_id)
            .values(lease_until=Execution.created_at)
        )


async def test_a_job_lost_with_redis_is_enqueued_again_from_the_database(
    platform, owner, service, settings
) -> None:
    from redis import Redis

    created = await executions.create_execution(
        platform, owner[0], service.id, "greet", {"name": "r"}
    )
    Redis.from_url(settings.redis_url).flushdb()  # Redis restarted empty
    assert await runs.requeue_lost(platform, grace=60) == 0  # not yet: it may be on its way
    assert await runs.requeue_lost(platform, grace=0) == 1
    assert await runs.requeue_lost(platform, grace=0) == 0  # Redis holds it now
    burst(settings)
    assert (await executions.get_execution(platform, owner[0], created.id)).status == "success"


async def test_a_job_taken_by_a_worker_that_died_before_claiming_is_enqueued_again(
    platform, owner, service, settings
) -> None:
    from redis import Redis
    from rq import Queue

    created = await executions.create_execution(
        platform, owner[0], service.id, "greet", {"name": "d"}
    )
    redis = Redis.from_url(settings.redis_url)
    queue = Queue("default", connection=redis)
    # what a worker does when it takes a job, before it dies (kill -9) without claiming it
    assert redis.lmove(queue.key, queue.intermediate_queue_key) == created.job_id.encode()
    assert await runs.requeue_lost(platform, grace=0) == 1
    burst(settings)
    assert (await executions.get_execution(platform, owner[0], created.id)).status == "success"


@pytest.mark.parametrize("on_reset", ["rerun", "failed"])
async def test_an_expired_lease_reruns_or_fails_per_on_reset(
    platform, owner, project, settings, on_reset
) -> None:
    service = await services.deploy_service(
        platform, owner[0], project.id, "svc", PACKAGE, on_reset=on_reset, max_attempts=2
    )
    created = await executions.create_execution(
        platform, owner[0], service.id, "greet", {"name": "r"}
    )
    claim = await runs.claim(platform, created.id, "dead-worker")  # and it dies without a word
    assert claim is not None and claim.attempt == 1
    assert await runs.reap(platform) == 0  # its lease still runs
    await _expire(platform, created.id)
    assert await runs.reap(platform) == 1
    reaped = await executions.get_execution(platform, owner[0], created.id)
    history = await _statuses(platform, owner, created.id)
    assert not await runs.finish(platform, claim, "success", output="late")  # too late to report
    burst(settings)
    done = await executions.get_execution(platform, owner[0], created.id)
    if on_reset == "rerun":
        assert reaped.status == "created"
        assert "queued again (attempt 2 of 2)" in history[-1]
        assert (done.status, done.attempts, done.output) == ("success", 2, "hello r (1)")
    else:
        assert (reaped.status, done.status, done.attempts) == ("system-failure",) * 2 + (1,)
        assert "dead-worker stopped renewing its lease" in done.error
