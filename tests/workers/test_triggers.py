"""Event and cron triggers: the outbox dispatched to executions, once per entity or per event,
filtered by DQL, never twice; cron instants fire once each and do not storm after downtime."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from graph.db.tables import Event, Execution, Trigger
from graph.domain import cron, datasets, dispatch, executions, items, services, triggers
from graph.domain.errors import InvalidInput
from tests.workers.conftest import burst
from tests.workers.functions import PACKAGE


@pytest.fixture
async def service(platform, owner, project):
    return await services.deploy_service(platform, owner[0], project.id, "fns", PACKAGE)


@pytest.fixture
async def dataset(platform, owner, project):
    return await datasets.create_dataset(platform, owner[0], project.id, "ds")


async def _add(platform, owner, dataset, *paths):
    async with platform.db.write() as session:
        results, _ = await items.insert_items(
            session, owner[0], dataset, [items.ItemSpec(path=p) for p in paths]
        )
    return [r.item_id for r in results]


async def _runs(platform, trigger_id):
    async with platform.db.read() as session:
        return (
            await session.scalars(
                select(Execution).where(Execution.trigger_id == trigger_id).order_by(Execution.id)
            )
        ).all()


async def _drain(platform) -> None:
    while await dispatch.dispatch(platform):
        pass


async def test_new_items_matching_the_filter_run_the_function_once_each(
    platform, owner, service, dataset, settings
) -> None:
    trigger = await triggers.create_trigger(
        platform,
        owner[0],
        service.id,
        "on-train-images",
        "on_item",
        resource="Item",
        actions=["Created", "Updated"],
        dql='dir = "/train" and type = "file"',
    )
    train = await _add(platform, owner, dataset, "/train/a.jpg", "/train/b.jpg", "/val/c.jpg")
    await _drain(platform)
    found = await _runs(platform, trigger.id)
    assert sorted(e.input["item"]["item_id"] for e in found) == sorted(train[:2])
    burst(settings)
    outputs = [(await executions.get_execution(platform, owner[0], e.id)).output for e in found]
    assert sorted(outputs) == ["/train/a.jpg", "/train/b.jpg"]
    # Once: an update of an item that already ran does not run it again
    await items.update_item(platform, owner[0], train[0], description="seen")
    await _drain(platform)
    assert len(await _runs(platform, trigger.id)) == 2
    # every event is flagged: nothing is left in the outbox
    async with platform.db.read() as session:
        left = await session.scalar(select(func.count()).where(Event.dispatched.is_(False)))
    assert left == 0


async def test_always_runs_per_event_and_a_redispatch_creates_nothing_twice(
    platform, owner, service, dataset
) -> None:
    trigger = await triggers.create_trigger(
        platform,
        owner[0],
        service.id,
        "every-change",
        "on_item",
        resource="Item",
        actions=["Created", "Updated"],
        execution_mode="Always",
    )
    [item_id] = await _add(platform, owner, dataset, "/x.jpg")
    await items.update_item(platform, owner[0], item_id, description="one")
    await _drain(platform)
    assert len(await _runs(platform, trigger.id)) == 2
    # a dispatcher that crashed after its commit would see the same events again
    async with platform.db.write() as session:
        from sqlalchemy import update

        await session.execute(update(Event).values(dispatched=False))
    await _drain(platform)
    assert len(await _runs(platform, trigger.id)) == 2


async def test_deleted_items_reach_triggers_without_a_filter_and_fail_clearly(
    platform, owner, service, dataset, settings
) -> None:
    trigger = await triggers.create_trigger(
        platform, owner[0], service.id, "on-delete", "on_item", resource="Item", actions=["Deleted"]
    )
    filtered = await triggers.create_trigger(
        platform,
        owner[0],
        service.id,
        "on-delete-filtered",
        "on_item",
        resource="Item",
        actions=["Deleted"],
        dql='name = "gone.jpg"',
    )
    [item_id] = await _add(platform, owner, dataset, "/gone.jpg")
    await items.delete_items(platform, owner[0], [item_id])
    await _drain(platform)
    assert len(await _runs(platform, filtered.id)) == 0
    [run] = await _runs(platform, trigger.id)
    assert run.input["item"] == {"item_id": item_id, "dataset_id": dataset.id}
    burst(settings)
    done = await executions.get_execution(platform, owner[0], run.id)
    assert done.status == "failed" and "does not exist" in done.error
    assert done.attempts == 1  # a missing input is not retried


async def test_paused_triggers_and_other_projects_do_not_fire(
    platform, owner, service, dataset, project
) -> None:
    trigger = await triggers.create_trigger(
        platform, owner[0], service.id, "paused", "on_item", resource="Item", active=False
    )
    await _add(platform, owner, dataset, "/p.jpg")
    await _drain(platform)
    assert await _runs(platform, trigger.id) == []
    await triggers.update_trigger(platform, owner[0], trigger.id, active=True)
    from graph.domain import projects

    other = await projects.create_project(platform, owner[0], "other")
    elsewhere = await datasets.create_dataset(platform, owner[0], other.id, "ds")
    await _add(platform, owner, elsewhere, "/q.jpg")
    await _drain(platform)
    assert await _runs(platform, trigger.id) == []


async def test_triggers_are_checked_when_created(platform, owner, service) -> None:
    cases = [
        ({"resource": "Item", "dql": "width >"}, "dql"),
        ({"resource": "Item", "dql": "nope = 1"}, "dql"),
        ({"resource": "Task"}, "resource"),
        ({"resource": "Item", "actions": ["Exploded"]}, "actions"),
        ({"resource": "Item", "execution_mode": "Sometimes"}, "executionMode"),
        ({"resource": "Dataset"}, "functionName"),  # on_item takes an Item, not a Dataset
        ({"type": "Cron", "cron": "every day"}, "cron"),
        ({"type": "Cron", "cron": "61 * * * *"}, "cron"),
        ({"type": "Cron", "cron": "* * * * *", "dql": "name = 'a'"}, "dql"),
    ]
    for extra, field in cases:
        with pytest.raises(InvalidInput) as error:
            await triggers.create_trigger(platform, owner[0], service.id, "t", "on_item", **extra)
        assert error.value.details["field"] == field, (extra, error.value.message)
    with pytest.raises(InvalidInput, match="input.seconds must be Number"):
        await triggers.create_trigger(
            platform,
            owner[0],
            service.id,
            "t",
            "sleep",
            type="Cron",
            cron="* * * * *",
            input={"seconds": "soon"},
        )
    async with platform.db.read() as session:
        assert await session.scalar(select(func.count()).select_from(Trigger)) == 0


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_due_instants_fire_on_time_ones_and_only_the_latest_missed() -> None:
    every_minute = "* * * * *"
    now = _at("2026-11-22 10:00:30")
    # on time: the instant a few seconds ago
    assert cron.due_instants(every_minute, _at("2026-11-22 10:00:00"), now, 1) == [
        _at("2026-11-22 10:00:00")
    ]
    # after an hour of downtime: one catch-up (the latest missed) plus the on-time instant
    assert cron.due_instants(every_minute, _at("2026-11-22 09:00:00"), now, 1) == [
        _at("2026-11-22 09:59:00"),
        _at("2026-11-22 10:00:00"),
    ]
    assert cron.due_instants(every_minute, _at("2026-11-22 09:00:00"), now, 0) == [
        _at("2026-11-22 10:00:00")
    ]
    assert len(cron.due_instants(every_minute, _at("2026-11-22 09:00:00"), now, 3)) == 4


async def test_cron_fires_each_instant_once_however_many_schedulers_run(
    platform, owner, service
) -> None:
    trigger = await triggers.create_trigger(
        platform,
        owner[0],
        service.id,
        "hourly",
        "greet",
        type="Cron",
        cron="0 * * * *",
        input={"name": "cron"},
    )
    first = (
        trigger.next_at.replace(tzinfo=UTC) if trigger.next_at.tzinfo is None else trigger.next_at
    )
    assert first.minute == 0 and first > datetime.now(UTC)
    assert await cron.fire_due(platform, first - timedelta(seconds=1)) == 0
    # two schedulers looking at the same instant: one execution
    assert await cron.fire_due(platform, first + timedelta(seconds=1)) == 1
    assert await cron.fire_due(platform, first + timedelta(seconds=2)) == 0
    [run] = await _runs(platform, trigger.id)
    assert run.input == {"name": "cron"}
    assert run.dedupe_key == f"t:{trigger.id}:cron:{first.isoformat()}"
    # a day of downtime: the latest missed instant and nothing else
    assert await cron.fire_due(platform, first + timedelta(days=1, minutes=30)) == 1
    assert len(await _runs(platform, trigger.id)) == 2


async def test_item_status_changes_run_the_function_on_the_item(
    platform, owner, service, dataset, settings
) -> None:
    from graph.domain import item_statuses, tasks

    ids = await _add(platform, owner, dataset, "/a.jpg", "/b.jpg")
    task = await tasks.create_task(
        platform, owner[0], dataset.id, "label", dql="", workload=[(owner[0].email, 100)]
    )
    trigger = await triggers.create_trigger(
        platform,
        owner[0],
        service.id,
        "on-completed",
        "on_item",
        resource="ItemStatus",
        actions=["StatusChanged"],
        execution_mode="Always",
        dql=f'tasks.any(id = "{task.id}" and status = "completed")',
    )
    await _drain(platform)  # the items' creation is no status change
    await item_statuses.set_status(platform, owner[0], task.id, [ids[0]], "completed")
    await item_statuses.set_status(platform, owner[0], task.id, [ids[1]], "discard")
    await _drain(platform)
    found = await _runs(platform, trigger.id)
    assert [e.input["item"] for e in found] == [{"item_id": ids[0], "dataset_id": dataset.id}]
    burst(settings)
    assert (await executions.get_execution(platform, owner[0], found[0].id)).output == "/a.jpg"
    with pytest.raises(InvalidInput, match="StatusChanged"):
        await triggers.create_trigger(
            platform,
            owner[0],
            service.id,
            "wrong",
            "on_item",
            resource="ItemStatus",
            actions=["Created"],
        )
