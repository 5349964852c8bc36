"""Items and folders."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import strawberry

from graph.api.context import Info
from graph.api.saved_queries import SAVED_ARGUMENT, chosen_query
from graph.api.scalars import JSON, Connection, iso, to_connection
from graph.db.tables import Item as ItemRow
from graph.domain import items

if TYPE_CHECKING:
    from graph.api.annotations import Annotation
    from graph.api.datasets import Dataset
    from graph.api.tasks import ItemTaskStatus

__all__ = ["Item", "ItemListing", "ItemMutations", "ItemQueries", "list_items"]


@strawberry.type(description="A file, a linked URL or a folder (type `dir`) in a dataset.")
class Item:
    id: strawberry.ID
    dataset_id: strawberry.ID
    type: str
    dir: str
    name: str
    filename: str = strawberry.field(description="The full remote path, e.g. `/train/a.jpg`.")
    hidden: bool
    mimetype: str | None
    size: int | None
    width: int | None
    height: int | None
    url: str | None = strawberry.field(description="The URL a linked item points at.")
    description: str | None
    metadata: JSON = strawberry.field(description="`{system, user}`; only `user` is writable.")
    src_item_id: strawberry.ID | None
    creator: str
    created_at: str | None
    updated_at: str | None
    stream: str | None = strawberry.field(description="Where to download the bytes (HTTP GET).")
    thumbnail: str | None
    stored_annotated: strawberry.Private[bool]
    stored_annotations_count: strawberry.Private[int]

    @classmethod
    def of(cls, row: ItemRow) -> Item:
        is_file = row.type == "file"
        return cls(
            id=strawberry.ID(row.id),
            dataset_id=strawberry.ID(row.dataset_id),
            type=row.type,
            dir=row.dir,
            name=row.name,
            filename=row.filename,
            hidden=row.hidden,
            mimetype=row.mimetype,
            size=row.size,
            width=row.width,
            height=row.height,
            url=row.url,
            stored_annotated=row.annotated,
            stored_annotations_count=row.annotations_count,
            description=row.description,
            metadata={
                "system": items.system_metadata(row),
                "user": row.metadata_.get("user") or {},
            },
            src_item_id=row.src_item_id,
            creator=row.creator,
            created_at=iso(row.created_at),
            updated_at=iso(row.updated_at),
            stream=f"/items/{row.id}/stream" if is_file else None,
            thumbnail=f"/items/{row.id}/thumbnail" if row.thumbnail_blob_id else None,
        )

    async def _own(self, info: Info) -> int | None:
        # on a consensus copy the caller annotates, its own (the others' are out of its sight)
        return await info.context.loaders.own_annotations_count.load(self.id)

    @strawberry.field(
        description="Whether it has annotations (on a consensus copy the caller annotates: "
        "of its own)."
    )
    async def annotated(self, info: Info) -> bool:
        own = await self._own(info)
        return self.stored_annotated if own is None else own > 0

    @strawberry.field(
        description="How many annotations it has (on a consensus copy the caller annotates: "
        "of its own)."
    )
    async def annotations_count(self, info: Info) -> int:
        own = await self._own(info)
        return self.stored_annotations_count if own is None else own

    @strawberry.field
    async def dataset(
        self, info: Info
    ) -> Annotated[Dataset, strawberry.lazy("graph.api.datasets")] | None:
        from graph.api.datasets import Dataset

        row = await info.context.loaders.dataset.load(self.dataset_id)
        return None if row is None else Dataset.of(row)

    @strawberry.field(description="The item this one was cloned from, if any.")
    async def src_item(self, info: Info) -> Item | None:
        if self.src_item_id is None:
            return None
        row = await info.context.loaders.item.load(self.src_item_id)
        return None if row is None else Item.of(row)

    @strawberry.field
    async def annotations(
        self, info: Info
    ) -> list[Annotated[Annotation, strawberry.lazy("graph.api.annotations")]]:
        from graph.api.annotations import Annotation

        rows = await info.context.loaders.annotations_of_item.load(self.id)
        return [Annotation.of(row) for row in rows]

    @strawberry.field(
        description="The item's status in each task it is in (null: none yet); on a consensus "
        "copy the caller annotates, only its own."
    )
    async def task_statuses(
        self, info: Info
    ) -> list[Annotated[ItemTaskStatus, strawberry.lazy("graph.api.tasks")]]:
        from graph.api.tasks import ItemTaskStatus

        rows = await info.context.loaders.task_items_of_item.load(self.id)
        return [ItemTaskStatus.of(row) for row in rows]


async def list_items(
    info: Info,
    dataset_id: str,
    where: ItemListing,
    first: int | None,
    after: str | None,
) -> Connection[Item]:
    ctx = info.context
    actor = await ctx.actor()
    options = where.options()
    options["dql"], options["dataloop"] = await chosen_query(
        info, dataset_id, "items", where.saved, where.dql, where.filter
    )
    page = await items.list_items(
        ctx.platform, actor, dataset_id, **options, first=first, after=after
    )
    return to_connection(
        page, Item.of, lambda: items.count_items(ctx.platform, actor, dataset_id, **options)
    )


DQL_ARGUMENT = strawberry.argument(
    description='A DQL query, e.g. `width >= 640 and annotations.any(label = "cat") '
    "order by createdAt desc`."
)
FILTER_ARGUMENT = strawberry.argument(
    description="A Dataloop JSON query (`{filter, join, sort}`) as dtlpy sends it; ANDed with `dql`."
)
DIR_ARGUMENT = strawberry.argument(
    description="Only items below (with `recursive: false`, in) this folder."
)


@dataclass(frozen=True)
class ItemListing:
    """Which items of a dataset to list (the arguments both item lists take)."""

    dql: str | None = None
    filter: Any = None
    dir: str | None = None
    recursive: bool = True
    folders: bool = True
    saved: str | None = None

    def options(self) -> dict[str, Any]:
        return {
            "dql": self.dql,
            "dataloop": self.filter,
            "dir": self.dir,
            "recursive": self.recursive,
            "folders": self.folders,
        }


@strawberry.type
class ItemQueries:
    @strawberry.field
    async def item(self, info: Info, id: strawberry.ID) -> Item:
        ctx = info.context
        return Item.of(await items.get_item(ctx.platform, await ctx.actor(), id))

    @strawberry.field(
        description="Items of a dataset matching a query, by its `order by`, else folders "
        "first, then by path."
    )
    async def items(
        self,
        info: Info,
        dataset_id: strawberry.ID,
        dql: Annotated[str | None, DQL_ARGUMENT] = None,
        filter: Annotated[JSON | None, FILTER_ARGUMENT] = None,
        dir: Annotated[str | None, DIR_ARGUMENT] = None,
        recursive: bool = True,
        folders: bool = True,
        saved: Annotated[str | None, SAVED_ARGUMENT] = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[Item]:
        listing = ItemListing(
            dql=dql, filter=filter, dir=dir, recursive=recursive, folders=folders, saved=saved
        )
        return await list_items(info, dataset_id, listing, first, after)


@strawberry.type
class ItemMutations:
    @strawberry.mutation(description="Create a folder (and its parents) in a dataset.")
    async def create_folder(self, info: Info, dataset_id: strawberry.ID, path: str) -> Item:
        ctx = info.context
        return Item.of(await items.create_folder(ctx.platform, await ctx.actor(), dataset_id, path))

    @strawberry.mutation(
        description="Rename an item, set its description (empty string clears it) or replace "
        "its user metadata."
    )
    async def update_item(
        self,
        info: Info,
        id: strawberry.ID,
        name: str | None = None,
        description: str | None = None,
        metadata: JSON | None = None,
    ) -> Item:
        ctx = info.context
        row = await items.update_item(
            ctx.platform,
            await ctx.actor(),
            id,
            name=name,
            description=description,
            user_metadata=metadata,
        )
        return Item.of(row)

    @strawberry.mutation(description="Move items (folders with their content) into a folder.")
    async def move_items(
        self, info: Info, item_ids: list[strawberry.ID], to_dir: str
    ) -> list[Item]:
        ctx = info.context
        rows = await items.move_items(ctx.platform, await ctx.actor(), item_ids, to_dir)
        return [Item.of(r) for r in rows]

    @strawberry.mutation(
        description="Delete items (folders with their content); returns files gone."
    )
    async def delete_items(self, info: Info, item_ids: list[strawberry.ID]) -> int:
        ctx = info.context
        return await items.delete_items(ctx.platform, await ctx.actor(), item_ids)
