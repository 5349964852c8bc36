"""Tasks on SQLite and PostgreSQL: created from a DQL selection, given out by workload or pulled
in batches (atomically, under concurrent pulls), statuses with history and events, the QA loop
with rework, DQL over task membership, roles, and the bad inputs the issue names."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest
from sqlalchemy import func, select, text

from graph.db.tables import Assignment, Event, Item, TaskItem
from graph.domain import (
    assignments,
    datasets,
    item_statuses,
    items,
    projects,
    task_analytics,
    tasks,
)
from graph.domain.assignments import Pulling
from graph.domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from tests.asserts import count_statements
from tests.conftest import make_user
from tests.graph.conftest import pulling_task
from tests.graphql import gql, gql_errors


def _workload(*shares: tuple[Any, float]) -> list[tuple[str, float]]:
    return [(person.email, load) for person, load in shares]


async def _task(platform, team, name: str, dql: str, *shares: tuple[Any, float]) -> Any:
    """A workload task the manager makes over the files ``dql`` selects."""
    return await tasks.create_task(
        platform, team.manager, team.dataset.id, name, dql=dql, workload=_workload(*shares)
    )


async def _day_copies(platform, team) -> Any:
    """A consensus task "agree" giving each /day item to both annotators."""
    return await tasks.create_task(
        platform,
        team.manager,
        team.dataset.id,
        "agree",
        dql='dir = "/day"',
        workload=_workload((team.ann1, 50), (team.ann2, 50)),
        consensus=assignments.Consensus(percentage=100, copies=2),
    )


async def _task_items(platform, task_id: str) -> list[TaskItem]:
    async with platform.db.read() as session:
        return list(
            await session.scalars(
                select(TaskItem).where(TaskItem.task_id == task_id).order_by(TaskItem.item_id)
            )
        )


async def _by_assignee(platform, manager, task_id: str) -> dict[str, list[str]]:
    emails = {
        a.id: email for a, email in await assignments.list_assignments(platform, manager, task_id)
    }
    out: dict[str, list[str]] = {}
    for row in await _task_items(platform, task_id):
        out.setdefault(emails.get(row.assignment_id, "nobody"), []).append(row.item_id)
    return out


async def test_a_task_takes_the_files_a_query_selects_and_splits_them_by_workload(
    platform, team
) -> None:
    task = await _task(
        platform,
        team,
        "label day",
        'dir = "/day" or metadata.user.n >= 18',
        (team.ann1, 70),
        (team.ann2, 30),
    )
    assert task.items_count == 12 and task.statuses == ["completed", "discard"]
    assert task.type == "annotation" and task.owner == team.manager.email
    split = await _by_assignee(platform, team.manager, task.id)
    assert len(split["ann1@example.com"]) == round(12 * 0.7)
    assert len(split["ann2@example.com"]) == 12 - round(12 * 0.7)
    # in path order: the first share takes the day folder's first files
    day = [team.ids[f"/day/{i:02d}.jpg"] for i in range(8)]
    assert set(split["ann1@example.com"]) == set(day)
    progress = await tasks.progress(platform, team.manager, task.id)
    assert progress.total == 12 and progress.done == 0 and progress.by_status == {None: 12}


async def test_items_added_later_are_split_by_the_same_workload_and_not_added_twice(
    platform, team
) -> None:
    task = await _task(platform, team, "grow", 'dir = "/day"', (team.ann1, 50), (team.ann2, 50))
    added = await tasks.add_items(platform, team.manager, task.id, dql="metadata.user.n >= 5")
    assert added == 10  # 5..9 were in it already
    got = await tasks.get_task(platform, team.manager, task.id)
    assert got.items_count == 20
    split = await _by_assignee(platform, team.manager, task.id)
    assert sorted(len(v) for v in split.values()) == [10, 10]
    removed = await tasks.remove_items(platform, team.manager, task.id, dql='dir = "/night"')
    assert removed == 10
    assert (await tasks.get_task(platform, team.manager, task.id)).items_count == 10


async def test_statuses_have_history_events_and_dql(platform, team) -> None:
    task = await _task(platform, team, "s", 'dir = "/day"', (team.ann1, 100))
    first, second = team.ids["/day/00.jpg"], team.ids["/day/01.jpg"]
    changes = await item_statuses.set_status(
        platform, team.ann1, task.id, [first, second], "completed"
    )
    assert [(c.previous, c.status) for c in changes] == [(None, "completed")] * 2
    again = await item_statuses.set_status(platform, team.ann1, task.id, [first], "completed")
    assert again == []  # already so: nothing changes, nothing is recorded
    await item_statuses.clear_status(platform, team.ann1, task.id, [second], note="oops")
    history = await item_statuses.history(platform, team.manager, task.id, second)
    assert [(h.previous, h.status, h.actor, h.note) for h in history] == [
        (None, "completed", "ann1@example.com", None),
        ("completed", None, "ann1@example.com", "oops"),
    ]
    async with platform.db.read() as session:
        seen = (
            await session.execute(
                select(Event.resource_id, Event.payload)
                .where(Event.resource == "itemStatus")
                .order_by(Event.seq)
            )
        ).all()
    assert [(r, p["status"], p["taskId"]) for r, p in seen] == [
        (first, "completed", task.id),
        (second, "completed", task.id),
        (second, None, task.id),
    ]
    done = await items.list_items(
        platform,
        team.owner,
        team.dataset.id,
        dql=f'tasks.any(id = "{task.id}" and status = "completed")',
    )
    assert [i.id for i in done.rows] == [first]
    waiting = await items.count_items(
        platform, team.owner, team.dataset.id, dql=f'tasks.any(id = "{task.id}" and not has status)'
    )
    assert waiting == 9
    outside = await items.count_items(platform, team.owner, team.dataset.id, dql="tasks.none()")
    assert outside == 10 + 2  # the night files and the two folders
    progress = await tasks.progress(platform, team.manager, task.id)
    assert progress.by_status == {"completed": 1, None: 9} and progress.done == 1


async def test_status_bad_input_is_refused_whole(platform, team) -> None:
    task = await _task(platform, team, "b", 'dir = "/day"', (team.ann1, 50), (team.ann2, 50))
    split = await _by_assignee(platform, team.manager, task.id)
    mine, theirs = split["ann1@example.com"][0], split["ann2@example.com"][0]
    with pytest.raises(
        InvalidInput, match="'approved' is not one of the task's: completed, discard"
    ):
        await item_statuses.set_status(platform, team.ann1, task.id, [mine], "approved")
    with pytest.raises(Forbidden, match="not given to you"):
        await item_statuses.set_status(platform, team.ann1, task.id, [mine, theirs], "completed")
    with pytest.raises(NotFound):
        await item_statuses.set_status(
            platform, team.manager, task.id, [mine, team.ids["/night/15.jpg"]], "completed"
        )
    with pytest.raises(NotFound):  # ann3 has no assignment: the task does not exist for it
        await item_statuses.set_status(platform, team.ann3, task.id, [mine], "completed")
    assert all(r.status is None for r in await _task_items(platform, task.id))
    # a manager sets any item's status
    await item_statuses.set_status(platform, team.manager, task.id, [mine, theirs], "discard")
    await tasks.update_task(platform, team.manager, task.id, {"status": "completed"})
    with pytest.raises(Conflict, match="completed"):
        await item_statuses.clear_status(platform, team.manager, task.id, [mine])


@pytest.mark.parametrize(
    ("workload", "error"),
    [
        ([("ann1@example.com", 60), ("ann2@example.com", 30)], "sum to 100, they sum to 90"),
        ([("ann1@example.com", 100), ("ann1@example.com", 0.0)], "twice"),
        ([("ann1@example.com", -10), ("ann2@example.com", 110)], "above 0"),
        ([], "at least one"),
    ],
)
async def test_bad_workloads_are_refused(platform, team, workload, error) -> None:
    with pytest.raises(InvalidInput, match=error):
        await tasks.create_task(
            platform, team.manager, team.dataset.id, "w", dql="", workload=workload
        )
    assert await tasks.count_tasks(platform, team.owner, team.project.id) == 0


async def test_unknown_assignees_other_datasets_and_roles_are_refused(platform, team) -> None:
    stranger, _ = await make_user(platform, "stranger@example.com")
    for email in ("nobody@example.com", stranger.email):  # no user; a user not in the project
        with pytest.raises(NotFound, match=email):
            await tasks.create_task(
                platform, team.manager, team.dataset.id, "x", dql="", workload=[(email, 100)]
            )
    with pytest.raises(Forbidden):
        await tasks.create_task(
            platform, team.ann1, team.dataset.id, "x", dql="", workload=_workload((team.ann1, 100))
        )
    other = await datasets.create_dataset(platform, team.owner, team.project.id, "other")
    task = await tasks.create_task(
        platform, team.manager, team.dataset.id, "x", dql="", workload=_workload((team.ann1, 100))
    )
    # adding by query selects only this task's dataset: another dataset's ids match nothing
    async with platform.db.write() as session:
        results, _ = await items.insert_items(
            session, team.owner, other, [items.ItemSpec(path="/o.jpg", url="https://x.test/o")]
        )
    added = await tasks.add_items(
        platform, team.manager, task.id, dql=f'id = "{results[0].item_id}"'
    )
    assert added == 0
    with pytest.raises(Conflict, match="already has a task named 'x'"):
        await _task(platform, team, "x", "", (team.ann1, 100))


async def test_deleting_a_task_with_work_in_progress_needs_force(platform, team) -> None:
    task = await _task(platform, team, "d", 'dir = "/day"', (team.ann1, 100))
    with pytest.raises(Conflict, match="10 items given out and not done"):
        await tasks.delete_task(platform, team.manager, task.id)
    assert len(await _task_items(platform, task.id)) == 10
    await tasks.delete_task(platform, team.manager, task.id, force=True)
    assert await _task_items(platform, task.id) == []
    with pytest.raises(NotFound):
        await tasks.get_task(platform, team.manager, task.id)


async def test_annotators_see_only_the_tasks_they_work_on(platform, team) -> None:
    await _task(platform, team, "mine", "", (team.ann1, 100))
    await tasks.create_task(
        platform, team.manager, team.dataset.id, "not", dql="", workload=_workload((team.ann2, 100))
    )
    seen = await tasks.list_tasks(platform, team.ann1, team.project.id)
    assert [t.name for t in seen.rows] == ["mine"]
    (work,) = await assignments.my_assignments(platform, team.ann1, team.project.id)
    assert (work.task.name, work.held, work.done) == ("mine", 20, 0)
    assert await tasks.count_tasks(platform, team.ann1, team.project.id) == 1
    managed = await tasks.list_tasks(platform, team.manager, team.project.id, dql='name = "not"')
    assert [t.name for t in managed.rows] == ["not"]


async def test_redistribute_and_reassign_move_only_work_not_done(platform, team) -> None:
    task = await _task(platform, team, "r", 'dir = "/day"', (team.ann1, 50), (team.ann2, 50))
    split = await _by_assignee(platform, team.manager, task.id)
    done = split["ann1@example.com"][:2]
    await item_statuses.set_status(platform, team.ann1, task.id, done, "completed")
    await assignments.redistribute(
        platform, team.manager, task.id, _workload((team.ann2, 50), (team.ann3, 50))
    )
    split = await _by_assignee(platform, team.manager, task.id)
    assert sorted(split["ann1@example.com"]) == sorted(done)  # done work stays its
    assert len(split["ann2@example.com"]) == 4 and len(split["ann3@example.com"]) == 4
    moved = await assignments.reassign(
        platform, team.manager, task.id, team.ann3.email, team.ann1.email
    )
    assert moved == 4
    split = await _by_assignee(platform, team.manager, task.id)
    assert "ann3@example.com" not in split and len(split["ann1@example.com"]) == 6
    loads = {
        e: a.load for a, e in await assignments.list_assignments(platform, team.manager, task.id)
    }
    assert loads == {"ann1@example.com": 50, "ann2@example.com": 50, "ann3@example.com": None}


async def test_pulling_gives_batches_up_to_the_workload_limit(platform, team) -> None:
    task = await pulling_task(platform, team, [team.ann1, team.ann2], most=5)
    assert task.items_count == 20 and task.distribution == "pulling"
    first = await assignments.pull(platform, team.ann1, task.id)
    assert len(first) == 3
    with count_statements(platform.db.engine) as log:
        second = await assignments.pull(platform, team.ann1, task.id)
    assert len(second) == 2 and not set(first) & set(second)  # holds 5 = maxBatchWorkload
    # the check, the take and the count: one call on PostgreSQL, two statements on SQLite
    assert len(log) == (2 if platform.db.is_sqlite else 1), str(log)
    assert await assignments.pull(platform, team.ann1, task.id) == []
    await item_statuses.set_status(platform, team.ann1, task.id, first, "completed")
    assert len(await assignments.pull(platform, team.ann1, task.id)) == 3
    with pytest.raises(NotFound):  # not an assignee: the task is not its to see
        await assignments.pull(platform, team.ann3, task.id)
    # work held in another task does not count against this one's limit
    other = await pulling_task(platform, team, [team.ann1, team.ann2], "other", batch=2, most=2)
    assert len(await assignments.pull(platform, team.ann1, other.id)) == 2
    assert await assignments.pull(platform, team.ann1, other.id) == []
    assert len(await assignments.pull(platform, team.ann2, task.id)) == 3
    await tasks.update_task(platform, team.manager, task.id, {"status": "paused"})
    with pytest.raises(Conflict, match="paused"):
        await assignments.pull(platform, team.ann2, task.id)
    await tasks.update_task(platform, team.manager, task.id, {"status": "completed"})
    with pytest.raises(Conflict, match="completed"):
        await assignments.pull(platform, team.ann2, task.id)


async def test_concurrent_pulls_never_give_an_item_twice(platform, team) -> None:
    pullers = []
    for n in range(8):
        person, _ = await make_user(platform, f"puller{n}@example.com")
        await projects.add_member(platform, team.owner, team.project.id, person.email, "annotator")
        pullers.append(person)
    task = await tasks.create_task(
        platform,
        team.manager,
        team.dataset.id,
        "race",
        dql="",
        pulling=Pulling([p.email for p in pullers], 3, 3),
    )
    got = await asyncio.gather(*(assignments.pull(platform, p, task.id) for p in pullers))
    taken = [item for batch in got for item in batch]
    assert len(taken) == len(set(taken)) == 20  # 8 x 3 asked, 20 there: all given, none twice
    async with platform.db.read() as session:
        given = await session.scalar(
            select(func.count()).select_from(TaskItem).where(TaskItem.assignment_id.is_not(None))
        )
    assert given == 20


async def _pulled_at_the_same_instant(platform, task, actor, n: int) -> list[list[str]]:
    """``n`` pulls of one assignee at the same instant. On PostgreSQL the counter row of the
    assignee's held items is held by another transaction for half a second, so that all the
    pulls start before any has counted what it took. On SQLite (one writer) they go in one
    group commit, one after another."""
    pulls = asyncio.gather(*(assignments.pull(platform, actor, task.id) for _ in range(n)))
    if platform.db.is_sqlite:
        return await pulls
    async with platform.db.read() as session:
        mine = await session.scalar(
            select(Assignment.id).where(
                Assignment.task_id == task.id, Assignment.assignee_id == actor.user_id
            )
        )
    async with platform.db.engine.connect() as holding:
        await holding.execute(  # made, or locked as it is
            text(
                "INSERT INTO task_counts (task_id, assignment_id, status, n) "
                "VALUES (:t, :a, '', 0) ON CONFLICT (task_id, assignment_id, status) "
                "DO UPDATE SET n = task_counts.n"
            ),
            {"t": task.id, "a": mine},
        )
        await asyncio.sleep(0.5)  # every pull has started; none has counted
        await holding.commit()
    return await pulls


async def test_pulls_of_one_assignee_at_the_same_instant_hold_no_more_than_its_limit(
    platform, team
) -> None:
    task = await pulling_task(platform, team, [team.ann1, team.ann2], most=3)  # batches of 3
    got = await _pulled_at_the_same_instant(platform, task, team.ann1, 6)
    held = [item for batch in got for item in batch]
    assert len(held) == len(set(held)) == 3  # one batch kept; what the others took went back
    progress = await tasks.progress(platform, team.manager, task.id)  # the counts agree
    counts = {a: dict(s) for a, s in progress.by_assignment.items()}
    assert counts.pop(None) == {None: 17} and list(counts.values()) == [{None: 3}]
    assert len(await assignments.pull(platform, team.ann2, task.id)) == 3
    async with platform.db.read() as session:
        given = await session.scalar(
            select(func.count()).select_from(TaskItem).where(TaskItem.assignment_id.is_not(None))
        )
    assert given == 6


async def test_qa_task_fills_itself_and_sends_rework_back(platform, team) -> None:
    task = await _task(platform, team, "label", 'dir = "/day"', (team.ann1, 100))
    a, b, c = (team.ids[f"/day/0{i}.jpg"] for i in range(3))
    await item_statuses.set_status(platform, team.ann1, task.id, [a], "completed")
    qa = await tasks.create_qa_task(
        platform, team.manager, task.id, workload=_workload((team.ann2, 100))
    )
    assert qa.name == "label_qa" and qa.statuses == ["approved", "discard"]
    assert [r.item_id for r in await _task_items(platform, qa.id)] == [a]
    await item_statuses.set_status(platform, team.ann1, task.id, [b, c], "completed")
    assert {r.item_id for r in await _task_items(platform, qa.id)} == {a, b, c}
    assert (await tasks.get_task(platform, team.manager, qa.id)).items_count == 3
    # the reviewer sends b back: it loses its status in the parent, with the reviewer's words
    await item_statuses.set_status(platform, team.ann2, qa.id, [b], "discard", note="box too big")
    parent_rows = {r.item_id: r for r in await _task_items(platform, task.id)}
    assert parent_rows[b].status is None and parent_rows[b].issue == "box too big"
    back = await items.list_items(
        platform,
        team.owner,
        team.dataset.id,
        dql=f'tasks.any(id = "{task.id}" and has issue)',
    )
    assert [i.id for i in back.rows] == [b]
    # done again: the QA task reviews it again
    await item_statuses.set_status(platform, team.ann1, task.id, [b], "completed")
    (stats,) = await task_analytics.analytics(platform, team.manager, task.id)
    assert (stats.assignee, stats.assigned, stats.done) == ("ann1@example.com", 10, 3)
    assert (stats.reworked, stats.rework_rate) == (1, 1 / 3)
    assert stats.seconds_per_item is not None and 0 <= stats.seconds_per_item < 60
    with pytest.raises(Forbidden):
        await task_analytics.analytics(platform, team.ann1, task.id)
    qa_rows = {r.item_id: r for r in await _task_items(platform, qa.id)}
    assert qa_rows[b].status is None
    assert {r.item_id: r.issue for r in await _task_items(platform, task.id)}[b] is None
    with pytest.raises(InvalidInput, match="fed by its parent"):
        await tasks.add_items(platform, team.manager, qa.id, dql="")


async def test_deleting_a_recipe_leaves_its_tasks_without_one(platform, team) -> None:
    from graph.domain import recipes

    recipe = await recipes.create_recipe(
        platform, team.owner, team.project.id, "r", labels=[{"tag": "cat"}]
    )
    task = await tasks.create_task(
        platform,
        team.manager,
        team.dataset.id,
        "t",
        dql="",
        recipe_id=recipe.id,
        workload=_workload((team.ann1, 100)),
    )
    assert task.recipe_id == recipe.id
    await recipes.delete_recipe(platform, team.owner, recipe.id)
    assert (await tasks.get_task(platform, team.manager, task.id)).recipe_id is None


# --- API ------------------------------------------------------------------------------------------

CREATE = """mutation($d: ID!, $w: [WorkloadEntry!], $p: PullingInput, $dql: String) {
    createTask(datasetId: $d, name: "api", dql: $dql, workload: $w, pulling: $p,
               dueDate: "2027-01-31T12:00:00", priority: 3, statuses: ["completed", "expert review"]) {
        id name type status dueDate priority statuses distribution batchSize itemsCount
        assignments { assignee load }
        progress { total done byStatus { status count } }
    } }"""
TASKS = """query($p: ID!) { tasks(projectId: $p) { totalCount nodes {
    name progress { total done byAssignment { assignmentId total done } }
    assignments { assignee load } } } }"""


def _auth(token: str) -> dict[str, Any]:
    return {"headers": {"Authorization": f"Bearer {token}"}}


async def test_over_graphql(platform, client, owner, project) -> None:
    manager, manager_token = await make_user(platform, "m@example.com")
    annotator, annotator_token = await make_user(platform, "a@example.com")
    await projects.add_member(platform, owner[0], project.id, manager.email, "annotationManager")
    await projects.add_member(platform, owner[0], project.id, annotator.email, "annotator")
    dataset = await datasets.create_dataset(platform, owner[0], project.id, "d")
    async with platform.db.write() as session:
        await items.insert_items(
            session,
            owner[0],
            dataset,
            [items.ItemSpec(path=f"/{i}.jpg", url=f"https://x.test/{i}") for i in range(4)],
        )
    made = (
        await gql(
            client,
            CREATE,
            {"d": dataset.id, "w": [{"assignee": annotator.email, "load": 100}], "dql": ""},
            **_auth(manager_token),
        )
    )["createTask"]
    assert made["itemsCount"] == 4 and made["dueDate"] == "2027-01-31T12:00:00.000Z"
    assert made["assignments"] == [{"assignee": "a@example.com", "load": 100.0}]
    assert made["progress"] == {"total": 4, "done": 0, "byStatus": [{"status": None, "count": 4}]}
    listed = await gql(
        client,
        """query($d: ID!) { items(datasetId: $d, dql: "type = \\"file\\"") {
            nodes { id taskStatuses { taskId status } } } }""",
        {"d": dataset.id},
        **_auth(annotator_token),
    )
    ids = [n["id"] for n in listed["items"]["nodes"]]
    assert listed["items"]["nodes"][0]["taskStatuses"] == [{"taskId": made["id"], "status": None}]
    changed = await gql(
        client,
        """mutation($t: ID!, $i: [ID!]!) { setItemStatus(taskId: $t, itemIds: $i,
            status: "expert review", note: "hard one") { itemId previous status } }""",
        {"t": made["id"], "i": ids[:2]},
        **_auth(annotator_token),
    )
    assert [c["status"] for c in changed["setItemStatus"]] == ["expert review"] * 2
    history = await gql(
        client,
        """query($t: ID!, $i: ID!) { itemStatusHistory(taskId: $t, itemId: $i) {
            status previous actor note } }""",
        {"t": made["id"], "i": ids[0]},
        **_auth(manager_token),
    )
    assert history["itemStatusHistory"] == [
        {"status": "expert review", "previous": None, "actor": "a@example.com", "note": "hard one"}
    ]
    errors = await gql_errors(
        client,
        """mutation($t: ID!, $i: [ID!]!) { setItemStatus(taskId: $t, itemIds: $i,
            status: "approved") { itemId } }""",
        {"t": made["id"], "i": ids[:1]},
        **_auth(annotator_token),
    )
    assert errors[0]["extensions"]["code"] == "INVALID_INPUT"
    assert errors[0]["extensions"]["field"] == "status"
    errors = await gql_errors(
        client,
        CREATE,
        {"d": dataset.id, "w": [{"assignee": annotator.email, "load": 90}], "dql": ""},
        **_auth(manager_token),
    )
    assert errors[0]["extensions"]["code"] == "INVALID_INPUT"
    assert "sum to 100" in errors[0]["message"]
    errors = await gql_errors(
        client,
        CREATE,
        {"d": dataset.id, "w": [{"assignee": annotator.email, "load": 100}], "dql": ""},
        **_auth(annotator_token),
    )
    assert errors[0]["extensions"]["code"] == "FORBIDDEN"
    errors = await gql_errors(
        client,
        CREATE,
        {"d": dataset.id, "w": [{"assignee": annotator.email, "load": 100}], "dql": "width >"},
        **_auth(manager_token),
    )
    assert errors[0]["extensions"]["code"] == "INVALID_INPUT"  # the DQL syntax error, located
    assert await tasks.count_tasks(platform, owner[0], project.id) == 1
    deleted = await gql_errors(
        client,
        "mutation($t: ID!) { deleteTask(id: $t) }",
        {"t": made["id"]},
        **_auth(manager_token),
    )
    assert deleted[0]["extensions"]["code"] == "CONFLICT"


async def test_pulling_over_graphql(platform, client, team) -> None:
    _, token = await make_user(platform, "puller@example.com")
    await projects.add_member(
        platform, team.owner, team.project.id, "puller@example.com", "annotator"
    )
    made = (
        await gql(
            client,
            CREATE,
            {
                "d": team.dataset.id,
                "p": {"assignees": ["puller@example.com"], "batchSize": 4, "maxBatchWorkload": 6},
                "dql": 'dir = "/day"',
            },
        )
    )["createTask"]
    assert (made["distribution"], made["batchSize"], made["itemsCount"]) == ("pulling", 4, 10)
    pull = "mutation($t: ID!) { pullTaskItems(taskId: $t) { id filename } }"
    first = (await gql(client, pull, {"t": made["id"]}, **_auth(token)))["pullTaskItems"]
    second = (await gql(client, pull, {"t": made["id"]}, **_auth(token)))["pullTaskItems"]
    assert len(first) == 4 and len(second) == 2
    assert all(i["filename"].startswith("/day/") for i in first + second)
    errors = await gql_errors(client, pull, {"t": made["id"]}, **_auth(team.ann1_token))
    assert errors[0]["extensions"]["code"] == "NOT_FOUND"  # not its task


async def test_listing_tasks_is_a_bounded_number_of_statements(platform, client, team) -> None:
    async def statements(count: int) -> int:
        with count_statements(platform.db.engine) as log:
            answer = await gql(client, TASKS, {"p": team.project.id})
        assert len(answer["tasks"]["nodes"]) == count
        return len(log)

    for n in range(2):
        await tasks.create_task(
            platform,
            team.manager,
            team.dataset.id,
            f"t{n}",
            dql="",
            workload=_workload((team.ann1, 100)),
        )
    few = await statements(2)
    for n in range(2, 12):
        await tasks.create_task(
            platform,
            team.manager,
            team.dataset.id,
            f"t{n}",
            dql="",
            workload=_workload((team.ann1, 100)),
        )
    assert await statements(12) == few


async def test_an_annotator_reaches_only_the_items_given_to_it(platform, client, team) -> None:
    from graph.domain import annotations, facets, services
    from graph.domain.annotations import AnnotationSpec
    from tests.workers.functions import PACKAGE

    task = await _task(platform, team, "split", 'dir = "/day"', (team.ann1, 50), (team.ann2, 50))
    split = await _by_assignee(platform, team.manager, task.id)
    mine, theirs = split["ann1@example.com"], split["ann2@example.com"]
    seen = await items.list_items(platform, team.ann1, team.dataset.id, first=100)
    assert sorted(i.id for i in seen.rows) == sorted(mine)  # no folder, no one else's item
    assert await items.count_items(platform, team.ann1, team.dataset.id) == 5
    assert await items.count_items(platform, team.manager, team.dataset.id) == 22
    assert (await items.get_item(platform, team.ann1, mine[0])).id == mine[0]
    with pytest.raises(NotFound):
        await items.get_item(platform, team.ann1, theirs[0])
    box = AnnotationSpec(type="box", label="cat", coordinates=[{"x": 1, "y": 1}, {"x": 4, "y": 4}])
    await annotations.create_annotations(platform, team.ann1, mine[0], [box])
    (other,) = await annotations.create_annotations(platform, team.ann2, theirs[0], [box])
    with pytest.raises(NotFound):
        await annotations.create_annotations(platform, team.ann1, theirs[0], [box])
    with pytest.raises(NotFound):
        await annotations.get_annotation(platform, team.ann1, other.id)
    listed = await annotations.list_annotations(platform, team.ann1, team.dataset.id)
    assert [a.item_id for a in listed.rows] == [mine[0]]
    assert await annotations.count_annotations(platform, team.manager, team.dataset.id) == 2
    assert (await facets.annotation_facet(platform, team.ann1, team.dataset.id)).total == 1
    # the bytes too: the stream route answers as for an item that does not exist
    response = await client.get(
        f"/items/{theirs[0]}/stream", headers={"Authorization": f"Bearer {team.ann1_token}"}
    )
    assert response.status_code == 404
    response = await client.get(
        f"/items/{mine[0]}/stream", headers={"Authorization": f"Bearer {team.ann1_token}"}
    )
    assert response.status_code in (302, 307)  # a linked item: its URL
    # annotation managers manage tasks, not code
    with pytest.raises(Forbidden):
        await services.deploy_service(platform, team.manager, team.project.id, "no", PACKAGE)


def _box(x: int, y: int, label: str = "cat", **attributes: Any) -> Any:
    from graph.domain.annotations import AnnotationSpec

    metadata = {"system": {"attributes": attributes}} if attributes else {}
    corners = [{"x": x, "y": y}, {"x": x + 10, "y": y + 10}]
    return AnnotationSpec(type="box", label=label, coordinates=corners, metadata=metadata)


async def test_consensus_items_are_copied_scored_and_merged(platform, team) -> None:
    from graph.domain import annotations, consensus

    task = await tasks.create_task(
        platform,
        team.manager,
        team.dataset.id,
        "agree",
        dql='dir = "/day"',
        workload=_workload((team.ann1, 34), (team.ann2, 33), (team.ann3, 33)),
        consensus=assignments.Consensus(percentage=50, copies=3),
    )
    assert task.items_count == 10 and (task.consensus_percentage, task.consensus_copies) == (50, 3)
    rows = await _task_items(platform, task.id)
    copies: dict[str, set[str]] = {}
    for row in rows:
        copies.setdefault(row.item_id, set()).add(row.assignment_id)
    shared = sorted(item for item, held in copies.items() if len(held) == 3)
    assert len(shared) == 5 and all(len(h) in (1, 3) for h in copies.values())
    item = shared[0]
    people = (team.ann1, team.ann2, team.ann3)
    drawn = [
        [_box(10, 10), _box(50, 50, "dog")],
        [_box(11, 10), _box(50, 51, "cat")],
        [_box(10, 11)],
    ]
    for person, boxes in zip(people, drawn, strict=True):
        await annotations.create_annotations(platform, person, item, boxes)
    # a copy is annotated alone: the others' work on it is out of sight
    mine = await annotations.list_annotations(platform, team.ann2, team.dataset.id)
    assert {a.creator for a in mine.rows} == {"ann2@example.com"} and len(mine.rows) == 2
    other = next(
        a
        for a in (await annotations.list_annotations(platform, team.manager, team.dataset.id)).rows
        if a.creator == "ann1@example.com"
    )
    with pytest.raises(NotFound):
        await annotations.get_annotation(platform, team.ann2, other.id)
    for person in people[:2]:
        await item_statuses.set_status(platform, person, task.id, [item], "completed")
    assert await consensus.item_scores(platform, team.manager, task.id) == []  # one copy to go
    await item_statuses.set_status(platform, team.ann3, task.id, [item], "completed")
    (score,) = await consensus.item_scores(platform, team.manager, task.id)
    pairs = {(p["a"], p["b"]): p for p in score.scores["pairs"]}
    one_two = pairs[("ann1@example.com", "ann2@example.com")]
    assert one_two["label"] == 0.5  # the cat agrees, the second box's label does not
    assert 0.8 < one_two["iou"] < 0.9
    assert pairs[("ann1@example.com", "ann3@example.com")]["label"] == 0.5  # 1 of 2 matched
    agreement = {
        a.assignee: a for a in await consensus.annotator_scores(platform, team.manager, task.id)
    }
    assert set(agreement) == {"ann1@example.com", "ann2@example.com", "ann3@example.com"}
    assert all(a.items == 1 and 0 < (a.overall or 0) < 1 for a in agreement.values())
    with pytest.raises(Forbidden):
        await consensus.item_scores(platform, team.ann1, task.id)
    assert await consensus.merge(platform, team.manager, task.id) == 2  # the cat; the 2-of-3 box
    assert await consensus.merge(platform, team.manager, task.id) == 0  # written once
    merged = [
        a
        for a in (await annotations.list_annotations(platform, team.manager, team.dataset.id)).rows
        if a.source == "consensus"
    ]
    cat = next(a for a in merged if a.coordinates[0]["x"] < 20)
    assert cat.label == "cat"
    assert cat.coordinates[0] == {"x": pytest.approx(31 / 3), "y": pytest.approx(31 / 3)}
    with pytest.raises(InvalidInput, match="copies is 2 to the number of assignees"):
        await tasks.create_task(
            platform,
            team.manager,
            team.dataset.id,
            "too many",
            dql="",
            workload=_workload((team.ann1, 100)),
            consensus=assignments.Consensus(percentage=50, copies=2),
        )


async def test_an_annotator_learns_nothing_of_another_copy_through_dql(platform, team) -> None:
    """On a consensus copy an annotator's DQL reaches only its own annotations, whatever the
    form (quantifiers any/none/count, Dataloop JSON joins, an annotation's item, facets,
    histograms, correlated plans); on an item given to it alone it reaches them all."""
    from graph.domain import annotations, explain, facets, queries
    from graph.domain.reach import Viewer

    await _day_copies(platform, team)
    alone = team.ids["/night/10.jpg"]
    await _task(platform, team, "alone", f'id = "{alone}"', (team.ann2, 100))
    shared = team.ids["/day/03.jpg"]
    await annotations.create_annotations(platform, team.ann1, shared, [_box(0, 0, "dog")])
    await annotations.create_annotations(platform, team.ann2, shared, [_box(1, 1, "cat")])
    await annotations.create_annotations(platform, team.owner, alone, [_box(5, 5, "dog")])
    dataset = team.dataset.id

    async def found(actor: Any, dql: str | None = None, dataloop: Any = None) -> set[str]:
        page = await items.list_items(platform, actor, dataset, dql=dql, dataloop=dataloop)
        count = await items.count_items(platform, actor, dataset, dql=dql, dataloop=dataloop)
        assert count == len(page.rows)
        return {row.id for row in page.rows}

    day = {team.ids[f"/day/{i:02d}.jpg"] for i in range(10)}
    dog = 'annotations.any(label = "dog")'
    for actor, seen in ((team.manager, {shared, alone}), (team.ann2, {alone})):
        assert await found(actor, dog) == seen
        assert await found(actor, 'annotations.count(label = "dog") >= 1') == seen
    assert await found(team.ann2, f'dir = "/day" and not {dog}') == day
    assert await found(team.ann2, 'dir = "/day" and annotations.none(label = "dog")') == day
    assert await found(team.ann2, 'dir = "/day" and annotations.count() = 1') == {shared}
    assert await found(team.ann2, "annotations.count() >= 2") == set()
    assert await found(team.manager, "annotations.count() >= 2") == {shared}
    assert await found(team.ann2, 'annotations.any(creator = "ann1@example.com")') == set()
    join = {
        "filter": {"dir": "/day"},
        "join": {"on": {"resource": "annotations"}, "filter": {"label": "dog"}},
    }
    assert await found(team.ann2, dataloop=join) == set()
    assert await found(team.manager, dataloop=join) == {shared}
    # from the annotations: an annotation's item's other annotations
    nested = 'item.any(annotations.any(label = "dog"))'
    mine = await annotations.list_annotations(platform, team.ann2, dataset, dql=nested)
    assert [(a.item_id, a.label) for a in mine.rows] == [(alone, "dog")]
    assert await annotations.count_annotations(platform, team.ann2, dataset, dql=nested) == 1
    # facets and histograms count what the list shows
    facet = await facets.item_facet(platform, team.ann2, dataset, "dir", dql=dog)
    assert (facet.total, [(v.value, v.count) for v in facet.values]) == (1, [("/night", 1)])
    labels = await facets.annotation_facet(platform, team.ann2, dataset, "label", item_dql=dog)
    assert [(v.value, v.count) for v in labels.values] == [("dog", 1)]
    histogram = await facets.item_histogram(
        platform, team.ann2, dataset, "metadata.user.n", dql=dog
    )
    assert histogram.total == 1
    # the other way of running a quantifier (a correlated EXISTS, for common matches)
    viewer = Viewer(team.ann2.user_id, team.ann2.email)
    for correlated in (False, True):
        compiled = queries.compile_for(
            queries.parse_query(dog),
            "items",
            platform.db.dialect,
            dataset,
            correlated=correlated,
            viewer=viewer,
        )
        async with platform.db.read() as session:
            hits = set(
                await session.scalars(select(Item.id).where(compiled.where), compiled.params)
            )
        assert hits == {alone}
    plan = await explain.explain(platform, team.ann2, "items", dataset, dog)
    assert plan.sql and plan.plan


def _square(x: float, size: float, label: str) -> Any:
    from graph.domain.annotations import AnnotationSpec

    ring = [{"x": x, "y": 0}, {"x": x + size, "y": 0}, {"x": x + size, "y": size}]
    ring.append({"x": x, "y": size})
    return AnnotationSpec(type="segment", label=label, coordinates=[ring])


def _point(x: float, y: float, label: str) -> Any:
    from graph.domain.annotations import AnnotationSpec

    return AnnotationSpec(type="point", label=label, coordinates={"x": x, "y": y})


async def test_consensus_scores_real_shapes_and_merges_what_any_majority_drew(
    platform, team
) -> None:
    """Three annotators: polygons scored by their area (a square shifted by a tenth of its side
    has IoU 90/110 with it), points by distance, boxes exactly; the merge groups the objects of
    all three, so one the first annotator missed is merged too."""
    from graph.domain import annotations, consensus

    task = await tasks.create_task(
        platform,
        team.manager,
        team.dataset.id,
        "shapes",
        dql='dir = "/day" and metadata.user.n < 2',
        workload=_workload((team.ann1, 34), (team.ann2, 33), (team.ann3, 33)),
        consensus=assignments.Consensus(percentage=100, copies=3),
    )
    item = team.ids["/day/00.jpg"]
    drawn = {
        # squares 100 wide at x = 0, 10, 20: IoU 9000/11000 next to each other, 8000/12000 apart
        team.ann1: [_square(0, 100, "cat"), _box(900, 900, "far"), _point(500, 500, "eye")],
        team.ann2: [_square(10, 100, "cat"), _box(300, 300, "dog")],
        team.ann3: [_square(20, 100, "dog"), _box(301, 300, "dog"), _point(503, 504, "eye")],
    }
    for person, specs in drawn.items():
        await annotations.create_annotations(platform, person, item, specs)
        await item_statuses.set_status(platform, person, task.id, [item], "completed")
    (score,) = await consensus.item_scores(platform, team.manager, task.id)
    pairs = {(p["a"], p["b"]): p for p in score.scores["pairs"]}
    near, apart = 9000 / 11000, 8000 / 12000
    one_two = pairs[("ann1@example.com", "ann2@example.com")]
    assert one_two["iou"] == pytest.approx(near, abs=0.01)  # the squares; nothing else matches
    assert one_two["label"] == pytest.approx(1 / 3)  # 1 agreed of 3 drawn
    two_three = pairs[("ann2@example.com", "ann3@example.com")]
    boxes = 9 * 10 / (2 * 100 - 9 * 10)  # 10-wide boxes one apart: exactly
    assert two_three["iou"] == pytest.approx((near + boxes) / 2, abs=0.01)
    one_three = pairs[("ann1@example.com", "ann3@example.com")]
    eyes = math.exp(-25 / 200)  # 5 pixels apart
    assert one_three["iou"] == pytest.approx((apart + eyes) / 2, abs=0.01)
    assert one_three["label"] == pytest.approx(1 / 3)  # the eye; the squares' labels differ

    assert await consensus.merge(platform, team.manager, task.id) == 3
    merged = sorted(
        (
            a
            for a in (
                await annotations.list_annotations(platform, team.manager, team.dataset.id)
            ).rows
            if a.source == "consensus"
        ),
        key=lambda a: a.type,
    )
    box, point, segment = merged
    # the square drawn by all three: the middle one (best mean IoU), the majority's label
    assert (segment.label, segment.coordinates[0][0]["x"]) == ("cat", 10)
    # the box only the second and third drew: their mean
    assert box.label == "dog"
    assert box.coordinates[:2] == [{"x": 300.5, "y": 300}, {"x": 310.5, "y": 310}]
    # the points: their mean
    assert (point.label, point.coordinates["x"], point.coordinates["y"]) == ("eye", 501.5, 502)


async def test_deleting_items_keeps_their_tasks_counts(platform, team) -> None:
    """Items deleted one by one, by query and with their folder leave every task that held
    them (a consensus task counts an item once, whatever its copies), and the counts say so."""
    from graph.domain import bulk

    work = await _task(platform, team, "all", "", (team.ann1, 50), (team.ann2, 50))
    agree = await _day_copies(platform, team)
    day = [team.ids[f"/day/{i:02d}.jpg"] for i in range(10)]
    await item_statuses.set_status(platform, team.ann1, agree.id, day[:3], "completed")

    async def counts() -> tuple[int, int, int, int]:
        got = [await tasks.get_task(platform, team.manager, t.id) for t in (work, agree)]
        progress = [await tasks.progress(platform, team.manager, t.id) for t in (work, agree)]
        assert got[0].items_count == progress[0].total  # one copy each: as many rows as items
        assert got[1].items_count * 2 == progress[1].total  # two copies of each
        return got[0].items_count, got[1].items_count, progress[1].done, progress[1].total

    assert await counts() == (20, 10, 3, 20)
    await items.delete_items(platform, team.manager, [day[0]])
    assert await counts() == (19, 9, 2, 18)
    await bulk.delete_items_by_query(
        platform, team.manager, team.dataset.id, dql="metadata.user.n >= 17"
    )
    assert await counts() == (16, 9, 2, 18)
    folder = (
        await items.list_items(
            platform, team.manager, team.dataset.id, dql='type = "dir" and name = "day"'
        )
    ).rows[0]
    await items.delete_items(platform, team.manager, [folder.id])
    assert await counts() == (7, 0, 0, 0)
    # each annotator's list of work agrees
    held = 0
    for person in (team.ann1, team.ann2):
        mine = await assignments.my_assignments(platform, person, team.project.id)
        held += sum(m.held for m in mine if m.task.id == work.id)
        assert sum(m.held for m in mine if m.task.id == agree.id) == 0
    assert held == 7


async def test_my_assignments_put_tasks_without_a_due_date_last(platform, team) -> None:
    from datetime import UTC, datetime

    made = {
        "a-none": (2, None),
        "b-late": (2, datetime(2027, 2, 1, tzinfo=UTC)),
        "c-soon": (2, datetime(2027, 1, 1, tzinfo=UTC)),
        "d-high": (3, None),
        "e-high-due": (3, datetime(2027, 3, 1, tzinfo=UTC)),
    }
    for name, (priority, due) in made.items():
        await tasks.create_task(
            platform,
            team.manager,
            team.dataset.id,
            name,
            dql="",
            priority=priority,
            due_date=due,
            workload=_workload((team.ann1, 100)),
        )
    mine = await assignments.my_assignments(platform, team.ann1, team.project.id)
    # by priority, then due date with none last, on SQLite as on PostgreSQL
    assert [m.task.name for m in mine] == ["e-high-due", "d-high", "c-soon", "b-late", "a-none"]


OWN_WORK = """query($d: ID!, $dql: String) { items(datasetId: $d, dql: $dql, first: 50) {
    nodes { id annotated annotationsCount taskStatuses { status } } } }"""


async def test_on_a_consensus_copy_counts_and_statuses_are_the_annotators_own(
    platform, client, team
) -> None:
    """Whether a copy is annotated, how much and whether another annotator finished it are
    the others' work: an annotator's DQL, facets and item fields show only its own there
    (elsewhere, the item's); the page costs the same few statements however long it is."""
    from graph.domain import annotations, facets

    agree = await _day_copies(platform, team)
    alone = team.ids["/night/10.jpg"]
    await _task(platform, team, "alone", f'id = "{alone}"', (team.ann2, 100))
    shared = team.ids["/day/03.jpg"]
    await annotations.create_annotations(platform, team.ann1, shared, [_box(0, 0), _box(5, 5)])
    await annotations.create_annotations(platform, team.owner, alone, [_box(5, 5, "dog")])
    await item_statuses.set_status(platform, team.ann1, agree.id, [shared], "completed")
    dataset = team.dataset.id

    async def found(actor: Any, dql: str) -> set[str]:
        page = await items.list_items(platform, actor, dataset, dql=dql)
        assert await items.count_items(platform, actor, dataset, dql=dql) == len(page.rows)
        return {row.id for row in page.rows}

    for dql in (
        "annotated = true",
        "annotationsCount >= 1",
        f'tasks.any(id = "{agree.id}" and status = "completed")',
        f'tasks.any(id = "{agree.id}" and statusBy = "ann1@example.com")',
    ):
        assert await found(team.manager, dql) >= {shared}
        assert shared in await found(team.ann1, dql)
        assert shared not in await found(team.ann2, dql), dql
    assert await found(team.ann2, "annotated = true") == {alone}  # given alone: all of it
    assert await found(team.ann2, 'annotationsCount = 0 and dir = "/day"') >= {shared}
    assert await found(team.ann1, "annotationsCount = 2") == {shared}
    assert await found(team.ann2, f'tasks.any(id = "{agree.id}" and status = null)') >= {shared}
    ordered = await items.list_items(
        platform, team.ann1, dataset, dql="order by annotationsCount desc, filename"
    )
    assert ordered.rows[0].id == shared
    facet = await facets.item_facet(platform, team.ann2, dataset, "annotated")
    assert {(v.value, v.count) for v in facet.values} == {(True, 1), (False, 10)}
    histogram = await facets.item_histogram(platform, team.ann2, dataset, "annotationsCount")
    assert (histogram.edges[0], histogram.edges[-1]) == (0, 1)

    # the item fields, by GraphQL
    async def fields(token: str | None, dql: str = 'filename = "/day/03.jpg"') -> Any:
        kw = {} if token is None else _auth(token)
        nodes = (await gql(client, OWN_WORK, {"d": dataset, "dql": dql}, **kw))["items"]["nodes"]
        return [(n["annotated"], n["annotationsCount"], n["taskStatuses"]) for n in nodes]

    assert await fields(None) == [(True, 2, [{"status": "completed"}, {"status": None}])]
    assert await fields(team.ann1_token) == [(True, 2, [{"status": "completed"}])]
    assert await fields(team.ann2_token) == [(False, 0, [{"status": None}])]
    alone_dql = 'filename = "/night/10.jpg"'
    assert await fields(team.ann2_token, alone_dql) == [(True, 1, [{"status": None}])]
    # bounded: the counts and places of a page come in one statement each
    with count_statements(platform.db.engine) as few:
        await gql(
            client, OWN_WORK, {"d": dataset, "dql": f'id = "{shared}"'}, **_auth(team.ann2_token)
        )
    with count_statements(platform.db.engine) as many:
        nodes = await gql(client, OWN_WORK, {"d": dataset}, **_auth(team.ann2_token))
    assert len(nodes["items"]["nodes"]) == 11 and len(many) == len(few)
    # the status history: its own on its copy, and none of an item not given to it
    history = item_statuses.history
    assert [h.status for h in await history(platform, team.manager, agree.id, shared)] == [
        "completed"
    ]
    assert [h.status for h in await history(platform, team.ann1, agree.id, shared)] == ["completed"]
    assert await history(platform, team.ann2, agree.id, shared) == []
    await item_statuses.set_status(platform, team.ann2, agree.id, [shared], "discard")
    assert [h.status for h in await history(platform, team.ann2, agree.id, shared)] == ["discard"]
    with pytest.raises(NotFound):
        await history(platform, team.ann1, agree.id, alone)
