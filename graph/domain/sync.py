"""Sync: bring a driver-bound dataset in line with its store, incrementally.

Only what changed since the last sync is touched: new objects become items, changed ones (etag or
size) overwrite their items, gone ones lose their items (the objects themselves are never deleted).
"""

from __future__ import annotations

import asyncio
import mimetypes
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from graph.db.tables import Blob, Dataset, Item, utcnow
from graph.domain import blobs, items, paths, storage
from graph.domain.access import Actor, Role
from graph.domain.datasets import dataset_for
from graph.domain.errors import Conflict, InvalidInput
from graph.domain.platform import Platform
from plugins.types import ObjectInfo

__all__ = ["SyncReport", "sync_dataset"]

_CHUNK = 500
_MAX_KEY = 1024  # Blob.key


@dataclass(frozen=True)
class SyncReport:
    """What a sync did to the dataset's items; ``skipped`` counts objects whose key cannot be an
    item path (``a//b``, ``../x``, a control character)."""

    created: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0
    skipped: int = 0


def _item_path(key: str) -> str | None:
    """``"/" + key`` if that is already a clean item path, else None (the object is skipped)."""
    if len(key) > _MAX_KEY:
        return None
    try:
        directory, name = paths.split("/" + key)
    except InvalidInput:
        return None
    path = paths.join(directory, name)
    return path if path == "/" + key else None


def _changed(size: int, etag: str | None, info: ObjectInfo) -> bool:
    return size != info.size or (etag is not None and info.etag is not None and etag != info.etag)


async def sync_dataset(platform: Platform, actor: Actor, dataset_id: str) -> SyncReport:
    """Bring a driver-bound dataset in line with its store; developers and above.

    The store is listed first, outside any transaction; then every change is made in one
    transaction: new objects become items, changed ones (etag or size) overwrite their items, gone
    ones lose their items. Unchanged items are not touched and get no events.
    """
    async with platform.db.read() as session:
        dataset = await dataset_for(session, actor, dataset_id, Role.developer, writing=True)
        driver, integration = await storage.driver_of(session, dataset)

    def listing() -> list[ObjectInfo]:
        return list(storage.open_backend(platform, driver, integration).list())

    with storage.store_errors(driver):
        objects = await asyncio.to_thread(listing)

    async with platform.db.write() as session:
        dataset = await dataset_for(session, actor, dataset_id, Role.developer, writing=True)
        if dataset.driver_id != driver.id:
            raise Conflict("the dataset was rebound to another driver during the sync")
        report, freed, removed = await _apply(session, actor, dataset, driver.id, objects)
    blobs.delete_bytes(platform, freed)
    items.removed_from_tasks(platform, dataset.project_id, removed)
    return report


async def _apply(
    session: AsyncSession,
    actor: Actor,
    dataset: Dataset,
    driver_id: str,
    objects: Sequence[ObjectInfo],
) -> tuple[SyncReport, list[str], items.Removed]:
    """The sync's changes; the report, the bytes freed and what the deletions took."""
    listed = {o.key: o for o in objects if _item_path(o.key) is not None}
    rows = (
        await session.execute(
            select(
                Item.id,
                Item.filename,
                Item.size,
                Item.annotations_count,
                Blob.id.label("blob_id"),
                Blob.key,
                Blob.size.label("blob_size"),
                Blob.etag,
            )
            .join(Blob, Blob.id == Item.blob_id)
            .where(Item.dataset_id == dataset.id, Blob.driver_id == driver_id)
        )
    ).all()
    by_key: dict[str, list[Any]] = defaultdict(list)
    for row in rows:
        by_key[row.key].append(row)

    gone = [row for key, found in by_key.items() if key not in listed for row in found]
    refresh = {
        key: listed[key]
        for key, found in by_key.items()
        if key in listed
        and (
            _changed(found[0].blob_size, found[0].etag, listed[key])
            or (found[0].etag is None and listed[key].etag is not None)  # learn a missing etag
        )
    }
    new = [key for key in listed if key not in by_key]
    blob_ids = await storage.upsert_blobs(
        session,
        driver_id,
        [
            {"key": k, "size": listed[k].size, "etag": listed[k].etag, "sha256": None}
            for k in [*new, *refresh]
        ],
    )
    stale = [
        row
        for key, found in by_key.items()
        if key in listed
        for row in found
        if _changed(row.blob_size, row.etag, listed[key]) or row.size != listed[key].size
    ]
    specs = await _respecs(session, stale, listed)
    for key in new:  # an item already at the path is overwritten: the store is the truth
        specs["/" + key] = items.ItemSpec(
            path="/" + key,
            blob_id=blob_ids[key],
            size=listed[key].size,
            mimetype=mimetypes.guess_type(key)[0],
        )
    results, dropped = await items.insert_items(
        session, actor, dataset, list(specs.values()), "overwrite"
    )
    removed = await _delete(session, actor, dataset, gone)
    freed = await blobs.release(session, dropped | removed.blob_ids)
    await session.execute(
        update(Dataset).where(Dataset.id == dataset.id).values(last_synced_at=utcnow())
    )
    report = SyncReport(
        created=sum(1 for r in results if r.op == "created"),
        updated=sum(1 for r in results if r.op == "overwritten"),
        deleted=len(gone),
        unchanged=len(rows) - len(gone) - len(stale),
        skipped=len(objects) - len(listed),
    )
    return report, freed, removed


async def _respecs(
    session: AsyncSession, stale: Sequence[Any], listed: Mapping[str, ObjectInfo]
) -> dict[str, items.ItemSpec]:
    """Specs that overwrite items whose object changed, keeping their path and metadata."""
    metadata: dict[str, dict[str, Any]] = {}
    ids = [row.id for row in stale]
    for start in range(0, len(ids), _CHUNK):
        found = await session.execute(
            select(Item.id, Item.metadata_).where(Item.id.in_(ids[start : start + _CHUNK]))
        )
        metadata.update({item_id: value or {} for item_id, value in found})
    return {
        row.filename: items.ItemSpec(
            path=row.filename,
            blob_id=row.blob_id,
            size=listed[row.key].size,
            mimetype=mimetypes.guess_type(row.key)[0],
            system=metadata[row.id].get("system") or {},
            user=metadata[row.id].get("user") or {},
        )
        for row in stale
    }


async def _delete(
    session: AsyncSession, actor: Actor, dataset: Dataset, gone: Sequence[Any]
) -> items.Removed:
    """Delete the items whose object left the store."""
    ids = [row.id for row in gone]
    removed = items.Removed()
    for start in range(0, len(ids), _CHUNK):
        removed.add(
            await items.remove_items(
                session, actor, dataset, Item.id.in_(ids[start : start + _CHUNK])
            )
        )
    return removed
