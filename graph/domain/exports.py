"""Exports: a dataset's annotations (or those of a DQL selection of its files, optionally only
the annotations an annotation query selects) in an annotation format, as a zip archive.

An export is an execution of the platform function ``export_dataset`` (:mod:`operations`),
never work inside a request, in two phases:

1. **Spool**: the selected files are read a page at a time in path order (keyset on the
   dataset's path index, so a page costs the same at any depth), each page with its
   annotations, and appended to a spool file of records (one JSON line per file) under
   ``LOOPLINE_HOME/exports/<execution>``. After each page the records are flushed to disk and a
   checkpoint (the last path, the file's length, the counts, the labels seen) replaces the old
   one. A worker that dies mid-way leaves both; the execution is run again (``onReset`` rerun)
   and carries on after the checkpoint (records past it are cut off), not from the start. A
   file moved while an export runs may be missed by it or be in it twice, under both paths
   (the next incremental export has it where it went).
2. **Write**: the converter reads the records back one at a time and writes the archive
   (memory stays flat whatever the size); the archive becomes a platform blob, downloadable at
   ``GET /executions/<id>/export``; the spool is removed.

``since`` (the id of an earlier successful export of the dataset) exports only the files that
changed after it began: files created, moved or updated, or whose annotations were created,
updated or deleted since; and ``deleted.jsonl`` in the archive lists the files and annotations
deleted after it began and before this one began (:mod:`deletions`). An export began when its
first attempt did (``began`` in its output), so the next incremental export takes up exactly
where its reading of the dataset started, however many attempts it took. To bring a copy up to
date, remove what ``deleted.jsonl`` lists, then apply the files of the archive (a path deleted
then used again is in both, the new file in the archive).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import ColumnElement, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from graph.db.tables import Annotation, Dataset, Execution, Item, utcnow
from graph.domain import blobs, deletions, indexes, items, queries
from graph.domain.access import Actor, Role
from graph.domain.annotation_json import DATALOOP_COLUMNS, dataloop_of
from graph.domain.datasets import dataset_for
from graph.domain.errors import InvalidInput, NotFound
from graph.domain.formats import converter_for
from graph.domain.platform import Platform
from graph.domain.work import Work
from plugins.converters import ItemAnnotations, ZipOutput, json_bytes

__all__ = ["FUNCTION", "PAGE", "check_input", "check_start", "export_blob", "run_export"]

FUNCTION = "export_dataset"
PAGE = 500  # files per page of the spool phase


@dataclass
class _Checkpoint:
    """How far the spool phase got: its records file holds exactly ``offset`` bytes of whole
    records, the last of the file at path ``after``."""

    after: str | None = None
    began: str | None = None  # when the first attempt began reading (ISO 8601)
    offset: int = 0
    items: int = 0
    annotations: int = 0
    total: int | None = None
    labels: list[str] = field(default_factory=list)


def check_input(platform: Platform, input: Mapping[str, Any]) -> None:
    """What an export's input must be, checked when it is started: a format with a writer and
    an annotation query that compiles."""
    converter_for(platform, input.get("format") or "", "write")
    query = queries.parse_query(input.get("annotationDql"), resource="annotations")
    queries.compile_for(query, "annotations", platform.db.dialect, input.get("datasetId"))


async def check_start(
    session: AsyncSession,
    platform: Platform,
    actor: Actor,
    project_id: str,
    input: Mapping[str, Any],
) -> None:
    check_input(platform, input)


def _spool(platform: Platform, execution_id: str) -> Path:
    return platform.settings.home / "exports" / execution_id


def _load(folder: Path) -> _Checkpoint:
    path = folder / "checkpoint.json"
    try:
        return _Checkpoint(**json.loads(path.read_text()))
    except (FileNotFoundError, TypeError):  # none, or another version's: the spool starts over
        return _Checkpoint()


def _save(folder: Path, checkpoint: _Checkpoint) -> None:
    """Replace the checkpoint in one step (rename), after the records it counts are on disk."""
    temporary = folder / "checkpoint.json.tmp"
    temporary.write_text(json.dumps(asdict(checkpoint)))
    os.replace(temporary, folder / "checkpoint.json")


async def _since(session: AsyncSession, dataset_id: str, export_id: str) -> datetime:
    """When the earlier export ``export_id`` began (its first attempt; an export that predates
    ``began`` in the output: its last attempt's start)."""
    earlier = await session.get(Execution, export_id)
    if (
        earlier is None
        or earlier.function_name != FUNCTION
        or (earlier.input or {}).get("datasetId") != dataset_id
        or earlier.status != "success"
        or earlier.started_at is None
    ):
        raise InvalidInput(
            f"since: {export_id!r} is not a finished export of this dataset", field="since"
        )
    began = (earlier.output or {}).get("began")
    return datetime.fromisoformat(began) if began else earlier.started_at


def _changed_since(moment: datetime) -> ColumnElement[bool]:
    touched = exists().where(Annotation.item_id == Item.id, Annotation.updated_at > moment)
    return or_(Item.updated_at > moment, touched)


# what a record takes of a file and of its annotations
_FILE = (Item.id, Item.filename, Item.width, Item.height, Item.metadata_, Item.description)
_ANNOTATION = (Annotation.item_id, *DATALOOP_COLUMNS)


def _line(record: ItemAnnotations) -> bytes:
    """A record of the spool: its fields as one line of JSON (not ``asdict``, which copies
    every nested annotation before it is encoded)."""
    return json_bytes({f.name: getattr(record, f.name) for f in fields(record)}) + b"\n"


async def _page(
    session: AsyncSession,
    chosen: list[ColumnElement[bool]],
    on_annotations: ColumnElement[bool],
    params: dict[str, Any],
    after: str | None,
) -> list[ItemAnnotations]:
    """The records of the next page of files (after the path ``after``): two statements."""
    later = [] if after is None else [Item.filename > after]
    # the connection's execute: rows as they come, without the ORM's loading of each
    connection = await session.connection()
    files = (
        await connection.execute(
            select(*_FILE)
            .where(*chosen, *later)
            .order_by(Item.filename)  # unique in a dataset
            .limit(PAGE),
            params,
        )
    ).all()
    found: dict[str, list[dict[str, Any]]] = {file[0]: [] for file in files}
    if files:
        rows = await connection.execute(
            select(*_ANNOTATION)
            .where(Annotation.item_id.in_(list(found)), on_annotations)
            .order_by(Annotation.item_id, Annotation.id),
            params,
        )
        for row in rows:
            found[row[0]].append(dataloop_of(row[1:]))
    records = []
    for item_id, filename, width, height, metadata, description in files:
        extra = {"metadata": metadata}
        if description is not None:
            extra["description"] = description
        records.append(ItemAnnotations(filename, found[item_id], width, height, extra))
    return records


async def _spool_pages(
    platform: Platform,
    work: Work,
    folder: Path,
    input: dict[str, Any],
    checkpoint: _Checkpoint,
    since: datetime | None,
) -> _Checkpoint:
    dataset_id, dialect = input["datasetId"], platform.db.dialect
    item_query = queries.parse_query(input.get("dql"), input.get("filter"), resource="items")
    annotation_query = queries.parse_query(input.get("annotationDql"), resource="annotations")
    async with platform.db.read() as session:
        stored = await indexes.stored(session)
        on_items = queries.compile_for(item_query, "items", dialect, dataset_id, stored=stored)
        chosen = [*items.listing(dataset_id, folders=False), on_items.where]
        if since is not None:
            chosen.append(_changed_since(since))
        on_annotations = queries.compile_for(
            annotation_query, "annotations", dialect, dataset_id, stored=stored
        )
        # the two queries compile over different field maps: their parameters' names differ
        params = {**on_items.params, **on_annotations.params}
        if checkpoint.total is None:
            counted = select(func.count()).where(*chosen)
            checkpoint.total = await session.scalar(counted, params) or 0
    records = folder / "records.jsonl"
    with records.open("ab") as out:
        out.truncate(checkpoint.offset)  # a record past the checkpoint may be cut short
        labels = set(checkpoint.labels)
        while True:
            async with platform.db.read() as session:
                page = await _page(session, chosen, on_annotations.where, params, checkpoint.after)
            if not page:
                return checkpoint
            for record in page:
                labels.update(a["label"] for a in record.annotations if a.get("label"))
                out.write(_line(record))
                checkpoint.annotations += len(record.annotations)
            out.flush()
            os.fsync(out.fileno())
            checkpoint.after, checkpoint.offset = page[-1].filename, out.tell()
            checkpoint.items += len(page)
            checkpoint.labels = sorted(labels)
            _save(folder, checkpoint)
            work.progress(checkpoint.items, checkpoint.total, "files spooled")


def _read_records(path: Path) -> Iterator[ItemAnnotations]:
    with path.open("rb") as records:
        for line in records:
            yield ItemAnnotations(**orjson.loads(line))


def _write_archive(
    platform: Platform, format_name: str, folder: Path, labels: list[str], deleted: bool
) -> int:
    converter = converter_for(platform, format_name, "write")
    assert converter.write is not None
    # the fastest deflate: a quarter of the time of the default level for an archive 13% larger
    # (COCO's JSON), where compression was a third of writing
    with zipfile.ZipFile(
        folder / "export.zip", "w", zipfile.ZIP_DEFLATED, compresslevel=1
    ) as archive:
        left_out = converter.write(
            _read_records(folder / "records.jsonl"), labels, ZipOutput(archive)
        )
        if deleted:
            archive.write(folder / "deleted.jsonl", "deleted.jsonl")
    return left_out


async def _spool_deleted(
    platform: Platform, dataset: Dataset, folder: Path, since: datetime, began: datetime
) -> dict[str, int]:
    """The deletions an incremental export lists, spooled whole by each attempt (bounded by two
    moments, every attempt finds the same)."""
    with (folder / "deleted.jsonl").open("wb") as out:
        return await deletions.write_deleted(platform, dataset, since, began, out)


async def run_export(
    platform: Platform, actor: Actor, work: Work, input: dict[str, Any]
) -> dict[str, Any]:
    """Both phases of an export (see the module's docstring); the execution's output."""
    check_input(platform, input)
    folder = _spool(platform, work.execution_id)
    folder.mkdir(parents=True, exist_ok=True)
    checkpoint = _load(folder)
    if checkpoint.began is None:
        checkpoint.began = utcnow().isoformat()
        _save(folder, checkpoint)
    began = datetime.fromisoformat(checkpoint.began)
    resumed = checkpoint.items
    if resumed:
        work.log(f"resuming after {resumed} files spooled by an earlier attempt")
    async with platform.db.read() as session:
        dataset = await dataset_for(session, actor, input["datasetId"], Role.annotationManager)
        since = await _since(session, dataset.id, input["since"]) if input.get("since") else None
    checkpoint = await _spool_pages(platform, work, folder, input, checkpoint, since)
    deleted = None
    if since is not None:
        deleted = await _spool_deleted(platform, dataset, folder, since, began)
    left_out = await asyncio.to_thread(
        _write_archive,
        platform,
        input["format"],
        folder,
        checkpoint.labels,
        deleted is not None,
    )
    with (folder / "export.zip").open("rb") as archive:
        staged = await asyncio.to_thread(blobs.stage, platform, archive)
    try:
        async with platform.db.write() as session:
            blob_id, _ = await blobs.ensure_blob(session, platform, staged)
    finally:
        staged.discard()
    shutil.rmtree(folder, ignore_errors=True)
    output = {
        "format": input["format"],
        "blobId": blob_id,
        "size": staged.size,
        "items": checkpoint.items,
        "annotations": checkpoint.annotations,
        "leftOut": left_out,
        "resumedAfter": resumed,
        "began": checkpoint.began,
        "download": f"/executions/{work.execution_id}/export",
    }
    if deleted is not None:
        output["deleted"] = deleted
    return output


async def export_blob(platform: Platform, actor: Actor, execution_id: str) -> tuple[str, str]:
    """The blob of a finished export and a file name for it, for whoever may see its dataset."""
    async with platform.db.read() as session:
        execution = await session.get(Execution, execution_id)
        if execution is None or execution.function_name != FUNCTION:
            raise NotFound("export", execution_id)
        dataset_id = execution.input["datasetId"]
        dataset = await dataset_for(session, actor, dataset_id, Role.annotationManager)
        output = execution.output or {}
        if execution.status != "success" or "blobId" not in output:
            raise NotFound("finished export", execution_id)
    return output["blobId"], f"{dataset.name}-{output['format']}.zip"
