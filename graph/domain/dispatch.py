"""The outbox dispatcher: undispatched events, in order, become executions of the event
triggers they match, in the transaction that flags them dispatched.

Executions are unique per trigger and event (``Always``) or per trigger and entity (``Once``), by
the execution's ``dedupe_key``: a batch dispatched twice (two dispatchers racing, a crash between
commit and enqueue) creates nothing twice. One leader runs it at a time (workers/scheduler.py);
tests call :func:`dispatch` directly.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select, update

from graph.db.tables import Annotation, Dataset, Event, Item, Service, Trigger
from graph.domain import notify, queries
from graph.domain.executions import enqueue, insert_executions
from graph.domain.platform import Platform
from graph.domain.services import function_of
from graph.domain.triggers import RESOURCES, entity_input
from graph.queue import Queued

__all__ = ["dispatch"]

_TABLES: dict[str, Any] = {"item": Item, "annotation": Annotation, "dataset": Dataset}
# the entity an event is about, by the event's resource: a status change is about its item
_ENTITIES = {"item": "item", "annotation": "annotation", "dataset": "dataset", "itemStatus": "item"}


def _wire(resource: str, row: Any) -> dict[str, str]:
    if resource == "item":
        return {"item_id": row.id, "dataset_id": row.dataset_id}
    if resource == "annotation":
        return {"annotation_id": row.id, "item_id": row.item_id, "dataset_id": row.dataset_id}
    return {"dataset_id": row.id}


def _wire_from_event(event: Event, entity: str) -> dict[str, str]:
    """The entity of an event whose row may be gone (``deleted``), from the event alone."""
    payload = event.payload or {}
    ids = {f"{entity}_id": event.resource_id}
    for key, wire in (("datasetId", "dataset_id"), ("itemId", "item_id")):
        if isinstance(payload.get(key), str):
            ids[wire] = payload[key]
    return ids


async def dispatch(platform: Platform, limit: int = 1000) -> int:
    """Dispatch up to ``limit`` events; returns how many were taken (0: the outbox is empty)."""
    work: list[Queued] = []
    created: list[tuple[str, str | None]] = []
    async with platform.db.write() as session:
        batch = list(
            await session.scalars(
                select(Event).where(Event.dispatched.is_(False)).order_by(Event.seq).limit(limit)
            )
        )
        if not batch:
            return 0
        projects = {e.project_id for e in batch if e.project_id}
        triggers = (
            list(
                await session.scalars(
                    select(Trigger)
                    .where(
                        Trigger.project_id.in_(projects),
                        Trigger.type == "event",
                        Trigger.active.is_(True),
                    )
                    .order_by(Trigger.id)
                )
            )
            if projects
            else []
        )
        services = {
            s.id: s
            for s in await session.scalars(
                select(Service).where(Service.id.in_({t.service_id for t in triggers}))
            )
        }
        for trigger in triggers:
            resource, dql_resource, _ = RESOURCES[trigger.resource or ""]
            actions = {a.lower() for a in trigger.actions or ()}
            fired = [
                e
                for e in batch
                if e.project_id == trigger.project_id
                and e.resource == resource
                and e.action.lower() in actions
            ]
            if not fired:
                continue
            service = services[trigger.service_id]
            _, function = await function_of(session, platform, service, trigger.function_name)
            name = entity_input(function, trigger.resource or "")
            if name is None:  # the service was redeployed with a function that no longer fits
                continue
            wire = await _entities(platform, session, trigger, resource, dql_resource, fired)
            chosen = [e for e in fired if e.seq in wire]
            once = trigger.execution_mode == "once"
            keys = [
                f"t:{trigger.id}:" + (f"once:{e.resource_id}" if once else f"event:{e.seq}")
                for e in chosen
            ]
            inputs = [{**trigger.input, name: wire[e.seq]} for e in chosen]
            if not inputs:
                continue
            queued = await insert_executions(
                session,
                service,
                trigger.function_name,
                inputs,
                creator=trigger.creator,
                trigger_id=trigger.id,
                event_seqs=[e.seq for e in chosen],
                dedupe_keys=keys,
            )
            created.extend((q.execution_id, service.id) for q in queued)
            if service.active:
                work.extend(queued)
        await session.execute(
            update(Event).where(Event.seq.in_([e.seq for e in batch])).values(dispatched=True)
        )
    await enqueue(platform, work)
    await notify.items_changed(
        platform,
        [
            (e.payload["datasetId"], e.action, e.resource_id)
            for e in batch
            if e.resource == "item" and isinstance((e.payload or {}).get("datasetId"), str)
        ],
    )
    await notify.executions_changed(platform, created, created=True)
    return len(batch)


async def _entities(
    platform: Platform,
    session: Any,
    trigger: Trigger,
    resource: str,
    dql_resource: str,
    fired: list[Event],
) -> dict[int, dict[str, str]]:
    """The wire form of each fired event's entity, by event seq, for the events whose entity
    matches the trigger's filter (all of them without one: a deleted entity from its event)."""
    entity = _ENTITIES[resource]
    table = _TABLES[entity]
    columns = [table.id] + [
        getattr(table, c) for c in ("dataset_id", "item_id") if hasattr(table, c)
    ]
    where = [table.id.in_({e.resource_id for e in fired})]
    filtered = bool(trigger.dql or trigger.filter)
    params: Mapping[str, Any] = {}
    if filtered:
        query = queries.parse_query(trigger.dql, trigger.filter, resource=dql_resource)
        compiled = queries.compile_for(query, dql_resource, platform.db.dialect)
        where.append(compiled.where)
        params = compiled.params
    rows = {r.id: r for r in await session.execute(select(*columns).where(*where), params)}
    chosen: dict[int, dict[str, str]] = {}
    for e in fired:
        row = rows.get(e.resource_id)
        if row is not None:
            chosen[e.seq] = _wire(entity, row)
        elif not filtered:
            chosen[e.seq] = _wire_from_event(e, entity)
    return chosen
