"""Dataset versions: clone, merge and lineage."""

from __future__ import annotations

from typing import Annotated

import strawberry

from graph.api.context import Info
from graph.api.datasets import Dataset
from graph.api.executions import Execution
from graph.api.items import DQL_ARGUMENT, FILTER_ARGUMENT
from graph.api.saved_queries import SAVED_ARGUMENT, chosen_query
from graph.api.scalars import JSON
from graph.domain import operations, versioning

__all__ = ["DatasetLineage", "VersioningMutations", "VersioningQueries"]


@strawberry.type(description="Where a dataset comes from and what was cloned from it.")
class DatasetLineage:
    ancestors: list[Dataset] = strawberry.field(
        description="Its source, the source's source, ...; nearest first."
    )
    clones: list[Dataset] = strawberry.field(
        description="Datasets cloned from it, directly or from its clones; by generation."
    )


@strawberry.type
class VersioningQueries:
    @strawberry.field
    async def dataset_lineage(self, info: Info, dataset_id: strawberry.ID) -> DatasetLineage:
        ctx = info.context
        found = await versioning.lineage(ctx.platform, await ctx.actor(), dataset_id)
        return DatasetLineage(
            ancestors=[Dataset.of(d) for d in found.ancestors],
            clones=[Dataset.of(d) for d in found.clones],
        )


@strawberry.type
class VersioningMutations:
    @strawberry.mutation(
        description="A new dataset of the same project with copies of the items (all, the "
        "files and folders given, or those a query selects, folders with everything below them) "
        "sharing the source's bytes; annotations copied too unless `withAnnotations` is false, "
        "user metadata unless `withMetadata` is false. Runs as an execution (returned); its "
        "output names the new dataset: `{datasetId, name}`."
    )
    async def clone_dataset(
        self,
        info: Info,
        dataset_id: strawberry.ID,
        name: str,
        item_ids: list[strawberry.ID] | None = None,
        dql: Annotated[str | None, DQL_ARGUMENT] = None,
        filter: Annotated[JSON | None, FILTER_ARGUMENT] = None,
        saved: Annotated[str | None, SAVED_ARGUMENT] = None,
        with_metadata: bool = True,
        with_annotations: bool = True,
        target_dir: str | None = None,
    ) -> Execution:
        ctx = info.context
        dql, filter = await chosen_query(info, dataset_id, "items", saved, dql, filter)
        input = {
            "datasetId": dataset_id,
            "name": name,
            "itemIds": item_ids,
            "dql": dql,
            "filter": filter,
            "withMetadata": with_metadata,
            "withAnnotations": with_annotations,
            "targetDir": target_dir,
        }
        row = await operations.start(ctx.platform, await ctx.actor(), "clone_dataset", input)
        return Execution.of(row)

    @strawberry.mutation(
        description="A new dataset with copies of the items of several datasets of one project. "
        "The first dataset to use a path keeps it; a later one's clashing item goes to "
        "`/<its dataset name>/<path>` (then ` (2)`, ` (3)`... before the extension). Runs as an "
        "execution (returned); its output names the new dataset: `{datasetId, name}`."
    )
    async def merge_datasets(
        self,
        info: Info,
        dataset_ids: list[strawberry.ID],
        name: str,
        with_metadata: bool = True,
        with_annotations: bool = True,
    ) -> Execution:
        ctx = info.context
        input = {
            "datasetIds": list(dataset_ids),
            "name": name,
            "withMetadata": with_metadata,
            "withAnnotations": with_annotations,
        }
        row = await operations.start(ctx.platform, await ctx.actor(), "merge_datasets", input)
        return Execution.of(row)
