"""Annotations as Dataloop JSON, the vocabulary of converters (plugins/converters.py), imports
and exports.

Loopline keeps what Dataloop puts under ``metadata.system`` in columns (frame, endFrame,
objectId, parentId, status, the model) and attributes in one field, Dataloop's v1 list or v2
dict; this module moves them between the two shapes, so an annotation read from a Dataloop
export is written back the same.
"""

from __future__ import annotations

from typing import Any

from graph.db.tables import Annotation
from graph.domain.annotations import AnnotationSpec

__all__ = ["from_dataloop", "to_dataloop"]

# metadata.system keys that are columns here (parentId is resolved by the importer)
_COLUMNS = ("frame", "endFrame", "objectId", "status", "model", "attributes", "parentId")


def to_dataloop(row: Annotation) -> dict[str, Any]:
    metadata = dict(row.metadata_ or {})
    system = dict(metadata.get("system") or {})
    for key, value in (
        ("frame", row.frame),
        ("endFrame", row.end_frame),
        ("objectId", row.object_id),
        ("parentId", row.parent_id),
        ("status", row.status),
    ):
        if value is not None:
            system[key] = value
    if row.model_id or row.model_name or row.confidence is not None:
        system["model"] = {
            "model_id": row.model_id,
            "name": row.model_name,
            "confidence": row.confidence,
        }
    if isinstance(row.attributes, dict):
        system["attributes"] = row.attributes
    if system:
        metadata["system"] = system
    found: dict[str, Any] = {
        "id": row.id,
        "type": row.type,
        "label": row.label,
        "coordinates": row.coordinates,
        "attributes": row.attributes if isinstance(row.attributes, list) else [],
        "metadata": metadata,
        "creator": row.creator,
        "createdAt": row.created_at.isoformat(),
        "updatedAt": row.updated_at.isoformat(),
        "source": row.source,
    }
    if row.description is not None:
        found["description"] = row.description
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
