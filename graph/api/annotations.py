"""Annotations."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any

import strawberry

from graph.api.context import Info
from graph.api.saved_queries import SAVED_ARGUMENT, chosen_query
from graph.api.scalars import JSON, Connection, iso, to_connection
from graph.db.tables import Annotation as AnnotationRow
from graph.domain import annotations

__all__ = ["Annotation", "AnnotationMutations", "AnnotationQueries", "OutOfBounds"]


@strawberry.enum(description="What to do with a point outside the item (its size known).")
class OutOfBounds(Enum):
    REJECT = "reject"
    CLIP = "clip"


@strawberry.type
class ModelInfo:
    id: strawberry.ID | None
    name: str | None
    confidence: float | None


@strawberry.type(description="An annotation with Dataloop's fields.")
class Annotation:
    id: strawberry.ID
    item_id: strawberry.ID
    dataset_id: strawberry.ID
    type: str
    label: str | None
    coordinates: JSON | None
    attributes: JSON | None
    object_id: str | None
    frame: int | None
    end_frame: int | None
    parent_id: strawberry.ID | None
    status: str | None
    source: str
    creator: str = strawberry.field(description="Who made it: the user, or who ran the function.")
    execution_id: strawberry.ID | None = strawberry.field(
        description="The execution of a function that made it, if one did."
    )
    model: ModelInfo | None
    description: str | None
    metadata: JSON
    created_at: str | None
    updated_at: str | None

    @classmethod
    def of(cls, row: AnnotationRow) -> Annotation:
        has_model = row.model_id or row.model_name or row.confidence is not None
        return cls(
            id=strawberry.ID(row.id),
            item_id=strawberry.ID(row.item_id),
            dataset_id=strawberry.ID(row.dataset_id),
            type=row.type,
            label=row.label,
            coordinates=row.coordinates,
            attributes=row.attributes,
            object_id=row.object_id,
            frame=row.frame,
            end_frame=row.end_frame,
            parent_id=row.parent_id,
            status=row.status,
            source=row.source,
            creator=row.creator,
            execution_id=None if row.execution_id is None else strawberry.ID(row.execution_id),
            model=ModelInfo(id=row.model_id, name=row.model_name, confidence=row.confidence)
            if has_model
            else None,
            description=row.description,
            metadata=row.metadata_,
            created_at=iso(row.created_at),
            updated_at=iso(row.updated_at),
        )


@strawberry.input
class ModelInfoInput:
    id: strawberry.ID | None = None
    name: str | None = None
    confidence: float | None = None


@strawberry.input(description="An annotation to create; coordinates follow Dataloop's layouts.")
class AnnotationInput:
    type: str
    label: str | None = None
    coordinates: JSON | None = None
    attributes: JSON | None = None
    object_id: str | None = None
    frame: int | None = None
    end_frame: int | None = None
    parent_id: strawberry.ID | None = None
    status: str | None = None
    source: str = "api"
    model: ModelInfoInput | None = None
    description: str | None = None
    metadata: JSON | None = None

    def spec(self) -> annotations.AnnotationSpec:
        model = self.model or ModelInfoInput()
        return annotations.AnnotationSpec(
            type=self.type,
            label=self.label,
            coordinates=self.coordinates,
            attributes=self.attributes,
            object_id=self.object_id,
            frame=self.frame,
            end_frame=self.end_frame,
            parent_id=self.parent_id,
            status=self.status,
            source=self.source,
            model_id=model.id,
            model_name=model.name,
            confidence=model.confidence,
            description=self.description,
            metadata=self.metadata if self.metadata is not None else {},
        )


@strawberry.input(description="Fields to change; only the fields given are touched.")
class AnnotationPatch:
    label: str | None = strawberry.UNSET
    coordinates: JSON | None = strawberry.UNSET
    attributes: JSON | None = strawberry.UNSET
    object_id: str | None = strawberry.UNSET
    frame: int | None = strawberry.UNSET
    end_frame: int | None = strawberry.UNSET
    status: str | None = strawberry.UNSET
    description: str | None = strawberry.UNSET
    metadata: JSON | None = strawberry.UNSET
    model: ModelInfoInput | None = strawberry.UNSET

    def changes(self) -> dict[str, Any]:
        out = {
            name: value
            for name, value in vars(self).items()
            if value is not strawberry.UNSET and name != "model"
        }
        if self.model is not strawberry.UNSET:
            model = self.model or ModelInfoInput()
            out.update(model_id=model.id, model_name=model.name, confidence=model.confidence)
        return out


@strawberry.type
class AnnotationQueries:
    @strawberry.field
    async def annotation(self, info: Info, id: strawberry.ID) -> Annotation:
        ctx = info.context
        return Annotation.of(await annotations.get_annotation(ctx.platform, await ctx.actor(), id))

    @strawberry.field(
        description="Annotations of a dataset matching a query (`item.*` reaches the item), by "
        "its `order by`, else in creation order."
    )
    async def annotations(
        self,
        info: Info,
        dataset_id: strawberry.ID,
        dql: str | None = None,
        filter: JSON | None = None,
        saved: Annotated[str | None, SAVED_ARGUMENT] = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[Annotation]:
        ctx = info.context
        actor = await ctx.actor()
        dql, filter = await chosen_query(info, dataset_id, "annotations", saved, dql, filter)
        page = await annotations.list_annotations(
            ctx.platform, actor, dataset_id, dql=dql, dataloop=filter, first=first, after=after
        )
        return to_connection(
            page,
            Annotation.of,
            lambda: annotations.count_annotations(
                ctx.platform, actor, dataset_id, dql=dql, dataloop=filter
            ),
        )


@strawberry.type
class AnnotationMutations:
    @strawberry.mutation(description="Add annotations to an item, all or none.")
    async def create_annotations(
        self,
        info: Info,
        item_id: strawberry.ID,
        annotations_: Annotated[list[AnnotationInput], strawberry.argument(name="annotations")],
        out_of_bounds: OutOfBounds = OutOfBounds.REJECT,
    ) -> list[Annotation]:
        ctx = info.context
        rows = await annotations.create_annotations(
            ctx.platform,
            await ctx.actor(),
            item_id,
            [a.spec() for a in annotations_],
            outside=out_of_bounds.value,
        )
        return [Annotation.of(r) for r in rows]

    @strawberry.mutation
    async def update_annotation(
        self,
        info: Info,
        id: strawberry.ID,
        patch: AnnotationPatch,
        out_of_bounds: OutOfBounds = OutOfBounds.REJECT,
    ) -> Annotation:
        ctx = info.context
        row = await annotations.update_annotation(
            ctx.platform, await ctx.actor(), id, patch.changes(), outside=out_of_bounds.value
        )
        return Annotation.of(row)

    @strawberry.mutation(description="Delete annotations (with their child annotations).")
    async def delete_annotations(self, info: Info, ids: list[strawberry.ID]) -> int:
        ctx = info.context
        return await annotations.delete_annotations(ctx.platform, await ctx.actor(), ids)
