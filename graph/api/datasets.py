"""Datasets."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import strawberry

from graph.api.context import Info
from graph.api.facets import (
    BINS_ARGUMENT,
    FIELD_ARGUMENT,
    LIMIT_ARGUMENT,
    MAX_ARGUMENT,
    MIN_ARGUMENT,
    Facet,
    Histogram,
)
from graph.api.items import DIR_ARGUMENT, DQL_ARGUMENT, FILTER_ARGUMENT, ItemListing, list_items
from graph.api.recipes import Recipe
from graph.api.saved_queries import SAVED_ARGUMENT, chosen_query
from graph.api.scalars import JSON, LIST_DQL, Connection, iso, to_connection
from graph.db.tables import Dataset as DatasetRow
from graph.domain import datasets, facets, saved_queries

if TYPE_CHECKING:
    from graph.api.items import Item

__all__ = ["Dataset", "DatasetMutations", "DatasetQueries"]

_ANNOTATION_DQL = strawberry.argument(
    description='A DQL query over annotations, e.g. `type = "box" and confidence > 0.5`.'
)
_ITEM_DQL = strawberry.argument(description="A DQL query over items: only their annotations count.")


@strawberry.type
class Dataset:
    id: strawberry.ID
    project_id: strawberry.ID
    name: str
    driver_id: strawberry.ID | None
    readonly: bool
    src_dataset_id: strawberry.ID | None
    recipe_id: strawberry.ID | None
    items_count: int
    annotations_count: int
    metadata: JSON
    creator: str
    created_at: str | None
    updated_at: str | None
    last_synced_at: str | None

    @classmethod
    def of(cls, row: DatasetRow) -> Dataset:
        return cls(
            id=strawberry.ID(row.id),
            project_id=strawberry.ID(row.project_id),
            name=row.name,
            driver_id=row.driver_id,
            readonly=row.readonly,
            src_dataset_id=row.src_dataset_id,
            recipe_id=row.recipe_id,
            items_count=row.items_count,
            annotations_count=row.annotations_count,
            metadata=row.metadata_,
            creator=row.creator,
            created_at=iso(row.created_at),
            updated_at=iso(row.updated_at),
            last_synced_at=iso(row.last_synced_at),
        )

    @strawberry.field(
        description="The recipe annotations written to the dataset are checked against; none: "
        "any label is accepted."
    )
    async def recipe(self, info: Info) -> Recipe | None:
        if self.recipe_id is None:
            return None
        row = await info.context.loaders.recipe.load(self.recipe_id)
        return None if row is None else Recipe.of(row)

    @strawberry.field(description="The dataset this one was cloned from, if any.")
    async def src_dataset(self, info: Info) -> Dataset | None:
        if self.src_dataset_id is None:
            return None
        row = await info.context.loaders.dataset.load(self.src_dataset_id)
        return None if row is None else Dataset.of(row)

    @strawberry.field(
        description="Items in the dataset matching a query, by its `order by`, else folders "
        "first, then by path."
    )
    async def items(
        self,
        info: Info,
        dql: Annotated[str | None, DQL_ARGUMENT] = None,
        filter: Annotated[JSON | None, FILTER_ARGUMENT] = None,
        dir: Annotated[str | None, DIR_ARGUMENT] = None,
        recursive: bool = True,
        folders: bool = True,
        saved: Annotated[str | None, SAVED_ARGUMENT] = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[Annotated[Item, strawberry.lazy("graph.api.items")]]:
        listing = ItemListing(
            dql=dql, filter=filter, dir=dir, recursive=recursive, folders=folders, saved=saved
        )
        return await list_items(info, self.id, listing, first, after)

    @strawberry.field(
        description="Files of the dataset per value of a field (a column or a metadata path), "
        "among those a query selects (as `items` does)."
    )
    async def facet(
        self,
        info: Info,
        field: Annotated[str, FIELD_ARGUMENT],
        dql: Annotated[str | None, DQL_ARGUMENT] = None,
        filter: Annotated[JSON | None, FILTER_ARGUMENT] = None,
        saved: Annotated[str | None, SAVED_ARGUMENT] = None,
        limit: Annotated[int | None, LIMIT_ARGUMENT] = None,
    ) -> Facet:
        ctx = info.context
        actor = await ctx.actor()
        dql, filter = await chosen_query(info, self.id, "items", saved, dql, filter)
        found = await facets.item_facet(
            ctx.platform, actor, self.id, field, dql=dql, dataloop=filter, limit=limit
        )
        return Facet.of(found)

    @strawberry.field(
        description="Annotations of the dataset per label (or another field), among those an "
        "annotation query selects, on the files an item query selects."
    )
    async def annotation_facet(
        self,
        info: Info,
        field: Annotated[str, FIELD_ARGUMENT] = "label",
        dql: Annotated[str | None, _ANNOTATION_DQL] = None,
        filter: Annotated[JSON | None, FILTER_ARGUMENT] = None,
        item_dql: Annotated[str | None, _ITEM_DQL] = None,
        limit: Annotated[int | None, LIMIT_ARGUMENT] = None,
    ) -> Facet:
        ctx = info.context
        found = await facets.annotation_facet(
            ctx.platform,
            await ctx.actor(),
            self.id,
            field,
            dql=dql,
            dataloop=filter,
            item_dql=item_dql,
            limit=limit,
        )
        return Facet.of(found)

    @strawberry.field(
        description="Files of the dataset per range of a number field (`size`, a metadata "
        "path), among those a query selects."
    )
    async def histogram(
        self,
        info: Info,
        field: Annotated[str, FIELD_ARGUMENT],
        dql: Annotated[str | None, DQL_ARGUMENT] = None,
        filter: Annotated[JSON | None, FILTER_ARGUMENT] = None,
        saved: Annotated[str | None, SAVED_ARGUMENT] = None,
        bins: Annotated[int, BINS_ARGUMENT] = facets.DEFAULT_BINS,
        min: Annotated[float | None, MIN_ARGUMENT] = None,
        max: Annotated[float | None, MAX_ARGUMENT] = None,
    ) -> Histogram:
        ctx = info.context
        actor = await ctx.actor()
        dql, filter = await chosen_query(info, self.id, "items", saved, dql, filter)
        found = await facets.item_histogram(
            ctx.platform,
            actor,
            self.id,
            field,
            dql=dql,
            dataloop=filter,
            bins=bins,
            low=min,
            high=max,
        )
        return Histogram.of(found)

    @strawberry.field(
        description="Annotations of the dataset per range of a number field (`confidence` by "
        "default), as `annotationFacet` selects them."
    )
    async def annotation_histogram(
        self,
        info: Info,
        field: Annotated[str, FIELD_ARGUMENT] = "confidence",
        dql: Annotated[str | None, _ANNOTATION_DQL] = None,
        filter: Annotated[JSON | None, FILTER_ARGUMENT] = None,
        item_dql: Annotated[str | None, _ITEM_DQL] = None,
        bins: Annotated[int, BINS_ARGUMENT] = facets.DEFAULT_BINS,
        min: Annotated[float | None, MIN_ARGUMENT] = None,
        max: Annotated[float | None, MAX_ARGUMENT] = None,
    ) -> Histogram:
        ctx = info.context
        found = await facets.annotation_histogram(
            ctx.platform,
            await ctx.actor(),
            self.id,
            field,
            dql=dql,
            dataloop=filter,
            item_dql=item_dql,
            bins=bins,
            low=min,
            high=max,
        )
        return Histogram.of(found)


@strawberry.type
class DatasetQueries:
    @strawberry.field
    async def dataset(self, info: Info, id: strawberry.ID) -> Dataset:
        ctx = info.context
        return Dataset.of(await datasets.get_dataset(ctx.platform, await ctx.actor(), id))

    @strawberry.field(
        description="Datasets of a project matching a DQL query, by its `order by`, else by name."
    )
    async def datasets(
        self,
        info: Info,
        project_id: strawberry.ID,
        dql: Annotated[str | None, LIST_DQL] = None,
        filter: Annotated[JSON | None, FILTER_ARGUMENT] = None,
        saved: Annotated[str | None, SAVED_ARGUMENT] = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[Dataset]:
        ctx = info.context
        actor = await ctx.actor()
        dql, filter = await saved_queries.project_selection(
            ctx.platform, actor, project_id, "datasets", saved=saved, dql=dql, dataloop=filter
        )
        page = await datasets.list_datasets(
            ctx.platform, actor, project_id, first, after, dql=dql, dataloop=filter
        )
        return to_connection(
            page,
            Dataset.of,
            lambda: datasets.count_datasets(
                ctx.platform, actor, project_id, dql=dql, dataloop=filter
            ),
        )


@strawberry.type
class DatasetMutations:
    @strawberry.mutation(description="Create a dataset, optionally bound to a storage driver.")
    async def create_dataset(
        self,
        info: Info,
        project_id: strawberry.ID,
        name: str,
        driver_id: strawberry.ID | None = None,
    ) -> Dataset:
        ctx = info.context
        row = await datasets.create_dataset(
            ctx.platform, await ctx.actor(), project_id, name, driver_id
        )
        return Dataset.of(row)

    @strawberry.mutation(description="Rename a dataset or lock it (readonly).")
    async def update_dataset(
        self,
        info: Info,
        id: strawberry.ID,
        name: str | None = None,
        readonly: bool | None = None,
    ) -> Dataset:
        ctx = info.context
        row = await datasets.update_dataset(
            ctx.platform, await ctx.actor(), id, name=name, readonly=readonly
        )
        return Dataset.of(row)

    @strawberry.mutation(description="Delete a dataset with its items and annotations.")
    async def delete_dataset(self, info: Info, id: strawberry.ID) -> bool:
        ctx = info.context
        await datasets.delete_dataset(ctx.platform, await ctx.actor(), id)
        return True
