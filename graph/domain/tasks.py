"""Tasks: human work on a dataset's files, selected by DQL, with the statuses they may get.

An annotation task's items are given out by workload (assignees with percentages) or pulled in
batches by its assignees (graph/domain/assignments.py); each item gets a status in the task
(graph/domain/item_statuses.py). A QA task reviews what its parent task completed: it starts
with the parent's items that have a status and is fed each item that gets one later. Tasks grow:
``add_items`` and ``remove_items`` take DQL too. Annotation managers, developers and owners
manage tasks; annotators read the tasks they are assigned to.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, delete, exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from dql.ast import Query
from graph.db.tables import Assignment, Dataset, Item, Recipe, Task, TaskItem, utcnow
from graph.domain import assignments, indexes, items, listing, notify, queries, task_counts
from graph.domain.access import Actor, Role, member_role
from graph.domain.datasets import dataset_for
from graph.domain.errors import Conflict, InvalidInput, NotFound
from graph.domain.paging import Page
from graph.domain.platform import Platform
from graph.domain.task_counts import Tally
from graph.domain.task_rows import task_event, task_for

__all__ = [
    "ANNOTATION_STATUSES",
    "QA_STATUSES",
    "Progress",
    "add_items",
    "count_tasks",
    "create_qa_task",
    "create_task",
    "delete_task",
    "get_task",
    "list_tasks",
    "progress",
    "progress_of",
    "remove_items",
    "update_task",
]

ANNOTATION_STATUSES = ("completed", "discard")
QA_STATUSES = ("approved", "discard")
_STATES = ("active", "paused", "completed")
_MAX_STATUSES = 50


@dataclass(frozen=True)
class Progress:
    """A task's items: in all, per status (None: no status yet) and per assignment (None: not
    given out yet, waiting to be pulled)."""

    total: int
    by_status: Mapping[str | None, int]
    by_assignment: Mapping[str | None, Mapping[str | None, int]]

    @property
    def done(self) -> int:
        return self.total - self.by_status.get(None, 0)


# --- checks ---------------------------------------------------------------------------------------


def _check_name(name: Any) -> str:
    cleaned = name.strip() if isinstance(name, str) else ""
    if not cleaned or len(cleaned) > 200:
        raise InvalidInput("a task name has 1 to 200 characters", field="name")
    return cleaned


def _check_statuses(given: Any, default: Sequence[str]) -> list[str]:
    if given is None:
        return list(default)
    if not isinstance(given, list | tuple) or not given or len(given) > _MAX_STATUSES:
        raise InvalidInput(f"statuses is a list of 1 to {_MAX_STATUSES} names", field="statuses")
    out: list[str] = []
    for status in given:
        name = status.strip() if isinstance(status, str) else ""
        if not name or len(name) > 100:
            raise InvalidInput("a status has 1 to 100 characters", field="statuses")
        if name in out:
            raise InvalidInput(f"status {name!r} is given twice", field="statuses")
        out.append(name)
    return out


def _check_priority(priority: Any) -> int:
    if priority not in (1, 2, 3) or isinstance(priority, bool):
        raise InvalidInput("priority is 1 (low), 2 (medium) or 3 (high)", field="priority")
    return int(priority)


def _check_state(state: Any) -> str:
    if state not in _STATES:
        raise InvalidInput(f"status must be one of {', '.join(_STATES)}", field="status")
    return str(state)


def _check_description(given: Any) -> str | None:
    if given is None or given == "":
        return None
    if not isinstance(given, str) or len(given) > 100_000:
        raise InvalidInput("description is text of at most 100000 characters", field="description")
    return given


# --- access ---------------------------------------------------------------------------------------


async def _check_recipe(session: AsyncSession, dataset: Dataset, recipe_id: str | None) -> None:
    if recipe_id is None:
        return
    project = await session.scalar(select(Recipe.project_id).where(Recipe.id == recipe_id))
    if project != dataset.project_id:  # none, or another project's
        raise NotFound("recipe", recipe_id)


# --- selecting items ------------------------------------------------------------------------------


def _query(dql: str | None, dataloop: Mapping[str, Any] | None) -> Query:
    if dql is None and dataloop is None:
        raise InvalidInput('give a query in dql or filter (dql "" selects everything)', field="dql")
    return queries.parse_query(dql, dataloop, resource="items")


async def _files(
    session: AsyncSession, dataset_id: str, query: Query
) -> tuple[list[ColumnElement[bool]], Mapping[str, Any]]:
    """The conditions selecting the files the query matches, and its parameters' values."""
    compiled = queries.compile_for(
        query,
        "items",
        session.bind.dialect.name,
        dataset_id,
        stored=await indexes.stored(session),
    )
    return [*items.listing(dataset_id, folders=False), compiled.where], compiled.params


async def _add(
    session: AsyncSession,
    task: Task,
    where: Sequence[ColumnElement[bool]],
    params: Mapping[str, Any],
    tally: Tally,
    *,
    new: bool = False,
) -> int:
    """Put the files ``where`` selects that the task does not have yet into it, given out as
    its distribution says, counted in ``tally`` (``new``: the task is being created); the
    number added."""
    absent = ~exists().where(TaskItem.task_id == task.id, TaskItem.item_id == Item.id)
    added = await assignments.give_out(session, task, [*where, absent], params, tally, new=new)
    if added:
        await session.execute(
            update(Task)
            .where(Task.id == task.id)
            .values(items_count=Task.items_count + added, updated_at=utcnow())
        )
    return added


# --- creating -------------------------------------------------------------------------------------


async def create_task(
    platform: Platform,
    actor: Actor,
    dataset_id: str,
    name: str,
    *,
    dql: str | None = None,
    dataloop: Mapping[str, Any] | None = None,
    recipe_id: str | None = None,
    owner: str | None = None,
    due_date: datetime | None = None,
    priority: int = 2,
    description: str | None = None,
    statuses: Sequence[str] | None = None,
    workload: Sequence[tuple[str, float]] | None = None,
    pulling: assignments.Pulling | None = None,
    consensus: assignments.Consensus | None = None,
) -> Task:
    """An annotation task over the dataset's files matching the query, given out by
    ``workload`` (assignee emails and percentages summing to 100) or pulled in batches by
    ``pulling``'s assignees; one of the two. ``consensus`` (with a workload) gives a share of
    the items to several annotators each, to be scored for agreement. ``recipe_id`` defaults to the dataset's recipe,
    ``statuses`` to completed and discard. One transaction: the task and all its items, or
    nothing."""
    name = _check_name(name)
    query = _query(dql, dataloop)
    assignments.check_distribution(workload, pulling, consensus)
    async with platform.db.write() as session:
        dataset = await dataset_for(session, actor, dataset_id, Role.annotationManager)
        task = await _new_task(
            session,
            actor,
            dataset,
            name,
            type="annotation",
            recipe_id=recipe_id,
            owner=owner,
            due_date=due_date,
            priority=priority,
            description=description,
            statuses=_check_statuses(statuses, ANNOTATION_STATUSES),
            dql=dql,
            dataloop=dataloop,
        )
        await assignments.set_up(session, task, workload, pulling, consensus)
        where, params = await _files(session, dataset_id, query)
        tally = Tally()
        task.items_count = await _add(session, task, where, params, tally, new=True)
        await task_event(session, actor, task, "created")
        await tally.save(session)
    notify.tasks_changed(platform, task.project_id, [task.id], progress=False)
    return task


async def _new_task(
    session: AsyncSession,
    actor: Actor,
    dataset: Dataset,
    name: str,
    *,
    type: str,
    recipe_id: str | None,
    owner: str | None,
    due_date: datetime | None,
    priority: int,
    description: str | None,
    statuses: list[str],
    dql: str | None = None,
    dataloop: Mapping[str, Any] | None = None,
    parent: Task | None = None,
) -> Task:
    await listing.check_free(session, Task, dataset.project_id, name, "a task")
    recipe = recipe_id if recipe_id is not None else dataset.recipe_id
    await _check_recipe(session, dataset, recipe)
    task = Task(
        project_id=dataset.project_id,
        dataset_id=dataset.id,
        recipe_id=recipe,
        parent_task_id=None if parent is None else parent.id,
        name=name,
        type=type,
        owner=(owner or actor.email).strip(),
        due_date=due_date,
        priority=_check_priority(priority),
        description=_check_description(description),
        statuses=statuses,
        dql=dql,
        filter=dataloop,
        creator=actor.email,
    )
    session.add(task)
    await listing.save_named(session, task, "a task")
    return task


async def create_qa_task(
    platform: Platform,
    actor: Actor,
    parent_task_id: str,
    *,
    name: str | None = None,
    owner: str | None = None,
    due_date: datetime | None = None,
    priority: int | None = None,
    description: str | None = None,
    statuses: Sequence[str] | None = None,
    workload: Sequence[tuple[str, float]] | None = None,
    pulling: assignments.Pulling | None = None,
) -> Task:
    """A QA task reviewing an annotation task: the parent's items that have a status now, and
    each item that gets one later (graph/domain/item_statuses.py feeds it). Its statuses default
    to approved and discard; a reviewer's ``discard`` sends the item back to its annotator."""
    assignments.check_distribution(workload, pulling)
    async with platform.db.write() as session:
        parent = await task_for(session, actor, parent_task_id, Role.annotationManager)
        if parent.type != "annotation":
            raise InvalidInput("a QA task reviews an annotation task", field="parentTaskId")
        dataset = await dataset_for(session, actor, parent.dataset_id, Role.annotationManager)
        task = await _new_task(
            session,
            actor,
            dataset,
            _check_name(name if name is not None else f"{parent.name}_qa"),
            type="qa",
            recipe_id=parent.recipe_id,
            owner=owner or parent.owner,
            due_date=due_date if due_date is not None else parent.due_date,
            priority=priority if priority is not None else parent.priority,
            description=description,
            statuses=_check_statuses(statuses, QA_STATUSES),
            parent=parent,
        )
        await assignments.set_up(session, task, workload, pulling)
        done = exists().where(
            TaskItem.task_id == parent.id,
            TaskItem.item_id == Item.id,
            TaskItem.status.is_not(None),
        )
        tally = Tally()
        chosen = [Item.dataset_id == dataset.id, done]
        task.items_count = await _add(session, task, chosen, {}, tally, new=True)
        await task_event(session, actor, task, "created")
        await tally.save(session)
    notify.tasks_changed(platform, task.project_id, [task.id], progress=False)
    return task


# --- reading --------------------------------------------------------------------------------------


async def get_task(platform: Platform, actor: Actor, task_id: str) -> Task:
    async with platform.db.read() as session:
        return await task_for(session, actor, task_id, Role.annotator)


def _visible(actor: Actor) -> list[Any]:
    """An annotator's lists hold the tasks it is assigned to; the other roles see them all."""
    role = member_role(actor, Task.project_id)
    assigned = (
        select(Assignment.id)
        .where(Assignment.task_id == Task.id, Assignment.assignee_id == actor.user_id)
        .exists()
    )
    if actor.is_admin:
        return []
    return [(role != Role.annotator.name) | assigned]


async def list_tasks(
    platform: Platform,
    actor: Actor,
    project_id: str,
    *,
    dql: str | None = None,
    first: int | None = None,
    after: str | None = None,
) -> Page[Task]:
    """The project's tasks matching a DQL query (``datasetId = "..." and status = "active"``),
    by its ``order by``, else by name."""
    return await listing.list_named(
        platform, actor, Task, "tasks", project_id, first, after, dql=dql, where=_visible(actor)
    )


async def count_tasks(
    platform: Platform, actor: Actor, project_id: str, *, dql: str | None = None
) -> int:
    return await listing.count_named(
        platform, actor, Task, "tasks", project_id, dql=dql, where=_visible(actor)
    )


async def progress(platform: Platform, actor: Actor, task_id: str) -> Progress:
    """How far the task is: its few counter rows, whatever its size."""
    async with platform.db.read() as session:
        await task_for(session, actor, task_id, Role.annotator)
        return (await progress_of(session, [task_id]))[task_id]


async def progress_of(session: AsyncSession, task_ids: Sequence[str]) -> dict[str, Progress]:
    """The progress of each task, with one statement (graph/domain/task_counts.py)."""
    out = {}
    for task_id, counts in (await task_counts.counts_of(session, task_ids)).items():
        by_status: dict[str | None, int] = {}
        by_assignment: dict[str | None, dict[str | None, int]] = {}
        for (assignment_id, status), n in counts.by_key.items():
            by_status[status] = by_status.get(status, 0) + n
            by_assignment.setdefault(assignment_id, {})[status] = n
        out[task_id] = Progress(counts.total, by_status, by_assignment)
    return out


# --- changing -------------------------------------------------------------------------------------

_CHANGEABLE = ("name", "owner", "due_date", "priority", "description", "statuses", "status")


async def update_task(
    platform: Platform, actor: Actor, task_id: str, changes: Mapping[str, Any]
) -> Task:
    """Change a task's name, owner, due date, priority, description, statuses or state
    (``status``: active, paused, completed — a paused or completed task gives out no work).
    A status items already have cannot be removed from ``statuses``."""
    unknown = set(changes) - set(_CHANGEABLE)
    if unknown:
        raise InvalidInput(f"cannot change {', '.join(sorted(unknown))}", field=sorted(unknown)[0])
    async with platform.db.write() as session:
        task = await task_for(session, actor, task_id, Role.annotationManager)
        if "name" in changes:
            name = _check_name(changes["name"])
            if name != task.name:
                await listing.check_free(session, Task, task.project_id, name, "a task")
            task.name = name
        if "owner" in changes:
            task.owner = _check_name(changes["owner"])
        if "due_date" in changes:
            task.due_date = changes["due_date"]
        if "priority" in changes:
            task.priority = _check_priority(changes["priority"])
        if "description" in changes:
            task.description = _check_description(changes["description"])
        if "status" in changes:
            task.status = _check_state(changes["status"])
        if "statuses" in changes:
            default = QA_STATUSES if task.type == "qa" else ANNOTATION_STATUSES
            wanted = _check_statuses(changes["statuses"], default)
            used = await session.scalars(
                select(TaskItem.status)
                .where(TaskItem.task_id == task.id, TaskItem.status.not_in(wanted))
                .distinct()
                .limit(5)
            )
            kept = [s for s in used if s is not None]
            if kept:
                raise Conflict(
                    f"items have the status {kept[0]!r} in this task; it cannot be removed",
                    field="statuses",
                )
            task.statuses = wanted
        task.updated_at = utcnow()
        await listing.save_named(session, task, "a task")
        await task_event(session, actor, task, "updated")
    notify.tasks_changed(platform, task.project_id, [task.id], progress=False)
    return task


async def add_items(
    platform: Platform,
    actor: Actor,
    task_id: str,
    *,
    dql: str | None = None,
    dataloop: Mapping[str, Any] | None = None,
) -> int:
    """Add the dataset's files the query matches that the task does not have yet, given out as
    the task's distribution says; the number added."""
    query = _query(dql, dataloop)
    async with platform.db.write() as session:
        task = await task_for(session, actor, task_id, Role.annotationManager)
        if task.type == "qa":
            raise InvalidInput("a QA task is fed by its parent task", field="taskId")
        where, params = await _files(session, task.dataset_id, query)
        tally = Tally()
        added = await _add(session, task, where, params, tally)
        await task_event(session, actor, task, "updated")
        await tally.save(session)
    notify.tasks_changed(platform, task.project_id, [task_id])
    return added


async def remove_items(
    platform: Platform,
    actor: Actor,
    task_id: str,
    *,
    dql: str | None = None,
    dataloop: Mapping[str, Any] | None = None,
) -> int:
    """Take the task's items the query matches out of it (with their statuses in it and their
    history); the number of items removed."""
    query = _query(dql, dataloop)
    async with platform.db.write() as session:
        task = await task_for(session, actor, task_id, Role.annotationManager)
        where, params = await _files(session, task.dataset_id, query)
        chosen = select(Item.id).where(*where).scalar_subquery()
        removed = (
            await session.execute(
                delete(TaskItem)
                .where(TaskItem.task_id == task.id, TaskItem.item_id.in_(chosen))
                .returning(TaskItem.item_id, TaskItem.assignment_id, TaskItem.status),
                params,
            )
        ).all()
        count = len({row[0] for row in removed})
        tally = Tally()
        for _, assignment_id, status in removed:
            tally.remove(task.id, assignment_id, status)
        if removed:
            await session.execute(
                update(Task)
                .where(Task.id == task.id)
                .values(
                    items_count=select(func.count(func.distinct(TaskItem.item_id)))
                    .where(TaskItem.task_id == task.id)
                    .scalar_subquery(),
                    updated_at=utcnow(),
                )
            )
            await task_event(session, actor, task, "updated")
            await tally.save(session)
    notify.tasks_changed(platform, task.project_id, [task_id])
    return count


async def delete_task(
    platform: Platform, actor: Actor, task_id: str, *, force: bool = False
) -> None:
    """Delete a task with its assignments, items' statuses in it and QA tasks. A task with
    items given out and not done yet is refused unless ``force``."""
    async with platform.db.write() as session:
        task = await task_for(session, actor, task_id, Role.annotationManager)
        if not force:
            busy = await session.scalar(
                select(func.count())
                .select_from(TaskItem)
                .where(
                    TaskItem.task_id == task.id,
                    TaskItem.assignment_id.is_not(None),
                    TaskItem.status.is_(None),
                )
            )
            if busy:
                raise Conflict(
                    f"task {task.name!r} has {busy} items given out and not done; "
                    "delete it with force to drop that work",
                    id=task.id,
                )
        # its QA tasks go with it (the foreign key cascades)
        qa = await session.scalars(select(Task.id).where(Task.parent_task_id == task.id))
        project_id, gone = task.project_id, [task.id, *qa]
        await task_event(session, actor, task, "deleted")
        await session.delete(task)
    notify.tasks_changed(platform, project_id, gone, progress=False)
