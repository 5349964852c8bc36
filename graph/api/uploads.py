"""File uploads through GraphQL (the multipart request spec); large files go to the HTTP route."""

from __future__ import annotations

import strawberry
from strawberry.file_uploads import Upload

from graph.api.context import Info
from graph.api.items import Item
from graph.api.scalars import JSON
from graph.domain import uploads

__all__ = ["UploadMutations", "UploadResult"]


@strawberry.type(description="An uploaded file's item and what happened to it.")
class UploadResult:
    op: str = strawberry.field(description="`created`, `skipped` or `overwritten`.")
    item: Item

    @classmethod
    def of(cls, result: uploads.UploadResult) -> UploadResult:
        return cls(op=result.op, item=Item.of(result.item))


@strawberry.type
class UploadMutations:
    @strawberry.mutation(
        description="Upload files into a dataset folder in one transaction (GraphQL multipart "
        "request; the whole request is limited like any GraphQL body, so send large files to "
        "`POST /datasets/{id}/items`). A file name may hold sub-folders (`a/b.jpg`); `metadata` "
        "becomes every file's `metadata.user`; `mode` `skip` or `overwrite` decides for paths "
        "that exist."
    )
    async def upload_items(
        self,
        info: Info,
        dataset_id: strawberry.ID,
        files: list[Upload],
        dir: str = "/",
        mode: str = "skip",
        metadata: JSON | None = None,
    ) -> list[UploadResult]:
        ctx = info.context
        incoming = [
            uploads.IncomingFile(
                uploads.remote_path(dir, f.filename, field=f"files[{i}]"),
                f.file,
                mimetype=f.content_type,
                metadata=metadata,
            )
            for i, f in enumerate(files)
        ]
        results = await uploads.upload_files(
            ctx.platform, await ctx.actor(), dataset_id, incoming, mode
        )
        return [UploadResult.of(r) for r in results]
