"""Which file of a dataset a file name of an annotation format means, asked for many at once.

A name matches the file with that path; else, when exactly one file of the dataset has its name,
that file (``/2007_000027.jpg`` finds ``/train/2007_000027.jpg``); else, for a name without
extension (YOLO's label files), the one file whose name is it plus an extension. An import asks
for a chunk of names at once, a few statements whatever its size: one for the paths, one for
the names that missed, a few for the stems; a converter's question about one image's size
(:meth:`Matcher.item`) is answered from the same cache, so the chunk does not ask again.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from graph.db.tables import Item
from graph.domain.platform import Platform

__all__ = ["Matcher", "Target"]

_IN_CHUNK = 500  # names per IN (...) list
_LIKE_CHUNK = 100  # stems per statement of OR-ed LIKEs


@dataclass(frozen=True)
class Target:
    """The file of the dataset a name matched: what writing its annotations needs."""

    id: str
    filename: str
    width: int | None
    height: int | None

    @property
    def size(self) -> tuple[int, int] | None:
        return (self.width, self.height) if self.width and self.height else None


class Matcher:
    """Matches names to the dataset's files, remembering the answers until :meth:`forget`."""

    def __init__(self, platform: Platform, dataset_id: str) -> None:
        self.platform, self.dataset_id = platform, dataset_id
        self._known: dict[str, Target | None] = {}

    async def item(self, filename: str) -> Target | None:
        return (await self.match([filename]))[filename]

    async def match(self, filenames: Iterable[str]) -> dict[str, Target | None]:
        names = list(filenames)
        todo = sorted({n for n in names if n not in self._known})
        if todo:
            async with self.platform.db.read() as session:
                self._known.update(await _lookup(session, self.dataset_id, todo))
        return {n: self._known[n] for n in names}

    def forget(self, filenames: Iterable[str]) -> None:
        """Drop these answers (a chunk's, once matched: memory stays flat in the dataset's
        size)."""
        for filename in filenames:
            self._known.pop(filename, None)


def _chunks(values: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    return (values[start : start + size] for start in range(0, len(values), size))


async def _lookup(
    session: AsyncSession, dataset_id: str, filenames: list[str]
) -> dict[str, Target | None]:
    files = select(Item.id, Item.filename, Item.name, Item.width, Item.height).where(
        Item.dataset_id == dataset_id, Item.type == "file"
    )
    found: dict[str, Target | None] = dict.fromkeys(filenames)
    for part in _chunks(filenames, _IN_CHUNK):
        for row in await session.execute(files.where(Item.filename.in_(part))):
            found[row.filename] = Target(row.id, row.filename, row.width, row.height)

    missed = sorted({posixpath.basename(f) for f, t in found.items() if t is None})
    by_name: dict[str, list[Target]] = {}
    for part in _chunks(missed, _IN_CHUNK):
        for row in await session.execute(files.where(Item.name.in_(part))):
            by_name.setdefault(row.name, []).append(
                Target(row.id, row.filename, row.width, row.height)
            )
    for filename, target in found.items():
        if target is None and len(by_name.get(posixpath.basename(filename), ())) == 1:
            found[filename] = by_name[posixpath.basename(filename)][0]

    stems = sorted(
        {
            posixpath.basename(f)
            for f, t in found.items()
            if t is None and not posixpath.splitext(posixpath.basename(f))[1]
        }
    )
    by_stem: dict[str, list[Target]] = {}
    for part in _chunks(stems, _LIKE_CHUNK):
        likes = [Item.name.like(_escaped(stem) + ".%", escape="\\") for stem in part]
        for row in await session.execute(files.where(or_(*likes))):
            for stem in part:  # case-sensitive on both databases (SQLite's LIKE is not)
                if row.name.startswith(stem + "."):
                    by_stem.setdefault(stem, []).append(
                        Target(row.id, row.filename, row.width, row.height)
                    )
    for filename, target in found.items():
        if target is None and len(by_stem.get(posixpath.basename(filename), ())) == 1:
            found[filename] = by_stem[posixpath.basename(filename)][0]
    return found


def _escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
