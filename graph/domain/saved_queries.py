"""Saved queries: named queries of a project over one resource (items, annotations, datasets), run
by name wherever that resource is listed or changed by query.

A saved query is DQL text, a Dataloop JSON query (``filter``), or both (ANDed, as everywhere). It
is parsed and compiled against its resource when saved, so a bad query is refused then, with the
same error a list would give, rather than when someone runs it. Annotators may read and run saved
queries; developers create, change and delete them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from graph.db.tables import SavedQuery
from graph.domain import events, listing, queries
from graph.domain.access import Actor, Role, require_role
from graph.domain.datasets import dataset_for
from graph.domain.errors import Conflict, InvalidInput, NotFound
from graph.domain.paging import Page
from graph.domain.platform import Platform

__all__ = [
    "RESOURCES",
    "count_saved_queries",
    "create_saved_query",
    "delete_saved_query",
    "get_saved_query",
    "list_saved_queries",
    "project_selection",
    "selection",
    "update_saved_query",
]

RESOURCES = ("items", "annotations", "datasets")
_CHANGEABLE = ("name", "resource", "dql", "filter", "description")


# --- checks ---------------------------------------------------------------------------------------


def _check_name(name: Any) -> str:
    name = name.strip() if isinstance(name, str) else ""
    if not name or len(name) > 200:
        raise InvalidInput("a saved query's name must have 1 to 200 characters", field="name")
    return name


def _check_resource(resource: Any) -> str:
    if resource not in RESOURCES:
        raise InvalidInput(
            f"resource must be one of {', '.join(RESOURCES)}, got {resource!r}", field="resource"
        )
    return str(resource)


def _check_query(
    platform: Platform, resource: str, dql: str | None, dataloop: Any
) -> tuple[str | None, dict[str, Any] | None]:
    """The query as stored (blank text is none), once it parses and compiles over ``resource``."""
    if dql is not None and not dql.strip():
        dql = None
    if dataloop is not None and not isinstance(dataloop, dict):
        raise InvalidInput("filter must be a JSON object (a Dataloop query)", field="filter")
    if dql is None and dataloop is None:
        raise InvalidInput("a saved query needs dql or filter", field="dql")
    query = queries.parse_query(dql, dataloop, resource=resource)
    queries.compile_for(query, resource, platform.db.dialect)
    return dql, dataloop


# --- reading --------------------------------------------------------------------------------------


async def _named(session: AsyncSession, project_id: str, name: str) -> SavedQuery:
    found = await session.scalar(
        select(SavedQuery).where(SavedQuery.project_id == project_id, SavedQuery.name == name)
    )
    if found is None:
        raise NotFound("saved query", name)
    return found


async def get_saved_query(
    platform: Platform, actor: Actor, project_id: str, name: str
) -> SavedQuery:
    async with platform.db.read() as session:
        await require_role(session, actor, project_id, Role.annotator)
        return await _named(session, project_id, name)


def _of_resource(resource: str | None) -> list[Any]:
    return [] if resource is None else [SavedQuery.resource == _check_resource(resource)]


async def list_saved_queries(
    platform: Platform,
    actor: Actor,
    project_id: str,
    *,
    resource: str | None = None,
    dql: str | None = None,
    first: int | None = None,
    after: str | None = None,
) -> Page[SavedQuery]:
    """The project's saved queries (of one resource, if given) matching a DQL query, by its
    ``order by``, else by name."""
    return await listing.list_named(
        platform,
        actor,
        SavedQuery,
        "savedQueries",
        project_id,
        first,
        after,
        dql=dql,
        where=_of_resource(resource),
    )


async def count_saved_queries(
    platform: Platform,
    actor: Actor,
    project_id: str,
    *,
    resource: str | None = None,
    dql: str | None = None,
) -> int:
    return await listing.count_named(
        platform,
        actor,
        SavedQuery,
        "savedQueries",
        project_id,
        dql=dql,
        where=_of_resource(resource),
    )


async def selection(
    platform: Platform,
    actor: Actor,
    dataset_id: str,
    resource: str,
    *,
    saved: str | None,
    dql: str | None,
    dataloop: Mapping[str, Any] | None,
) -> tuple[str | None, Mapping[str, Any] | None]:
    """The query to run over a dataset's ``resource``: ``dql`` and ``dataloop`` as given, or the
    saved query named ``saved`` of the dataset's project (not both: a saved query is run as it
    was saved)."""
    if saved is None:
        return dql, dataloop
    _either(dql, dataloop)
    async with platform.db.read() as session:
        dataset = await dataset_for(session, actor, dataset_id, Role.annotator)
        found = await _named(session, dataset.project_id, saved)
    return _query_of(found, resource)


async def project_selection(
    platform: Platform,
    actor: Actor,
    project_id: str,
    resource: str,
    *,
    saved: str | None,
    dql: str | None,
    dataloop: Mapping[str, Any] | None = None,
) -> tuple[str | None, Mapping[str, Any] | None]:
    """As :func:`selection`, for a list of a project (its datasets)."""
    if saved is None:
        return dql, dataloop
    _either(dql, dataloop)
    async with platform.db.read() as session:
        await require_role(session, actor, project_id, Role.annotator)
        found = await _named(session, project_id, saved)
    return _query_of(found, resource)


def _either(dql: str | None, dataloop: Mapping[str, Any] | None) -> None:
    if dql is not None or dataloop is not None:
        raise InvalidInput("run a saved query or give dql/filter, not both", field="saved")


def _query_of(found: SavedQuery, resource: str) -> tuple[str | None, Mapping[str, Any] | None]:
    if found.resource != resource:
        raise InvalidInput(
            f"saved query {found.name!r} selects {found.resource}, not {resource}", field="saved"
        )
    return found.dql, found.filter


# --- writing --------------------------------------------------------------------------------------


def _event(found: SavedQuery) -> dict[str, Any]:
    return {"name": found.name, "resource": found.resource}


async def _flush(session: AsyncSession, name: str) -> None:
    try:
        await session.flush()
    except IntegrityError:  # a concurrent write took the name between our check and ours
        raise Conflict(
            f"the project already has a saved query named {name!r}", field="name"
        ) from None


async def _check_free(session: AsyncSession, project_id: str, name: str) -> None:
    taken = await session.scalar(
        select(SavedQuery.id).where(SavedQuery.project_id == project_id, SavedQuery.name == name)
    )
    if taken is not None:
        raise Conflict(f"the project already has a saved query named {name!r}", field="name")


async def create_saved_query(
    platform: Platform,
    actor: Actor,
    project_id: str,
    name: str,
    resource: str,
    *,
    dql: str | None = None,
    dataloop: Mapping[str, Any] | None = None,
    description: str | None = None,
) -> SavedQuery:
    """Save a query under a name unique in the project, once it parses and compiles."""
    name = _check_name(name)
    resource = _check_resource(resource)
    dql, stored = _check_query(platform, resource, dql, dataloop)
    async with platform.db.write() as session:
        await require_role(session, actor, project_id, Role.developer)
        await _check_free(session, project_id, name)
        found = SavedQuery(
            project_id=project_id,
            name=name,
            resource=resource,
            dql=dql,
            filter=stored,
            description=description or None,
            creator=actor.email,
        )
        session.add(found)
        await _flush(session, name)
        await events.record(
            session,
            project_id=project_id,
            resource="savedQuery",
            action="created",
            resource_id=found.id,
            actor=actor.email,
            payload=_event(found),
        )
    return found


async def update_saved_query(
    platform: Platform, actor: Actor, project_id: str, name: str, changes: Mapping[str, Any]
) -> SavedQuery:
    """Change some of ``name``, ``resource``, ``dql``, ``filter``, ``description`` (``None``
    clears ``dql``, ``filter`` and ``description``); the result is checked like a new one."""
    unknown = sorted(set(changes) - set(_CHANGEABLE))
    if unknown:
        raise InvalidInput(f"cannot change {', '.join(unknown)}", field=unknown[0])
    async with platform.db.write() as session:
        await require_role(session, actor, project_id, Role.developer)
        found = await _named(session, project_id, name)
        new_name = _check_name(changes.get("name", found.name))
        resource = _check_resource(changes.get("resource", found.resource))
        dql, stored = _check_query(
            platform, resource, changes.get("dql", found.dql), changes.get("filter", found.filter)
        )
        if new_name != found.name:
            await _check_free(session, project_id, new_name)
        found.name, found.resource, found.dql, found.filter = new_name, resource, dql, stored
        if "description" in changes:
            found.description = changes["description"] or None
        await _flush(session, new_name)
        await events.record(
            session,
            project_id=project_id,
            resource="savedQuery",
            action="updated",
            resource_id=found.id,
            actor=actor.email,
            payload={**_event(found), "fields": sorted(changes)},
        )
    return found


async def delete_saved_query(platform: Platform, actor: Actor, project_id: str, name: str) -> None:
    async with platform.db.write() as session:
        await require_role(session, actor, project_id, Role.developer)
        found = await _named(session, project_id, name)
        await session.delete(found)
        await events.record(
            session,
            project_id=project_id,
            resource="savedQuery",
            action="deleted",
            resource_id=found.id,
            actor=actor.email,
            payload=_event(found),
        )
