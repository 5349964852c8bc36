"""Who does a task's items: workload percentages or batches pulled on demand.

Workload: each assignee has a percentage (they sum to 100) and gets that share of the items,
in path order, so an annotator works through whole folders; items added later are split the
same way, and ``redistribute`` splits the items not done yet anew. Pulling: items wait unassigned
and an assignee takes the next ``batchSize`` of them, holding at most ``maxBatchWorkload`` not
done at a time. A pull takes only rows nobody holds (on PostgreSQL, in the database function
``loopline_pull``, it skips rows another pull has locked; SQLite runs one writer at a time), so
two annotators pulling at the same instant never get the same item.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    and_,
    bindparam,
    case,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    true,
    tuple_,
    union_all,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession

from graph.db.tables import Assignment, Item, Member, Task, TaskItem, User, utcnow
from graph.domain import notify, task_counts
from graph.domain.access import Actor, Role, require_role
from graph.domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from graph.domain.platform import Platform
from graph.domain.task_counts import Tally
from graph.domain.task_rows import task_event, task_for

__all__ = [
    "Pulling",
    "assignments_of",
    "assignments_of_users",
    "check_distribution",
    "give_out",
    "Consensus",
    "Mine",
    "list_assignments",
    "my_assignments",
    "pull",
    "reassign",
    "redistribute",
    "set_up",
    "statements_to_prepare",
]

_MAX_BATCH = 100
_ANALYZE_AFTER = 10_000


@dataclass(frozen=True)
class Pulling:
    """Pulling distribution: who may pull, how many items a pull gives, and how many not done
    an assignee may hold (``max_batch_workload`` >= ``batch_size``)."""

    assignees: Sequence[str]
    batch_size: int
    max_batch_workload: int


@dataclass(frozen=True)
class Consensus:
    """A share of a workload task's items (``percentage``) done by ``copies`` annotators each,
    whose agreement is scored (graph/domain/consensus.py)."""

    percentage: int
    copies: int


def _check_workload(workload: Sequence[tuple[str, float]]) -> list[tuple[str, float]]:
    if not workload:
        raise InvalidInput("a workload names at least one assignee", field="workload")
    seen: set[str] = set()
    out = []
    for email, load in workload:
        email = email.strip().lower() if isinstance(email, str) else ""
        if not email:
            raise InvalidInput("a workload entry names its assignee's email", field="workload")
        if email in seen:
            raise InvalidInput(f"{email} is in the workload twice", field="workload")
        if (
            isinstance(load, bool)
            or not isinstance(load, int | float)
            or not math.isfinite(load)
            or load <= 0
        ):
            raise InvalidInput(f"{email}'s load must be a percentage above 0", field="workload")
        seen.add(email)
        out.append((email, float(load)))
    total = sum(load for _, load in out)
    if abs(total - 100) > 1e-6:
        raise InvalidInput(
            f"workload percentages must sum to 100, they sum to {total:g}", field="workload"
        )
    return out


def _check_pulling(pulling: Pulling) -> None:
    if not pulling.assignees:
        raise InvalidInput("pulling names at least one assignee", field="pulling")
    if not 1 <= pulling.batch_size <= _MAX_BATCH:
        raise InvalidInput(f"batchSize is 1 to {_MAX_BATCH}", field="batchSize")
    if not pulling.batch_size <= pulling.max_batch_workload <= 10 * pulling.batch_size:
        raise InvalidInput(
            "maxBatchWorkload is at least batchSize and at most 10 times it",
            field="maxBatchWorkload",
        )


def check_distribution(
    workload: Sequence[tuple[str, float]] | None,
    pulling: Pulling | None,
    consensus: Consensus | None = None,
) -> None:
    """Refuse a distribution that is not exactly one well-formed workload or pulling, and a
    consensus that is not over a workload with enough assignees (before anything is read or
    written)."""
    if (workload is None) == (pulling is None):
        raise InvalidInput("give either a workload or pulling", field="workload")
    if workload is not None:
        entries = _check_workload(workload)
    else:
        assert pulling is not None
        _check_pulling(pulling)
    if consensus is None:
        return
    if workload is None:
        raise InvalidInput("consensus gives items out by workload, not pulling", field="consensus")
    if not 1 <= consensus.percentage <= 100:
        raise InvalidInput("consensus percentage is 1 to 100", field="consensus.percentage")
    if not 2 <= consensus.copies <= len(entries):
        raise InvalidInput(
            f"consensus copies is 2 to the number of assignees ({len(entries)})",
            field="consensus.copies",
        )


async def _members(session: AsyncSession, project_id: str, emails: Sequence[str]) -> list[str]:
    """The user ids of ``emails``, each a member of the project; an error names the first that
    is not."""
    rows = await session.execute(
        select(User.email, User.id, Member.role)
        .outerjoin(Member, (Member.user_id == User.id) & (Member.project_id == project_id))
        .where(User.email.in_(emails))
    )
    found = {email: (user_id, role) for email, user_id, role in rows.all()}
    for email in emails:
        if email not in found or found[email][1] is None:
            raise NotFound("assignee", email)
    return [found[email][0] for email in emails]


async def set_up(
    session: AsyncSession,
    task: Task,
    workload: Sequence[tuple[str, float]] | None,
    pulling: Pulling | None,
    consensus: Consensus | None = None,
) -> None:
    """The new task's assignments: ``workload`` (emails and percentages) or ``pulling``, and
    its consensus."""
    check_distribution(workload, pulling, consensus)
    if consensus is not None:
        task.consensus_percentage, task.consensus_copies = consensus.percentage, consensus.copies
    if workload is not None:
        entries = _check_workload(workload)
        ids = await _members(session, task.project_id, [email for email, _ in entries])
        loads: list[float | None] = [load for _, load in entries]
        task.distribution = "workload"
    else:
        assert pulling is not None
        emails = list(dict.fromkeys(e.strip().lower() for e in pulling.assignees))
        ids = await _members(session, task.project_id, emails)
        loads = [None] * len(ids)
        task.distribution = "pulling"
        task.batch_size = pulling.batch_size
        task.max_batch_workload = pulling.max_batch_workload
    session.add_all(
        Assignment(task_id=task.id, assignee_id=user_id, load=load)
        for user_id, load in zip(ids, loads, strict=True)
    )
    await session.flush()


async def _shares(session: AsyncSession, task_id: str) -> list[tuple[str, float]]:
    """The task's assignments with a load, in the order they were made."""
    rows = await session.execute(
        select(Assignment.id, Assignment.load)
        .where(Assignment.task_id == task_id, Assignment.load.is_not(None))
        .order_by(Assignment.created_at, Assignment.id)
    )
    return [(assignment_id, load) for assignment_id, load in rows.all()]


def _bounds(shares: Sequence[tuple[str, float]], n: int) -> list[tuple[str, int]]:
    """Each assignment with the last position (1-based) of its share of ``n`` items."""
    out, running = [], 0.0
    for assignment_id, load in shares:
        running += load
        out.append((assignment_id, round(n * running / 100)))
    return out


async def give_out(
    session: AsyncSession,
    task: Task,
    where: Sequence[ColumnElement[bool]],
    params: Mapping[str, Any],
    tally: Tally,
    *,
    new: bool = False,
) -> int:
    """Insert the items ``where`` selects into the task, each given to an assignment by the
    workload (in path order), or to none (pulling); one INSERT ... SELECT, its rows counted in
    ``tally`` (a ``new`` task's, not committed yet, by one grouped read after it). The number
    of items added."""
    now = utcnow()
    if task.distribution == "pulling":
        chosen = select(literal(task.id), Item.id, literal(0), literal(None), literal(None))
        chosen = chosen.where(*where)
    else:
        shares = await _shares(session, task.id)
        n = await session.scalar(select(func.count()).select_from(Item).where(*where), params)
        if not n:
            return 0
        numbered = (
            select(
                Item.id.label("item_id"),
                func.row_number().over(order_by=(Item.filename, Item.id)).label("at"),
            )
            .where(*where)
            .subquery()
        )
        bounds = _bounds(shares, n)
        numbers = [
            select(literal(c, Integer).label("copy")) for c in range(task.consensus_copies or 1)
        ]
        copies = (union_all(*numbers) if len(numbers) > 1 else numbers[0]).subquery("copies")
        to: Any = literal(bounds[0][0])
        if len(bounds) > 1:
            # the share (its position among the assignments) of each item's first copy; a
            # consensus item's further copies go to the next assignments in turn
            first = case(
                *((numbered.c.at <= last, k) for k, (_, last) in enumerate(bounds[:-1])),
                else_=len(bounds) - 1,
            )
            share = (first + copies.c.copy) % len(bounds)
            to = case(*((share == k, literal(a)) for k, (a, _) in enumerate(bounds)))
        chosen = select(
            literal(task.id), numbered.c.item_id, copies.c.copy, to, literal(now)
        ).select_from(numbered.join(copies, true()))  # each item with each copy number
        if task.consensus_copies:
            # every item's first copy; the others for an even spread of `percentage` of them
            spread = (numbered.c.at * (task.consensus_percentage or 0)) % 100
            chosen = chosen.where(
                or_(copies.c.copy == 0, spread < (task.consensus_percentage or 0))
            )
    columns = ("task_id", "item_id", "copy", "assignment_id", "assigned_at")
    adding = insert(TaskItem.__table__).from_select(columns, chosen)
    if task.distribution == "pulling":  # every row free
        added = int((await session.execute(adding, dict(params))).rowcount or 0)
        tally.add(task.id, None, None, added)
    elif new:
        rows = int((await session.execute(adding, dict(params))).rowcount or 0)
        await task_counts.count_new(session, task.id, rows)
        added = int(n)
    else:  # a task others write too: the rows this statement inserted, as it reports them
        given = await session.execute(
            adding.returning(TaskItem.__table__.c.assignment_id), dict(params)
        )
        for (assignment_id,), k in Counter(given.all()).items():
            tally.add(task.id, assignment_id, None, k)
        added = int(n)
    if added >= _ANALYZE_AFTER and session.bind.dialect.name == "postgresql":
        # the planner's statistics of a task's rows, before its first pulls and progress reads
        # (autovacuum would take a while: planned blind, a pull scans the task's rows)
        await session.execute(text("ANALYZE task_items"))
    return added


# --- reading --------------------------------------------------------------------------------------


async def list_assignments(
    platform: Platform, actor: Actor, task_id: str
) -> list[tuple[Assignment, str]]:
    """The task's assignments with their assignees' emails, in the order they were made."""
    async with platform.db.read() as session:
        await task_for(session, actor, task_id, Role.annotator)
        return (await assignments_of(session, [task_id]))[task_id]


async def assignments_of(
    session: AsyncSession, task_ids: Sequence[str]
) -> dict[str, list[tuple[Assignment, str]]]:
    """Each task's assignments with their assignees' emails, with one query."""
    found: dict[str, list[tuple[Assignment, str]]] = {t: [] for t in task_ids}
    rows = await session.execute(
        select(Assignment, User.email)
        .join(User, User.id == Assignment.assignee_id)
        .where(Assignment.task_id.in_(task_ids))
        .order_by(Assignment.created_at, Assignment.id)
    )
    for assignment, email in rows.all():
        found[assignment.task_id].append((assignment, email))
    return found


@dataclass(frozen=True)
class Mine:
    """One of the actor's assignments: its task, and how many items it holds and has done."""

    task: Task
    assignment: Assignment
    held: int
    done: int


async def my_assignments(platform: Platform, actor: Actor, project_id: str) -> list[Mine]:
    """The actor's assignments in the project's active and paused tasks, by task priority
    (highest first), then due date (none last), then name; one query."""
    async with platform.db.read() as session:
        await require_role(session, actor, project_id, Role.annotator)
        return (await assignments_of_users(session, project_id, [actor.user_id]))[actor.user_id]


async def assignments_of_users(
    session: AsyncSession, project_id: str, user_ids: Collection[str]
) -> dict[str, list[Mine]]:
    """Each user's assignments as :func:`my_assignments` has them, with one query."""
    theirs = select(Assignment.id, Assignment.task_id).where(Assignment.assignee_id.in_(user_ids))
    counts = (
        select(
            TaskItem.assignment_id,
            func.count().label("held"),
            func.count(TaskItem.status).label("done"),
        )
        # only their assignments' rows, read through the (task, assignment, status) index
        .where(
            TaskItem.task_id.in_(theirs.with_only_columns(Assignment.task_id)),
            TaskItem.assignment_id.in_(theirs.with_only_columns(Assignment.id)),
        )
        .group_by(TaskItem.assignment_id)
        .subquery()
    )
    rows = await session.execute(
        select(Task, Assignment, counts.c.held, counts.c.done)
        .join(Assignment, Assignment.task_id == Task.id)
        .outerjoin(counts, counts.c.assignment_id == Assignment.id)
        .where(
            Task.project_id == project_id,
            Task.status != "completed",
            Assignment.assignee_id.in_(user_ids),
        )
        # no due date last (SQLite sorts NULL first, PostgreSQL last)
        .order_by(Task.priority.desc(), Task.due_date.is_(None), Task.due_date, Task.name)
    )
    found: dict[str, list[Mine]] = {user_id: [] for user_id in user_ids}
    for task, assignment, held, done in rows.all():
        found[assignment.assignee_id].append(Mine(task, assignment, held or 0, done or 0))
    return found


# --- pulling --------------------------------------------------------------------------------------


_PULL_FUNCTION = text(
    "SELECT * FROM loopline_pull(CAST(:task AS VARCHAR), CAST(:user AS VARCHAR), :now)"
).bindparams(bindparam("now", type_=TaskItem.__table__.c.assigned_at.type))
"""PostgreSQL: a pull, one call (graph/db/migrations/versions/0010_pull_function.py): the
check's fields, then the ids taken (none unless the caller may pull)."""


@cache
def _sqlite_pull() -> tuple[Any, Any]:
    """SQLite: a pull's check (what the caller may pull: the task, the caller's role and
    assignment, how much it holds not done) and its take, built once with the caller's values
    bound: a pull is the most frequent write, and building its statements each time cost as
    much as running them."""
    tasks = Task.__table__
    user, task = bindparam("user"), bindparam("task")
    mine = (
        select(Assignment.id)
        .where(Assignment.task_id == tasks.c.id, Assignment.assignee_id == user)
        .correlate(tasks)  # the outermost query's task, also where the count reads it
        .scalar_subquery()
    )
    role = (
        select(Member.role)
        .where(Member.project_id == tasks.c.project_id, Member.user_id == user)
        .scalar_subquery()
    )
    check = select(
        tasks.c.project_id,
        tasks.c.name,
        tasks.c.distribution,
        tasks.c.status,
        tasks.c.batch_size,
        tasks.c.max_batch_workload,
        role.label("role"),
        mine.label("mine"),
        task_counts.not_done(tasks.c.id, mine).label("holding"),
    ).where(tasks.c.id == task)
    return check, _take_checked(check, task)


def statements_to_prepare(dialect: str) -> list[tuple[Any, dict[str, Any]]]:
    """A pull's statement with values that match nothing, for ``Database.warm`` to prepare
    on each PostgreSQL connection before the first pulls (it compiles the function there too)."""
    if dialect != "postgresql":
        return []
    return [(_PULL_FUNCTION, {"user": "", "task": "", "now": utcnow()})]


def _take_checked(check: Any, task: Any) -> Any:
    """SQLite: the take with the check in it (a CTE that sets how many rows it takes, none
    unless the caller may pull), returning the ids, the assignment and the task's project: one
    statement where there were two. One writer at a time: the rows the subquery found are
    still free when they are updated."""
    items = TaskItem.__table__
    checked = check.cte("checked").prefix_with("MATERIALIZED")  # read once
    may_pull = and_(
        checked.c.mine.is_not(None),
        checked.c.distribution == "pulling",
        checked.c.status == "active",
    )
    room = func.min(  # SQLite's min and max of two values
        func.coalesce(checked.c.batch_size, 0),
        func.coalesce(checked.c.max_batch_workload, 0) - checked.c.holding,
    )
    wanted = select(case((may_pull, func.max(room, 0)), else_=0)).scalar_subquery()
    free = (
        select(items.c.item_id, items.c.copy)
        .where(items.c.task_id == task, items.c.assignment_id.is_(None), items.c.status.is_(None))
        .order_by(items.c.item_id, items.c.copy)
        .limit(wanted)
    )
    return (
        update(items)
        .where(items.c.task_id == task, tuple_(items.c.item_id, items.c.copy).in_(free))
        .values(
            assignment_id=select(checked.c.mine).scalar_subquery(), assigned_at=bindparam("now")
        )
        .returning(
            items.c.item_id,
            items.c.assignment_id,
            select(checked.c.project_id).label("project_id"),
        )
    )


async def pull(platform: Platform, actor: Actor, task_id: str) -> list[str]:
    """The next batch of the task's items for the actor, an assignee of a pulling task: up to
    ``batchSize``, so that it holds at most ``maxBatchWorkload`` not done; the ids given (none
    when it holds that many already, or nothing is left). On PostgreSQL one statement, a call of
    ``loopline_pull`` (one round trip; one pull of an assignee at a time). On SQLite the take
    with the check in it, then the count (and the check alone when nothing was taken, to tell
    why), committed with the other pulls and short writes waiting for the writer's turn (a
    group commit: graph/db/grouped.py); one writer at a time, each pull sees the ones before."""
    parameters = {"user": actor.user_id, "task": task_id, "now": utcnow()}
    if platform.db.dialect == "postgresql":
        async with platform.db.statements(durable=True) as connection:
            row = (await connection.execute(_PULL_FUNCTION, parameters)).first()
        _may_pull(actor, task_id, row)  # raises why the caller may not pull
        assert row is not None
        pulled, project_id = list(row.items), row.project_id
    else:
        check, take = _sqlite_pull()
        rows, checked = await platform.db.together(
            lambda connection: _take_on(connection, take, check, parameters)
        )
        if not rows:
            _may_pull(actor, task_id, checked)
            return []
        pulled, project_id = sorted(r.item_id for r in rows), rows[0].project_id
    if pulled:
        notify.tasks_changed(platform, project_id, [task_id])
    return pulled


def _take_on(
    connection: Connection, take: Any, check: Any, parameters: dict[str, Any]
) -> tuple[list[Any], Any]:
    """SQLite, a write of a group commit: the take and its count; the check's row when
    nothing was taken (to tell why), else ``None``."""
    rows = connection.execute(take, parameters).all()
    if not rows:
        return [], connection.execute(check, parameters).first()
    tally = Tally()
    tally.move(parameters["task"], (None, None), (rows[0].assignment_id, None), len(rows))
    tally.save_on(connection)
    return rows, None


def _may_pull(actor: Actor, task_id: str, row: Any) -> int:
    """How many rows the caller may pull, given the check's ``row``; raises when it may not."""
    if row is None:
        raise NotFound("task", task_id)
    if row.mine is None:
        if row.role is None or (row.role == Role.annotator.name and not actor.is_admin):
            raise NotFound("task", task_id)  # as the task is to those not working on it
        raise Forbidden("only the task's assignees pull its work")
    if row.distribution != "pulling":
        raise InvalidInput("this task gives out work by workload, not by pulling", id=task_id)
    if row.status != "active":
        raise Conflict(f"task {row.name!r} is {row.status}: it gives out no work", id=task_id)
    return min(row.batch_size or 0, (row.max_batch_workload or 0) - row.holding)


# --- changing -------------------------------------------------------------------------------------


async def redistribute(
    platform: Platform, actor: Actor, task_id: str, workload: Sequence[tuple[str, float]]
) -> None:
    """A new workload for a workload task: the items not done yet are split anew, in path order,
    among the given assignees (new ones get assignments); done items keep theirs."""
    entries = _check_workload(workload)
    async with platform.db.write() as session:
        task = await task_for(session, actor, task_id, Role.annotationManager)
        if task.distribution != "workload":
            raise InvalidInput("a pulling task has no workload", id=task_id)
        ids = await _members(session, task.project_id, [email for email, _ in entries])
        existing = {
            a.assignee_id: a
            for a in await session.scalars(select(Assignment).where(Assignment.task_id == task.id))
        }
        for assignment in existing.values():
            assignment.load = None
        for user_id, (_, load) in zip(ids, entries, strict=True):
            if user_id in existing:
                existing[user_id].load = load
            else:
                session.add(Assignment(task_id=task.id, assignee_id=user_id, load=load))
        await session.flush()
        # the rows not done, locked: each goes from the assignment read here to its new one
        rows = (
            await session.execute(
                select(TaskItem.item_id, TaskItem.copy, TaskItem.assignment_id)
                .join(Item, Item.id == TaskItem.item_id)
                .where(TaskItem.task_id == task.id, TaskItem.status.is_(None))
                .order_by(Item.filename, Item.id, TaskItem.copy)
                .with_for_update(of=TaskItem)
            )
        ).all()
        shares = await _shares(session, task.id)
        to: dict[str, str | None] = {}  # an item's copies go together, to its last row's share
        start = 0
        for assignment_id, last in _bounds(shares, len(rows)):
            to.update((item_id, assignment_id) for item_id, _, _ in rows[start:last])
            start = last
        moving: dict[str | None, list[tuple[str, int]]] = {}
        tally = Tally()
        for item_id, copy, before in rows:
            after = to.get(item_id)
            moving.setdefault(after, []).append((item_id, copy))
            tally.move(task.id, (before, None), (after, None))
        keys = tuple_(TaskItem.item_id, TaskItem.copy)
        for assignment_id, pairs in moving.items():
            for at in range(0, len(pairs), 1000):
                await session.execute(
                    update(TaskItem)
                    .where(TaskItem.task_id == task.id, keys.in_(pairs[at : at + 1000]))
                    .values(assignment_id=assignment_id, assigned_at=utcnow())
                )
        await task_event(session, actor, task, "updated")
        await tally.save(session)
    notify.tasks_changed(platform, task.project_id, [task_id])


async def reassign(
    platform: Platform, actor: Actor, task_id: str, from_email: str, to_email: str
) -> int:
    """Give the items ``from_email`` has not done in the task to ``to_email`` (who gets an
    assignment if it has none), with its workload share; the number of items moved."""
    source_email, target_email = from_email.strip().lower(), to_email.strip().lower()
    if source_email == target_email:
        raise InvalidInput("reassign to another assignee", field="toEmail")
    async with platform.db.write() as session:
        task = await task_for(session, actor, task_id, Role.annotationManager)
        source_id, target_id = await _members(
            session, task.project_id, [source_email, target_email]
        )
        assigned = {
            a.assignee_id: a
            for a in await session.scalars(select(Assignment).where(Assignment.task_id == task.id))
        }
        source = assigned.get(source_id)
        if source is None:
            raise NotFound("assignment", source_email)
        target = assigned.get(target_id)
        if target is None:
            target = Assignment(task_id=task.id, assignee_id=target_id, load=None)
            session.add(target)
            await session.flush()
        if source.load is not None:
            target.load = (target.load or 0) + source.load
            source.load = None
        moved = await session.execute(
            update(TaskItem)
            .where(
                TaskItem.task_id == task.id,
                TaskItem.assignment_id == source.id,
                TaskItem.status.is_(None),
            )
            .values(assignment_id=target.id, assigned_at=utcnow())
        )
        tally = Tally()
        tally.move(task.id, (source.id, None), (target.id, None), int(moved.rowcount or 0))
        await task_event(session, actor, task, "updated")
        await tally.save(session)
    notify.tasks_changed(platform, task.project_id, [task_id])
    return int(moved.rowcount or 0)
