"""Annotations written to a dataset with a recipe are checked against its ontology: the label is
one of the ontology's dot paths, and the attribute values by name (v2: ``attributes``, where
Dataloop's ``metadata.system.attributes`` are kept) are defined, apply to the label and are
allowed, with every required attribute given. A video annotation's keyframes
(``metadata.system.snapshots_``) are checked the same way: each one's ``label`` (the
annotation's when it gives none) and ``namedAttributes`` (when it gives them: a keyframe without
keeps the frame before's).

The recipe is read once per write, whatever the number of annotations. A dataset with no recipe
accepts any label. Not checked: the legacy attribute lists (top-level ``attributes``, a
keyframe's ``attributes``, kept as given), notes and item descriptions (not labels of the
ontology).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from graph.db.tables import Dataset, Ontology, Recipe
from graph.domain import attributes, labels
from graph.domain.errors import InvalidInput

__all__ = ["Rules", "check_annotations", "check_label", "check_with", "rules_of"]

UNLABELLED_TYPES = frozenset({"note", "item_description"})
_SHOWN = 20  # labels named in an error message


class Labelled(Protocol):
    type: str
    label: str | None
    attributes: Any
    metadata: dict[str, Any]


@dataclass
class Rules:
    """What a dataset's recipe allows, read once for a write."""

    ontology: str
    labels: frozenset[str]
    definitions: list[dict[str, Any]]
    _of_label: dict[str | None, list[dict[str, Any]]] = field(default_factory=dict)

    def attributes_of(self, label: str | None) -> list[dict[str, Any]]:
        if label not in self._of_label:
            self._of_label[label] = [d for d in self.definitions if attributes.applies(d, label)]
        return self._of_label[label]


async def rules_of(session: AsyncSession, dataset: Dataset) -> Rules | None:
    """The rules of the dataset's recipe, or None when it has none; one statement.

    The ontology's row is share-locked (PostgreSQL) until the write commits: a label rename or
    delete, which locks it for update, then sees the annotations this write adds, or this write
    sees its new labels. (SQLite runs one write at a time.)"""
    if dataset.recipe_id is None:
        return None
    row = (
        await session.execute(
            select(Ontology.name, Ontology.labels, Ontology.attributes)
            .join(Recipe, Recipe.ontology_id == Ontology.id)
            .where(Recipe.id == dataset.recipe_id)
            .with_for_update(read=True, of=Ontology)
        )
    ).one()
    return Rules(row.name, frozenset(labels.flatten(row.labels)), list(row.attributes))


def check_label(rules: Rules, label: str | None, where: str, field: str) -> None:
    if label is None or label in rules.labels:
        return
    known = sorted(rules.labels)
    shown = ", ".join(known[:_SHOWN]) + (
        f" and {len(known) - _SHOWN} more" if known[_SHOWN:] else ""
    )
    raise InvalidInput(
        f"{where}: label {label!r} is not in ontology {rules.ontology!r} of the dataset's recipe; "
        f"its labels: {shown or 'none'}",
        field=field,
        label=label,
    )


def _check_attributes(
    rules: Rules, label: str | None, given: dict[str, Any], where: str, field: str
) -> None:
    """Attribute values by name (``field``: where they are, ``annotations[2].attributes``)."""
    applying = {d["key"]: d for d in rules.attributes_of(label)}
    for key, value in given.items():
        definition = applying.get(key)
        if definition is None:
            defined = any(d["key"] == key for d in rules.definitions)
            reason = f"does not apply to label {label!r}" if defined else "is not defined"
            raise InvalidInput(
                f"{where}: attribute {key!r} {reason} in ontology {rules.ontology!r}; "
                f"attributes of this label: {', '.join(applying) or 'none'}",
                field=f"{field}.{key}",
                attribute=key,
                label=label,
            )
        attributes.check_value(definition, value, label, where, field)
    for key, definition in applying.items():
        if not definition["optional"] and attributes.is_empty(given.get(key)):
            raise InvalidInput(
                f"{where}: attribute {key!r} is required for label {label!r}",
                field=f"{field}.{key}",
                attribute=key,
                label=label,
            )


def _check_one(rules: Rules, annotation: Labelled, where: str) -> None:
    if annotation.type in UNLABELLED_TYPES:
        return
    label = annotation.label
    check_label(rules, label, where, f"{where}.label")
    # attributes by name (v2); a list is the legacy form, kept as given
    given = annotation.attributes if isinstance(annotation.attributes, dict) else {}
    _check_attributes(rules, label, given, where, f"{where}.attributes")
    system = annotation.metadata.get("system")
    snapshots = system.get("snapshots_") if isinstance(system, dict) else None
    for index, snapshot in enumerate(snapshots if isinstance(snapshots, list) else []):
        if not isinstance(snapshot, dict):  # refused by the geometry check of a write
            continue
        place = f"{where}.metadata.system.snapshots_[{index}]"
        frame_label = snapshot.get("label", label)
        check_label(rules, frame_label, place, f"{place}.label")
        named = snapshot.get("namedAttributes")
        if isinstance(named, dict):
            _check_attributes(rules, frame_label, named, place, f"{place}.namedAttributes")


async def check_annotations(
    session: AsyncSession,
    dataset: Dataset,
    annotations: Sequence[Labelled],
    where: str = "annotations",
) -> None:
    """Refuse the first annotation the dataset's recipe does not allow, naming it
    (``annotations[2]``), its label or attribute, and what is allowed."""
    check_with(await rules_of(session, dataset), annotations, where)


def check_with(
    rules: Rules | None, annotations: Sequence[Labelled], where: str = "annotations"
) -> None:
    """:func:`check_annotations` with rules read already (one read for many items' writes)."""
    if rules is None:
        return
    for index, annotation in enumerate(annotations):
        _check_one(rules, annotation, f"{where}[{index}]")
