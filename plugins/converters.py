"""Annotation converters: what a plugin gives to read and write an annotation file format.

A converter translates between files (an uploaded archive, a storage folder, an export) and
annotations in Dataloop's JSON vocabulary (``type``, ``label``, ``coordinates`` in pixels,
``attributes``, ``metadata``), one :class:`ItemAnnotations` per image. It knows nothing of
datasets or the database: the platform finds the items, checks the annotations against the
dataset's recipe, and streams what it exports. Built-in converters (``voc``, ``yolo``, ...) are
registered through the same hook, :func:`plugins.hookspecs.register_converters`.

Reading never stops at the first bad record: a record that cannot be read becomes a
:class:`Problem` saying which file, where in it and what was wrong, and reading goes on, so an
import reports everything at once. Writing takes the items as an iterator and writes as it goes,
so an export holds one item in memory, not the dataset.
"""

from __future__ import annotations

import fnmatch
import io
import json
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol, TypeAlias
from xml.etree import ElementTree

import orjson

__all__ = [
    "ConverterType",
    "Files",
    "ImagePath",
    "ItemAnnotations",
    "Output",
    "Problem",
    "Read",
    "Sizes",
    "Write",
    "attributes_of",
    "json_bytes",
    "images_below",
    "json_files",
    "with_attributes",
    "xml_files",
    "FolderFiles",
    "ZipFiles",
    "ZipOutput",
]


@dataclass
class ItemAnnotations:
    """The annotations of one item as a file format holds them.

    ``filename`` is the item's path as the format names it, relative to the archive root with a
    leading ``/`` (``/2007_000027.jpg``); the platform matches it to an item of the dataset by
    path, then by name. ``width`` and ``height`` are the image's size when the format says it.
    Each annotation is a dict of Dataloop's annotation JSON (at least ``type``; attributes by
    name in ``metadata.system.attributes``, see :func:`attributes_of`); an ``id`` is
    only a key within the item that a child's ``metadata.system.parentId`` (a pose's points)
    refers to. ``item``
    holds fields of the item itself a format carries (Dataloop JSON: ``metadata``,
    ``description``)."""

    filename: str
    annotations: list[dict[str, Any]] = field(default_factory=list)
    width: int | None = None
    height: int | None = None
    item: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Problem:
    """A record a converter could not read: ``where`` names the file and the place in it
    (``voc/a.xml: object 2``), ``message`` what was wrong."""

    where: str
    message: str


class Files(Protocol):
    """The files a converter reads: paths relative to the root, ``/``-separated, no leading ``/``."""

    def names(self) -> Iterable[str]: ...

    def open(self, name: str) -> IO[bytes]: ...


class Output(Protocol):
    """Where a converter writes: ``open(name)`` gives a binary file to write ``name`` into."""

    def open(self, name: str) -> AbstractContextManager[IO[bytes]]: ...


# the (width, height) of the item a format's filename names, when the platform knows it
Sizes: TypeAlias = Callable[[str], tuple[int, int] | None]
Read: TypeAlias = Callable[[Files, Sizes], Iterator[ItemAnnotations | Problem]]
# the items to write, the labels in their order (class ids of formats that number classes);
# returns how many annotations the format could not hold (left out)
Write: TypeAlias = Callable[[Iterable[ItemAnnotations], Sequence[str], Output], int]
# a file's name in an archive of the format -> the path of the item it is the image of, as the
# format's annotations name it (``/a.jpg``), or None when the file is not one of its images
ImagePath: TypeAlias = Callable[[str], str | None]


@dataclass(frozen=True)
class ConverterType:
    """An annotation format: ``name`` (unique, lowercase: ``voc``) is what users pass to import
    and export; ``types`` the annotation types it can hold (others are left out of an export
    and counted; ``None``: every type); ``read`` and ``write`` as above (either may be ``None``
    for a one-way format); ``images`` where an archive of the format keeps the images, for an
    import that uploads them too (``None``: the format does not say)."""

    name: str
    description: str
    types: frozenset[str] | None
    read: Read | None
    write: Write | None
    images: ImagePath | None = None


def attributes_of(annotation: dict[str, Any]) -> dict[str, Any]:
    """An annotation's attributes by name (Dataloop's v2: ``metadata.system.attributes``)."""
    found = ((annotation.get("metadata") or {}).get("system") or {}).get("attributes")
    return found if isinstance(found, dict) else {}


def with_attributes(annotation: dict[str, Any], attributes: dict[str, Any]) -> dict[str, Any]:
    """``annotation`` given these attributes by name (none: left as it is)."""
    if attributes:
        metadata = annotation.setdefault("metadata", {})
        metadata.setdefault("system", {})["attributes"] = attributes
    return annotation


def json_bytes(value: Any) -> bytes:
    """``value`` as compact UTF-8 JSON: orjson (several times faster than ``json``, which an
    export of a million annotations feels), ``json`` for what orjson refuses (integers beyond 64
    bits)."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def images_below(*folders: str) -> ImagePath:
    """The :data:`ImagePath` of a format that keeps its images below a folder named one of
    ``folders`` (glob patterns: ``images``, ``obj_*_data``), at the archive's root or deeper:
    ``images/train/a.jpg`` is the image of ``/train/a.jpg`` (the folder left out, what is above
    and below it kept). Hidden files (``.DS_Store``) are no images."""

    def image_path(name: str) -> str | None:
        parts = name.split("/")
        if parts[-1].startswith("."):
            return None
        for at, part in enumerate(parts[:-1]):
            if any(fnmatch.fnmatchcase(part, folder) for folder in folders):
                return "/" + "/".join(parts[:at] + parts[at + 1 :])
        return None

    return image_path


def json_files(files: Files) -> Iterator[tuple[str, Any] | Problem]:
    """Each ``*.json`` file's name and parsed content, or a :class:`Problem` if it is not JSON."""
    for name in sorted(n for n in files.names() if n.lower().endswith(".json")):
        try:
            with files.open(name) as handle:
                # orjson: a large COCO file parses in less than half the time of json's
                yield name, orjson.loads(handle.read())
        except orjson.JSONDecodeError as error:  # also bytes that are not UTF-8
            yield Problem(name, f"not JSON ({error})")


def xml_files(files: Files) -> Iterator[tuple[str, ElementTree.Element] | Problem]:
    """Each ``*.xml`` file's name and root element, or a :class:`Problem` if it is not
    well-formed. Parsed by the standard library's expat, which resolves no external entities
    and refuses entity expansion bombs."""
    for name in sorted(n for n in files.names() if n.lower().endswith(".xml")):
        try:
            with files.open(name) as handle:
                yield name, ElementTree.parse(handle).getroot()
        except ElementTree.ParseError as error:
            yield Problem(name, f"not well-formed XML ({error})")


class FolderFiles:
    """The files under a folder of the local disk."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def names(self) -> Iterable[str]:
        return (p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file())

    def open(self, name: str) -> IO[bytes]:
        return (self.root / name).open("rb")


class ZipFiles:
    """The files of a zip archive (folders and unsafe names left out: the platform checks an
    archive's names before it is read)."""

    def __init__(self, archive: zipfile.ZipFile) -> None:
        self.archive = archive

    def names(self) -> Iterable[str]:
        return (i.filename for i in self.archive.infolist() if not i.is_dir())

    def open(self, name: str) -> IO[bytes]:
        return self.archive.open(name)


class ZipOutput:
    """Writes each file into a zip archive as it comes (deflated), one at a time, through a
    buffer: a converter may write an annotation at a time without a compression call each."""

    def __init__(self, archive: zipfile.ZipFile) -> None:
        self.archive = archive

    def open(self, name: str) -> AbstractContextManager[IO[bytes]]:
        entry = self.archive.open(name, "w", force_zip64=True)
        return io.BufferedWriter(entry, 1 << 16)  # type: ignore[arg-type]
