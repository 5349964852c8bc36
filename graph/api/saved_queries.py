"""Saved queries: named DQL of a project, run with the ``saved`` argument of the lists and bulk
changes of their resource (``items(datasetId, saved: "train")``)."""

from __future__ import annotations

from typing import Annotated, Any

import strawberry

from graph.api.context import Info
from graph.api.scalars import JSON, LIST_DQL, Connection, iso, to_connection
from graph.db.tables import SavedQuery as SavedQueryRow
from graph.domain import saved_queries

__all__ = [
    "SAVED_ARGUMENT",
    "SavedQuery",
    "SavedQueryMutations",
    "SavedQueryQueries",
    "chosen_query",
]

SAVED_ARGUMENT = strawberry.argument(
    description="The name of a saved query of the project to run (instead of `dql`/`filter`)."
)
_DQL = strawberry.argument(description="DQL text; ANDed with `filter` when both are given.")
_FILTER = strawberry.argument(description="A Dataloop JSON query (`{filter, join, sort}`).")
_RESOURCE = strawberry.argument(description="What it selects: `items`, `annotations`, `datasets`.")


@strawberry.type(
    description="A named query of a project over one resource, checked when saved; run it with "
    "the `saved` argument of that resource's lists and changes by query."
)
class SavedQuery:
    id: strawberry.ID
    project_id: strawberry.ID
    name: str
    resource: str
    dql: str | None
    filter: JSON | None
    description: str | None
    creator: str
    created_at: str | None
    updated_at: str | None

    @classmethod
    def of(cls, row: SavedQueryRow) -> SavedQuery:
        return cls(
            id=strawberry.ID(row.id),
            project_id=strawberry.ID(row.project_id),
            name=row.name,
            resource=row.resource,
            dql=row.dql,
            filter=row.filter,
            description=row.description,
            creator=row.creator,
            created_at=iso(row.created_at),
            updated_at=iso(row.updated_at),
        )


async def chosen_query(
    info: Info, dataset_id: str, resource: str, saved: str | None, dql: str | None, filter: Any
) -> tuple[str | None, Any]:
    """``(dql, filter)`` for an operation on a dataset: as given, or those of the saved query."""
    ctx = info.context
    return await saved_queries.selection(
        ctx.platform,
        await ctx.actor(),
        dataset_id,
        resource,
        saved=saved,
        dql=dql,
        dataloop=filter,
    )


@strawberry.type
class SavedQueryQueries:
    @strawberry.field(
        description="The saved queries of a project (of one resource) matching a DQL query, by "
        "its `order by`, else by name."
    )
    async def saved_queries(
        self,
        info: Info,
        project_id: strawberry.ID,
        resource: Annotated[str | None, _RESOURCE] = None,
        dql: Annotated[str | None, LIST_DQL] = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[SavedQuery]:
        ctx = info.context
        actor = await ctx.actor()
        page = await saved_queries.list_saved_queries(
            ctx.platform, actor, project_id, resource=resource, dql=dql, first=first, after=after
        )
        return to_connection(
            page,
            SavedQuery.of,
            lambda: saved_queries.count_saved_queries(
                ctx.platform, actor, project_id, resource=resource, dql=dql
            ),
        )

    @strawberry.field
    async def saved_query(self, info: Info, project_id: strawberry.ID, name: str) -> SavedQuery:
        ctx = info.context
        row = await saved_queries.get_saved_query(ctx.platform, await ctx.actor(), project_id, name)
        return SavedQuery.of(row)


@strawberry.type
class SavedQueryMutations:
    @strawberry.mutation(
        description="Save a query under a name unique in the project; a query that does not "
        "parse or compile over its resource is refused (`INVALID_INPUT`, field `dql`)."
    )
    async def create_saved_query(
        self,
        info: Info,
        project_id: strawberry.ID,
        name: str,
        resource: Annotated[str, _RESOURCE],
        dql: Annotated[str | None, _DQL] = None,
        filter: Annotated[JSON | None, _FILTER] = None,
        description: str | None = None,
    ) -> SavedQuery:
        ctx = info.context
        row = await saved_queries.create_saved_query(
            ctx.platform,
            await ctx.actor(),
            project_id,
            name,
            resource,
            dql=dql,
            dataloop=filter,
            description=description,
        )
        return SavedQuery.of(row)

    @strawberry.mutation(
        description="Change a saved query; only the arguments given are touched (null clears "
        "`dql`, `filter` and `description`). The result is checked like a new one."
    )
    async def update_saved_query(
        self,
        info: Info,
        project_id: strawberry.ID,
        name: str,
        new_name: str | None = strawberry.UNSET,
        resource: Annotated[str | None, _RESOURCE] = strawberry.UNSET,
        dql: Annotated[str | None, _DQL] = strawberry.UNSET,
        filter: Annotated[JSON | None, _FILTER] = strawberry.UNSET,
        description: str | None = strawberry.UNSET,
    ) -> SavedQuery:
        given = {
            "name": new_name,
            "resource": resource,
            "dql": dql,
            "filter": filter,
            "description": description,
        }
        changes = {k: v for k, v in given.items() if v is not strawberry.UNSET}
        ctx = info.context
        row = await saved_queries.update_saved_query(
            ctx.platform, await ctx.actor(), project_id, name, changes
        )
        return SavedQuery.of(row)

    @strawberry.mutation(description="Delete a saved query; returns true.")
    async def delete_saved_query(self, info: Info, project_id: strawberry.ID, name: str) -> bool:
        ctx = info.context
        await saved_queries.delete_saved_query(ctx.platform, await ctx.actor(), project_id, name)
        return True
