"""An import's images: the files of an archive or storage folder where its format keeps images
(:attr:`plugins.converters.ConverterType.images`), uploaded into the dataset before the
annotations are matched to them.

They go through the upload code (graph/domain/uploads.py) as any upload does: hashed, stored
once per content, inspected and thumbnailed, their folders made, a path the dataset has already
kept as it is (``skip``: an image imported again is matched, not duplicated). A batch of images
is one upload; if it fails, its images are uploaded one at a time, so a bad file (too large, a
path that is not a valid item path) is reported alone and loses nothing else. An image whose
bytes do not decode is kept as uploads keep it (a file with a note saying why) and reported.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from graph.domain import paths, uploads
from graph.domain.access import Actor
from graph.domain.blobs import StagedFile
from graph.domain.errors import DomainError
from graph.domain.platform import Platform
from plugins.converters import Files, ImagePath, Problem

__all__ = ["Uploaded", "upload_images"]

_BATCH = 100  # images per upload: staged on disk together, one transaction


@dataclass
class Uploaded:
    """What became of an import's images: ``uploaded`` new, ``present`` kept as they were."""

    uploaded: int = 0
    present: int = 0


def _images(
    names: list[str], image_path: ImagePath, report: Callable[[Problem], None]
) -> list[tuple[str, str]]:
    """``(name in the archive, item path)`` of each image, a path once."""
    found: dict[str, str] = {}
    for name in names:
        path = image_path(name)
        if path is None:
            continue
        try:
            path = paths.join(*paths.split(path, field=name))
        except DomainError as error:
            report(Problem(name, error.message))
            continue
        if path in found:
            report(Problem(name, f"the item {path} is the image {found[path]} already"))
            continue
        found[path] = name
    return sorted(((name, path) for path, name in found.items()), key=lambda pair: pair[1])


async def _staged(platform: Platform, files: Files, name: str, path: str) -> uploads.IncomingFile:
    handle = await asyncio.to_thread(files.open, name)
    try:
        return uploads.IncomingFile(path, await uploads.stage(platform, handle, field=name))
    finally:
        handle.close()


async def _upload(
    platform: Platform,
    actor: Actor,
    dataset_id: str,
    files: Files,
    batch: Sequence[tuple[str, str]],
    report: Callable[[Problem], None],
    done: Uploaded,
) -> None:
    incoming: list[uploads.IncomingFile] = []
    try:
        try:
            for name, path in batch:
                incoming.append(await _staged(platform, files, name, path))
        except BaseException:
            for each in incoming:  # upload_files takes staged files over; until then, ours
                assert isinstance(each.source, StagedFile)
                each.source.discard()
            raise
        results = await uploads.upload_files(platform, actor, dataset_id, incoming, "skip")
    except DomainError as error:
        if len(batch) == 1:
            report(Problem(batch[0][0], error.message))
            return
        for one in batch:
            await _upload(platform, actor, dataset_id, files, [one], report, done)
        return
    for (name, _), result in zip(batch, results, strict=True):
        if result.op == "skipped":
            done.present += 1
            continue
        done.uploaded += 1
        note = (result.item.metadata_.get("system") or {}).get("note")
        if note:
            report(Problem(name, f"uploaded as a plain file, {note}"))


async def upload_images(
    platform: Platform,
    actor: Actor,
    dataset_id: str,
    files: Files,
    image_path: ImagePath,
    report: Callable[[Problem], None],
    progress: Callable[[int, int], None],
) -> Uploaded:
    """Upload the images among ``files`` (see the module's docstring)."""
    names = await asyncio.to_thread(lambda: sorted(files.names()))
    images = _images(names, image_path, report)
    done = Uploaded()
    for start in range(0, len(images), _BATCH):
        batch = images[start : start + _BATCH]
        await _upload(platform, actor, dataset_id, files, batch, report, done)
        progress(start + len(batch), len(images))
    return done
