"""Batch loads by id for the API's DataLoaders and for workers.

These do not check roles: callers use them only for rows related to something the actor was
already allowed to read (an item's dataset, its annotations).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any, TypeVar

from sqlalchemy import select

from graph.db.tables import Annotation, Assignment, PackageRevision, TaskItem
from graph.domain import assignments, tasks
from graph.domain.access import Actor
from graph.domain.platform import Platform
from graph.domain.reach import consensus_copies_of, own_count, own_places, own_work
from graph.domain.tasks import Progress

__all__ = [
    "annotations_of_items",
    "assignments_of_tasks",
    "by_ids",
    "own_counts_of_items",
    "progress_of_tasks",
    "revisions_of_packages",
    "task_items_of_items",
]

T = TypeVar("T")


async def by_ids(platform: Platform, table: type[T], ids: Sequence[str]) -> list[T | None]:
    """Rows of ``table`` in the order of ``ids`` (None where missing)."""
    column: Any = table.id  # type: ignore[attr-defined]
    async with platform.db.read() as session:
        rows = {row.id: row for row in await session.scalars(select(table).where(column.in_(ids)))}  # type: ignore[attr-defined]
    return [rows.get(i) for i in ids]


async def annotations_of_items(
    platform: Platform, item_ids: Sequence[str], viewer: Actor | None = None
) -> list[list[Annotation]]:
    """Each item's annotations, in creation order, with one query; for a ``viewer`` that
    annotates an item as a consensus copy, only its own there."""
    grouped: dict[str, list[Annotation]] = defaultdict(list)
    where = [Annotation.item_id.in_(item_ids)]
    if viewer is not None:
        where.append(own_work(viewer.user_id, viewer.email))
    async with platform.db.read() as session:
        rows = await session.scalars(
            select(Annotation).where(*where).order_by(Annotation.item_id, Annotation.id)
        )
        for annotation in rows:
            grouped[annotation.item_id].append(annotation)
    return [grouped.get(i, []) for i in item_ids]


async def own_counts_of_items(
    platform: Platform, item_ids: Sequence[str], viewer: Actor
) -> list[int | None]:
    """For each item the ``viewer`` annotates as a consensus copy, how many annotations it made
    there (what it sees of the item's, as :func:`annotations_of_items` shows them); None for
    the others, whose count is the item's. One query."""
    async with platform.db.read() as session:
        rows = await session.execute(
            consensus_copies_of(viewer.user_id)
            .where(TaskItem.item_id.in_(item_ids))
            .add_columns(own_count(TaskItem.item_id, viewer.email))
        )
        counts = {item_id: int(n) for item_id, n in rows.all()}
    return [counts.get(i) for i in item_ids]


async def revisions_of_packages(
    platform: Platform, package_ids: Sequence[str]
) -> list[list[PackageRevision]]:
    """Each package's revisions, oldest first, with one query."""
    grouped: dict[str, list[PackageRevision]] = defaultdict(list)
    async with platform.db.read() as session:
        rows = await session.scalars(
            select(PackageRevision)
            .where(PackageRevision.package_id.in_(package_ids))
            .order_by(PackageRevision.package_id, PackageRevision.revision)
        )
        for revision in rows:
            grouped[revision.package_id].append(revision)
    return [grouped.get(i, []) for i in package_ids]


async def task_items_of_items(
    platform: Platform, item_ids: Sequence[str], viewer: Actor | None = None
) -> list[list[TaskItem]]:
    """Each item's places in tasks (its status in each), with one query; for a ``viewer`` that
    annotates an item as a consensus copy, only its own there."""
    grouped: dict[str, list[TaskItem]] = defaultdict(list)
    where = [TaskItem.item_id.in_(item_ids)]
    if viewer is not None:
        where.append(own_places(viewer.user_id))
    async with platform.db.read() as session:
        rows = await session.scalars(
            select(TaskItem)
            .where(*where)
            .order_by(TaskItem.item_id, TaskItem.task_id, TaskItem.copy)
        )
        for row in rows:
            grouped[row.item_id].append(row)
    return [grouped.get(i, []) for i in item_ids]


async def progress_of_tasks(platform: Platform, task_ids: Sequence[str]) -> list[Progress]:
    async with platform.db.read() as session:
        found = await tasks.progress_of(session, task_ids)
    return [found[t] for t in task_ids]


async def assignments_of_tasks(
    platform: Platform, task_ids: Sequence[str]
) -> list[list[tuple[Assignment, str]]]:
    async with platform.db.read() as session:
        found = await assignments.assignments_of(session, task_ids)
    return [found[t] for t in task_ids]
