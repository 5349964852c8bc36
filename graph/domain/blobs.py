"""Blobs: bytes stored once per content and shared by items, clones and thumbnails."""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import ColumnElement, delete, exists, or_, select, union
from sqlalchemy.ext.asyncio import AsyncSession

from graph.db.engine import dialect_insert
from graph.db.ids import new_id
from graph.db.tables import Blob, Item, utcnow
from graph.domain.platform import Platform

__all__ = [
    "StagedFile",
    "blob_ids_of",
    "content_key",
    "delete_bytes",
    "ensure_blob",
    "release",
    "stage",
]

log = logging.getLogger(__name__)
_CHUNK = 1 << 20


@dataclass
class StagedFile:
    """Bytes written to a temporary file beside the blob store, hashed on the way in."""

    path: Path
    sha256: str
    size: int

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


def content_key(sha256: str) -> str:
    return f"{sha256[:2]}/{sha256[2:4]}/{sha256}"


def _staging_dir(platform: Platform) -> Path:
    path = platform.settings.blob_root / ".staging"
    path.mkdir(parents=True, exist_ok=True)
    return path


def stage(platform: Platform, source: BinaryIO | bytes, limit: int | None = None) -> StagedFile:
    """Copy ``source`` to a staging file while hashing it. Raises ``OverflowError`` past ``limit``."""
    digest = hashlib.sha256()
    size = 0
    fd, name = tempfile.mkstemp(dir=_staging_dir(platform), prefix="stage-")
    try:
        with os.fdopen(fd, "wb") as out:
            if isinstance(source, bytes):
                chunks: Iterator[bytes] = iter([source])
            else:
                chunks = iter(lambda: source.read(_CHUNK), b"")
            for chunk in chunks:
                size += len(chunk)
                if limit is not None and size > limit:
                    raise OverflowError(f"the file is larger than the limit of {limit} bytes")
                digest.update(chunk)
                out.write(chunk)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return StagedFile(Path(name), digest.hexdigest(), size)


async def ensure_blob(
    session: AsyncSession, platform: Platform, staged: StagedFile
) -> tuple[str, bool]:
    """The platform blob holding ``staged``'s content, created if new; returns ``(id, created)``.

    A new blob's bytes are moved into place at once; if the transaction later fails, the caller
    deletes them with :func:`delete_bytes` (they are referenced by nothing).
    """
    key = content_key(staged.sha256)
    now = utcnow()
    created = await session.scalar(
        dialect_insert(session)(Blob)
        .values(
            id=new_id(),
            key=key,
            sha256=staged.sha256,
            size=staged.size,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=["key"], index_where=Blob.driver_id.is_(None))
        .returning(Blob.id)
    )
    if created is None:
        blob_id = await session.scalar(
            select(Blob.id).where(Blob.driver_id.is_(None), Blob.key == key)
        )
        if platform.blobs.exists(key):
            staged.discard()
            return str(blob_id), False
        # the row survived but its bytes were lost: the new upload heals it
    else:
        blob_id = created
    platform.blobs.place(key, staged.path)
    return str(blob_id), created is not None


async def blob_ids_of(session: AsyncSession, where: ColumnElement[bool]) -> set[str]:
    """Blobs (content and thumbnails) of the items matching ``where``, before they are deleted."""
    rows = await session.execute(
        union(
            select(Item.blob_id).where(where, Item.blob_id.is_not(None)),
            select(Item.thumbnail_blob_id).where(where, Item.thumbnail_blob_id.is_not(None)),
        )
    )
    return {row[0] for row in rows}


async def release(session: AsyncSession, blob_ids: set[str]) -> list[str]:
    """Drop the blob rows no item uses any more; return the platform keys whose bytes to delete.

    Objects in a user's own bucket are never deleted, only forgotten.
    """
    if not blob_ids:
        return []
    used = exists().where(or_(Item.blob_id == Blob.id, Item.thumbnail_blob_id == Blob.id))
    ids = list(blob_ids)
    freed: list[str] = []
    for start in range(0, len(ids), 500):
        rows = await session.execute(
            delete(Blob)
            .where(Blob.id.in_(ids[start : start + 500]), ~used)
            .returning(Blob.key, Blob.driver_id)
        )
        freed.extend(key for key, driver_id in rows if driver_id is None)
    return freed


def delete_bytes(platform: Platform, keys: list[str] | tuple[str, ...]) -> None:
    """Remove freed platform bytes after the transaction that freed them has committed."""
    for key in keys:
        try:
            platform.blobs.delete(key)
        except OSError as exc:  # bytes left behind waste space but lose nothing
            log.warning("could not delete blob %s: %s", key, exc)
