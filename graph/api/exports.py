"""Exporting a dataset's annotations in an annotation format."""

from __future__ import annotations

from typing import Annotated

import strawberry

from graph.api.context import Info
from graph.api.executions import Execution
from graph.api.items import DQL_ARGUMENT, FILTER_ARGUMENT
from graph.api.saved_queries import SAVED_ARGUMENT, chosen_query
from graph.api.scalars import JSON
from graph.domain import exports, formats, operations

__all__ = ["ExportMutations", "ExportQueries"]


@strawberry.type
class ExportQueries:
    @strawberry.field(description="The annotation formats a dataset can be exported to.")
    def export_formats(self, info: Info) -> list[str]:
        return formats.format_names(info.context.platform, "write")

    @strawberry.field(
        description="The annotation formats that can be imported "
        "(`POST /datasets/<id>/imports?format=...`)."
    )
    def import_formats(self, info: Info) -> list[str]:
        return formats.format_names(info.context.platform, "read")


@strawberry.type
class ExportMutations:
    @strawberry.mutation(
        description="Export the annotations of a dataset's files (or of those a query selects; "
        "with `annotationDql`, only the annotations it selects, such as `not has modelName` for "
        "ground truth) in `format` to a zip archive. With `since`, the id of an earlier export "
        "of the dataset, only files changed after it. Runs as an execution (returned), resumed "
        "after a lost worker; its output has `download`, the archive's path "
        "(`GET /executions/<id>/export`), and counts `{items, annotations, leftOut}` (leftOut: "
        "annotations the format cannot hold)."
    )
    async def export_dataset(
        self,
        info: Info,
        dataset_id: strawberry.ID,
        format: str,
        dql: Annotated[str | None, DQL_ARGUMENT] = None,
        filter: Annotated[JSON | None, FILTER_ARGUMENT] = None,
        saved: Annotated[str | None, SAVED_ARGUMENT] = None,
        annotation_dql: str | None = None,
        since: strawberry.ID | None = None,
    ) -> Execution:
        ctx = info.context
        dql, filter = await chosen_query(info, dataset_id, "items", saved, dql, filter)
        input = {
            "datasetId": dataset_id,
            "format": format,
            "dql": dql,
            "filter": filter,
            "annotationDql": annotation_dql,
            "since": since,
        }
        row = await operations.start(ctx.platform, await ctx.actor(), exports.FUNCTION, input)
        return Execution.of(row)
