"""Live updates as subscribers see them: executions as they change, a dataset's item events,
a task's progress, an assignee's work.

A subscription is checked like a read (a non-member is told the execution, service or dataset
does not exist). While it lasts, each channel's feed checks again, every ``_RECHECK_SECONDS``
and before delivering, the roles of all its subscribers in one query: a removed member stops
receiving (the subscription ends with ``NOT_FOUND``), a changed role takes effect. Messages
(graph/domain/notify.py) carry ids; each process reads the rows once per batch of messages for
all its subscribers of a channel (graph/pubsub.py), and an item filter is one SQL query per
batch per distinct filter, not per subscriber.

A subscriber's queue is bounded (``limit``): a reader too slow for its messages loses the
oldest, and for executions receives each one's latest state rather than every step.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from dql.compiler import Compiled
from graph.db.tables import Assignment, Execution, Item, Member, TaskItem
from graph.domain import assignments, queries, tasks
from graph.domain.access import Actor, Role, project_role, require_role
from graph.domain.assignments import Mine
from graph.domain.datasets import Scope, dataset_and_scope
from graph.domain.errors import InvalidInput, NotFound
from graph.domain.executions import get_execution
from graph.domain.platform import Platform
from graph.domain.reach import Viewer, given_to
from graph.domain.services import service_for
from graph.domain.task_rows import task_and_role
from graph.domain.tasks import Progress
from graph.pubsub import (
    Mailbox,
    assignments_channel,
    execution_channel,
    items_channel,
    service_channel,
    task_channel,
)

__all__ = [
    "ItemEvent",
    "MyAssignments",
    "TaskProgress",
    "execution_updates",
    "item_events",
    "my_assignments_updates",
    "task_progress",
]

# What the subscription functions yield: the subscriber's role in the project (results of
# subscribers with the same role may be shared) and what it receives.

LIMIT = 1000  # messages waiting per subscriber
_RECHECK_SECONDS = 30.0
_IDS = 1000  # ids per statement


@dataclass(frozen=True)
class ItemEvent:
    action: str  # created, updated, deleted
    item_id: str
    item: Item | None  # None when deleted


@dataclass(frozen=True, eq=False)
class TaskProgress:
    task_id: str
    progress: Progress


@dataclass(frozen=True, eq=False)
class MyAssignments:
    """A user's assignments in a project, as ``assignments.my_assignments`` has them."""

    user_id: str
    assignments: list[Mine]


@dataclass(eq=False)
class _Watch:
    """One subscriber: who, with which role, and what it waits to receive."""

    actor: Actor
    role: Role
    mailbox: Mailbox[Any]
    dql: str | None = None
    where: Compiled | None = None
    # an annotator's item events: only of the items given to it (datasets.Scope)
    scope: Scope | None = None
    # an assignee's work: what it was last sent, and the tasks of those assignments
    seen: tuple[Any, ...] | None = None
    tasks: set[str] = field(default_factory=set)


class _Feed:
    """A channel's messages for its subscribers in this process, in one project."""

    def __init__(self, platform: Platform, project_id: str | None) -> None:
        self.platform = platform
        self.project_id = project_id
        self.due = time.monotonic() + _RECHECK_SECONDS

    async def deliver(self, messages: list[Any], subscribers: Collection[_Watch]) -> None:
        if time.monotonic() > self.due:
            subscribers = await self._recheck(subscribers)
            self.due = time.monotonic() + _RECHECK_SECONDS
        if subscribers:
            await self.fan_out(messages, subscribers)

    async def fan_out(self, messages: list[Any], subscribers: Collection[_Watch]) -> None:
        raise NotImplementedError

    async def _recheck(self, subscribers: Collection[_Watch]) -> list[_Watch]:
        """The subscribers still allowed, with their current roles; the others are told."""
        users = {w.actor.user_id for w in subscribers if not w.actor.is_admin}
        roles: dict[str, str] = {}
        if users and self.project_id is not None:
            async with self.platform.db.read() as session:
                found = await session.execute(
                    select(Member.user_id, Member.role).where(
                        Member.project_id == self.project_id, Member.user_id.in_(users)
                    )
                )
                roles = {r.user_id: r.role for r in found}
        kept = []
        for watch in subscribers:
            if watch.actor.is_admin:
                kept.append(watch)
            elif watch.actor.user_id in roles:
                watch.role = Role[roles[watch.actor.user_id]]
                kept.append(watch)
            else:  # no longer a member: its subscription ends
                watch.mailbox.end()
        return kept


class _Executions(_Feed):
    """Messages name executions; each is read once and given to every subscriber."""

    async def fan_out(self, messages: list[Any], subscribers: Collection[_Watch]) -> None:
        ids = list(dict.fromkeys(i for m in messages for i in m["ids"]))
        rows: dict[str, Execution] = {}
        async with self.platform.db.read() as session:
            for start in range(0, len(ids), _IDS):
                chunk = ids[start : start + _IDS]
                rows.update(
                    (r.id, r)
                    for r in await session.scalars(select(Execution).where(Execution.id.in_(chunk)))
                )
        for execution_id in ids:
            row = rows.get(execution_id)
            if row is not None:
                for watch in subscribers:
                    watch.mailbox.put(row)


class _TaskProgress(_Feed):
    """A task's progress, read once per batch of messages for all its subscribers."""

    def __init__(self, platform: Platform, project_id: str, task_id: str) -> None:
        super().__init__(platform, project_id)
        self.task_id = task_id

    async def fan_out(self, messages: list[Any], subscribers: Collection[_Watch]) -> None:
        async with self.platform.db.read() as session:
            found = await tasks.progress_of(session, [self.task_id])
        event = TaskProgress(self.task_id, found[self.task_id])
        for watch in subscribers:
            watch.mailbox.put(event)


class _Assignments(_Feed):
    """Assignees' work in a project: on a batch of messages naming tasks, each subscriber with
    an assignment in one of them now, or given one of them before (a task deleted, an
    assignment gone), gets its assignments again; one query for who, one for what."""

    async def fan_out(self, messages: list[Any], subscribers: Collection[_Watch]) -> None:
        changed = list(dict.fromkeys(t for m in messages for t in m["tasks"]))
        users = {w.actor.user_id for w in subscribers}
        async with self.platform.db.read() as session:
            touched = {w.actor.user_id for w in subscribers if w.tasks.intersection(changed)}
            for start in range(0, len(changed), _IDS):
                chunk = changed[start : start + _IDS]
                touched.update(
                    await session.scalars(
                        select(Assignment.assignee_id)
                        .where(Assignment.task_id.in_(chunk), Assignment.assignee_id.in_(users))
                        .distinct()
                    )
                )
            if not touched:
                return
            assert self.project_id is not None
            found = await assignments.assignments_of_users(session, self.project_id, touched)
        made = {user: MyAssignments(user, work) for user, work in found.items()}
        for watch in subscribers:
            event = made.get(watch.actor.user_id)
            if event is not None:
                _give(watch, event)


def _give(watch: _Watch, event: MyAssignments) -> None:
    """Send the subscriber its work unless it is what it was last sent (another assignee of
    the same task pulled, say)."""
    seen = _fingerprint(event.assignments)
    if seen != watch.seen:
        watch.seen, watch.tasks = seen, {m.task.id for m in event.assignments}
        watch.mailbox.put(event)


def _fingerprint(work: list[Mine]) -> tuple[Any, ...]:
    # a task's changes all move its updated_at
    return tuple(
        (m.task.id, m.task.updated_at, m.task.status, m.assignment.id, m.assignment.load)
        + (m.held, m.done)
        for m in work
    )


class _ItemEvents(_Feed):
    """A dataset's item events: the items read once per batch, each distinct filter evaluated
    once per batch in SQL."""

    def __init__(self, platform: Platform, project_id: str, dataset_id: str) -> None:
        super().__init__(platform, project_id)
        self.dataset_id = dataset_id

    async def fan_out(self, messages: list[Any], subscribers: Collection[_Watch]) -> None:
        changes = [(action, item_id) for m in messages for action, item_id in m["events"]]
        for start in range(0, len(changes), _IDS):
            await self._fan_out(changes[start : start + _IDS], subscribers)

    async def _fan_out(
        self, changes: list[tuple[str, str]], subscribers: Collection[_Watch]
    ) -> None:
        wanted = {item_id for action, item_id in changes if action != "deleted"}
        # an annotator's filter sees only the annotations it sees: one per filter and viewer
        filters = {_filter_key(s): s.where for s in subscribers if s.where is not None}
        rows: dict[str, Item] = {}
        matching: dict[Any, set[str]] = {}
        if wanted:
            ours = (Item.dataset_id == self.dataset_id, Item.id.in_(wanted))
            async with self.platform.db.read() as session:
                rows = {r.id: r for r in await session.scalars(select(Item).where(*ours))}
                for key, where in filters.items():
                    matching[key] = set(
                        await session.scalars(
                            select(Item.id).where(*ours, where.where), where.params
                        )
                    )
        matching[None] = set(rows)
        reached = await self._reached(subscribers, wanted)
        # one event object each, whoever receives it (so the API can share its result)
        made = [
            ItemEvent(action, item_id, None if action == "deleted" else rows.get(item_id))
            for action, item_id in changes
        ]
        for watch in subscribers:
            chosen = matching.get(_filter_key(watch) if watch.where is not None else None, set())
            if watch.scope is not None and watch.scope.limited:
                chosen = chosen & reached[watch.actor.user_id]
            for event in made:
                if event.action == "deleted":  # a filter cannot say whether it matched
                    if watch.scope is None or not watch.scope.limited:  # nor a task (it is gone)
                        watch.mailbox.put(event)
                elif event.item_id in chosen:  # a row gone since is followed by its deletion
                    watch.mailbox.put(event)

    async def _reached(
        self, subscribers: Collection[_Watch], wanted: set[str]
    ) -> dict[str, set[str]]:
        """For each annotator among the subscribers, which of the items it reaches."""
        users = {w.actor.user_id for w in subscribers if w.scope is not None and w.scope.limited}
        if not users or not wanted:
            return {user: set() for user in users}
        async with self.platform.db.read() as session:
            return {
                user: set(await session.scalars(given_to(user).where(TaskItem.item_id.in_(wanted))))
                for user in users
            }


def _filter_key(watch: _Watch) -> tuple[str | None, Viewer | None]:
    return watch.dql, None if watch.scope is None else watch.scope.viewer


async def _role(
    session: AsyncSession, actor: Actor, project_id: str | None, resource: str, resource_id: str
) -> Role:
    """The subscriber's role where the watched thing lives (administrators: owner; the
    platform's own executions have no project and only administrators see them)."""
    role = Role.owner if project_id is None else await project_role(session, actor, project_id)
    if role is None:
        raise NotFound(resource, resource_id)
    return role


async def _stream(
    platform: Platform,
    channel: str,
    feed: Callable[[], _Feed],
    watch: _Watch,
    gone: NotFound,
    first: Callable[[], Awaitable[Any]] | None = None,
) -> AsyncIterator[tuple[Role, Any]]:
    async with platform.hub.subscribe(channel, feed, watch):
        if first is not None:  # read after subscribing: no change falls in between
            yield watch.role, await first()
        while True:
            taken = await watch.mailbox.take()
            if watch.mailbox.ended:
                raise gone
            for message in taken:
                yield watch.role, message


async def execution_updates(
    platform: Platform,
    actor: Actor,
    *,
    execution_id: str | None = None,
    service_id: str | None = None,
    limit: int = LIMIT,
) -> AsyncIterator[tuple[Role, Execution]]:
    """An execution (its current state first, then each change), or every execution of a
    service as it is created and changes; the rows as they are at each change."""
    if (execution_id is None) == (service_id is None):
        raise InvalidInput("give exactly one of id and serviceId", field="id")
    first: Callable[[], Awaitable[Execution]] | None = None
    if execution_id is not None:

        async def current() -> Execution:
            return await get_execution(platform, actor, execution_id)

        project_id = (await current()).project_id
        channel, first, gone = execution_channel(execution_id), current, ("execution", execution_id)
    else:
        assert service_id is not None
        async with platform.db.read() as session:
            project_id = (await service_for(session, actor, service_id, Role.annotator)).project_id
        channel, gone = service_channel(service_id), ("service", service_id)
    async with platform.db.read() as session:
        role = await _role(session, actor, project_id, *gone)
    watch = _Watch(actor, role, Mailbox(limit, key=lambda row: row.id))
    stream = _stream(
        platform, channel, lambda: _Executions(platform, project_id), watch, NotFound(*gone), first
    )
    async with aclosing(stream):
        async for seen in stream:
            yield seen


async def item_events(
    platform: Platform,
    actor: Actor,
    dataset_id: str,
    dql: str | None = None,
    *,
    limit: int = LIMIT,
) -> AsyncIterator[tuple[Role, ItemEvent]]:
    """Items of a dataset as they are created, updated and deleted; with ``dql``, only created
    and updated items it matches (and every deletion: a deleted item can no longer be tested)."""
    query = queries.parse_query(dql, resource="items") if dql else None
    async with platform.db.read() as session:
        dataset, scope = await dataset_and_scope(session, actor, dataset_id, Role.annotator)
        role = await _role(session, actor, dataset.project_id, "dataset", dataset_id)
    where = None
    if query is not None:
        dialect = platform.db.dialect
        where = queries.compile_for(query, "items", dialect, dataset_id, viewer=scope.viewer)
    project_id = dataset.project_id
    watch = _Watch(actor, role, Mailbox(limit), dql, where, scope)
    stream = _stream(
        platform,
        items_channel(dataset_id),
        lambda: _ItemEvents(platform, project_id, dataset_id),
        watch,
        NotFound("dataset", dataset_id),
    )
    async with aclosing(stream):
        async for seen in stream:
            yield seen


async def task_progress(
    platform: Platform, actor: Actor, task_id: str, *, limit: int = LIMIT
) -> AsyncIterator[tuple[Role, TaskProgress]]:
    """A task's progress now, then after each change of its items' statuses or assignments (a
    slow reader gets the latest)."""

    async def current() -> TaskProgress:
        return TaskProgress(task_id, await tasks.progress(platform, actor, task_id))

    async with platform.db.read() as session:
        task, role = await task_and_role(session, actor, task_id, Role.annotator)
    project_id = task.project_id
    watch = _Watch(actor, role, Mailbox(limit, key=lambda event: event.task_id))
    stream = _stream(
        platform,
        task_channel(task_id),
        lambda: _TaskProgress(platform, project_id, task_id),
        watch,
        NotFound("task", task_id),
        current,
    )
    async with aclosing(stream):
        async for seen in stream:
            yield seen


async def my_assignments_updates(
    platform: Platform, actor: Actor, project_id: str, *, limit: int = LIMIT
) -> AsyncIterator[tuple[Role, MyAssignments]]:
    """The actor's assignments in the project now, then again after each change of them: items
    given, pulled or taken, statuses set or cleared, work redistributed or reassigned, tasks
    created, changed (paused, completed) or deleted (a slow reader gets the latest)."""
    async with platform.db.read() as session:
        role = await require_role(session, actor, project_id, Role.annotator)
    watch = _Watch(actor, role, Mailbox(limit, key=lambda event: event.user_id))

    async def current() -> MyAssignments:
        async with platform.db.read() as session:
            found = await assignments.assignments_of_users(session, project_id, [actor.user_id])
        event = MyAssignments(actor.user_id, found[actor.user_id])
        watch.seen = _fingerprint(event.assignments)
        watch.tasks = {m.task.id for m in event.assignments}
        return event

    stream = _stream(
        platform,
        assignments_channel(project_id),
        lambda: _Assignments(platform, project_id),
        watch,
        NotFound("project", project_id),
        current,
    )
    async with aclosing(stream):
        async for seen in stream:
            yield seen
