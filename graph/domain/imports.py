"""Imports: annotations from an archive in an annotation format, onto a dataset's files.

The files come from an archive, received first (:func:`receive_archive`: staged to the blob
store while it arrives, refused past ``LOOPLINE_MAX_IMPORT_BYTES``, its names and unpacked size
checked), or from a folder of one of the project's storage drivers (``driverId``, ``folder``).
An execution of the platform function ``import_annotations`` (:mod:`operations`) imports them:
the converter reads them one image at a time; each is matched to a file of the dataset by
path, else by name when one file has it (``/2007_000027.jpg`` finds ``/train/2007_000027.jpg``),
else by name without extension (YOLO's label files); its annotations are written all or none,
checked as any annotation is (types, geometry, bounds: ``outOfBounds`` "clip" or "reject").
Nothing stops at a bad record: what could not be read or written is reported with its place,
in the output (the first 100) and the execution's log (all). The n-th annotation of the i-th
image is keyed by the execution, so an import run again after a lost worker writes none twice.
"""

from __future__ import annotations

import asyncio
import io
import posixpath
import shutil
import zipfile
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import IO, Any, BinaryIO

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from graph.db.tables import Blob, Item
from graph.domain import annotations, blobs, storage
from graph.domain.access import Actor, Role
from graph.domain.annotation_json import from_dataloop
from graph.domain.archives import checked_members
from graph.domain.datasets import dataset_for
from graph.domain.errors import DomainError, InvalidInput, NotFound
from graph.domain.formats import converter_for
from graph.domain.geometry import Outside
from graph.domain.platform import Platform
from graph.domain.uploads import TooLarge
from graph.domain.work import Work
from plugins.converters import Files, ItemAnnotations, Problem, ZipFiles
from plugins.types import StorageBackend

__all__ = ["FUNCTION", "check_input", "check_start", "receive_archive", "run_import"]

FUNCTION = "import_annotations"
_REPORTED = 100  # problems in the output; the log has them all
_MAX_MEMBERS = 1_000_000


def check_input(platform: Platform, input: Mapping[str, Any]) -> None:
    """A format that reads, and a known way to treat points outside an image."""
    converter_for(platform, input.get("format") or "", "read")
    if input.get("outOfBounds", "reject") not in ("reject", "clip"):
        raise InvalidInput('outOfBounds is "reject" or "clip"', field="outOfBounds")
    if bool(input.get("blobId")) == bool(input.get("driverId")):
        raise InvalidInput(
            "import from an archive (send it) or from a storage driver's folder (driverId)",
            field="driverId",
        )


async def check_start(
    session: AsyncSession,
    platform: Platform,
    actor: Actor,
    project_id: str,
    input: Mapping[str, Any],
) -> None:
    """:func:`check_input`, and that a driver to read from is one of the project's that the
    actor may use."""
    check_input(platform, input)
    if input.get("driverId"):
        driver, _ = await storage.driver_for(
            session, actor, input["driverId"], Role.annotationManager
        )
        if driver.project_id != project_id:
            raise InvalidInput("the driver is not one of the dataset's project", field="driverId")


def _check_archive(path: Path, limit: int) -> None:
    try:
        with zipfile.ZipFile(path) as archive:
            checked_members(archive, max_members=_MAX_MEMBERS, max_unpacked=4 * limit)
    except zipfile.BadZipFile:
        raise InvalidInput("the archive is not a zip file", field="archive") from None


async def receive_archive(
    platform: Platform, actor: Actor, dataset_id: str, archive: BinaryIO | bytes
) -> str:
    """Store an archive to import into the dataset; its blob id (for the import's input)."""
    async with platform.db.read() as session:
        await dataset_for(session, actor, dataset_id, Role.annotationManager, writing=True)
    limit = platform.settings.max_import_bytes
    try:
        staged = await asyncio.to_thread(blobs.stage, platform, archive, limit)
    except OverflowError:
        raise TooLarge(
            f"the archive is larger than the import limit of {limit} bytes",
            field="archive",
            limit=limit,
        ) from None
    try:
        await asyncio.to_thread(_check_archive, staged.path, limit)
        async with platform.db.write() as session:
            blob_id, _ = await blobs.ensure_blob(session, platform, staged)
    finally:
        staged.discard()
    return blob_id


class _Matcher:
    """Finds the dataset's file a format's file name means, and an image's size."""

    def __init__(self, platform: Platform, dataset_id: str) -> None:
        self.platform, self.dataset_id = platform, dataset_id
        # the last answer: a converter asks an image's size, then the import asks its file
        self._last: tuple[str, Item | None] | None = None

    async def item(self, filename: str) -> Item | None:
        if self._last is None or self._last[0] != filename:
            self._last = (filename, await self._find(filename))
        return self._last[1]

    async def _find(self, filename: str) -> Item | None:
        files = [Item.dataset_id == self.dataset_id, Item.type == "file"]
        name = posixpath.basename(filename)
        async with self.platform.db.read() as session:
            exact = await session.scalar(select(Item).where(*files, Item.filename == filename))
            if exact is not None:
                return exact
            by_name = (
                await session.scalars(select(Item).where(*files, Item.name == name).limit(2))
            ).all()
            if len(by_name) == 1:
                return by_name[0]
            if posixpath.splitext(name)[1]:
                return None
            stems = select(Item).where(*files, Item.name.like(_escaped(name) + ".%", escape="\\"))
            by_stem = (await session.scalars(stems.limit(2))).all()
            return by_stem[0] if len(by_stem) == 1 else None


def _escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class _StoreFiles:
    """The files below a folder of a storage driver."""

    def __init__(self, backend: StorageBackend, folder: str) -> None:
        self.backend = backend
        self.prefix = folder.strip("/") + "/" if folder.strip("/") else ""

    def names(self) -> Iterator[str]:
        return (info.key[len(self.prefix) :] for info in self.backend.list(self.prefix))

    def open(self, name: str) -> IO[bytes]:
        return io.BytesIO(b"".join(self.backend.open(self.prefix + name)))


async def _copy_blob(platform: Platform, blob_id: str, target: Path) -> None:
    async with platform.db.read() as session:
        blob = await session.get(Blob, blob_id)
    if blob is None:
        raise NotFound("archive", blob_id)

    def copy() -> None:
        with target.open("wb") as out:
            for chunk in storage.read_blob(platform, blob, None, None):
                out.write(chunk)

    await asyncio.to_thread(copy)


@asynccontextmanager
async def _files(
    platform: Platform, actor: Actor, input: dict[str, Any], folder: Path
) -> AsyncIterator[Files]:
    """What the import reads: the archive (copied beside the spool) or the driver's folder."""
    if input.get("blobId"):
        await _copy_blob(platform, input["blobId"], folder / "archive.zip")
        with zipfile.ZipFile(folder / "archive.zip") as archive:
            yield ZipFiles(archive)
        return
    async with platform.db.read() as session:
        driver, integration = await storage.driver_for(
            session, actor, input["driverId"], Role.annotationManager
        )
    with storage.store_errors(driver):
        yield _StoreFiles(
            storage.open_backend(platform, driver, integration), input.get("folder") or ""
        )


async def _write(
    platform: Platform,
    actor: Actor,
    work: Work,
    item: Item,
    record: ItemAnnotations,
    index: int,
    outside: Outside,
) -> int:
    """Write one image's annotations (parents first, children pointing at them); how many."""
    keys = [f"{work.execution_id}:{index}:{n}" for n in range(len(record.annotations))]
    parents = [(a, k) for a, k in zip(record.annotations, keys, strict=True) if not _parent_of(a)]
    children = [(a, k) for a, k in zip(record.annotations, keys, strict=True) if _parent_of(a)]
    created = await annotations.create_annotations(
        platform,
        actor,
        item.id,
        [from_dataloop(a) for a, _ in parents],
        execution_id=work.execution_id,
        effect_keys=[k for _, k in parents],
        outside=outside,
    )
    ids = {a.get("id"): row.id for (a, _), row in zip(parents, created, strict=True) if a.get("id")}
    specs = []
    for annotation, _ in children:
        spec = from_dataloop(annotation)
        spec.parent_id = ids.get(_parent_of(annotation))
        if spec.parent_id is None:
            raise InvalidInput(
                f"the parent {_parent_of(annotation)!r} is not in the file", field="parentId"
            )
        specs.append(spec)
    if specs:
        await annotations.create_annotations(
            platform,
            actor,
            item.id,
            specs,
            execution_id=work.execution_id,
            effect_keys=[k for _, k in children],
            outside=outside,
        )
    return len(record.annotations)


def _parent_of(annotation: dict[str, Any]) -> Any:
    return ((annotation.get("metadata") or {}).get("system") or {}).get("parentId")


async def run_import(
    platform: Platform, actor: Actor, work: Work, input: dict[str, Any]
) -> dict[str, Any]:
    check_input(platform, input)
    dataset_id = input["datasetId"]
    async with platform.db.read() as session:
        await dataset_for(session, actor, dataset_id, Role.annotationManager, writing=True)
    converter = converter_for(platform, input["format"], "read")
    assert converter.read is not None
    folder = platform.settings.home / "imports" / work.execution_id
    folder.mkdir(parents=True, exist_ok=True)
    loop = asyncio.get_running_loop()
    matcher = _Matcher(platform, dataset_id)
    problems: list[Problem] = []
    counts = {"files": 0, "matched": 0, "annotations": 0}
    outside: Outside = "clip" if input.get("outOfBounds") == "clip" else "reject"

    def problem(found: Problem) -> None:
        problems.append(found)
        work.log(f"{found.where}: {found.message}")

    def size(filename: str) -> tuple[int, int] | None:  # called by the converter, off the loop
        item = asyncio.run_coroutine_threadsafe(matcher.item(filename), loop).result()
        return (item.width, item.height) if item and item.width and item.height else None

    try:
        async with _files(platform, actor, input, folder) as files:
            records: Iterator[ItemAnnotations | Problem] = converter.read(files, size)
            while (record := await asyncio.to_thread(next, records, None)) is not None:
                if isinstance(record, Problem):
                    problem(record)
                    continue
                counts["files"] += 1
                item = await matcher.item(record.filename)
                if item is None:
                    problem(
                        Problem(record.filename, "no file of the dataset has this path or name")
                    )
                    continue
                counts["matched"] += 1
                try:
                    counts["annotations"] += await _write(
                        platform, actor, work, item, record, counts["files"], outside
                    )
                except DomainError as error:
                    problem(Problem(f"{record.filename} ({item.filename})", error.message))
                work.progress(counts["files"], None, "files read")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {
        **counts,
        "problemCount": len(problems),
        "problems": [{"where": p.where, "message": p.message} for p in problems[:_REPORTED]],
    }
