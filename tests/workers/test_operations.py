"""The platform's own operations as executions: checked when asked, done by a worker, their
result in the execution's output; progress reported by the changes by query."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from graph.db.tables import Dataset, Execution
from graph.domain import datasets, executions, items, operations, projects
from graph.domain.errors import Conflict, Forbidden, InvalidInput
from tests.conftest import make_user
from tests.workers.conftest import burst


@pytest.fixture
async def dataset(platform, owner, project):
    dataset = await datasets.create_dataset(platform, owner[0], project.id, "ds")
    async with platform.db.write() as session:
        await items.insert_items(
            session, owner[0], dataset, [items.ItemSpec(path=f"/{n}.jpg") for n in range(5)]
        )
    return dataset


async def test_a_clone_is_queued_then_done_by_a_worker(platform, owner, dataset, settings) -> None:
    started = await operations.start(
        platform, owner[0], "clone_dataset", {"datasetId": dataset.id, "name": "v2", "dql": ""}
    )
    assert (started.status, started.service_id, started.queue) == ("created", None, "platform")
    async with platform.db.read() as session:
        assert await session.scalar(select(func.count()).select_from(Dataset)) == 1  # not yet
    burst(settings)
    done = await executions.get_execution(platform, owner[0], started.id)
    assert done.status == "success" and done.output["name"] == "v2"
    clone = await datasets.get_dataset(platform, owner[0], done.output["datasetId"])
    assert (clone.items_count, clone.src_dataset_id) == (5, dataset.id)


async def test_changes_by_query_report_progress_and_their_count(
    platform, owner, dataset, settings
) -> None:
    started = await operations.start(
        platform,
        owner[0],
        "update_items_by_query",
        {"datasetId": dataset.id, "dql": 'name != "0.jpg"', "set": {"seen": True}},
    )
    burst(settings)
    done = await executions.get_execution(platform, owner[0], started.id)
    assert (done.status, done.output, done.progress) == ("success", {"changed": 4}, 100)
    assert done.message == "4 changed so far"
    page = await items.list_items(platform, owner[0], dataset.id, dql="metadata.user.seen = true")
    assert len(page.rows) == 4


async def test_what_the_request_can_check_is_refused_at_once(
    platform, owner, project, dataset
) -> None:
    annotator, _ = await make_user(platform, "ann@example.com")
    await projects.add_member(platform, owner[0], project.id, annotator.email, "annotator")
    other = await projects.create_project(platform, owner[0], "other")
    elsewhere = await datasets.create_dataset(platform, owner[0], other.id, "ds")
    with pytest.raises(Forbidden):
        await operations.start(
            platform, annotator, "clone_dataset", {"datasetId": dataset.id, "name": "x"}
        )
    with pytest.raises(Conflict, match="already has a dataset named 'ds'"):
        await operations.start(
            platform, owner[0], "clone_dataset", {"datasetId": dataset.id, "name": "ds"}
        )
    with pytest.raises(InvalidInput, match="give a query") as error:
        await operations.start(
            platform, owner[0], "delete_items_by_query", {"datasetId": dataset.id}
        )
    assert error.value.details["field"] == "dql"
    with pytest.raises(InvalidInput) as error:
        await operations.start(
            platform, owner[0], "delete_items_by_query", {"datasetId": dataset.id, "dql": "width >"}
        )
    assert error.value.details["field"] == "dql"
    with pytest.raises(InvalidInput, match="one project"):
        await operations.start(
            platform,
            owner[0],
            "merge_datasets",
            {"datasetIds": [dataset.id, elsewhere.id], "name": "both"},
        )
    async with platform.db.read() as session:
        assert await session.scalar(select(func.count()).select_from(Execution)) == 0


async def test_a_failing_operation_fails_its_execution_with_the_domains_message(
    platform, owner, dataset, settings
) -> None:
    started = await operations.start(
        platform,
        owner[0],
        "move_items_by_query",
        {"datasetId": dataset.id, "dql": "", "toDir": "/a/../b"},
    )
    burst(settings)
    done = await executions.get_execution(platform, owner[0], started.id)
    assert done.status == "failed" and done.attempts == 1
    assert done.error == "path '/a/../b' may not contain '.' or '..' segments"
    assert (await datasets.get_dataset(platform, owner[0], dataset.id)).items_count == 5
