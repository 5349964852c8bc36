"""Importing annotations from a storage driver's folder (archives come by HTTP: graph/routes.py)."""

from __future__ import annotations

import strawberry

from graph.api.annotations import OutOfBounds
from graph.api.context import Info
from graph.api.executions import Execution
from graph.domain import imports, operations

__all__ = ["ImportMutations"]


@strawberry.type
class ImportMutations:
    @strawberry.mutation(
        description="Import annotations in `format` from the files below `folder` of a storage "
        "driver of the project onto the dataset's files (matched by path, else by name). Runs as "
        "an execution (returned); its output counts `{files, matched, annotations, "
        "problemCount}` and lists the first 100 `problems` with their place. An archive is sent "
        "instead to `POST /datasets/<id>/imports?format=...`."
    )
    async def import_annotations(
        self,
        info: Info,
        dataset_id: strawberry.ID,
        format: str,
        driver_id: strawberry.ID,
        folder: str = "",
        out_of_bounds: OutOfBounds = OutOfBounds.REJECT,
    ) -> Execution:
        ctx = info.context
        input = {
            "datasetId": dataset_id,
            "format": format,
            "driverId": driver_id,
            "folder": folder,
            "outOfBounds": out_of_bounds.value,
        }
        row = await operations.start(ctx.platform, await ctx.actor(), imports.FUNCTION, input)
        return Execution.of(row)
