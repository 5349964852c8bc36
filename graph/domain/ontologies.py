"""Ontologies: a project's labels (a tree of dot paths) and attribute definitions (v2), used by
recipes to check the annotations of their datasets.

Annotation managers, developers and owners edit them; annotators read them. Labels change by
:func:`add_labels`, :func:`rename_label` and :func:`delete_label`, each with a defined effect on
the annotations of the datasets whose recipe uses the ontology:

- adding touches no annotation;
- renaming (``animal.dog`` to ``animal.canine``) relabels those annotations of the label and of
  its sub-labels (``animal.dog.puppy`` becomes ``animal.canine.puppy``) in one statement, in the
  same transaction, with an ``annotation updated`` event each, and the labels of their video
  keyframes; attribute scopes follow;
- deleting a label (with its sub-labels) is refused while such annotations use it, unless
  ``on_annotations`` says ``delete`` (they go, with their child annotations) or ``keep`` (they
  stay as they are, and an update of one must then give a label the ontology has). Attribute
  scopes lose the label; an attribute scoped to nothing else goes.

Either refuses (``CONFLICT``) when a read-only dataset holds annotations it would change.
Changing attribute definitions changes no annotation: values are checked on the next write.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    bindparam,
    func,
    literal,
    not_,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from graph.db.tables import Annotation, Dataset, Ontology, Recipe, utcnow
from graph.domain import annotations, attributes, events, keyframes, labels, listing
from graph.domain.access import Actor, Role, check_role, member_role, require_role
from graph.domain.errors import Conflict, InvalidInput, NotFound
from graph.domain.paging import Page
from graph.domain.platform import Platform

__all__ = [
    "EDITOR",
    "ON_ANNOTATIONS",
    "LabelChange",
    "add_labels",
    "check_name",
    "count_ontologies",
    "create_ontology",
    "delete_label",
    "delete_ontology",
    "get_ontology",
    "insert_ontology",
    "list_ontologies",
    "ontology_for",
    "rename_label",
    "update_ontology",
]

EDITOR = Role.annotationManager  # who edits ontologies and recipes
ON_ANNOTATIONS = ("refuse", "delete", "keep")
_A = Annotation.__table__
_CHANGEABLE = ("name", "attributes")


@dataclass(frozen=True)
class LabelChange:
    """An ontology after a label change, and how many annotations the change relabelled or
    deleted."""

    ontology: Ontology
    annotations: int


def check_name(name: Any, what: str) -> str:
    name = name.strip() if isinstance(name, str) else ""
    if not name or len(name) > 200:
        raise InvalidInput(f"{what}'s name must have 1 to 200 characters", field="name")
    return name


async def ontology_for(
    session: AsyncSession, actor: Actor, ontology_id: str, needed: Role, *, writing: bool = False
) -> Ontology:
    """The ontology, if the actor has ``needed`` in its project; one statement. ``writing`` locks
    its row (PostgreSQL), so concurrent label edits apply one after the other."""
    statement = select(Ontology, member_role(actor, Ontology.project_id)).where(
        Ontology.id == ontology_id
    )
    if writing:
        statement = statement.with_for_update(of=Ontology)
    row = (await session.execute(statement)).first()
    if row is None:
        raise NotFound("ontology", ontology_id)
    ontology, role = row
    check_role(actor, None if role is None else Role[role], needed, "ontology", ontology_id)
    return ontology


# --- reading --------------------------------------------------------------------------------------


async def get_ontology(platform: Platform, actor: Actor, ontology_id: str) -> Ontology:
    async with platform.db.read() as session:
        return await ontology_for(session, actor, ontology_id, Role.annotator)


async def list_ontologies(
    platform: Platform,
    actor: Actor,
    project_id: str,
    *,
    dql: str | None = None,
    first: int | None = None,
    after: str | None = None,
) -> Page[Ontology]:
    """The project's ontologies matching a DQL query, by its ``order by``, else by name."""
    return await listing.list_named(
        platform, actor, Ontology, "ontologies", project_id, first, after, dql=dql
    )


async def count_ontologies(
    platform: Platform, actor: Actor, project_id: str, *, dql: str | None = None
) -> int:
    return await listing.count_named(platform, actor, Ontology, "ontologies", project_id, dql=dql)


# --- writing --------------------------------------------------------------------------------------


async def _event(
    session: AsyncSession, actor: Actor, ontology: Ontology, action: str, **payload: Any
) -> None:
    await events.record(
        session,
        project_id=ontology.project_id,
        resource="ontology",
        action=action,
        resource_id=ontology.id,
        actor=actor.email,
        payload={"name": ontology.name, **payload},
    )


async def insert_ontology(
    session: AsyncSession,
    actor: Actor,
    project_id: str,
    name: str,
    given_labels: Any = None,
    given_attributes: Any = None,
) -> Ontology:
    """Add an ontology in the caller's transaction (a recipe made with its labels makes one)."""
    name = check_name(name, "an ontology")
    flat = labels.completed(labels.parse_labels([] if given_labels is None else given_labels))
    definitions = attributes.check_definitions(
        [] if given_attributes is None else given_attributes, flat
    )
    await listing.check_free(session, Ontology, project_id, name, "an ontology")
    ontology = Ontology(
        project_id=project_id,
        name=name,
        labels=labels.tree(flat),
        attributes=definitions,
        creator=actor.email,
    )
    session.add(ontology)
    await listing.save_named(session, ontology, "an ontology")
    await _event(session, actor, ontology, "created")
    return ontology


async def create_ontology(
    platform: Platform,
    actor: Actor,
    project_id: str,
    name: str,
    *,
    labels: Any = None,
    attributes: Any = None,
) -> Ontology:
    """An ontology with ``labels`` (a tree or dot paths) and ``attributes`` (v2 definitions)."""
    async with platform.db.write() as session:
        await require_role(session, actor, project_id, EDITOR)
        return await insert_ontology(session, actor, project_id, name, labels, attributes)


async def update_ontology(
    platform: Platform, actor: Actor, ontology_id: str, changes: Mapping[str, Any]
) -> Ontology:
    """Rename it and/or replace its attribute definitions (``attributes``); labels change by
    :func:`add_labels`, :func:`rename_label` and :func:`delete_label`."""
    unknown = sorted(set(changes) - set(_CHANGEABLE))
    if unknown:
        raise InvalidInput(f"cannot change {', '.join(unknown)}", field=unknown[0])
    async with platform.db.write() as session:
        ontology = await ontology_for(session, actor, ontology_id, EDITOR, writing=True)
        if "name" in changes:
            name = check_name(changes["name"], "an ontology")
            if name != ontology.name:
                await listing.check_free(
                    session, Ontology, ontology.project_id, name, "an ontology"
                )
            ontology.name = name
        if "attributes" in changes:
            ontology.attributes = attributes.check_definitions(
                changes["attributes"], labels.flatten(ontology.labels)
            )
        ontology.updated_at = utcnow()
        await listing.save_named(session, ontology, "an ontology")
        await _event(session, actor, ontology, "updated", fields=sorted(changes))
    return ontology


async def delete_ontology(platform: Platform, actor: Actor, ontology_id: str) -> None:
    """Delete an ontology no recipe uses."""
    async with platform.db.write() as session:
        ontology = await ontology_for(session, actor, ontology_id, EDITOR, writing=True)
        users = list(
            await session.scalars(select(Recipe.name).where(Recipe.ontology_id == ontology_id))
        )
        if users:
            raise Conflict(
                f"ontology {ontology.name!r} is used by recipes {', '.join(sorted(users))}",
                id=ontology_id,
            )
        await session.delete(ontology)
        await _event(session, actor, ontology, "deleted")


# --- labels ---------------------------------------------------------------------------------------


def _of_label(path: str) -> ColumnElement[bool]:
    """Annotations of ``path`` or of a label under it (``substr``: exact on both dialects, where
    ``LIKE`` ignores case on SQLite and needs escaping)."""
    return or_(_A.c.label == path, func.substr(_A.c.label, 1, len(path) + 1) == path + ".")


def _datasets_using(ontology_id: str) -> Select[Any]:
    return (
        select(Dataset.id)
        .join(Recipe, Recipe.id == Dataset.recipe_id)
        .where(Recipe.ontology_id == ontology_id)
    )


async def _usage(session: AsyncSession, ontology_id: str, path: str) -> list[tuple[Dataset, int]]:
    """The datasets using the ontology that hold annotations of ``path``, with how many."""
    rows = await session.execute(
        select(Dataset, func.count())
        .join(Recipe, Recipe.id == Dataset.recipe_id)
        .join(_A, _A.c.dataset_id == Dataset.id)
        .where(Recipe.ontology_id == ontology_id, _of_label(path))
        .group_by(Dataset.id)
        .order_by(Dataset.name)
    )
    return [(dataset, int(n)) for dataset, n in rows]


def _refuse_locked(usage: Sequence[tuple[Dataset, int]], path: str) -> None:
    for dataset, n in usage:
        if dataset.readonly:
            raise Conflict(
                f"dataset {dataset.name!r} is read-only and holds {n} annotations of label "
                f"{path!r}; unlock it first",
                id=dataset.id,
            )


async def _refuse_locked_keyframes(session: AsyncSession, dataset_ids: set[str], path: str) -> None:
    locked = await session.scalar(
        select(Dataset.name).where(Dataset.id.in_(sorted(dataset_ids)), Dataset.readonly)
    )
    if locked is not None:
        raise Conflict(
            f"dataset {locked!r} is read-only and holds video keyframes of label {path!r}; "
            "unlock it first",
            field="label",
        )


async def _store(
    session: AsyncSession,
    actor: Actor,
    ontology: Ontology,
    flat: Mapping[str, labels.Label],
    definitions: list[dict[str, Any]],
    **payload: Any,
) -> None:
    ontology.labels = labels.tree(flat)
    ontology.attributes = definitions
    ontology.updated_at = utcnow()
    await session.flush()
    await _event(session, actor, ontology, "updated", **payload)


async def add_labels(
    platform: Platform, actor: Actor, ontology_id: str, given: Any, *, upsert: bool = False
) -> Ontology:
    """Add labels (a tree, or dot paths whose missing parents are added); a label that exists
    already is refused unless ``upsert``, which sets its display name and color."""
    added = labels.parse_labels(given)
    if not added:
        raise InvalidInput("no labels given", field="labels")
    async with platform.db.write() as session:
        ontology = await ontology_for(session, actor, ontology_id, EDITOR, writing=True)
        flat = labels.merged(labels.flatten(ontology.labels), added, upsert=upsert)
        await _store(session, actor, ontology, flat, ontology.attributes, added=sorted(added))
    return ontology


async def rename_label(
    platform: Platform, actor: Actor, ontology_id: str, label: str, new_label: str
) -> LabelChange:
    """Rename (or move) a label with its sub-labels, relabelling the annotations of the datasets
    whose recipe uses the ontology."""
    old = labels.check_path(label, "label")
    new = labels.check_path(new_label, "newLabel")
    async with platform.db.write() as session:
        ontology = await ontology_for(session, actor, ontology_id, EDITOR, writing=True)
        flat = labels.renamed(labels.flatten(ontology.labels), old, new)
        usage = await _usage(session, ontology_id, old)
        _refuse_locked(usage, old)

        def moved(path: str) -> str:
            return new + path[len(old) :] if labels.within(path, old) else path

        in_use = _A.c.dataset_id.in_(_datasets_using(ontology_id))
        # keyframes of the label on annotations of another label (a label changed mid-track)
        others = await keyframes.relabel_where(
            session, and_(in_use, or_(_A.c.label.is_(None), not_(_of_label(old)))), moved
        )
        if others:
            await _refuse_locked_keyframes(session, {row.dataset_id for row in others}, old)
        rows = []
        if usage:
            rows = (
                await session.execute(
                    update(_A)
                    .where(in_use, _of_label(old))
                    .values(
                        label=literal(new) + func.substr(_A.c.label, len(old) + 1),
                        updated_at=utcnow(),
                    )
                    .returning(_A.c.id, _A.c.item_id, _A.c.metadata)
                )
            ).all()
            frames = [
                {"annotation_id": row.id, "metadata": metadata}
                for row in rows
                if (metadata := keyframes.relabelled(row.metadata, moved)) is not None
            ]
            if frames:
                await session.execute(
                    update(_A).where(_A.c.id == bindparam("annotation_id")), frames
                )
        await events.record_many(
            session,
            project_id=ontology.project_id,
            resource="annotation",
            action="updated",
            actor=actor.email,
            changes=[
                *((row.id, {"itemId": row.item_id, "fields": ["label"]}) for row in rows),
                *((row.id, {"itemId": row.item_id, "fields": ["metadata"]}) for row in others),
            ],
        )
        relabelled = len(rows) + len(others)
        definitions = [
            {
                **d,
                "scope": [
                    new + s[len(old) :] if s != "*" and labels.within(s, old) else s
                    for s in d["scope"]
                ],
            }
            for d in ontology.attributes
        ]
        await _store(
            session,
            actor,
            ontology,
            flat,
            definitions,
            renamed={"from": old, "to": new},
            annotations=relabelled,
        )
    return LabelChange(ontology, relabelled)


async def delete_label(
    platform: Platform,
    actor: Actor,
    ontology_id: str,
    label: str,
    *,
    on_annotations: str = "refuse",
) -> LabelChange:
    """Delete a label with its sub-labels; what happens to their annotations in the datasets whose
    recipe uses the ontology is ``on_annotations``: ``refuse`` (the default: refused while there
    are any), ``delete`` or ``keep``."""
    if on_annotations not in ON_ANNOTATIONS:
        raise InvalidInput(
            f"onAnnotations must be one of {', '.join(ON_ANNOTATIONS)}", field="onAnnotations"
        )
    path = labels.check_path(label, "label")
    async with platform.db.write() as session:
        ontology = await ontology_for(session, actor, ontology_id, EDITOR, writing=True)
        flat = labels.removed(labels.flatten(ontology.labels), path)
        usage = await _usage(session, ontology_id, path) if on_annotations != "keep" else []
        total = sum(n for _, n in usage)
        if total and on_annotations == "refuse":
            names = ", ".join(dataset.name for dataset, _ in usage)
            raise Conflict(
                f"label {path!r} (with its sub-labels) is used by {total} annotations in "
                f"datasets {names}; delete them with it (onAnnotations: delete) or keep them "
                "(onAnnotations: keep)",
                field="label",
                annotations=total,
            )
        deleted = 0
        if total:
            _refuse_locked(usage, path)
            for dataset, _ in usage:
                deleted += await _delete_annotations(session, actor, dataset, path)
        definitions = []
        for d in ontology.attributes:
            scope = [s for s in d["scope"] if s == "*" or not labels.within(s, path)]
            if scope:
                definitions.append({**d, "scope": scope})
        await _store(session, actor, ontology, flat, definitions, deleted=path, annotations=deleted)
    return LabelChange(ontology, deleted)


async def _delete_annotations(
    session: AsyncSession, actor: Actor, dataset: Dataset, path: str
) -> int:
    rows = (
        await session.execute(
            select(_A.c.id, _A.c.item_id).where(_A.c.dataset_id == dataset.id, _of_label(path))
        )
    ).all()
    gone = await annotations.remove_annotations(session, actor, dataset, [r.id for r in rows])
    await annotations.recount(session, {r.item_id for r in rows}, dataset.id, -gone)
    return gone
