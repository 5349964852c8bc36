"""Shared GraphQL scalars and the generic keyset connection."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import strawberry
from strawberry.scalars import JSON

from graph.domain.errors import InvalidInput
from graph.domain.paging import Page

__all__ = [
    "JSON",
    "LIST_DQL",
    "Connection",
    "Edge",
    "PageInfo",
    "instant",
    "iso",
    "to_connection",
]

T = TypeVar("T")

LIST_DQL = strawberry.argument(
    description="A DQL query over the fields of the listed type, e.g. "
    '`name like "prod-*" order by createdAt desc`.'
)


def instant(value: str | None, field: str) -> datetime | None:
    """An ISO 8601 instant given to the API; one without an offset is UTC."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{field} must be an ISO 8601 date and time", field=field) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def iso(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a ``Z``, as Dataloop sends dates (SQLite returns naive UTC)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class Edge(Generic[T]):
    cursor: str
    node: T


@strawberry.type(description="A page of a keyset-paged list; pass `endCursor` as `after`.")
class Connection(Generic[T]):
    edges: list[Edge[T]]
    page_info: PageInfo
    _count: strawberry.Private[Callable[[], Awaitable[int]] | None] = None

    @strawberry.field(description="All the items of the list (costs one extra query).")
    async def total_count(self) -> int | None:
        return None if self._count is None else await self._count()

    @strawberry.field(description="The nodes of the page, without cursors.")
    def nodes(self) -> list[T]:
        return [edge.node for edge in self.edges]


def to_connection(
    page: Page[Any],
    convert: Callable[[Any], T],
    count: Callable[[], Awaitable[int]] | None = None,
) -> Connection[T]:
    return Connection(
        edges=[
            Edge(cursor=c, node=convert(r)) for r, c in zip(page.rows, page.cursors, strict=True)
        ],
        page_info=PageInfo(has_next_page=page.has_next, end_cursor=page.end_cursor),
        _count=count,
    )
