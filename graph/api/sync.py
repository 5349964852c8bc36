"""Syncing a driver-bound dataset from its store."""

from __future__ import annotations

import strawberry

from graph.api.context import Info
from graph.domain import sync

__all__ = ["SyncMutations"]


@strawberry.type(description="What a sync did to the items of a dataset.")
class SyncReport:
    created: int
    updated: int
    deleted: int
    unchanged: int
    skipped: int = strawberry.field(
        description="Objects whose key cannot be an item path (such as `a//b` or `../x`)."
    )

    @classmethod
    def of(cls, value: sync.SyncReport) -> SyncReport:
        return cls(
            created=value.created,
            updated=value.updated,
            deleted=value.deleted,
            unchanged=value.unchanged,
            skipped=value.skipped,
        )


@strawberry.type
class SyncMutations:
    @strawberry.mutation(
        description="Bring a driver-bound dataset in line with its store: new objects become "
        "items, changed ones update theirs, gone ones lose theirs."
    )
    async def sync_dataset(self, info: Info, dataset_id: strawberry.ID) -> SyncReport:
        ctx = info.context
        report = await sync.sync_dataset(ctx.platform, await ctx.actor(), dataset_id)
        return SyncReport.of(report)
