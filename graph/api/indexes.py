"""Declared metadata indexes and ``explain``: which index a DQL query uses, and which to add."""

from __future__ import annotations

from typing import Annotated

import strawberry

from graph.api.context import Info
from graph.api.scalars import JSON, iso
from graph.db.tables import MetadataIndex as MetadataIndexRow
from graph.domain import explain as explaining
from graph.domain import indexes

__all__ = ["Explain", "IndexMutations", "IndexQueries", "MetadataIndex"]

RESOURCE = strawberry.argument(description="`items` or `annotations`.")
PATH = strawberry.argument(
    description="A JSON path of the resource, e.g. `metadata.user.camera` or `attributes.color`."
)


@strawberry.type(
    description="An index on a JSON path, composite with the dataset, built on the expression "
    "DQL compiles the path to, so filters and counts on it read the index, not the dataset."
)
class MetadataIndex:
    id: strawberry.ID
    resource: str
    path: str
    sql_indexes: list[str] = strawberry.field(description="The database's index names.")
    creator: str
    created_at: str | None

    @classmethod
    def of(cls, row: MetadataIndexRow) -> MetadataIndex:
        return cls(
            id=strawberry.ID(row.id),
            resource=row.resource,
            path=row.path,
            sql_indexes=sorted(row.sql_indexes.values()),
            creator=row.creator,
            created_at=iso(row.created_at),
        )


@strawberry.type(description="How the database would read the first page of a DQL list query.")
class Explain:
    sql: str = strawberry.field(description="The statement, values shown as placeholders.")
    plan: list[str] = strawberry.field(description="The database's plan, one line per step.")
    verdict: str = strawberry.field(
        description="In words: the index used, or the scan and the index to add."
    )
    uses_index: bool

    @classmethod
    def of(cls, found: explaining.Explanation) -> Explain:
        return cls(
            sql=found.sql, plan=found.plan, verdict=found.verdict, uses_index=found.uses_index
        )


@strawberry.type
class IndexQueries:
    @strawberry.field(description="Declared metadata indexes, of one resource if given.")
    async def indexes(
        self, info: Info, resource: Annotated[str | None, RESOURCE] = None
    ) -> list[MetadataIndex]:
        ctx = info.context
        rows = await indexes.list_indexes(ctx.platform, await ctx.actor(), resource)
        return [MetadataIndex.of(row) for row in rows]

    @strawberry.field(
        description="The SQL, the plan and a verdict for the first page of `resource` in a "
        "dataset matching `dql` and/or `filter`; nothing is executed."
    )
    async def explain(
        self,
        info: Info,
        resource: Annotated[str, RESOURCE],
        dataset_id: strawberry.ID,
        dql: str | None = None,
        filter: JSON | None = None,
    ) -> Explain:
        ctx = info.context
        found = await explaining.explain(
            ctx.platform, await ctx.actor(), resource, dataset_id, dql, filter
        )
        return Explain.of(found)


@strawberry.type
class IndexMutations:
    @strawberry.mutation(
        description="Declare and build an index on a JSON path (developers of a project and "
        "administrators); declaring it again is harmless. Writes to the table wait while it builds."
    )
    async def create_index(
        self, info: Info, resource: Annotated[str, RESOURCE], path: Annotated[str, PATH]
    ) -> MetadataIndex:
        ctx = info.context
        row = await indexes.create_index(ctx.platform, await ctx.actor(), resource, path)
        return MetadataIndex.of(row)

    @strawberry.mutation(description="Drop a declared index (its declarer or an administrator).")
    async def drop_index(
        self, info: Info, resource: Annotated[str, RESOURCE], path: Annotated[str, PATH]
    ) -> bool:
        ctx = info.context
        await indexes.drop_index(ctx.platform, await ctx.actor(), resource, path)
        return True
