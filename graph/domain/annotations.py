"""Annotations: storage and CRUD with Dataloop's fields; in a dataset with a recipe, checked
against its ontology on write (graph/domain/recipe_check.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from graph.db.ids import new_ids
from graph.db.tables import Annotation, Dataset, Item, utcnow
from graph.domain import (
    events,
    indexes,
    keyframes,
    label_counts,
    planning,
    queries,
    recipe_check,
)
from graph.domain.access import Actor, Role
from graph.domain.datasets import dataset_and_scope, row_in_dataset
from graph.domain.errors import InvalidInput, NotFound
from graph.domain.geometry import Outside, check_coordinates
from graph.domain.items import item_for
from graph.domain.paging import Order, Page, page_size
from graph.domain.platform import Platform

__all__ = [
    "DEFAULT_ORDER",
    "LISTING",
    "default_key",
    "listing",
    "AnnotationSpec",
    "check_status",
    "checked",
    "insert_rows",
    "row",
    "size_of",
    "count_annotations",
    "list_annotations",
    "create_annotations",
    "delete_annotations",
    "get_annotation",
    "recount",
    "remove_annotations",
    "update_annotation",
]

TYPES = frozenset(
    {
        "box", "segment", "polyline", "point", "ellipse", "class", "binary", "cube", "cube_3d",
        "pose", "note", "subtitle", "text_mark", "text", "comparison", "gis", "ref_image",
        "ref_semantic_3d", "polyline_3d", "item_description",
    }
)  # fmt: skip
STATUSES = frozenset({"issue", "approved", "review"})
_IN_CHUNK = 500  # ids per IN (...) list


@dataclass
class AnnotationSpec:
    """An annotation to write, in Dataloop's terms (``metadata.system`` fields are separate here)."""

    type: str
    label: str | None = None
    coordinates: Any = None
    attributes: Any = None
    object_id: str | None = None
    frame: int | None = None
    end_frame: int | None = None
    parent_id: str | None = None
    status: str | None = None
    source: str = "api"
    model_id: str | None = None
    model_name: str | None = None
    confidence: float | None = None
    description: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


def check_status(status: str | None, field: str) -> None:
    if status is not None and status not in STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(sorted(STATUSES))} or null", field)


def _check(spec: AnnotationSpec, index: int) -> None:
    where = f"annotations[{index}]"
    if spec.type not in TYPES:
        raise InvalidInput(
            f"unknown annotation type {spec.type!r}; known: {', '.join(sorted(TYPES))}",
            field=f"{where}.type",
        )
    check_status(spec.status, f"{where}.status")
    if spec.confidence is not None and not 0 <= spec.confidence <= 1:
        raise InvalidInput("confidence must be between 0 and 1", field=f"{where}.confidence")
    for name in ("frame", "end_frame"):
        value = getattr(spec, name)
        if value is not None and value < 0:
            raise InvalidInput(f"{name} must not be negative", field=f"{where}.{name}")
    if spec.frame is not None and spec.end_frame is not None and spec.end_frame < spec.frame:
        raise InvalidInput("endFrame is before frame", field=f"{where}.endFrame")
    if not isinstance(spec.metadata, dict):
        raise InvalidInput("metadata must be a JSON object", field=f"{where}.metadata")


def _named_attributes(spec: AnnotationSpec, where: str) -> AnnotationSpec:
    """Attributes by name sent as Dataloop sends them (``metadata.system.attributes``) are kept
    in ``attributes`` (replacing what was there), where DQL (``attributes.color``), indexes and
    recipes find them."""
    system = spec.metadata.get("system")
    if not isinstance(system, dict) or "attributes" not in system:
        return spec
    named = system["attributes"]
    if not isinstance(named, dict):
        raise InvalidInput(
            f"{where}: metadata.system.attributes must be an object {{key: value}}",
            field=f"{where}.metadata.system.attributes",
        )
    rest = {key: value for key, value in system.items() if key != "attributes"}
    metadata = {key: value for key, value in spec.metadata.items() if key != "system"}
    return replace(
        spec, attributes=named, metadata={**metadata, **({"system": rest} if rest else {})}
    )


def size_of(item: Item) -> tuple[int, int] | None:
    """The item's ``(width, height)`` when both are known: what coordinates are checked in."""
    return (item.width, item.height) if item.width and item.height else None


def _shaped(
    spec: AnnotationSpec, where: str, size: tuple[int, int] | None, outside: Outside
) -> AnnotationSpec:
    """``spec`` with its coordinates (and its video keyframes') checked against its type's
    layout and the item's size, in their stored form; errors name places under ``where``."""
    spec = _named_attributes(spec, where)
    coordinates = check_coordinates(
        spec.type, spec.coordinates, f"{where}.coordinates", size, outside
    )
    system = spec.metadata.get("system")
    snapshots = system.get("snapshots_") if isinstance(system, dict) else None
    if snapshots is None:
        # not dataclasses.replace, which looks the fields up again each call: twice the time,
        # and an import of 100,000 annotations comes here for each
        return AnnotationSpec(**{**vars(spec), "coordinates": coordinates})
    path = f"{where}.metadata.system.snapshots_"
    if not isinstance(snapshots, list) or not all(isinstance(s, dict) for s in snapshots):
        raise InvalidInput("keyframe snapshots are a list of objects", field=path)
    checked = [
        {
            **s,
            "data": check_coordinates(
                s.get("type", spec.type), s.get("data"), f"{path}[{i}].data", size, outside
            ),
        }
        for i, s in enumerate(snapshots)
    ]
    metadata = {**spec.metadata, "system": {**system, "snapshots_": checked}}
    return replace(spec, coordinates=coordinates, metadata=metadata)


def checked(
    specs: Sequence[AnnotationSpec], size: tuple[int, int] | None, outside: Outside
) -> list[AnnotationSpec]:
    """``specs`` checked (type, status, confidence, frames, metadata, coordinates against an
    item of ``size``) in their stored form; the first error names its place
    (``annotations[2].coordinates``). No database: the recipe is checked on write."""
    for index, spec in enumerate(specs):
        _check(spec, index)
    return [_shaped(spec, f"annotations[{i}]", size, outside) for i, spec in enumerate(specs)]


async def recount(session: AsyncSession, item_ids: set[str], dataset_id: str, delta: int) -> None:
    """Keep ``annotationsCount``/``annotated`` of items and the dataset's counter in step."""
    now = utcnow()
    counted = select(func.count()).where(Annotation.item_id == Item.id).scalar_subquery()
    ids = sorted(item_ids)
    for start in range(0, len(ids), _IN_CHUNK):
        await session.execute(
            update(Item)
            .where(Item.id.in_(ids[start : start + _IN_CHUNK]))
            .values(annotations_count=counted, annotated=counted > 0, updated_at=now)
        )
    await session.execute(
        update(Dataset)
        .where(Dataset.id == dataset_id)
        .values(annotations_count=Dataset.annotations_count + delta)
    )


def row(
    spec: AnnotationSpec,
    annotation_id: str,
    item_id: str,
    dataset_id: str,
    actor: Actor,
    now: datetime,
    *,
    execution_id: str | None = None,
    effect_key: str | None = None,
) -> dict[str, Any]:
    """The ``annotations`` row of a checked spec, keyed by column for :func:`insert_rows`."""
    return {
        "id": annotation_id,
        "item_id": item_id,
        "dataset_id": dataset_id,
        "type": spec.type,
        "label": spec.label,
        "coordinates": spec.coordinates,
        "attributes": spec.attributes,
        "object_id": spec.object_id,
        "frame": spec.frame,
        "end_frame": spec.end_frame,
        "parent_id": spec.parent_id,
        "status": spec.status,
        "source": spec.source,
        "creator": actor.email,
        "model_id": spec.model_id,
        "model_name": spec.model_name,
        "confidence": spec.confidence,
        "description": spec.description,
        "metadata": spec.metadata,
        "execution_id": execution_id,
        "effect_key": effect_key,
        "created_at": now,
        "updated_at": now,
    }


async def insert_rows(
    session: AsyncSession, actor: Actor, dataset: Dataset, rows: Sequence[dict[str, Any]]
) -> None:
    """Insert checked rows of :func:`row` (parents before their children) into the dataset's
    items, with the items' and dataset's counters and one ``created`` event each."""
    if not rows:
        return
    await label_counts.insert_annotations(session, rows)
    await recount(session, {r["item_id"] for r in rows}, dataset.id, len(rows))
    await events.record_columns(
        session,
        project_id=dataset.project_id,
        resource="annotation",
        action="created",
        actor=actor.email,
        resource_ids=[r["id"] for r in rows],
        payload={"itemId": [r["item_id"] for r in rows], "datasetId": dataset.id},
    )


async def create_annotations(
    platform: Platform,
    actor: Actor,
    item_id: str,
    specs: Sequence[AnnotationSpec],
    *,
    execution_id: str | None = None,
    effect_keys: Sequence[str] | None = None,
    outside: Outside = "reject",
) -> list[Annotation]:
    """Add annotations to one item, all or none. Coordinates outside the item are refused, or
    with ``outside="clip"`` moved to its edge (:mod:`geometry`).

    An execution passes its id and one ``effect_keys`` entry per annotation: an annotation whose
    key exists already (written by an earlier attempt of the same execution) is not written
    again, and the existing one is returned in its place."""
    async with platform.db.write() as session:
        item, dataset = await item_for(session, actor, item_id, Role.annotator, writing=True)
        if item.type != "file":
            raise InvalidInput("folders cannot be annotated", field="itemId")
        specs = checked(specs, size_of(item), outside)
        await recipe_check.check_annotations(session, dataset, specs)
        parents = {s.parent_id for s in specs if s.parent_id}
        if parents:
            found = set(
                await session.scalars(
                    select(Annotation.id).where(
                        Annotation.id.in_(parents), Annotation.item_id == item_id
                    )
                )
            )
            for missing in parents - found:
                raise InvalidInput(
                    f"parent annotation {missing!r} is not on this item", field="parentId"
                )
        ids = new_ids(len(specs))
        now = utcnow()
        keys: Sequence[str | None] = [None] * len(specs) if effect_keys is None else effect_keys
        rows = [
            row(s, i, item.id, dataset.id, actor, now, execution_id=execution_id, effect_key=k)
            for s, i, k in zip(specs, ids, keys, strict=True)
        ]
        if effect_keys is not None:
            done: dict[str | None, str] = {
                key: annotation_id
                for key, annotation_id in await session.execute(
                    select(Annotation.effect_key, Annotation.id).where(
                        Annotation.effect_key.in_(effect_keys)
                    )
                )
            }
            ids = [done.get(k, i) for k, i in zip(effect_keys, ids, strict=True)]
            rows = [r for r in rows if r["effect_key"] not in done]
        await insert_rows(session, actor, dataset, rows)
        found = {
            a.id: a for a in await session.scalars(select(Annotation).where(Annotation.id.in_(ids)))
        }
    return [found[i] for i in ids]


# without an ``order by``: creation order
DEFAULT_ORDER = (Order(Annotation.id),)


def default_key(annotation: Annotation) -> tuple[str]:
    return (annotation.id,)


LISTING = planning.Listing(Annotation, DEFAULT_ORDER, default_key)


def listing(dataset_id: str) -> list[ColumnElement[bool]]:
    """The conditions of a dataset's annotation list; with a DQL query's, what lists, counts
    and changes by query select."""
    return [Annotation.dataset_id == dataset_id]


async def list_annotations(
    platform: Platform,
    actor: Actor,
    dataset_id: str,
    *,
    dql: str | None = None,
    dataloop: Mapping[str, Any] | None = None,
    first: int | None = None,
    after: str | None = None,
) -> Page[Annotation]:
    """Annotations of a dataset matching a DQL query (``item.*`` reaches the item's fields), by
    the query's ``order by``, else in creation order."""
    query = queries.parse_query(dql, dataloop, resource="annotations")
    size = page_size(first, platform.settings.max_page_size)
    async with platform.db.read() as session:
        dataset, scope = await dataset_and_scope(session, actor, dataset_id, Role.annotator)
        statement, params, finish = await planning.page_select(
            session,
            query,
            "annotations",
            dataset_id,
            [*listing(dataset_id), *scope.annotations()],
            None if scope.limited else dataset.annotations_count,
            LISTING,
            size,
            after,
            scope.viewer,
        )
        return finish((await session.execute(statement, params)).all())


async def count_annotations(
    platform: Platform,
    actor: Actor,
    dataset_id: str,
    *,
    dql: str | None = None,
    dataloop: Mapping[str, Any] | None = None,
) -> int:
    query = queries.parse_query(dql, dataloop, resource="annotations")
    async with platform.db.read() as session:
        _, scope = await dataset_and_scope(session, actor, dataset_id, Role.annotator)
        stored = await indexes.stored(session)
        compiled = queries.compile_for(
            query,
            "annotations",
            platform.db.dialect,
            dataset_id,
            stored=stored,
            viewer=scope.viewer,
        )
        statement = select(func.count()).where(
            *listing(dataset_id), *scope.annotations(), compiled.where
        )
        return int(await session.scalar(statement, compiled.params) or 0)


async def get_annotation(platform: Platform, actor: Actor, annotation_id: str) -> Annotation:
    async with platform.db.read() as session:
        annotation, _ = await row_in_dataset(
            session, actor, Annotation, annotation_id, Role.annotator
        )
        return annotation


_UPDATABLE = (
    "label", "coordinates", "attributes", "object_id", "frame", "end_frame", "status",
    "description", "metadata", "model_id", "model_name", "confidence",
)  # fmt: skip


async def update_annotation(
    platform: Platform,
    actor: Actor,
    annotation_id: str,
    changes: dict[str, Any],
    *,
    outside: Outside = "reject",
) -> Annotation:
    """Change some fields; ``changes`` maps field names to new values (``None`` clears). New
    coordinates are checked as :func:`create_annotations` checks them. A new label without new
    metadata is taken by the video keyframes that had the former one."""
    unknown = set(changes) - set(_UPDATABLE)
    if unknown:
        raise InvalidInput(f"cannot update {', '.join(sorted(unknown))}", field=sorted(unknown)[0])
    async with platform.db.write() as session:
        annotation, dataset = await row_in_dataset(
            session, actor, Annotation, annotation_id, Role.annotator, writing=True
        )
        current = AnnotationSpec(
            type=annotation.type,
            **{
                name: getattr(annotation, "metadata_" if name == "metadata" else name)
                for name in _UPDATABLE
            },
        )
        for name, value in changes.items():
            setattr(current, name, {} if name == "metadata" and value is None else value)
        if "label" in changes and "metadata" not in changes:
            frames = keyframes.relabelled_with(current.metadata, annotation.label, current.label)
            if frames is not None:
                current.metadata = frames
                changes = {**changes, "metadata": frames}
        _check(current, 0)
        if {"coordinates", "metadata"} & set(changes):
            item = await session.get(Item, annotation.item_id)
            assert item is not None  # an annotation goes with its item
            current = _shaped(current, "patch", size_of(item), outside)
        await recipe_check.check_annotations(session, dataset, [current])
        for name in changes:
            setattr(annotation, "metadata_" if name == "metadata" else name, getattr(current, name))
        annotation.updated_at = utcnow()
        await session.flush()
        await events.record(
            session,
            project_id=dataset.project_id,
            resource="annotation",
            action="updated",
            resource_id=annotation.id,
            actor=actor.email,
            payload={"itemId": annotation.item_id, "fields": sorted(changes)},
        )
    return annotation


async def delete_annotations(
    platform: Platform, actor: Actor, annotation_ids: Sequence[str]
) -> int:
    """Delete annotations (and their children, by ``parentId``); all must exist."""
    unique = list(dict.fromkeys(annotation_ids))
    if not unique:
        raise InvalidInput("no annotation ids given", field="annotationIds")
    async with platform.db.write() as session:
        found = (
            await session.execute(
                select(Annotation.id, Annotation.item_id, Annotation.dataset_id).where(
                    Annotation.id.in_(unique)
                )
            )
        ).all()
        missing = set(unique) - {row.id for row in found}
        if missing:
            raise NotFound("annotation", sorted(missing)[0])
        dataset_ids = {row.dataset_id for row in found}
        if len(dataset_ids) != 1:
            raise InvalidInput(
                "the annotations belong to more than one dataset", field="annotationIds"
            )
        _, dataset = await row_in_dataset(
            session, actor, Annotation, unique[0], Role.annotator, writing=True
        )
        gone = await remove_annotations(session, actor, dataset, unique)
        await recount(session, {row.item_id for row in found}, dataset.id, -gone)
    return gone


async def remove_annotations(
    session: AsyncSession, actor: Actor, dataset: Dataset, annotation_ids: Sequence[str]
) -> int:
    """Delete annotations of ``dataset`` and their descendants (by ``parentId``, at any depth) in
    the caller's transaction, with events; returns how many went. The caller then calls
    :func:`recount` on the items they were on (descendants are on their parent's item)."""
    doomed = list(dict.fromkeys(annotation_ids))
    seen = set(doomed)
    level = doomed
    while level:
        children: list[str] = []
        for start in range(0, len(level), _IN_CHUNK):
            children.extend(
                await session.scalars(
                    select(Annotation.id).where(
                        Annotation.parent_id.in_(level[start : start + _IN_CHUNK])
                    )
                )
            )
        level = [c for c in children if c not in seen]
        seen.update(level)
        doomed += level
    for start in range(0, len(doomed), _IN_CHUNK):
        await session.execute(
            delete(Annotation)
            .where(
                Annotation.dataset_id == dataset.id,
                Annotation.id.in_(doomed[start : start + _IN_CHUNK]),
            )
            .execution_options(synchronize_session=False)
        )
    await events.record_many(
        session,
        project_id=dataset.project_id,
        resource="annotation",
        action="deleted",
        actor=actor.email,
        changes=[(i, {"datasetId": dataset.id}) for i in doomed],
    )
    return len(doomed)
