"""Annotations as Dataloop JSON, the vocabulary of converters (plugins/converters.py), imports
and exports.

Loopline keeps what Dataloop puts under ``metadata.system`` in columns (frame, endFrame,
objectId, parentId, status, the model) and attributes in one field, Dataloop's v1 list or v2
dict; this module moves them between the two shapes, so an annotation read from a Dataloop
export is written back the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import InstrumentedAttribute

from graph.db.tables import Annotation
from graph.domain.annotations import AnnotationSpec

__all__ = ["DATALOOP_COLUMNS", "dataloop_of", "from_dataloop", "to_dataloop"]

# metadata.system keys that are columns here (parentId is resolved by the importer)
_COLUMNS = ("frame", "endFrame", "objectId", "status", "model", "attributes", "parentId")


# what an annotation is made of in Dataloop JSON, in the order dataloop_of takes their values
DATALOOP_COLUMNS: tuple[InstrumentedAttribute[Any], ...] = (
    Annotation.id,
    Annotation.type,
    Annotation.label,
    Annotation.coordinates,
    Annotation.attributes,
    Annotation.metadata_,
    Annotation.frame,
    Annotation.end_frame,
    Annotation.object_id,
    Annotation.parent_id,
    Annotation.status,
    Annotation.model_id,
    Annotation.model_name,
    Annotation.confidence,
    Annotation.creator,
    Annotation.created_at,
    Annotation.updated_at,
    Annotation.source,
    Annotation.description,
)


def to_dataloop(annotation: Annotation) -> dict[str, Any]:
    """An annotation as Dataloop JSON."""
    return dataloop_of([getattr(annotation, column.key) for column in DATALOOP_COLUMNS])


def dataloop_of(values: Sequence[Any]) -> dict[str, Any]:
    """An annotation as Dataloop JSON from the values of :data:`DATALOOP_COLUMNS`, in their
    order: a row of a select of them, unpacked at once (an export reads a million; a row's
    attributes cost a third of a microsecond each to read, its tuple a fifth for all)."""
    (
        id,
        type,
        label,
        coordinates,
        attributes,
        metadata,
        frame,
        end_frame,
        object_id,
        parent_id,
        status,
        model_id,
        model_name,
        confidence,
        creator,
        created_at,
        updated_at,
        source,
        description,
    ) = values
    metadata = dict(metadata or {})
    system = dict(metadata.get("system") or {})
    for key, value in (
        ("frame", frame),
        ("endFrame", end_frame),
        ("objectId", object_id),
        ("parentId", parent_id),
        ("status", status),
    ):
        if value is not None:
            system[key] = value
    if model_id or model_name or confidence is not None:
        system["model"] = {"model_id": model_id, "name": model_name, "confidence": confidence}
    if isinstance(attributes, dict):
        system["attributes"] = attributes
    if system:
        metadata["system"] = system
    found: dict[str, Any] = {
        "id": id,
        "type": type,
        "label": label,
        "coordinates": coordinates,
        "attributes": attributes if isinstance(attributes, list) else [],
        "metadata": metadata,
        "creator": creator,
        "createdAt": created_at.isoformat(),
        "updatedAt": updated_at.isoformat(),
        "source": source,
    }
    if description is not None:
        found["description"] = description
    return found


def from_dataloop(found: dict[str, Any], source: str = "import") -> AnnotationSpec:
    """An annotation to write from Dataloop JSON (``metadata.system.parentId``, the file's own
    key, is left to the importer, which knows the parent it created)."""
    metadata = dict(found.get("metadata") or {})
    given = metadata.pop("system", None) or {}
    kept = {key: value for key, value in given.items() if key not in _COLUMNS}
    if kept:
        metadata["system"] = kept
    model = given.get("model") or (metadata.get("user") or {}).get("model")
    model = model if isinstance(model, dict) else {}
    named = given.get("attributes")
    object_id = given.get("objectId")
    return AnnotationSpec(
        type=found["type"],
        label=found.get("label"),
        coordinates=found.get("coordinates"),
        attributes=named if isinstance(named, dict) and named else found.get("attributes") or None,
        object_id=None if object_id is None else str(object_id),
        frame=given.get("frame"),
        end_frame=given.get("endFrame"),
        status=given.get("status"),
        source=source,
        model_id=model.get("model_id"),
        model_name=model.get("name"),
        confidence=model.get("confidence"),
        description=found.get("description"),
        metadata=metadata,
    )
