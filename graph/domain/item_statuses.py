"""An item's status in a task: set and cleared by the item's assignee or a manager, with its
history, an ``itemStatus`` event per change (triggers and live progress react), and the loop
between an annotation task and its QA tasks.

The loop: an item that gets a status in an annotation task goes into each of its QA tasks (and,
if the item was there with a status, waits for review again); a reviewer's ``discard`` in a QA
task clears the item's status in the parent task and notes the reviewer's words as its
``issue``, so it is back in its annotator's queue.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, exists, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from graph.db.bulk import insert_many
from graph.db.tables import Assignment, Item, Task, TaskItem, TaskItemStatus, utcnow
from graph.domain import assignments, consensus, events, notify
from graph.domain.access import Actor, Role
from graph.domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from graph.domain.platform import Platform
from graph.domain.reach import given_to, own_places
from graph.domain.task_counts import Tally
from graph.domain.task_rows import task_and_role

__all__ = ["REWORK", "Change", "clear_status", "history", "set_status"]

REWORK = "discard"
"""The QA status that sends an item back to its annotator."""
_MAX_ITEMS = 1000


@dataclass(frozen=True)
class Change:
    """One item's status in a task, before and after."""

    item_id: str
    previous: str | None
    status: str | None


async def set_status(
    platform: Platform,
    actor: Actor,
    task_id: str,
    item_ids: Sequence[str],
    status: str,
    *,
    note: str | None = None,
) -> list[Change]:
    """Give the items ``status`` in the task (one of the task's statuses); an annotator may set
    it only on items given to it. The changes made (an item that had the status already is
    left as it was). All items or none."""
    async with platform.db.write() as session:
        task, role = await task_and_role(session, actor, task_id, Role.annotator)
        if status not in task.statuses:
            raise InvalidInput(
                f"status {status!r} is not one of the task's: {', '.join(task.statuses)}",
                field="status",
            )
        tally = Tally()
        changes = await _change(session, actor, task, role, item_ids, status, note, tally)
        await consensus.score_done(session, task, [c.item_id for c in changes])
        changed = [task.id]
        if task.type == "annotation":
            changed += await _feed_qa(session, actor, task, [c.item_id for c in changes], tally)
        elif status == REWORK and task.parent_task_id is not None:
            await _send_back(session, actor, task, [c.item_id for c in changes], note, tally)
            changed.append(task.parent_task_id)
        await tally.save(session)
    notify.tasks_changed(platform, task.project_id, changed)
    return changes


async def clear_status(
    platform: Platform,
    actor: Actor,
    task_id: str,
    item_ids: Sequence[str],
    *,
    note: str | None = None,
) -> list[Change]:
    """Clear the items' status in the task (they are not done again); as :func:`set_status`."""
    async with platform.db.write() as session:
        task, role = await task_and_role(session, actor, task_id, Role.annotator)
        tally = Tally()
        changes = await _change(session, actor, task, role, item_ids, None, note, tally)
        await tally.save(session)
    notify.tasks_changed(platform, task.project_id, [task_id])
    return changes


async def _change(
    session: AsyncSession,
    actor: Actor,
    task: Task,
    role: Role,
    item_ids: Sequence[str],
    status: str | None,
    note: str | None,
    tally: Tally,
) -> list[Change]:
    ids = list(dict.fromkeys(item_ids))
    if not ids or len(ids) > _MAX_ITEMS:
        raise InvalidInput(f"give 1 to {_MAX_ITEMS} item ids", field="itemIds")
    if task.status == "completed":
        raise Conflict(f"task {task.name!r} is completed; reopen it to change statuses")
    rows = (
        await session.execute(
            select(TaskItem, Assignment.assignee_id)
            .outerjoin(Assignment, Assignment.id == TaskItem.assignment_id)
            .where(TaskItem.task_id == task.id, TaskItem.item_id.in_(ids))
            .order_by(TaskItem.item_id, TaskItem.copy)
            # locked: their status and assignment stay as read here, which the counts move from
            .with_for_update(of=TaskItem)
        )
    ).all()
    found = {row.item_id for row, _ in rows}
    for item_id in ids:
        if item_id not in found:
            raise NotFound("task item", item_id)
    manager = role >= Role.annotationManager
    if not manager:
        # an annotator changes its own copy of each item (consensus gives others theirs)
        rows = [(row, assignee) for row, assignee in rows if assignee == actor.user_id]
        mine = {row.item_id for row, _ in rows}
        for item_id in ids:
            if item_id not in mine:
                raise Forbidden(f"item {item_id} is not given to you in this task", id=item_id)
    now = utcnow()
    changes, history, changed = [], [], []
    for row, _ in rows:
        if row.status == status:
            continue
        history.append(
            {
                "task_id": task.id,
                "item_id": row.item_id,
                "copy": row.copy,
                "assignment_id": row.assignment_id,
                "status": status,
                "previous": row.status,
                "actor": actor.email,
                "note": note,
                "created_at": now,
            }
        )
        changes.append(Change(row.item_id, row.status, status))
        changed.append((row.item_id, row.copy, row.assignment_id, row.status))
        tally.move(task.id, (row.assignment_id, row.status), (row.assignment_id, status))
    if changed:
        await session.execute(
            update(TaskItem)
            .where(TaskItem.task_id == task.id, _pairs(changed))
            .values(status=status, status_by=actor.email, status_at=now, issue=None)
        )
    await _record(session, actor, task, changed, status, history)
    return changes


def _pairs(rows: Sequence[tuple[str, int, str | None, str | None]]) -> ColumnElement[bool]:
    """The task item rows of ``rows`` (item, copy, ...)."""
    return tuple_(TaskItem.item_id, TaskItem.copy).in_([(row[0], row[1]) for row in rows])


async def _record(
    session: AsyncSession,
    actor: Actor,
    task: Task,
    changed: Sequence[tuple[str, int, str | None, str | None]],
    status: str | None,
    history: list[dict[str, object]],
) -> None:
    if not changed:
        return
    await insert_many(session, TaskItemStatus.__table__, history)
    await events.record_many(
        session,
        project_id=task.project_id,
        resource="itemStatus",
        action="statusChanged",
        actor=actor.email,
        changes=[
            (
                item_id,
                {
                    "taskId": task.id,
                    "datasetId": task.dataset_id,
                    "assignmentId": assignment_id,
                    "status": status,
                    "previous": previous,
                },
            )
            for item_id, _, assignment_id, previous in changed
        ],
    )


async def _feed_qa(
    session: AsyncSession, actor: Actor, task: Task, item_ids: Sequence[str], tally: Tally
) -> list[str]:
    """Put items that got a status into the task's QA tasks; those already there with a
    status wait for review again. The QA tasks' ids."""
    if not item_ids:
        return []
    fed = []
    for qa in await session.scalars(select(Task).where(Task.parent_task_id == task.id)):
        reviewed = (
            await session.execute(
                select(TaskItem.item_id, TaskItem.copy, TaskItem.assignment_id, TaskItem.status)
                .where(
                    TaskItem.task_id == qa.id,
                    TaskItem.item_id.in_(item_ids),
                    TaskItem.status.is_not(None),
                )
                .with_for_update()
            )
        ).all()
        if reviewed:
            again = [tuple(row) for row in reviewed]
            await _reset(session, actor, qa, again, f"status set again in {task.name!r}", tally)
        absent = ~exists().where(TaskItem.task_id == qa.id, TaskItem.item_id == Item.id)
        chosen = [Item.id.in_(item_ids), absent]
        added = await assignments.give_out(session, qa, chosen, {}, tally)
        if added:
            await session.execute(
                update(Task)
                .where(Task.id == qa.id)
                .values(items_count=Task.items_count + added, updated_at=utcnow())
            )
        fed.append(qa.id)
    return fed


async def _send_back(
    session: AsyncSession,
    actor: Actor,
    qa: Task,
    item_ids: Sequence[str],
    note: str | None,
    tally: Tally,
) -> None:
    """Clear the items' status in the QA task's parent, with the reviewer's note as the issue."""
    if not item_ids:
        return
    parent = await session.get(Task, qa.parent_task_id)
    assert parent is not None  # deleting a task deletes its QA tasks
    rows = (
        await session.execute(
            select(TaskItem.item_id, TaskItem.copy, TaskItem.assignment_id, TaskItem.status)
            .where(
                TaskItem.task_id == parent.id,
                TaskItem.item_id.in_(item_ids),
                TaskItem.status.is_not(None),
            )
            .with_for_update()
        )
    ).all()
    issue = note or f"sent back by {actor.email} in {qa.name!r}"
    await _reset(session, actor, parent, [tuple(row) for row in rows], issue, tally, issue=issue)


async def _reset(
    session: AsyncSession,
    actor: Actor,
    task: Task,
    rows: Sequence[tuple[str, int, str | None, str | None]],
    note: str,
    tally: Tally,
    *,
    issue: str | None = None,
) -> None:
    """Clear the status of ``rows`` (item, copy, assignment, status; read under a lock) in
    ``task``."""
    now = utcnow()
    if not rows:
        return
    for _, _, assignment_id, previous in rows:
        tally.move(task.id, (assignment_id, previous), (assignment_id, None))
    await session.execute(
        update(TaskItem)
        .where(TaskItem.task_id == task.id, _pairs(rows))
        .values(status=None, status_by=actor.email, status_at=now, issue=issue)
    )
    history = [
        {
            "task_id": task.id,
            "item_id": item_id,
            "copy": copy,
            "assignment_id": assignment_id,
            "status": None,
            "previous": previous,
            "actor": actor.email,
            "note": note,
            "created_at": now,
        }
        for item_id, copy, assignment_id, previous in rows
    ]
    await _record(session, actor, task, rows, None, history)


# --- reading --------------------------------------------------------------------------------------


async def history(
    platform: Platform, actor: Actor, task_id: str, item_id: str
) -> list[TaskItemStatus]:
    """Every status the item had in the task, oldest first. An annotator reads the history of
    the items given to it, and on a consensus copy only its own (graph/domain/reach.py)."""
    where = [TaskItemStatus.task_id == task_id, TaskItemStatus.item_id == item_id]
    async with platform.db.read() as session:
        _, role = await task_and_role(session, actor, task_id, Role.annotator)
        if role == Role.annotator:
            given = given_to(actor.user_id).where(
                TaskItem.task_id == task_id, TaskItem.item_id == item_id
            )
            if not await session.scalar(select(given.exists())):
                raise NotFound("item", item_id)
            where.append(own_places(actor.user_id, TaskItemStatus))
        return list(
            await session.scalars(select(TaskItemStatus).where(*where).order_by(TaskItemStatus.seq))
        )
