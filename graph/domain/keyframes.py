"""The labels of a video annotation's keyframes (``metadata.system.snapshots_``), kept in step
when labels change: a keyframe's ``label`` is checked against the recipe as the annotation's is,
and one without a label follows the annotation's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Boolean, ColumnElement, Row, bindparam, func, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from graph.db.tables import Annotation, utcnow

__all__ = ["CHUNK", "has_keyframes", "relabel_where", "relabelled", "relabelled_with"]

CHUNK = 2000  # annotations read and changed per step
_A = Annotation.__table__


def relabelled(metadata: Any, change: Callable[[str], str | None]) -> dict[str, Any] | None:
    """``metadata`` with each keyframe's label replaced by ``change(label)`` (``None`` removes
    it, so the keyframe follows the annotation's label), or None when no keyframe changed."""
    system = metadata.get("system") if isinstance(metadata, dict) else None
    snapshots = system.get("snapshots_") if isinstance(system, dict) else None
    if not isinstance(snapshots, list):
        return None
    out, changed = [], False
    for snapshot in snapshots:
        label = snapshot.get("label") if isinstance(snapshot, dict) else None
        if isinstance(label, str) and (new := change(label)) != label:
            snapshot = {k: v for k, v in snapshot.items() if k != "label"}
            if new is not None:
                snapshot["label"] = new
            changed = True
        out.append(snapshot)
    return {**metadata, "system": {**system, "snapshots_": out}} if changed else None


def relabelled_with(metadata: Any, old: str | None, new: str | None) -> dict[str, Any] | None:
    """``metadata`` of an annotation relabelled from ``old`` to ``new``: its keyframes labelled
    ``old`` take ``new`` (a keyframe with a label of its own, changed mid-track, keeps it), as a
    label rename does; None when none changed."""
    if old is None or old == new:
        return None
    return relabelled(metadata, lambda label: new if label == old else label)


def has_keyframes(dialect: str) -> ColumnElement[bool]:
    """Annotations whose metadata has keyframes (``metadata.system.snapshots_``)."""
    if dialect == "postgresql":
        system = Annotation.metadata_.op("->")(literal("system"))
        return system.op("?", return_type=Boolean)(literal("snapshots_"))
    return func.json_type(Annotation.metadata_, "$.system.snapshots_").is_not(None)


async def relabel_where(
    session: AsyncSession, where: ColumnElement[bool], change: Callable[[str], str | None]
) -> list[Row[Any]]:
    """Relabel the keyframes of the annotations matching ``where`` by ``change`` (see
    :func:`relabelled`), visiting those with keyframes in chunks of :data:`CHUNK` by ``id``;
    returns the rows (``id``, ``item_id``, ``dataset_id``) of those changed."""
    selected = select(_A.c.id, _A.c.item_id, _A.c.dataset_id, _A.c.metadata).where(
        where, has_keyframes(session.bind.dialect.name)
    )
    changed: list[Row[Any]] = []
    after: str | None = None
    while True:
        query = selected if after is None else selected.where(_A.c.id > after)
        rows = (await session.execute(query.order_by(_A.c.id).limit(CHUNK))).all()
        now = utcnow()
        values = [
            {"annotation_id": row.id, "metadata": metadata, "updated_at": now}
            for row in rows
            if (metadata := relabelled(row.metadata, change)) is not None
        ]
        if values:
            await session.execute(update(_A).where(_A.c.id == bindparam("annotation_id")), values)
            done = {value["annotation_id"] for value in values}
            changed += [row for row in rows if row.id in done]
        if len(rows) < CHUNK:
            return changed
        after = rows[-1].id
