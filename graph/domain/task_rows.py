"""A task row as every task module reads it: behind the project role check, the event a change
to it records, and its count as the items in it are deleted."""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from graph.db.tables import Assignment, Task, TaskItem, utcnow
from graph.domain import events
from graph.domain.access import Actor, Role, check_role, member_role
from graph.domain.errors import NotFound
from graph.domain.task_counts import Tally

__all__ = ["drop_items", "task_and_role", "task_event", "task_for"]


async def task_for(session: AsyncSession, actor: Actor, task_id: str, needed: Role) -> Task:
    """The task, if the actor has ``needed`` in its project; one statement. An annotator reads
    only the tasks it has an assignment in; others are told the task does not exist."""
    task, _ = await task_and_role(session, actor, task_id, needed)
    return task


async def task_and_role(
    session: AsyncSession, actor: Actor, task_id: str, needed: Role
) -> tuple[Task, Role]:
    """:func:`task_for`, and the actor's role in the task's project."""
    mine = (
        select(Assignment.id)
        .where(Assignment.task_id == Task.id, Assignment.assignee_id == actor.user_id)
        .exists()
    )
    row = (
        await session.execute(
            select(Task, member_role(actor, Task.project_id), mine).where(Task.id == task_id)
        )
    ).first()
    if row is None:
        raise NotFound("task", task_id)
    task, role, assigned = row
    found = None if role is None else Role[role]
    if found == Role.annotator and not assigned and not actor.is_admin:
        raise NotFound("task", task_id)
    check_role(actor, found, needed, "task", task_id)
    return task, Role.owner if actor.is_admin or found is None else found


async def task_event(session: AsyncSession, actor: Actor, task: Task, action: str) -> None:
    await events.record(
        session,
        project_id=task.project_id,
        resource="task",
        action=action,
        resource_id=task.id,
        actor=actor.email,
        payload={"name": task.name, "datasetId": task.dataset_id, "type": task.type},
    )


async def drop_items(session: AsyncSession, item_ids: Any) -> set[str]:
    """Take items about to be deleted (``item_ids`` selects their ids) out of their tasks, and
    off the tasks' counts, in the caller's transaction; the tasks, whose subscribers are told
    after the commit (``notify.tasks_changed``)."""
    # the rows this transaction deletes, which no other one also counts (removeItemsFromTask)
    taken = (
        await session.execute(
            delete(TaskItem)
            .where(TaskItem.item_id.in_(item_ids))
            .returning(TaskItem.task_id, TaskItem.item_id, TaskItem.assignment_id, TaskItem.status)
            .execution_options(synchronize_session=False)
        )
    ).all()
    tally = Tally()
    for task_id, _, assignment_id, status in taken:
        tally.remove(task_id, assignment_id, status)
    # an item once, whatever its copies
    lost = Counter(task_id for task_id, _ in {(row[0], row[1]) for row in taken})
    if lost:
        tasks = Task.__table__
        await session.execute(
            update(tasks)
            .where(tasks.c.id == bindparam("task"))
            .values(items_count=tasks.c.items_count - bindparam("lost"), updated_at=utcnow()),
            [{"task": task_id, "lost": n} for task_id, n in lost.items()],
        )
        await tally.save(session)
    return set(lost)
