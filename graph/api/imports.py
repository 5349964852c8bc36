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
        "driver of the project onto the dataset's files (matched by path, else by name); with "
        "`withImages`, the images of the folder (where the format keeps them: COCO and CVAT "
        "`images/`, VOC `JPEGImages/`, YOLO `obj_<subset>_data/` and `images/`, Dataloop JSON "
        "`items/`) are uploaded first (needs the developer role). Runs as an execution "
        "(returned); its output counts `{files, matched, annotations, imagesUploaded, "
        "imagesPresent, problemCount}` and lists the first 100 `problems` with their place. An "
        "archive is sent instead to `POST /datasets/<id>/imports?format=...`."
    )
    async def import_annotations(
        self,
        info: Info,
        dataset_id: strawberry.ID,
        format: str,
        driver_id: strawberry.ID,
        folder: str = "",
        out_of_bounds: OutOfBounds = OutOfBounds.REJECT,
        with_images: bool = False,
    ) -> Execution:
        ctx = info.context
        input = {
            "datasetId": dataset_id,
            "format": format,
            "driverId": driver_id,
            "folder": folder,
            "outOfBounds": out_of_bounds.value,
            "withImages": with_images,
        }
        row = await operations.start(ctx.platform, await ctx.actor(), imports.FUNCTION, input)
        return Execution.of(row)
