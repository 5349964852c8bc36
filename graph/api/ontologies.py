"""Ontologies: labels (a tree of dot paths) and attribute definitions (v2) of a project."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any

import strawberry

from graph.api.context import Info
from graph.api.scalars import JSON, LIST_DQL, Connection, iso, to_connection
from graph.db.tables import Ontology as OntologyRow
from graph.domain import ontologies

__all__ = [
    "ATTRIBUTES_ARGUMENT",
    "LABELS_ARGUMENT",
    "Attribute",
    "Label",
    "LabelChange",
    "OnAnnotations",
    "Ontology",
    "OntologyMutations",
    "OntologyQueries",
]

LABELS_ARGUMENT = strawberry.argument(
    description="Labels in Dataloop's form: a tree `[{tag, displayLabel, color, children}]`, or "
    'dot paths `[{tag: "animal.dog"}]` (missing parents are added).'
)
ATTRIBUTES_ARGUMENT = strawberry.argument(
    description="Attribute definitions (v2): `[{key, title, type, scope, optional, values, multi, "
    "range}]`, `type` one of `options`, `range`, `boolean`, `freeText`."
)


@strawberry.type(description="A label of an ontology; annotations carry its `path`.")
class Label:
    tag: str
    path: str
    display_label: str
    color: str
    children: list[Label]

    @classmethod
    def tree(cls, stored: list[dict[str, Any]], parent: str | None = None) -> list[Label]:
        out = []
        for node in stored:
            path = f"{parent}.{node['tag']}" if parent else node["tag"]
            out.append(
                cls(
                    tag=node["tag"],
                    path=path,
                    display_label=node["displayLabel"],
                    color=node["color"],
                    children=cls.tree(node["children"], path),
                )
            )
        return out


@strawberry.type
class AttributeRange:
    min: float
    max: float
    step: float


@strawberry.type(
    description="An attribute (v2) annotations of the labels in its `scope` (`*`: all) give "
    "in `metadata.system.attributes`."
)
class Attribute:
    key: str
    title: str
    type: str
    scope: list[str]
    optional: bool
    values: list[str] | None
    multi: bool | None
    range: AttributeRange | None

    @classmethod
    def of(cls, stored: dict[str, Any]) -> Attribute:
        given = stored.get("range")
        return cls(
            key=stored["key"],
            title=stored["title"],
            type=stored["type"],
            scope=stored["scope"],
            optional=stored["optional"],
            values=stored.get("values"),
            multi=stored.get("multi"),
            range=None if given is None else AttributeRange(**given),
        )


@strawberry.type(description="A project's labels and attribute definitions, used by recipes.")
class Ontology:
    id: strawberry.ID
    project_id: strawberry.ID
    name: str
    labels: list[Label]
    attributes: list[Attribute]
    creator: str
    created_at: str | None
    updated_at: str | None

    @strawberry.field(description="Every label, parents before children, by path.")
    def flat_labels(self) -> list[Label]:
        out: list[Label] = []

        def walk(nodes: list[Label]) -> None:
            for node in nodes:
                out.append(node)
                walk(node.children)

        walk(self.labels)
        return out

    @classmethod
    def of(cls, row: OntologyRow) -> Ontology:
        return cls(
            id=strawberry.ID(row.id),
            project_id=strawberry.ID(row.project_id),
            name=row.name,
            labels=Label.tree(row.labels),
            attributes=[Attribute.of(a) for a in row.attributes],
            creator=row.creator,
            created_at=iso(row.created_at),
            updated_at=iso(row.updated_at),
        )


@strawberry.type(description="An ontology after a label change, and the annotations it changed.")
class LabelChange:
    ontology: Ontology
    annotations: int = strawberry.field(
        description="How many annotations were relabelled (rename) or deleted (delete)."
    )

    @classmethod
    def of(cls, change: ontologies.LabelChange) -> LabelChange:
        return cls(ontology=Ontology.of(change.ontology), annotations=change.annotations)


@strawberry.enum(description="What deleting a label does to the annotations that use it.")
class OnAnnotations(Enum):
    REFUSE = "refuse"
    DELETE = "delete"
    KEEP = "keep"


@strawberry.type
class OntologyQueries:
    @strawberry.field
    async def ontology(self, info: Info, id: strawberry.ID) -> Ontology:
        ctx = info.context
        return Ontology.of(await ontologies.get_ontology(ctx.platform, await ctx.actor(), id))

    @strawberry.field(
        description="The ontologies of a project matching a DQL query, by its `order by`, else "
        "by name."
    )
    async def ontologies(
        self,
        info: Info,
        project_id: strawberry.ID,
        dql: Annotated[str | None, LIST_DQL] = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[Ontology]:
        ctx = info.context
        actor = await ctx.actor()
        page = await ontologies.list_ontologies(
            ctx.platform, actor, project_id, dql=dql, first=first, after=after
        )
        return to_connection(
            page,
            Ontology.of,
            lambda: ontologies.count_ontologies(ctx.platform, actor, project_id, dql=dql),
        )


@strawberry.type
class OntologyMutations:
    @strawberry.mutation(description="An ontology with labels and attribute definitions.")
    async def create_ontology(
        self,
        info: Info,
        project_id: strawberry.ID,
        name: str,
        labels: Annotated[JSON | None, LABELS_ARGUMENT] = None,
        attributes: Annotated[JSON | None, ATTRIBUTES_ARGUMENT] = None,
    ) -> Ontology:
        ctx = info.context
        row = await ontologies.create_ontology(
            ctx.platform, await ctx.actor(), project_id, name, labels=labels, attributes=attributes
        )
        return Ontology.of(row)

    @strawberry.mutation(
        description="Rename an ontology and/or replace its attribute definitions (existing "
        "annotations are not changed; their values are checked on their next write)."
    )
    async def update_ontology(
        self,
        info: Info,
        id: strawberry.ID,
        name: str | None = strawberry.UNSET,
        attributes: Annotated[JSON | None, ATTRIBUTES_ARGUMENT] = strawberry.UNSET,
    ) -> Ontology:
        given = {"name": name, "attributes": attributes}
        changes = {k: v for k, v in given.items() if v is not strawberry.UNSET}
        ctx = info.context
        row = await ontologies.update_ontology(ctx.platform, await ctx.actor(), id, changes)
        return Ontology.of(row)

    @strawberry.mutation(description="Delete an ontology no recipe uses; returns true.")
    async def delete_ontology(self, info: Info, id: strawberry.ID) -> bool:
        ctx = info.context
        await ontologies.delete_ontology(ctx.platform, await ctx.actor(), id)
        return True

    @strawberry.mutation(
        description="Add labels; one that exists is refused (`CONFLICT`) unless `upsert`, which "
        "sets its display name and color. Annotations are not touched."
    )
    async def add_labels(
        self,
        info: Info,
        ontology_id: strawberry.ID,
        labels: Annotated[JSON, LABELS_ARGUMENT],
        upsert: bool = False,
    ) -> Ontology:
        ctx = info.context
        row = await ontologies.add_labels(
            ctx.platform, await ctx.actor(), ontology_id, labels, upsert=upsert
        )
        return Ontology.of(row)

    @strawberry.mutation(
        description="Rename or move a label with its sub-labels; the annotations of datasets "
        "whose recipe uses the ontology are relabelled in the same transaction."
    )
    async def rename_label(
        self, info: Info, ontology_id: strawberry.ID, label: str, new_label: str
    ) -> LabelChange:
        ctx = info.context
        change = await ontologies.rename_label(
            ctx.platform, await ctx.actor(), ontology_id, label, new_label
        )
        return LabelChange.of(change)

    @strawberry.mutation(
        description="Delete a label with its sub-labels. While annotations of datasets whose "
        "recipe uses the ontology carry it, this is refused (`CONFLICT`) unless `onAnnotations` "
        "is `DELETE` (they are deleted too) or `KEEP` (they stay as they are)."
    )
    async def delete_label(
        self,
        info: Info,
        ontology_id: strawberry.ID,
        label: str,
        on_annotations: OnAnnotations = OnAnnotations.REFUSE,
    ) -> LabelChange:
        ctx = info.context
        change = await ontologies.delete_label(
            ctx.platform, await ctx.actor(), ontology_id, label, on_annotations=on_annotations.value
        )
        return LabelChange.of(change)
