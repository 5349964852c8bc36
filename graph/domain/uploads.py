"""Uploads: files from clients become items, their bytes stored once per content.

One call handles a batch. The CPU work (hashing, media inspection, thumbnails) runs in worker
threads, several files at a time, before the write transaction opens, so the event loop stays free
and SQLite's single write lock is held only for the inserts. Then one transaction places the bytes,
inserts the items through :func:`graph.domain.items.insert_items` and commits; if it fails, the
bytes it placed are deleted again, so a failed upload leaves neither rows nor files behind.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO, TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from graph.db.tables import Dataset, Item
from graph.domain import blobs, items, media, paths, storage
from graph.domain.access import Actor, Role
from graph.domain.blobs import StagedFile
from graph.domain.datasets import dataset_for
from graph.domain.errors import Conflict, InvalidInput, StorageUnavailable
from graph.domain.platform import Platform

__all__ = [
    "IncomingFile",
    "TooLarge",
    "UploadResult",
    "remote_path",
    "stage",
    "upload_files",
    "writable_dataset",
]

T = TypeVar("T")
_MAX_FILES = 10_000
_CHUNK = 500  # rows per statement
# a batch's files are inspected this many at a time: Pillow and hashlib release the GIL
_WORKERS = max(2, os.cpu_count() or 2)


class TooLarge(InvalidInput):
    """A file over ``max_upload_bytes``; HTTP answers 413 (the code ``BodyLimit`` uses too)."""

    code = "PAYLOAD_TOO_LARGE"


@dataclass
class IncomingFile:
    """One file to upload: its remote path, its bytes and what the client said about it.

    ``source`` is read to its end; a :class:`StagedFile` (already hashed, e.g. streamed to disk
    by the HTTP route) is taken over: it is moved into the store or deleted, never left behind.
    """

    path: str
    source: BinaryIO | bytes | StagedFile
    mimetype: str | None = None
    metadata: dict[str, Any] | None = None
    description: str | None = None


@dataclass(frozen=True)
class UploadResult:
    """The item and what happened to it: ``created``, ``skipped`` or ``overwritten``."""

    item: Item
    op: str


@dataclass
class _Prepared:
    """A file staged and inspected, waiting for the transaction that stores it."""

    incoming: IncomingFile
    staged: StagedFile
    found: media.Media
    thumbnail: StagedFile | None = None

    def discard(self) -> None:
        self.staged.discard()
        if self.thumbnail is not None:
            self.thumbnail.discard()


def remote_path(directory: str | None, filename: str | None, field: str = "path") -> str:
    """``dir`` + a client's file name (which may hold sub-folders, ``a/b.jpg``) -> remote path."""
    if not filename:
        raise InvalidInput("a file part has no file name", field=field)
    base = paths.normalise_dir(directory, field="dir")
    path = base.rstrip("/") + "/" + filename.lstrip("/")
    paths.split(path, field=field)
    return path


async def writable_dataset(platform: Platform, actor: Actor, dataset_id: str) -> Dataset:
    """The dataset, if the actor may upload to it; checked before any byte is read."""
    async with platform.db.read() as session:
        return await dataset_for(session, actor, dataset_id, Role.developer, writing=True)


async def stage(platform: Platform, source: BinaryIO | bytes, field: str = "file") -> StagedFile:
    """Copy ``source`` to the staging area in a worker thread, hashing it, within the size limit."""
    return await _in_thread(_stage_within_limit, platform, source, field)


def _stage_within_limit(platform: Platform, source: BinaryIO | bytes, field: str) -> StagedFile:
    limit = platform.settings.max_upload_bytes
    try:
        return blobs.stage(platform, source, limit)
    except OverflowError:
        raise TooLarge(
            f"{field} is larger than the upload limit of {limit} bytes", field=field, limit=limit
        ) from None
    except OSError as exc:  # the staging area (beside the store) is full or unwritable
        raise StorageUnavailable(f"the platform store: {exc}") from None


async def _in_thread(work: Callable[..., T], *args: Any) -> T:
    """``work(*args)`` in a worker thread; if the caller is cancelled, a staged result is freed."""
    future = asyncio.get_running_loop().run_in_executor(None, work, *args)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        future.add_done_callback(_discard_result)
        raise


def _discard_result(future: asyncio.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is None:
        result = future.result()
        if isinstance(result, StagedFile | _Prepared):
            result.discard()


def _prepare(platform: Platform, incoming: IncomingFile, index: int) -> _Prepared:
    """Stage (unless staged already), inspect and thumbnail one file: the thread part."""
    if isinstance(incoming.source, StagedFile):
        staged = incoming.source
    else:
        staged = _stage_within_limit(platform, incoming.source, f"files[{index}]")
    try:
        name = paths.split(incoming.path)[1]
        found = media.inspect(staged.path, staged.size, name, incoming.mimetype)
        thumbnail = None if found.thumbnail is None else blobs.stage(platform, found.thumbnail)
    except BaseException:
        staged.discard()
        raise
    return _Prepared(incoming, staged, found, thumbnail)


async def _prepare_all(
    platform: Platform, files: Sequence[tuple[int, IncomingFile]]
) -> list[_Prepared]:
    """Prepare every file, a few at a time; on any failure nothing staged is left behind."""
    gate = asyncio.Semaphore(_WORKERS)

    async def one(index: int, incoming: IncomingFile) -> _Prepared:
        started = False
        try:
            async with gate:
                started = True
                return await _in_thread(_prepare, platform, incoming, index)
        except asyncio.CancelledError:
            if not started and isinstance(incoming.source, StagedFile):
                incoming.source.discard()
            raise

    done = await asyncio.gather(*(one(i, f) for i, f in files), return_exceptions=True)
    prepared = [d for d in done if isinstance(d, _Prepared)]
    failures = [d for d in done if isinstance(d, BaseException)]
    if failures:
        for each in prepared:
            each.discard()
        raise failures[0]
    return prepared


def _check(files: Sequence[IncomingFile]) -> list[str]:
    """Refuse a bad batch before any work: paths, duplicates, metadata. Returns the paths."""
    if not files:
        raise InvalidInput("no files given", field="files")
    if len(files) > _MAX_FILES:
        raise InvalidInput(f"at most {_MAX_FILES} files per upload", field="files")
    seen: set[str] = set()
    result = []
    for index, incoming in enumerate(files):
        directory, name = paths.split(incoming.path, field=f"files[{index}].path")
        filename = paths.join(directory, name)
        if filename in seen:
            raise InvalidInput(f"{filename!r} is given twice", field=f"files[{index}].path")
        seen.add(filename)
        items.check_user_metadata(incoming.metadata, field=f"files[{index}].metadata")
        result.append(filename)
    return result


async def _existing(
    session: AsyncSession, dataset_id: str, filenames: list[str]
) -> dict[str, Item]:
    found: dict[str, Item] = {}
    for start in range(0, len(filenames), _CHUNK):
        rows = await session.scalars(
            select(Item).where(
                Item.dataset_id == dataset_id, Item.filename.in_(filenames[start : start + _CHUNK])
            )
        )
        found.update((row.filename, row) for row in rows)
    return found


async def _place_all(
    session: AsyncSession,
    platform: Platform,
    dataset: Dataset,
    prepared: list[_Prepared],
    placed: list[str],
) -> list[items.ItemSpec]:
    """Store every file's bytes and thumbnail; return the item specs in the order given.

    Platform keys this call creates are added to ``placed`` so a failed transaction can delete
    them. A driver-bound dataset gets its files' bytes in its own store, in path order.
    """
    staged = [p.thumbnail for p in prepared if p.thumbnail is not None]
    if dataset.driver_id is None:
        staged += [p.staged for p in prepared]
    blob_ids = await blobs.ensure_blobs(session, platform, staged, placed)
    content: dict[int, str] = {}
    if dataset.driver_id is None:
        content = {i: blob_ids[p.staged.sha256] for i, p in enumerate(prepared)}
    else:
        for index in sorted(range(len(prepared)), key=lambda i: prepared[i].incoming.path):
            each = prepared[index]
            content[index] = await storage.store_in_driver(
                platform, session, dataset, each.incoming.path, each.staged, each.found.mimetype
            )
    return [
        _spec(each, content[i], None if each.thumbnail is None else blob_ids[each.thumbnail.sha256])
        for i, each in enumerate(prepared)
    ]


def _spec(prepared: _Prepared, blob_id: str, thumbnail_id: str | None) -> items.ItemSpec:
    incoming, found = prepared.incoming, prepared.found
    return items.ItemSpec(
        path=incoming.path,
        mimetype=found.mimetype,
        size=prepared.staged.size,
        width=found.width,
        height=found.height,
        blob_id=blob_id,
        thumbnail_blob_id=thumbnail_id,
        description=incoming.description or None,
        system={"originalname": paths.split(incoming.path)[1], **found.system},
        user=items.check_user_metadata(incoming.metadata),
    )


async def upload_files(
    platform: Platform,
    actor: Actor,
    dataset_id: str,
    files: Sequence[IncomingFile],
    mode: str = "skip",
) -> list[UploadResult]:
    """Upload ``files`` into a dataset in one transaction; results in the order given.

    ``mode`` decides for a path that exists: ``skip`` keeps the item and does not even store the
    new bytes; ``overwrite`` replaces its content (id, annotations and user fields stay) and frees
    the old bytes if nothing else uses them. Identical content is stored once and shared. A
    zero-byte file becomes an ordinary file item of size 0 (``application/octet-stream`` unless
    claimed as text), so an upload of a folder never silently drops a file. Needs the developer
    role; a read-only dataset refuses.
    """
    try:
        clash = items.check_mode(mode)
        filenames = _check(files)
        async with platform.db.read() as session:
            await dataset_for(session, actor, dataset_id, Role.developer, writing=True)
            known = await _existing(session, dataset_id, filenames) if clash == "skip" else {}
    except BaseException:
        _discard_staged(files)
        raise
    for index, filename in enumerate(filenames):
        if filename in known and known[filename].type == "dir":
            _discard_staged(files)
            raise InvalidInput(f"{filename!r} is a folder", field=f"files[{index}].path")
    for filename, incoming in zip(filenames, files, strict=True):
        if filename in known and isinstance(incoming.source, StagedFile):
            incoming.source.discard()
    todo = [
        (i, f)
        for i, (name, f) in enumerate(zip(filenames, files, strict=True))
        if name not in known
    ]
    prepared = await _prepare_all(platform, todo)
    placed: list[str] = []
    try:
        results, freed = await _store(
            platform, actor, dataset_id, filenames, known, prepared, clash, placed
        )
    except BaseException:
        blobs.delete_bytes(platform, placed)
        raise
    finally:
        for each in prepared:
            each.discard()  # whatever was not moved into the store
    blobs.delete_bytes(platform, freed)
    return results


def _discard_staged(files: Sequence[IncomingFile]) -> None:
    for incoming in files:
        if isinstance(incoming.source, StagedFile):
            incoming.source.discard()


async def _store(
    platform: Platform,
    actor: Actor,
    dataset_id: str,
    filenames: list[str],
    known: dict[str, Item],
    prepared: list[_Prepared],
    mode: items.ClashMode,
    placed: list[str],
) -> tuple[list[UploadResult], list[str]]:
    """The write transaction: place bytes, insert items, free what overwrites and skips left."""
    async with platform.db.write() as session:
        dataset = await dataset_for(session, actor, dataset_id, Role.developer, writing=True)
        specs = await _place_all(session, platform, dataset, prepared, placed)
        inserted, dropped = await items.insert_items(session, actor, dataset, specs, mode)
        # a path taken since the check above: its new blobs may now be used by nothing
        for spec, outcome in zip(specs, inserted, strict=True):
            if outcome.op == "skipped":
                dropped.update(b for b in (spec.blob_id, spec.thumbnail_blob_id) if b)
        freed = await blobs.release(session, dropped)
        ops = {r.filename: (r.item_id, r.op) for r in inserted}
        ops.update((name, (row.id, "skipped")) for name, row in known.items())
        rows = {row.id: row for row in await _rows(session, [i for i, _ in ops.values()])}
        results = []
        for filename in filenames:
            item_id, op = ops[filename]
            row = rows.get(item_id)
            if row is None or row.filename != filename:  # moved or deleted since the check
                raise Conflict(f"{filename!r} changed during the upload; upload it again")
            results.append(UploadResult(row, op))
    return results, freed


async def _rows(session: AsyncSession, ids: list[str]) -> list[Item]:
    rows: list[Item] = []
    for start in range(0, len(ids), _CHUNK):
        rows.extend(
            await session.scalars(select(Item).where(Item.id.in_(ids[start : start + _CHUNK])))
        )
    return rows
