"""Triggers: run a service function when something happens (event triggers) or on a schedule
(cron triggers).

An event trigger names a resource (``Item``, ``Dataset``, ``Annotation``), the actions it reacts
to (``Created``, ``Updated``, ``Deleted``) and optionally a DQL filter the entity must match, and
passes the entity as the function's input of that type. ``executionMode`` ``Once`` runs at most
once per entity (the first event that matches), ``Always`` once per matching event. The
dispatcher (graph/domain/dispatch.py) applies them; the filter is evaluated by SQL on the entity
as it is when the event is dispatched (a deleted entity has no filter to match: only triggers
without a filter fire on ``Deleted``).

A cron trigger has a cron expression (five fields, ``croniter`` syntax, UTC) and optional
``startAt``/``endAt``; see graph/domain/cron.py for how instants fire.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from croniter import croniter
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from graph.db.tables import Service, Trigger, utcnow
from graph.domain import events, listing, queries
from graph.domain.access import Actor, Role, require_role
from graph.domain.errors import InvalidInput, NotFound
from graph.domain.inputs import check_inputs
from graph.domain.paging import Page
from graph.domain.platform import Platform
from graph.domain.services import function_of, service_for
from plugins.functions import FunctionSpec

__all__ = [
    "ACTIONS",
    "RESOURCES",
    "as_utc",
    "create_trigger",
    "delete_trigger",
    "entity_input",
    "get_trigger",
    "count_triggers",
    "list_triggers",
    "next_instant",
    "update_trigger",
]

# trigger resource -> (event resource, DQL resource, function input type)
RESOURCES: dict[str, tuple[str, str, str]] = {
    "Item": ("item", "items", "Item"),
    "Dataset": ("dataset", "datasets", "Dataset"),
    "Annotation": ("annotation", "annotations", "Annotation"),
    # an item's status in a task changed: the function gets the item, the filter sees it
    # (`tasks.any(id = "..." and status = "completed")`)
    "ItemStatus": ("itemStatus", "items", "Item"),
}
ACTIONS = ("Created", "Updated", "Deleted")
_ACTIONS_OF = {"ItemStatus": ("StatusChanged",)}
MODES = ("Once", "Always")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-. ]{0,199}$")


def as_utc(moment: datetime) -> datetime:
    """``moment`` with its zone; a naive one is UTC (as SQLite returns every stored time)."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def next_instant(cron: str, after: datetime) -> datetime:
    """The first instant of ``cron`` strictly after ``after`` (UTC)."""
    return croniter(cron, after).get_next(datetime)


def entity_input(function: FunctionSpec, resource: str) -> str | None:
    kind = RESOURCES[resource][2]
    names = [io.name for io in function.inputs if io.type == kind]
    return names[0] if len(names) == 1 else None


def _check_cron(cron: str | None) -> str:
    if (
        not cron
        or not isinstance(cron, str)
        or len(cron.split()) != 5
        or not croniter.is_valid(cron)
    ):
        raise InvalidInput(
            f"{cron!r} is not a cron expression (five fields: minute hour day month weekday)",
            field="cron",
        )
    return cron


async def _check_event_spec(
    platform: Platform,
    resource: str | None,
    actions: Sequence[str] | None,
    execution_mode: str,
    dql: str | None,
    filter: Mapping[str, Any] | None,
) -> tuple[str, list[str]]:
    if resource not in RESOURCES:
        raise InvalidInput(f"resource must be one of {', '.join(RESOURCES)}", field="resource")
    allowed = _ACTIONS_OF.get(resource, ACTIONS)
    chosen = list(actions or [allowed[0]])
    wrong = [a for a in chosen if a not in allowed]
    if wrong or not chosen:
        raise InvalidInput(
            f"actions of {resource} triggers must be some of {', '.join(allowed)}",
            field="actions",
        )
    if execution_mode not in MODES:
        raise InvalidInput(
            f"executionMode must be one of {', '.join(MODES)}", field="executionMode"
        )
    if dql or filter:
        dql_resource = RESOURCES[resource][1]
        # compiled now, so a bad filter is refused at creation, not at the first event
        queries.compile_for(
            queries.parse_query(dql, filter, resource=dql_resource),
            dql_resource,
            platform.db.dialect,
        )
    return resource, chosen


async def _check_operation(
    session: AsyncSession,
    platform: Platform,
    service: Service,
    function_name: str,
    resource: str | None,
    input: Mapping[str, Any] | None,
) -> dict[str, Any]:
    _, function = await function_of(session, platform, service, function_name)
    declared = list(function.inputs)
    if resource is not None:
        name = entity_input(function, resource)
        if name is None:
            raise InvalidInput(
                f"function {function_name!r} must take exactly one {RESOURCES[resource][2]} input "
                f"to be triggered by {resource} events",
                field="functionName",
            )
        if input and name in input:
            raise InvalidInput(f"input.{name} is the triggering {resource}", field=f"input.{name}")
        declared = [io for io in declared if io.name != name]
    (checked,) = await check_inputs(session, service.project_id, declared, [input or {}])
    return checked


def _event(trigger: Trigger) -> dict[str, Any]:
    return {"name": trigger.name, "type": trigger.type, "active": trigger.active}


async def create_trigger(
    platform: Platform,
    actor: Actor,
    service_id: str,
    name: str,
    function_name: str,
    *,
    type: str = "Event",
    resource: str | None = None,
    actions: Sequence[str] | None = None,
    execution_mode: str = "Once",
    dql: str | None = None,
    filter: Mapping[str, Any] | None = None,
    cron: str | None = None,
    start_at: datetime | None = None,
    end_at: datetime | None = None,
    max_catch_up: int = 1,
    input: Mapping[str, Any] | None = None,
    active: bool = True,
) -> Trigger:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidInput(
            "a trigger name is 1-200 letters, digits, spaces, '_', '-' or '.'", field="name"
        )
    if type not in ("Event", "Cron"):
        raise InvalidInput("type must be Event or Cron", field="type")
    if not 0 <= max_catch_up <= 100:
        raise InvalidInput("maxCatchUp must be between 0 and 100", field="maxCatchUp")
    if start_at and end_at and end_at <= start_at:
        raise InvalidInput("endAt must be after startAt", field="endAt")
    if type == "Event":
        resource, chosen = await _check_event_spec(
            platform, resource, actions, execution_mode, dql, filter
        )
    else:
        cron = _check_cron(cron)
        resource, chosen = None, []
        if dql or filter:
            raise InvalidInput("a cron trigger has no filter", field="dql")
    async with platform.db.write() as session:
        service = await service_for(session, actor, service_id, Role.developer)
        checked = await _check_operation(session, platform, service, function_name, resource, input)
        clash = await session.scalar(
            select(Trigger.id).where(Trigger.project_id == service.project_id, Trigger.name == name)
        )
        if clash is not None:
            raise InvalidInput(f"the project already has a trigger named {name!r}", field="name")
        now = utcnow()
        trigger = Trigger(
            project_id=service.project_id,
            name=name,
            type=type.lower(),
            active=active,
            service_id=service.id,
            function_name=function_name,
            input=checked,
            resource=resource,
            actions=chosen,
            dql=dql,
            filter=dict(filter) if filter else None,
            execution_mode=execution_mode.lower(),
            cron=cron,
            start_at=start_at,
            end_at=end_at,
            next_at=next_instant(cron, max(now, start_at or now)) if cron else None,
            max_catch_up=max_catch_up,
            creator=actor.email,
        )
        session.add(trigger)
        await session.flush()
        await events.record(
            session,
            project_id=trigger.project_id,
            resource="trigger",
            action="created",
            resource_id=trigger.id,
            actor=actor.email,
            payload=_event(trigger),
        )
    return trigger


async def _trigger_for(
    session: AsyncSession, actor: Actor, trigger_id: str, needed: Role
) -> Trigger:
    trigger = await session.get(Trigger, trigger_id)
    if trigger is None:
        raise NotFound("trigger", trigger_id)
    try:
        await require_role(session, actor, trigger.project_id, needed)
    except NotFound:
        raise NotFound("trigger", trigger_id) from None
    return trigger


async def update_trigger(
    platform: Platform,
    actor: Actor,
    trigger_id: str,
    *,
    active: bool | None = None,
    cron: str | None = None,
    dql: str | None = None,
    filter: Mapping[str, Any] | None = None,
    input: Mapping[str, Any] | None = None,
) -> Trigger:
    """Pause or resume a trigger, or change its schedule, filter or input (checked as at creation)."""
    async with platform.db.write() as session:
        trigger = await _trigger_for(session, actor, trigger_id, Role.developer)
        if trigger.type == "event" and (dql is not None or filter is not None):
            await _check_event_spec(
                platform,
                trigger.resource,
                trigger.actions,
                trigger.execution_mode.capitalize(),
                dql,
                filter,
            )
            trigger.dql, trigger.filter = dql or None, dict(filter) if filter else None
        if cron is not None:
            if trigger.type != "cron":
                raise InvalidInput("only a cron trigger has a schedule", field="cron")
            trigger.cron = _check_cron(cron)
        if input is not None:
            service = await session.get(Service, trigger.service_id)
            assert service is not None
            trigger.input = await _check_operation(
                session, platform, service, trigger.function_name, trigger.resource, input
            )
        if active is not None:
            trigger.active = active
        if trigger.type == "cron" and (cron is not None or active):
            # a resumed schedule starts from now: what it missed while paused does not fire
            now = utcnow()
            start = as_utc(trigger.start_at) if trigger.start_at else now
            trigger.next_at = next_instant(trigger.cron or "", max(now, start))
        await events.record(
            session,
            project_id=trigger.project_id,
            resource="trigger",
            action="updated",
            resource_id=trigger.id,
            actor=actor.email,
            payload=_event(trigger),
        )
    return trigger


async def get_trigger(platform: Platform, actor: Actor, trigger_id: str) -> Trigger:
    async with platform.db.read() as session:
        return await _trigger_for(session, actor, trigger_id, Role.annotator)


async def list_triggers(
    platform: Platform,
    actor: Actor,
    project_id: str,
    first: int | None = None,
    after: str | None = None,
    *,
    dql: str | None = None,
) -> Page[Trigger]:
    """The project's triggers matching a DQL query, by its ``order by``, else by name."""
    return await listing.list_named(
        platform, actor, Trigger, "triggers", project_id, first, after, dql=dql
    )


async def count_triggers(
    platform: Platform, actor: Actor, project_id: str, *, dql: str | None = None
) -> int:
    return await listing.count_named(platform, actor, Trigger, "triggers", project_id, dql=dql)


async def delete_trigger(platform: Platform, actor: Actor, trigger_id: str) -> None:
    async with platform.db.write() as session:
        trigger = await _trigger_for(session, actor, trigger_id, Role.developer)
        await session.delete(trigger)
        await events.record(
            session,
            project_id=trigger.project_id,
            resource="trigger",
            action="deleted",
            resource_id=trigger.id,
            actor=actor.email,
            payload=_event(trigger),
        )
