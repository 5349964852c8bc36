"""Syncing a driver-bound dataset from its store."""

from __future__ import annotations

import strawberry

from graph.api.context import Info
from graph.api.executions import Execution
from graph.domain import operations

__all__ = ["SyncMutations"]


@strawberry.type
class SyncMutations:
    @strawberry.mutation(
        description="Bring a driver-bound dataset in line with its store: new objects become "
        "items, changed ones update theirs, gone ones lose theirs. Runs as an execution "
        "(returned); its output counts what it did: `{created, updated, deleted, unchanged, "
        "skipped}` (skipped: objects whose key cannot be an item path, such as `a//b`)."
    )
    async def sync_dataset(self, info: Info, dataset_id: strawberry.ID) -> Execution:
        ctx = info.context
        input = {"datasetId": dataset_id}
        row = await operations.start(ctx.platform, await ctx.actor(), "sync_dataset", input)
        return Execution.of(row)
