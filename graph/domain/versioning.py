"""Versions of datasets: clones and merges that share bytes with their sources, and lineage.

Dataloop has no version entity: a version is a clone (``srcDataset``). A clone or merge copies
item rows (``srcItem`` points at the source item) and, if asked, annotations (``srcAnnotationId``),
but never bytes: the copies use the same blobs, thumbnails and URLs as their sources. A clone keeps
its source's recipe; a merge takes the recipe its sources share, if they all have the same.

Sources are read in keyset batches by path, so memory stays flat however large they are; each
operation is one transaction.

Merge rule for clashing paths: sources are merged in the order given and the first to use a path
keeps it. A later source's item whose path is taken (by a file or a folder of the merged dataset,
or because one of its folders is a file there) goes under a folder named after its source dataset,
``/<source name>/<path>``; if that is taken too, `` (2)``, `` (3)``... is added before the file
extension.
"""

from __future__ import annotations

import posixpath
from collections import Counter
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Row, and_, bindparam, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from dql.ast import Query
from graph.db.ids import new_ids
from graph.db.tables import Annotation, Dataset, Item, utcnow
from graph.domain import events, indexes, items, label_counts, paths, queries
from graph.domain.access import Actor, Role
from graph.domain.datasets import dataset_for, insert_dataset
from graph.domain.errors import Conflict, InvalidInput
from graph.domain.platform import Platform

__all__ = ["Lineage", "clone_dataset", "lineage", "merge_datasets"]

_ITEMS = Item.__table__
_ANNOTATIONS = Annotation.__table__
_BATCH = 2000  # source items read, copied and annotated per step
_IN_CHUNK = 500  # ids per IN (...) list
_MAX_SUFFIX = 1000
_MAX_DEPTH = 1000  # lineage walks stop here whatever the data says


@dataclass(frozen=True)
class Lineage:
    """A dataset's ancestors (its source, the source's source, ...; nearest first) and the datasets
    cloned from it, directly or from its clones (by generation, then creation)."""

    ancestors: list[Dataset]
    clones: list[Dataset]


# --- reading sources ------------------------------------------------------------------------------


async def _source_rows(
    session: AsyncSession,
    dataset_id: str,
    where: ColumnElement[bool] | None = None,
    params: Mapping[str, Any] | None = None,
) -> AsyncIterator[list[Row[Any]]]:
    """The file items of a dataset (optionally only those matching ``where``, its parameters'
    values in ``params``) in batches by path.

    Core rows, not ORM objects, so nothing accumulates in the session between batches.
    """
    after: str | None = None
    while True:
        query = select(_ITEMS).where(_ITEMS.c.dataset_id == dataset_id, _ITEMS.c.type == "file")
        if where is not None:
            query = query.where(where)
        if after is not None:
            query = query.where(_ITEMS.c.filename > after)
        batch = list(await session.execute(query.order_by(_ITEMS.c.filename).limit(_BATCH), params))
        if not batch:
            return
        yield batch
        if len(batch) < _BATCH:
            return
        after = batch[-1].filename


# what one pass over the source copies: the files matching a condition (all if None; its
# parameters' values next), except those inside the folders given (another pass copies them)
_Pass = tuple[ColumnElement[bool] | None, Mapping[str, Any], Collection[str]]


async def _selection(
    session: AsyncSession, source: Dataset, item_ids: Sequence[str]
) -> list[_Pass]:
    """Passes for the chosen items: the files given and everything below the folders given.

    Every id must be an item of ``source``. The passes select disjoint sets (a folder or file
    inside a chosen folder comes with it), so each item is copied once.
    """
    unique = list(dict.fromkeys(item_ids))
    if not unique:
        raise InvalidInput("no item ids given; leave itemIds out to clone everything", "itemIds")
    found: dict[str, Row[Any]] = {}
    for start in range(0, len(unique), _IN_CHUNK):
        rows = await session.execute(
            select(*items.LOCATED).where(
                Item.dataset_id == source.id, Item.id.in_(unique[start : start + _IN_CHUNK])
            )
        )
        found.update({r.id: r for r in rows})
    for item_id in unique:
        if item_id not in found:
            raise InvalidInput(
                f"item {item_id!r} is not in dataset {source.name!r}", field="itemIds"
            )
    outer = items.outermost(found.values())
    files = [r.id for r in found.values() if r.type == "file" and not items.inside(r.dir, outer)]
    passes: list[_Pass] = [(items.below(source.id, f), {}, ()) for f in sorted(outer)]
    passes += [
        (Item.id.in_(files[start : start + _IN_CHUNK]), {}, ())
        for start in range(0, len(files), _IN_CHUNK)
    ]
    return passes


async def _query_selection(
    session: AsyncSession, source: Dataset, query: Query, dialect: str
) -> list[_Pass]:
    """Passes for the items a query selects (what the source's listing with it shows): the files
    it matches, and everything below the folders it matches."""
    stored = await indexes.stored(session)
    compiled = queries.compile_for(query, "items", dialect, source.id, stored=stored)
    where = [*items.listing(source.id), compiled.where]
    folders = await session.execute(
        select(*items.LOCATED).where(*where, Item.type == "dir"), compiled.params
    )
    outer = items.outermost(folders)
    passes: list[_Pass] = [(items.below(source.id, f), {}, ()) for f in sorted(outer)]
    passes.append((and_(*where), compiled.params, outer))
    return passes


# --- writing copies -------------------------------------------------------------------------------


def _parents_first(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Annotations ordered so each parent is inserted before its children (foreign key)."""
    present = {r["id"] for r in rows}
    done: set[str] = set()
    out: list[dict[str, Any]] = []
    pending = rows
    while pending:
        ready = [r for r in pending if r["parent_id"] not in present or r["parent_id"] in done]
        later = [r for r in pending if r["parent_id"] in present and r["parent_id"] not in done]
        if not ready:  # a cycle cannot be created through the API; keep the rows anyway
            ready, later = later, []
        out.extend(ready)
        done.update(r["id"] for r in ready)
        pending = later
    return out


class _Copier:
    """Copies batches of source items (and their annotations) into the target dataset."""

    def __init__(
        self,
        session: AsyncSession,
        actor: Actor,
        target: Dataset,
        *,
        with_metadata: bool,
        with_annotations: bool,
    ) -> None:
        self.session, self.actor, self.target = session, actor, target
        self.with_metadata, self.with_annotations = with_metadata, with_annotations
        self.annotations = 0

    def spec(self, row: Row[Any], path: str) -> items.ItemSpec:
        metadata = row.metadata or {}
        return items.ItemSpec(
            path=path,
            mimetype=row.mimetype,
            size=row.size,
            width=row.width,
            height=row.height,
            blob_id=row.blob_id,
            thumbnail_blob_id=row.thumbnail_blob_id,
            url=row.url,
            description=row.description,
            system=dict(metadata.get("system") or {}),
            user=dict(metadata.get("user") or {}) if self.with_metadata else {},
            src_item_id=row.id,
        )

    async def copy(self, rows: Sequence[Row[Any]], targets: Sequence[str]) -> None:
        """Copy ``rows`` to the paths ``targets`` (which the caller made sure are free)."""
        specs = [self.spec(row, path) for row, path in zip(rows, targets, strict=True)]
        results, _ = await items.insert_items(self.session, self.actor, self.target, specs, "skip")
        if any(r.op != "created" for r in results):  # placement guarantees free paths
            raise Conflict("a path of the copy was taken while copying; try again")
        if self.with_annotations:
            await self._copy_annotations(
                {row.id: r.item_id for row, r in zip(rows, results, strict=True)}
            )

    async def _copy_annotations(self, item_map: dict[str, str]) -> None:
        source = await self.session.execute(
            select(_ANNOTATIONS)
            .where(_ANNOTATIONS.c.item_id.in_(list(item_map)))
            .order_by(_ANNOTATIONS.c.id)
        )
        rows = [dict(r._mapping) for r in source]
        if not rows:
            return
        ids = dict(zip((r["id"] for r in rows), new_ids(len(rows)), strict=True))
        now = utcnow()
        for row in rows:
            row.update(
                src_annotation_id=row["id"],
                id=ids[row["id"]],
                item_id=item_map[row["item_id"]],
                dataset_id=self.target.id,
                parent_id=ids.get(row["parent_id"]) if row["parent_id"] else None,
                created_at=now,
                updated_at=now,
            )
        await label_counts.insert_annotations(self.session, _parents_first(rows))
        counts = Counter(r["item_id"] for r in rows)
        await self.session.execute(
            update(_ITEMS)
            .where(_ITEMS.c.id == bindparam("item_id"))
            .values(annotations_count=bindparam("count"), annotated=True),
            [{"item_id": i, "count": n} for i, n in counts.items()],
        )
        await events.record_many(
            self.session,
            project_id=self.target.project_id,
            resource="annotation",
            action="created",
            actor=self.actor.email,
            changes=[
                (r["id"], {"itemId": r["item_id"], "datasetId": self.target.id}) for r in rows
            ],
        )
        self.annotations += len(rows)

    async def finish(self) -> Dataset:
        """Set the target's annotation counter and reload it (items_count moved in SQL)."""
        if self.annotations:
            await self.session.execute(
                update(Dataset)
                .where(Dataset.id == self.target.id)
                .values(annotations_count=Dataset.annotations_count + self.annotations)
            )
        await self.session.refresh(self.target)
        return self.target


# --- clone ----------------------------------------------------------------------------------------


async def clone_dataset(
    platform: Platform,
    actor: Actor,
    dataset_id: str,
    name: str,
    *,
    item_ids: Sequence[str] | None = None,
    dql: str | None = None,
    dataloop: Mapping[str, Any] | None = None,
    with_metadata: bool = True,
    with_annotations: bool = True,
    target_dir: str | None = None,
) -> Dataset:
    """A new dataset in the same project holding copies of the source's items: all, the ones
    given, or the ones a DQL query (text and/or Dataloop JSON) selects, as the source's listing
    with that query shows them; files, and folders with everything below them. Optionally below
    ``target_dir``.

    ``with_metadata`` False leaves ``metadata.user`` empty (system metadata is always kept);
    ``with_annotations`` False copies no annotations.
    """
    directory = paths.normalise_dir(target_dir, field="targetDir")
    query = None
    if dql is not None or dataloop is not None:
        if item_ids is not None:
            raise InvalidInput("choose the items by itemIds or by a query, not both", "itemIds")
        query = queries.parse_query(dql, dataloop, resource="items")
    async with platform.db.write() as session:
        source = await dataset_for(session, actor, dataset_id, Role.developer)
        passes: list[_Pass] = [(None, {}, ())]
        if query is not None:
            passes = await _query_selection(session, source, query, platform.db.dialect)
        elif item_ids is not None:
            passes = await _selection(session, source, item_ids)
        target = await insert_dataset(
            session, actor, source.project_id, name, src_dataset_id=source.id
        )
        target.recipe_id = source.recipe_id
        copier = _Copier(
            session,
            actor,
            target,
            with_metadata=with_metadata,
            with_annotations=with_annotations,
        )
        for condition, params, carried in passes:
            async for batch in _source_rows(session, source.id, condition, params):
                rows = [r for r in batch if not items.inside(r.dir, carried)]
                if rows:
                    await copier.copy(rows, [directory.rstrip("/") + r.filename for r in rows])
        return await copier.finish()


# --- merge ----------------------------------------------------------------------------------------


def _with_suffix(path: str, n: int) -> str:
    stem, extension = posixpath.splitext(path)
    return f"{stem} ({n}){extension}"


class _Placer:
    """Free paths in the merged dataset for a batch of a source's items (see the module doc)."""

    def __init__(self, session: AsyncSession, target: Dataset) -> None:
        self.session, self.target = session, target

    async def _taken(self, candidates: Sequence[str]) -> tuple[set[str], set[str]]:
        """Which of the paths and their folders exist in the target: (files, folders)."""
        wanted = sorted({a for c in candidates for a in [*paths.ancestors(c), c]})
        files: set[str] = set()
        folders: set[str] = set()
        for row in await items.items_at(self.session, self.target.id, wanted):
            (folders if row.type == "dir" else files).add(row.filename)
        return files, folders

    async def place(self, source_name: str, wanted: Sequence[str]) -> list[str]:
        placed: list[str | None] = [None] * len(wanted)
        batch_files: set[str] = set()
        batch_folders: set[str] = set()
        attempt: dict[int, int] = {i: 0 for i in range(len(wanted))}

        def candidate(index: int) -> str:
            n = attempt[index]
            if n == 0:
                return wanted[index]
            moved = f"/{source_name}{wanted[index]}"
            return moved if n == 1 else _with_suffix(moved, n)

        while attempt:
            tries = {i: candidate(i) for i in attempt}
            files, folders = await self._taken(list(tries.values()))
            files |= batch_files
            folders |= batch_folders
            for index in sorted(attempt):
                path = tries[index]
                ancestors = paths.ancestors(posixpath.dirname(path))
                if path in files or path in folders or any(a in files for a in ancestors):
                    attempt[index] += 1
                    if attempt[index] > _MAX_SUFFIX:
                        raise Conflict(f"found no free path for {wanted[index]!r} of the merge")
                    continue
                placed[index] = path
                files.add(path)
                folders.update(ancestors)
                batch_files.add(path)
                batch_folders.update(ancestors)
                del attempt[index]
        return [p for p in placed if p is not None]


async def merge_datasets(
    platform: Platform,
    actor: Actor,
    dataset_ids: Sequence[str],
    name: str,
    *,
    with_metadata: bool = True,
    with_annotations: bool = True,
) -> Dataset:
    """A new dataset with copies of the items of several datasets of one project.

    Clashing paths are resolved as the module doc says; ``metadata.system.mergedFrom`` lists the
    sources in order.
    """
    if len(dataset_ids) < 2:
        raise InvalidInput("a merge needs at least two datasets", field="datasetIds")
    if len(set(dataset_ids)) != len(dataset_ids):
        raise InvalidInput("a dataset is given twice", field="datasetIds")
    async with platform.db.write() as session:
        sources = [await dataset_for(session, actor, i, Role.developer) for i in dataset_ids]
        if len({s.project_id for s in sources}) != 1:
            raise InvalidInput(
                "only datasets of one project can be merged; these belong to several",
                field="datasetIds",
            )
        target = await insert_dataset(session, actor, sources[0].project_id, name)
        target.metadata_ = {"system": {"mergedFrom": list(dataset_ids)}}
        shared = {s.recipe_id for s in sources}
        target.recipe_id = shared.pop() if len(shared) == 1 else None
        await session.flush()
        copier = _Copier(
            session,
            actor,
            target,
            with_metadata=with_metadata,
            with_annotations=with_annotations,
        )
        placer = _Placer(session, target)
        for source in sources:
            async for batch in _source_rows(session, source.id):
                await copier.copy(
                    batch, await placer.place(source.name, [r.filename for r in batch])
                )
        return await copier.finish()


# --- lineage --------------------------------------------------------------------------------------


async def _walk(
    session: AsyncSession, start: ColumnElement[bool], step: Callable[[Any], ColumnElement[bool]]
) -> list[Dataset]:
    """Datasets reached from ``start`` by repeating ``step``, by distance then creation."""
    walk = (
        select(Dataset.id, Dataset.src_dataset_id, literal(1).label("depth"))
        .where(start)
        .cte("walk", recursive=True)
    )
    following = select(Dataset.id, Dataset.src_dataset_id, walk.c.depth + 1).where(
        step(walk), walk.c.depth < _MAX_DEPTH
    )
    walk = walk.union_all(following)
    query = (
        select(Dataset)
        .join(walk, walk.c.id == Dataset.id)
        .order_by(walk.c.depth, Dataset.created_at, Dataset.id)
    )
    return list(await session.scalars(query))


async def lineage(platform: Platform, actor: Actor, dataset_id: str) -> Lineage:
    async with platform.db.read() as session:
        dataset = await dataset_for(session, actor, dataset_id, Role.annotator)
        ancestors = await _walk(
            session,
            Dataset.id == dataset.src_dataset_id,
            lambda walk: Dataset.id == walk.c.src_dataset_id,
        )
        clones = await _walk(
            session,
            Dataset.src_dataset_id == dataset.id,
            lambda walk: Dataset.src_dataset_id == walk.c.id,
        )
    return Lineage(ancestors=ancestors, clones=clones)
