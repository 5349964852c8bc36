"""Lists of a project's named entities (integrations, drivers, saved queries, services,
triggers): a DQL query over the entity's field map, keyset pages by its ``order by`` or else by
name, and the matching count."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select

from graph.domain import queries
from graph.domain.access import Actor, Role, require_role
from graph.domain.paging import Order, Page, page_size
from graph.domain.platform import Platform

__all__ = ["count_named", "list_named"]


async def list_named(
    platform: Platform,
    actor: Actor,
    entity: Any,
    resource: str,
    project_id: str,
    first: int | None = None,
    after: str | None = None,
    *,
    dql: str | None = None,
    where: Sequence[Any] = (),
) -> Page[Any]:
    """``entity`` rows of the project matching ``dql`` and the ``where`` conditions."""
    compiled = queries.compile_text(dql, resource, platform.db.dialect)
    async with platform.db.read() as session:
        await require_role(session, actor, project_id, Role.annotator)
        statement, finish = queries.keyset_select(
            entity,
            [entity.project_id == project_id, *where],
            compiled,
            [Order(entity.name), Order(entity.id)],
            lambda row: (row.name, row.id),
            page_size(first, platform.settings.max_page_size),
            after,
        )
        return finish((await session.execute(statement, compiled.params)).all())


async def count_named(
    platform: Platform,
    actor: Actor,
    entity: Any,
    resource: str,
    project_id: str,
    *,
    dql: str | None = None,
    where: Sequence[Any] = (),
) -> int:
    compiled = queries.compile_text(dql, resource, platform.db.dialect)
    async with platform.db.read() as session:
        await require_role(session, actor, project_id, Role.annotator)
        query = select(func.count()).where(entity.project_id == project_id, *where, compiled.where)
        return int(await session.scalar(query, compiled.params) or 0)
