"""Blobs: bytes stored once per content and shared by items, clones and thumbnails."""

from __future__ import annotations

import asyncio
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
from graph.db.ids import new_ids
from graph.db.tables import Blob, Item, utcnow
from graph.domain.errors import StorageUnavailable
from graph.domain.platform import Platform

__all__ = [
    "StagedFile",
    "blob_ids_of",
    "content_key",
    "delete_bytes",
    "ensure_blob",
    "ensure_blobs",
    "release",
    "stage",
]

log = logging.getLogger(__name__)
_READ_CHUNK = 1 << 20
_ROWS = 500  # rows per statement


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
                chunks = iter(lambda: source.read(_READ_CHUNK), b"")
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


async def ensure_blobs(
    session: AsyncSession, platform: Platform, staged: list[StagedFile], placed: list[str]
) -> dict[str, str]:
    """The platform blobs holding the ``staged`` contents, made where new; ids by sha256.

    Two statements per 500 contents, whatever the batch size.

    Rows are inserted in key order, so concurrent uploads sharing content take the rows' locks in
    the same order and never deadlock (PostgreSQL). New content is moved into the store (and bytes
    lost under an existing row are healed) in a worker thread; new keys are added to ``placed``.
    """
    first: dict[str, StagedFile] = {}
    for each in staged:
        first.setdefault(content_key(each.sha256), each)
    keys = sorted(first)
    ids: dict[str, str] = {}
    created: set[str] = set()
    now = utcnow()
    for start in range(0, len(keys), _ROWS):
        chunk = keys[start : start + _ROWS]
        rows = [
            {
                "id": blob_id,
                "key": key,
                "sha256": first[key].sha256,
                "size": first[key].size,
                "created_at": now,
                "updated_at": now,
            }
            for blob_id, key in zip(new_ids(len(chunk)), chunk, strict=True)
        ]
        inserted = await session.execute(
            dialect_insert(session)(Blob)
            .values(rows)
            .on_conflict_do_nothing(index_elements=["key"], index_where=Blob.driver_id.is_(None))
            .returning(Blob.key, Blob.id)
        )
        for key, blob_id in inserted:
            ids[key] = blob_id
            created.add(key)
        known = [k for k in chunk if k not in ids]
        if known:
            found = await session.execute(
                select(Blob.key, Blob.id).where(Blob.driver_id.is_(None), Blob.key.in_(known))
            )
            ids.update({key: blob_id for key, blob_id in found})

    def move_into_place() -> None:
        for key in keys:
            if key in created or not platform.blobs.exists(key):
                platform.blobs.place(key, first[key].path)
                if key in created:
                    placed.append(key)

    try:
        await asyncio.to_thread(move_into_place)
    except OSError as exc:
        raise StorageUnavailable(f"the platform store: {exc}") from None
    return {first[key].sha256: ids[key] for key in keys}


async def ensure_blob(
    session: AsyncSession, platform: Platform, staged: StagedFile
) -> tuple[str, bool]:
    """:func:`ensure_blobs` for one file: ``(blob id, whether this call created it)``."""
    placed: list[str] = []
    ids = await ensure_blobs(session, platform, [staged], placed)
    staged.discard()  # moved into the store, or not needed: the content was there already
    return ids[staged.sha256], bool(placed)


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
    for start in range(0, len(ids), _ROWS):
        rows = await session.execute(
            delete(Blob)
            .where(Blob.id.in_(ids[start : start + _ROWS]), ~used)
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
