"""A task's progress read from the counts kept beside its items (graph/domain/task_counts.py),
on SQLite and PostgreSQL: after every kind of change to a task's items the read equals a
recount of ``task_items``, and the read is one statement that reads no item rows."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import func, select

from graph.db.migrate import downgrade, upgrade
from graph.db.tables import TaskCount, TaskItem
from graph.domain import assignments, bulk, item_statuses, items, projects, tasks
from graph.domain.assignments import Consensus, Pulling
from graph.domain.tasks import Progress
from tests.asserts import count_statements
from tests.conftest import make_user
from tests.graph.conftest import pulling_task


async def _recount(platform, task_id: str) -> Progress:
    """The task's progress as a GROUP BY over its items finds it."""
    async with platform.db.read() as session:
        rows = (
            await session.execute(
                select(TaskItem.assignment_id, TaskItem.status, func.count())
                .where(TaskItem.task_id == task_id)
                .group_by(TaskItem.assignment_id, TaskItem.status)
            )
        ).all()
    by_status: dict[str | None, int] = {}
    by_assignment: dict[str | None, dict[str | None, int]] = {}
    for assignment_id, status, n in rows:
        by_status[status] = by_status.get(status, 0) + n
        by_assignment.setdefault(assignment_id, {})[status] = n
    return Progress(sum(by_status.values()), by_status, by_assignment)


async def assert_counted(platform, team, *task_ids: str) -> list[Progress]:
    """Each task's progress is its items' recount; the progress read."""
    out = []
    for task_id in task_ids:
        got = await tasks.progress(platform, team.manager, task_id)
        assert got == await _recount(platform, task_id), task_id
        out.append(got)
    return out


def _workload(*shares: tuple[Any, float]) -> list[tuple[str, float]]:
    return [(person.email, load) for person, load in shares]


async def _task(platform, team, name: str, dql: str, *shares: tuple[Any, float], **more: Any):
    return await tasks.create_task(
        platform, team.manager, team.dataset.id, name, dql=dql, workload=_workload(*shares), **more
    )


async def _given(platform, task_id: str, person: Any) -> list[str]:
    """The items of the task given to ``person``, in id order."""
    assigned = {
        a.id
        for a, email in await assignments.list_assignments(platform, person, task_id)
        if email == person.email
    }
    async with platform.db.read() as session:
        return sorted(
            await session.scalars(
                select(TaskItem.item_id).where(
                    TaskItem.task_id == task_id, TaskItem.assignment_id.in_(assigned)
                )
            )
        )


async def test_created_tasks_are_counted(platform, team) -> None:
    work = await _task(platform, team, "work", 'dir = "/day"', (team.ann1, 70), (team.ann2, 30))
    copies = await _task(
        platform,
        team,
        "copies",
        "",
        (team.ann1, 40),
        (team.ann2, 30),
        (team.ann3, 30),
        consensus=Consensus(percentage=50, copies=2),
    )
    pulling = await pulling_task(platform, team, [team.ann1, team.ann2])
    empty = await _task(platform, team, "none", 'dir = "/nowhere"', (team.ann1, 100))
    progress = await assert_counted(platform, team, work.id, copies.id, pulling.id, empty.id)
    assert [p.total for p in progress] == [10, 30, 20, 0]
    assert progress[2].by_assignment == {None: {None: 20}}
    assert progress[3] == Progress(0, {}, {})


async def test_items_added_and_removed_by_query_are_counted(platform, team) -> None:
    work = await _task(platform, team, "work", 'dir = "/day"', (team.ann1, 50), (team.ann2, 50))
    pulling = await pulling_task(platform, team, [team.ann1])
    await assignments.pull(platform, team.ann1, pulling.id)
    first = (await _given(platform, work.id, team.ann1))[:2]
    await item_statuses.set_status(platform, team.ann1, work.id, first, "completed")
    for task in (work, pulling):
        await tasks.remove_items(platform, team.manager, task.id, dql="metadata.user.n < 3")
        await assert_counted(platform, team, task.id)
    assert await tasks.add_items(platform, team.manager, work.id, dql="metadata.user.n < 15") == 8
    assert await tasks.add_items(platform, team.manager, pulling.id, dql="") == 3
    (progress,) = await assert_counted(platform, team, work.id)
    assert progress.total == 15
    await assert_counted(platform, team, pulling.id)


async def test_pulls_and_concurrent_pulls_are_counted(platform, team) -> None:
    people = [team.ann1, team.ann2]
    for n in range(6):
        person, _ = await make_user(platform, f"puller{n}@example.com")
        await projects.add_member(platform, team.owner, team.project.id, person.email, "annotator")
        people.append(person)
    task = await pulling_task(platform, team, people, batch=2)
    await assignments.pull(platform, team.ann1, task.id)
    await assert_counted(platform, team, task.id)
    got = await asyncio.gather(
        *(assignments.pull(platform, p, task.id) for p in people for _ in range(2))
    )
    taken = [item for batch in got for item in batch]
    assert len(taken) == len(set(taken)) == 18  # 2 pulled before: 20 in all, none twice
    (progress,) = await assert_counted(platform, team, task.id)
    assert None not in progress.by_assignment  # nothing left to pull


async def test_statuses_set_and_cleared_are_counted(platform, team) -> None:
    work = await _task(platform, team, "work", "", (team.ann1, 50), (team.ann2, 50))
    pulling = await pulling_task(platform, team, [team.ann1])
    mine = await _given(platform, work.id, team.ann1)
    await item_statuses.set_status(platform, team.ann1, work.id, mine[:4], "completed")
    await item_statuses.set_status(platform, team.manager, work.id, mine[2:6], "discard")
    await item_statuses.clear_status(platform, team.ann1, work.id, mine[:3])
    # a manager's status on an item nobody pulled yet
    free = team.ids["/night/19.jpg"]
    await item_statuses.set_status(platform, team.manager, pulling.id, [free], "completed")
    (progress, free_done) = await assert_counted(platform, team, work.id, pulling.id)
    assert progress.by_status == {None: 17, "discard": 3}
    assert free_done.by_assignment == {None: {None: 19, "completed": 1}}


async def test_redistribute_and_reassign_are_counted(platform, team) -> None:
    work = await _task(
        platform,
        team,
        "work",
        "",
        (team.ann1, 50),
        (team.ann2, 50),
        consensus=Consensus(percentage=50, copies=2),
    )
    done = (await _given(platform, work.id, team.ann1))[:3]
    await item_statuses.set_status(platform, team.ann1, work.id, done, "completed")
    await assignments.redistribute(
        platform, team.manager, work.id, _workload((team.ann2, 30), (team.ann3, 70))
    )
    await assert_counted(platform, team, work.id)
    moved = await assignments.reassign(
        platform, team.manager, work.id, team.ann3.email, team.ann1.email
    )
    (progress,) = await assert_counted(platform, team, work.id)
    assert moved > 0 and progress.total == 30


async def test_qa_feeding_rework_and_review_again_are_counted(platform, team) -> None:
    work = await _task(platform, team, "work", 'dir = "/day"', (team.ann1, 100))
    day = await _given(platform, work.id, team.ann1)
    await item_statuses.set_status(platform, team.ann1, work.id, day[:2], "completed")
    qa = await tasks.create_qa_task(
        platform, team.manager, work.id, workload=_workload((team.ann2, 100))
    )
    pulled_qa = await tasks.create_qa_task(
        platform, team.manager, work.id, name="pulled", pulling=Pulling([team.ann3.email], 2, 4)
    )
    await assert_counted(platform, team, work.id, qa.id, pulled_qa.id)
    await item_statuses.set_status(platform, team.ann1, work.id, day[2:5], "completed")
    await assignments.pull(platform, team.ann3, pulled_qa.id)
    await assert_counted(platform, team, work.id, qa.id, pulled_qa.id)
    await item_statuses.set_status(platform, team.ann2, qa.id, day[:3], "approved")
    await item_statuses.set_status(platform, team.ann2, qa.id, [day[3]], "discard", note="no")
    (parent, review, _) = await assert_counted(platform, team, work.id, qa.id, pulled_qa.id)
    assert parent.by_status == {"completed": 4, None: 6}
    assert review.by_status == {"approved": 3, "discard": 1, None: 1}
    # done again in the parent: reviewed again in the QA tasks
    await item_statuses.set_status(platform, team.ann1, work.id, day[:4], "discard")
    (_, review, _) = await assert_counted(platform, team, work.id, qa.id, pulled_qa.id)
    assert review.by_status == {None: 5}


async def test_deleting_items_and_tasks_keeps_the_counts(platform, team) -> None:
    work = await _task(platform, team, "work", "", (team.ann1, 50), (team.ann2, 50))
    copies = await _task(
        platform,
        team,
        "copies",
        'dir = "/day"',
        (team.ann1, 50),
        (team.ann2, 50),
        consensus=Consensus(percentage=100, copies=2),
    )
    pulling = await pulling_task(platform, team, [team.ann1])
    await assignments.pull(platform, team.ann1, pulling.id)
    day = [team.ids[f"/day/{i:02d}.jpg"] for i in range(10)]
    await item_statuses.set_status(platform, team.ann1, copies.id, day[:3], "completed")
    await item_statuses.set_status(platform, team.manager, work.id, day[:2], "discard")
    everything = (work.id, copies.id, pulling.id)
    await items.delete_items(platform, team.manager, [day[0], team.ids["/night/10.jpg"]])
    await assert_counted(platform, team, *everything)
    await bulk.delete_items_by_query(
        platform, team.manager, team.dataset.id, dql="metadata.user.n < 4"
    )
    progress = await assert_counted(platform, team, *everything)
    assert [p.total for p in progress] == [15, 12, 15]
    await tasks.delete_task(platform, team.manager, copies.id, force=True)
    async with platform.db.read() as session:
        left = set(await session.scalars(select(TaskCount.task_id).distinct()))
    assert left == {work.id, pulling.id}


async def test_a_progress_read_is_one_statement_on_the_counts(platform, team) -> None:
    small = await _task(platform, team, "small", 'dir = "/day"', (team.ann1, 100))
    large = await pulling_task(platform, team, [team.ann1, team.ann2])
    await assignments.pull(platform, team.ann1, large.id)
    for task in (small, large):
        async with platform.db.read() as session:
            with count_statements(platform.db.engine) as log:
                await tasks.progress_of(session, [task.id])
        assert len(log) == 1, log
        assert "task_items" not in log.statements[0] and "task_counts" in log.statements[0]


async def test_the_migration_counts_the_tasks_there_are(platform, team) -> None:
    work = await _task(platform, team, "work", "", (team.ann1, 50), (team.ann2, 50))
    pulling = await pulling_task(platform, team, [team.ann1])
    await assignments.pull(platform, team.ann1, pulling.id)
    mine = await _given(platform, work.id, team.ann1)
    await item_statuses.set_status(platform, team.ann1, work.id, mine[:3], "completed")
    before = await assert_counted(platform, team, work.id, pulling.id)
    await downgrade(platform.db, "0005")
    await upgrade(platform.db)
    assert await assert_counted(platform, team, work.id, pulling.id) == before
