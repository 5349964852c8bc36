"""Changes by query: every mutation that takes a query instead of ids ends in ``ByQuery``.

A query is ``dql``, ``filter`` (Dataloop JSON), both (ANDed), or ``saved`` (a saved query's name);
one must be given (``dql: ""`` selects everything). It selects what the dataset's list with the
same query shows. Each runs as an execution of a platform function (graph/domain/operations.py):
the mutation checks the request and returns the execution; the change happens whole or not at
all, and the execution's output says how many rows it changed (``{"changed": n}``).
"""

from __future__ import annotations

from typing import Annotated

import strawberry

from graph.api.context import Info
from graph.api.executions import Execution
from graph.api.items import DQL_ARGUMENT, FILTER_ARGUMENT
from graph.api.saved_queries import SAVED_ARGUMENT, chosen_query
from graph.api.scalars import JSON
from graph.domain import operations

__all__ = ["BulkMutations"]

_SET = strawberry.argument(
    name="set",
    description="A JSON merge patch for `metadata.user`: keys set, objects merged at any depth, "
    "a key set to null removed.",
)
_REPLACE = strawberry.argument(
    description="Replace `metadata.user` with `set` (without its nulls) instead of merging."
)


async def _start(info: Info, function: str, **input: object) -> Execution:
    ctx = info.context
    row = await operations.start(ctx.platform, await ctx.actor(), function, input)
    return Execution.of(row)


@strawberry.type
class BulkMutations:
    @strawberry.mutation(
        description="Merge into (or replace) the user metadata and/or set the description (empty "
        "string clears it) of the items a query selects; the execution's output says how many changed."
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
    ) -> Execution:
        dql, filter = await chosen_query(info, dataset_id, "items", saved, dql, filter)
        return await _start(
            info,
            "update_items_by_query",
            datasetId=dataset_id,
            dql=dql,
            filter=filter,
            set=set_,
            replace=replace or None,
            description=description,
        )

    @strawberry.mutation(
        description="Delete the items a query selects (a folder with everything below it); "
        "the execution's output says how many files went."
    )
    async def delete_items_by_query(
        self,
        info: Info,
        dataset_id: strawberry.ID,
        dql: Annotated[str | None, DQL_ARGUMENT] = None,
        filter: Annotated[JSON | None, FILTER_ARGUMENT] = None,
        saved: Annotated[str | None, SAVED_ARGUMENT] = None,
    ) -> Execution:
        dql, filter = await chosen_query(info, dataset_id, "items", saved, dql, filter)
        return await _start(
            info, "delete_items_by_query", datasetId=dataset_id, dql=dql, filter=filter
        )

    @strawberry.mutation(
        description="Move the items a query selects into a folder (made if missing): files by "
        "themselves, folders with everything below them. The folder and those holding it are "
        "never selected. The execution's output says how many selected items changed place."
    )
    async def move_items_by_query(
        self,
        info: Info,
        dataset_id: strawberry.ID,
        to_dir: str,
        dql: Annotated[str | None, DQL_ARGUMENT] = None,
        filter: Annotated[JSON | None, FILTER_ARGUMENT] = None,
        saved: Annotated[str | None, SAVED_ARGUMENT] = None,
    ) -> Execution:
        dql, filter = await chosen_query(info, dataset_id, "items", saved, dql, filter)
        return await _start(
            info, "move_items_by_query", datasetId=dataset_id, toDir=to_dir, dql=dql, filter=filter
        )

    @strawberry.mutation(
        description="Set the label and/or status (null clears it) and merge into (or replace) "
        "`metadata.user` of the annotations a query selects; the execution's output says how many changed."
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
    ) -> Execution:
        dql, filter = await chosen_query(info, dataset_id, "annotations", saved, dql, filter)
        given = {"label": label, "status": status}
        return await _start(
            info,
            "update_annotations_by_query",
            datasetId=dataset_id,
            dql=dql,
            filter=filter,
            changes={k: v for k, v in given.items() if v is not strawberry.UNSET},
            set=set_,
            replace=replace or None,
        )

    @strawberry.mutation(
        description="Delete the annotations a query selects, with their child annotations; "
        "the execution's output says how many went."
    )
    async def delete_annotations_by_query(
        self,
        info: Info,
        dataset_id: strawberry.ID,
        dql: Annotated[str | None, DQL_ARGUMENT] = None,
        filter: Annotated[JSON | None, FILTER_ARGUMENT] = None,
        saved: Annotated[str | None, SAVED_ARGUMENT] = None,
    ) -> Execution:
        dql, filter = await chosen_query(info, dataset_id, "annotations", saved, dql, filter)
        return await _start(
            info, "delete_annotations_by_query", datasetId=dataset_id, dql=dql, filter=filter
        )
