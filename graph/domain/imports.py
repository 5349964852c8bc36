"""Imports: annotations from an archive in an annotation format, onto a dataset's files.

The files come from an archive, received first (:func:`receive_archive`: staged to the blob
store while it arrives, refused past ``LOOPLINE_MAX_IMPORT_BYTES``, its names and unpacked size
checked), or from a folder of one of the project's storage drivers (``driverId``, ``folder``).
An execution of the platform function ``import_annotations`` (:mod:`operations`) imports them.
With ``withImages``, the images among the files (where the format keeps them) are uploaded
first (:mod:`import_images`). Then the converter reads the annotations one image at a time; the
images are matched to the dataset's files a chunk at a time (:mod:`import_matching`: by path,
else by name, else by name without extension) and each chunk's annotations written in one
transaction (:mod:`import_writing`), each image's all or none, checked as any annotation is
(types, geometry, bounds: ``outOfBounds`` "clip" or "reject", the recipe). Nothing stops at a
bad record: what could not be read or written is reported with its place, in the output (the
first 100) and the execution's log (all). The n-th annotation of the i-th image is keyed by the
execution, so an import run again after a lost worker writes none twice.
"""

from __future__ import annotations

import asyncio
import io
import shutil
import zipfile
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import IO, Any, BinaryIO

from sqlalchemy.ext.asyncio import AsyncSession

from graph.db.tables import Blob
from graph.domain import blobs, storage
from graph.domain.access import Actor, Role
from graph.domain.archives import checked_members
from graph.domain.datasets import dataset_for
from graph.domain.errors import DomainError, InvalidInput, NotFound
from graph.domain.formats import converter_for
from graph.domain.geometry import Outside
from graph.domain.import_images import Uploaded, upload_images
from graph.domain.import_matching import Matcher, Target
from graph.domain.import_writing import Image, prepare, write_chunk
from graph.domain.platform import Platform
from graph.domain.uploads import TooLarge
from graph.domain.work import Work
from plugins.converters import Files, ItemAnnotations, Problem, ZipFiles
from plugins.types import StorageBackend

__all__ = ["FUNCTION", "check_input", "check_start", "receive_archive", "run_import"]

FUNCTION = "import_annotations"
_REPORTED = 100  # problems in the output; the log has them all
_MAX_MEMBERS = 1_000_000
# images per chunk written in one transaction, fewer when they hold this many annotations
_CHUNK_IMAGES = 500
_CHUNK_ANNOTATIONS = 20_000


def check_input(platform: Platform, input: Mapping[str, Any]) -> None:
    """A format that reads (and says where its images are, to import them too), and a known
    way to treat points outside an image."""
    converter = converter_for(platform, input.get("format") or "", "read")
    if input.get("outOfBounds", "reject") not in ("reject", "clip"):
        raise InvalidInput('outOfBounds is "reject" or "clip"', field="outOfBounds")
    if not isinstance(input.get("withImages", False), bool):
        raise InvalidInput("withImages is true or false", field="withImages")
    if input.get("withImages") and converter.images is None:
        raise InvalidInput(
            f"the format {converter.name!r} does not say where its images are",
            field="withImages",
        )
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
    """:func:`check_input`, that a driver to read from is one of the project's that the actor
    may use, and that one who imports images may upload them (a developer)."""
    check_input(platform, input)
    if input.get("withImages"):
        await dataset_for(session, actor, input["datasetId"], Role.developer, writing=True)
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


def _take(
    records: Iterator[ItemAnnotations | Problem],
) -> tuple[list[ItemAnnotations | Problem], bool]:
    """The converter's next records, up to a chunk (in a worker thread: converters block);
    and whether they were the last."""
    taken: list[ItemAnnotations | Problem] = []
    images = annotations = 0
    for record in records:
        taken.append(record)
        if isinstance(record, ItemAnnotations):
            images, annotations = images + 1, annotations + len(record.annotations)
            if images >= _CHUNK_IMAGES or annotations >= _CHUNK_ANNOTATIONS:
                return taken, False
    return taken, True


class _Import:
    """One run of an import: what it found so far, and its reading and writing of records."""

    def __init__(self, platform: Platform, actor: Actor, work: Work, input: dict[str, Any]):
        self.platform, self.actor, self.work = platform, actor, work
        self.dataset_id: str = input["datasetId"]
        self.outside: Outside = "clip" if input.get("outOfBounds") == "clip" else "reject"
        self.matcher = Matcher(platform, self.dataset_id)
        self.loop = asyncio.get_running_loop()
        self.problems: list[Problem] = []
        self.counts = {"files": 0, "matched": 0, "annotations": 0}

    def problem(self, found: Problem) -> None:
        self.problems.append(found)
        self.work.log(f"{found.where}: {found.message}")

    def size(self, filename: str) -> tuple[int, int] | None:
        """An image's size, for a converter (which calls from its thread)."""
        found = asyncio.run_coroutine_threadsafe(self.matcher.item(filename), self.loop)
        target = found.result()
        return None if target is None else target.size

    async def checked(self, taken: list[ItemAnnotations | Problem]) -> list[Image]:
        """A chunk's records matched to files and made rows, what cannot be, reported: the
        rows made in a worker thread, so that the loop goes on with the chunk in writing
        meanwhile (each of its statements would otherwise wait for the whole chunk's checks)."""
        records = [r for r in taken if isinstance(r, ItemAnnotations)]
        matched = await self.matcher.match(r.filename for r in records)
        self.matcher.forget(matched)
        return await asyncio.to_thread(self._prepared, taken, matched)

    def _prepared(
        self, taken: list[ItemAnnotations | Problem], matched: dict[str, Target | None]
    ) -> list[Image]:
        images = []
        for record in taken:
            if isinstance(record, Problem):
                self.problem(record)
                continue
            self.counts["files"] += 1
            target = matched[record.filename]
            if target is None:
                self.problem(
                    Problem(record.filename, "no file of the dataset has this path or name")
                )
                continue
            self.counts["matched"] += 1
            image = Image(self.counts["files"], record, target)
            try:
                prepare(image, self.dataset_id, self.actor, self.work.execution_id, self.outside)
            except DomainError as error:
                self.problem(Problem(image.where, error.message))
                continue
            images.append(image)
        return images

    async def read(self, records: Iterator[ItemAnnotations | Problem]) -> None:
        """Read, check and write the records a chunk at a time: a chunk is read and checked
        while the one before it is written (the database works in its own thread, or server,
        meanwhile), one chunk in writing at a time."""
        writing: asyncio.Task[int] | None = None
        try:
            last = False
            while not last:
                taken, last = await asyncio.to_thread(_take, records)
                images = await self.checked(taken)
                if writing is not None:
                    self.counts["annotations"] += await writing
                    writing = None
                if images:
                    writing = asyncio.create_task(
                        write_chunk(
                            self.platform, self.actor, self.dataset_id, images, self.problem
                        )
                    )
                self.work.progress(self.counts["files"], None, "files read")
            if writing is not None:
                self.counts["annotations"] += await writing
                writing = None
        finally:
            if writing is not None:  # reading failed: the chunk in writing ends, whole or not
                await asyncio.wait([writing])


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
    run = _Import(platform, actor, work, input)
    images = Uploaded()
    try:
        async with _files(platform, actor, input, folder) as files:
            if input.get("withImages"):
                assert converter.images is not None
                images = await upload_images(
                    platform,
                    actor,
                    dataset_id,
                    files,
                    converter.images,
                    run.problem,
                    lambda done, total: work.progress(done, total, "images uploaded"),
                )
            await run.read(converter.read(files, run.size))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {
        **run.counts,
        "imagesUploaded": images.uploaded,
        "imagesPresent": images.present,
        "problemCount": len(run.problems),
        "problems": [{"where": p.where, "message": p.message} for p in run.problems[:_REPORTED]],
    }
