"""Changes by query: every mutation that takes a query instead of ids ends in ``ByQuery``.

A query is ``dql``, ``filter`` (Dataloop JSON), both (ANDed), or ``saved`` (a saved query's name);
one must be given (``dql: ""`` selects everything). It selects what the dataset's list with the
same query shows. Each call happens whole or not at all and returns how many rows it changed.
"""

from __future__ import annotations

from typing import Annotated

import strawberry

from graph.api.context import Info
from graph.api.items import DQL_ARGUMENT, FILTER_ARGUMENT
from graph.api.saved_queries import SAVED_ARGUMENT, chosen_query
from graph.api.scalars import JSON
from graph.domain import bulk

__all__ = ["BulkMutations"]

_SET = strawberry.argument(
    name="set",
    description="A JSON merge patch for `metadata.user`: keys set, objects merged at any depth, "
    "a key set to null removed.",
)
_REPLACE = strawberry.argument(
    description="Replace `metadata.user` with `set` (without its nulls) instead of merging."
)


@strawberry.type
class BulkMutations:
    @strawberry.mutation(
        description="Merge into (or replace) the user metadata and/or set the description (empty "
        "string clears it) of the items a query selects; returns how many were updated."
    )
    async def update_items_by_query(
        self,
        info: Info,
        dataset_id: strawberry.ID,
        dql: Annotated[str | None, DQL_ARGUMENT] = None,
        filter: Annotated[JSON | None, FILTER_ARGUMENT] = None,
        saved: Annotated[str | None, SAVED_ARGUMENT] = None,
        set_: Annotated[JSON | None, _SET] = None,
        replace: Annotated[bool, _REPLACE] = False,
        description: str | None = None,
    ) -> int:
        ctx = info.context
        dql, filter = await chosen_query(info, dataset_id, "items", saved, dql, filter)
        return await bulk.update_items_by_query(
            ctx.platform,
            await ctx.actor(),
            dataset_id,
            dql=dql,
            dataloop=filter,
            set_user_metadata=set_,
            replace_user_metadata=replace,
            description=description,
        )

    @strawberry.mutation(
        description="Delete the items a query selects (a folder with everything below it); "
        "returns how many files went."
    )
    async def delete_items_by_query(
        self,
        info: Info,
        dataset_id: strawberry.ID,
        dql: Annotated[str | None, DQL_ARGUMENT] = None,
        filter: Annotated[JSON | None, FILTER_ARGUMENT] = None,
        saved: Annotated[str | None, SAVED_ARGUMENT] = None,
    ) -> int:
        ctx = info.context
        dql, filter = await chosen_query(info, dataset_id, "items", saved, dql, filter)
        return await bulk.delete_items_by_query(
            ctx.platform, await ctx.actor(), dataset_id, dql=dql, dataloop=filter
        )

    @strawberry.mutation(
        description="Move the items a query selects into a folder (made if missing): files by "
        "themselves, folders with everything below them. The folder and those holding it are "
        "never selected. Returns how many selected items changed place."
    )
    async def move_items_by_query(
        self,
        info: Info,
        dataset_id: strawberry.ID,
        to_dir: str,
        dql: Annotated[str | None, DQL_ARGUMENT] = None,
        filter: Annotated[JSON | None, FILTER_ARGUMENT] = None,
        saved: Annotated[str | None, SAVED_ARGUMENT] = None,
    ) -> int:
        ctx = info.context
        dql, filter = await chosen_query(info, dataset_id, "items", saved, dql, filter)
        return await bulk.move_items_by_query(
            ctx.platform, await ctx.actor(), dataset_id, to_dir, dql=dql, dataloop=filter
        )

    @strawberry.mutation(
        description="Set the label and/or status (null clears it) and merge into (or replace) "
        "`metadata.user` of the annotations a query selects; returns how many were updated."
    )
    async def update_annotations_by_query(
        self,
        info: Info,
        dataset_id: strawberry.ID,
        dql: Annotated[str | None, DQL_ARGUMENT] = None,
        filter: Annotated[JSON | None, FILTER_ARGUMENT] = None,
        saved: Annotated[str | None, SAVED_ARGUMENT] = None,
        label: str | None = strawberry.UNSET,
        status: str | None = strawberry.UNSET,
        set_: Annotated[JSON | None, _SET] = None,
        replace: Annotated[bool, _REPLACE] = False,
    ) -> int:
        ctx = info.context
        dql, filter = await chosen_query(info, dataset_id, "annotations", saved, dql, filter)
        given = {"label": label, "status": status}
        return await bulk.update_annotations_by_query(
            ctx.platform,
            await ctx.actor(),
            dataset_id,
            dql=dql,
            dataloop=filter,
            changes={k: v for k, v in given.items() if v is not strawberry.UNSET},
            set_user_metadata=set_,
            replace_user_metadata=replace,
        )

    @strawberry.mutation(
        description="Delete the annotations a query selects, with their child annotations; "
        "returns how many went."
    )
    async def delete_annotations_by_query(
        self,
        info: Info,
        dataset_id: strawberry.ID,
        dql: Annotated[str | None, DQL_ARGUMENT] = None,
        filter: Annotated[JSON | None, FILTER_ARGUMENT] = None,
        saved: Annotated[str | None, SAVED_ARGUMENT] = None,
    ) -> int:
        ctx = info.context
        dql, filter = await chosen_query(info, dataset_id, "annotations", saved, dql, filter)
        return await bulk.delete_annotations_by_query(
            ctx.platform, await ctx.actor(), dataset_id, dql=dql, dataloop=filter
        )
