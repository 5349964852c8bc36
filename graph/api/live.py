"""Subscriptions (graphql-transport-ws on /graphql): executions, item events, task progress and
an assignee's work as they happen."""

from __future__ import annotations

import weakref
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from typing import Annotated, Any, TypeVar

import strawberry

from graph.api.context import Info
from graph.api.executions import Execution
from graph.api.fanout import shared
from graph.api.items import Item
from graph.api.tasks import MyAssignment, TaskProgress
from graph.domain import live
from graph.domain.access import Actor, Role

__all__ = ["ItemEvent", "LiveSubscriptions"]

V = TypeVar("V")

# the GraphQL object of each event the domain delivers, one per subscriber role (or per
# annotator, ``_viewer``), so that subscribers who see the same and send the same query share
# one execution of it (graph/api/fanout.py)
_views: weakref.WeakKeyDictionary[Any, dict[Any, Any]] = weakref.WeakKeyDictionary()


def _view(event: Any, role: Any, make: Callable[[Any], V]) -> V:
    by_role = _views.get(event)
    if by_role is None:
        by_role = _views[event] = {}
    if role not in by_role:
        by_role[role] = shared(make(event))
    return by_role[role]  # type: ignore[no-any-return]


def _viewer(role: Role, actor: Actor) -> Any:
    """Who sees an item as a subscriber does: its role, but an annotator sees its own work on
    its consensus copies (graph/domain/reach.py), which no other annotator shares."""
    return (role, actor.user_id) if role == Role.annotator else role


@strawberry.type(description="An item of the dataset was created, updated or deleted.")
class ItemEvent:
    action: str = strawberry.field(description="`created`, `updated` or `deleted`.")
    item_id: strawberry.ID
    item: Item | None = strawberry.field(description="The item as it is now; null when deleted.")

    @classmethod
    def of(cls, event: live.ItemEvent) -> ItemEvent:
        item = None if event.item is None else Item.of(event.item)
        return cls(action=event.action, item_id=strawberry.ID(event.item_id), item=item)


@strawberry.type(name="Subscription")
class LiveSubscriptions:
    @strawberry.subscription(
        description="An execution (`id`: its current state, then each change of status or "
        "progress), or every execution of a service (`serviceId`) as it is created and changes. "
        "A slow reader receives each execution's latest state rather than every step."
    )
    async def execution_updated(
        self,
        info: Info,
        id: strawberry.ID | None = None,
        service_id: Annotated[
            strawberry.ID | None, strawberry.argument(description="Instead of `id`.")
        ] = None,
    ) -> AsyncGenerator[Execution, None]:
        ctx = info.context
        rows = live.execution_updates(
            ctx.platform, await ctx.actor(), execution_id=id, service_id=service_id
        )
        async with aclosing(rows):
            async for role, row in rows:
                ctx.forget_loaders()  # a subscription lasts: nothing it reads may go stale
                yield _view(row, role, Execution.of)

    @strawberry.subscription(
        description="Items of a dataset as they are created, updated and deleted. With `dql`, "
        "only created and updated items it matches, and every deletion."
    )
    async def item_events(
        self, info: Info, dataset_id: strawberry.ID, dql: str | None = None
    ) -> AsyncGenerator[ItemEvent, None]:
        ctx = info.context
        actor = await ctx.actor()
        events = live.item_events(ctx.platform, actor, dataset_id, dql)
        async with aclosing(events):
            async for role, event in events:
                ctx.forget_loaders()
                yield _view(event, _viewer(role, actor), ItemEvent.of)

    @strawberry.subscription(
        description="A task's progress now, then after each change of its items' statuses or "
        "assignments; a slow reader receives the latest."
    )
    async def task_progress(
        self, info: Info, task_id: strawberry.ID
    ) -> AsyncGenerator[TaskProgress, None]:
        ctx = info.context
        updates = live.task_progress(ctx.platform, await ctx.actor(), task_id)
        async with aclosing(updates):
            async for role, event in updates:
                yield _view(event, role, TaskProgress.of_event)

    @strawberry.subscription(
        description="The caller's assignments in a project, as `myAssignments` has them: now, "
        "then again after each change (items given, pulled or taken, statuses set or cleared, "
        "work redistributed or reassigned, tasks created, paused, completed or deleted); a slow "
        "reader receives the latest."
    )
    async def my_assignments_updated(
        self, info: Info, project_id: strawberry.ID
    ) -> AsyncGenerator[list[MyAssignment], None]:
        ctx = info.context
        updates = live.my_assignments_updates(ctx.platform, await ctx.actor(), project_id)
        async with aclosing(updates):
            async for _, event in updates:
                ctx.forget_loaders()  # its tasks' progress is read anew each time
                yield [MyAssignment.of(m) for m in event.assignments]
