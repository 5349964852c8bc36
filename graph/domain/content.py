"""Content for download: where an item's bytes (or its thumbnail's, or an export's archive) are,
or the URL an item links to."""

from __future__ import annotations

from dataclasses import dataclass

from graph.db.tables import Blob, Driver, Integration, Item
from graph.domain.access import Actor, Role
from graph.domain.errors import NotFound
from graph.domain.exports import export_blob
from graph.domain.items import item_for
from graph.domain.platform import Platform
from graph.domain.storage import load_blob_source

__all__ = ["Content", "export_content", "item_content", "thumbnail_content"]


@dataclass(frozen=True)
class Content:
    """Where to read bytes, and the file name to give them; ``blob`` is None for a linked item
    (read ``item.url``)."""

    name: str
    item: Item | None = None
    blob: Blob | None = None
    driver: Driver | None = None
    integration: Integration | None = None


async def item_content(platform: Platform, actor: Actor, item_id: str) -> Content:
    """The item's bytes source, for anyone who may see the item. A folder has no content."""
    async with platform.db.read() as session:
        item, _ = await item_for(session, actor, item_id, Role.annotator)
        if item.blob_id is not None:
            blob, driver, integration = await load_blob_source(session, item.blob_id)
            return Content(item.name, item, blob, driver, integration)
    if item.type != "file" or not item.url:
        raise NotFound("item content", item_id)
    return Content(item.name, item)


async def thumbnail_content(platform: Platform, actor: Actor, item_id: str) -> Content:
    """The item's thumbnail (always in the platform store); NotFound when it has none."""
    async with platform.db.read() as session:
        item, _ = await item_for(session, actor, item_id, Role.annotator)
        blob = None
        if item.thumbnail_blob_id is not None:
            blob = await session.get(Blob, item.thumbnail_blob_id)
    if blob is None:
        raise NotFound("thumbnail", item_id)
    return Content(item.name, item, blob)


async def export_content(platform: Platform, actor: Actor, execution_id: str) -> Content:
    """The archive a finished export wrote (graph/domain/exports.py)."""
    blob_id, name = await export_blob(platform, actor, execution_id)
    async with platform.db.read() as session:
        blob = await session.get(Blob, blob_id)
    if blob is None:
        raise NotFound("export archive", execution_id)
    return Content(name, blob=blob)
