"""Lists of a project's named entities (integrations, drivers, saved queries, services,
triggers): a DQL query over the entity's field map, keyset pages by its ``order by`` or else by
name, and the matching count."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from graph.domain import queries
from graph.domain.access import Actor, Role, require_role
from graph.domain.errors import Conflict
from graph.domain.paging import Order, Page, page_size
from graph.domain.platform import Platform

__all__ = ["check_free", "count_named", "list_named", "save_named"]


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


def _taken(noun: str, name: str) -> Conflict:
    return Conflict(f"the project already has {noun} named {name!r}", field="name")


async def check_free(
    session: AsyncSession, entity: Any, project_id: str, name: str, noun: str
) -> None:
    """Refuse a name another ``entity`` row of the project has (``noun``: "a task")."""
    taken = await session.scalar(
        select(entity.id).where(entity.project_id == project_id, entity.name == name)
    )
    if taken is not None:
        raise _taken(noun, name)


async def save_named(session: AsyncSession, row: Any, noun: str) -> None:
    """Flush a named row; a concurrent write that took its name between :func:`check_free` and
    this flush is the same conflict."""
    try:
        await session.flush()
    except IntegrityError:
        raise _taken(noun, row.name) from None
