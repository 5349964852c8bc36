"""What was deleted from a dataset between two moments, read from the outbox (``events``).

Every deletion of files and annotations goes through ``items.remove_items`` and
``annotations.remove_annotations``, which write a ``deleted`` event per file (payload
``datasetId``, ``filename``) and per annotation (``datasetId``) in the deleting transaction, and
events are never pruned: the outbox is the record of what went, and no tombstone table is
needed. A file's annotations go with it (a cascade) and have no events of their own.

An incremental export lists them in ``deleted.jsonl`` (:mod:`exports`), one JSON object a line,
in the order they were deleted::

    {"resource": "item", "id": "...", "filename": "/train/a.jpg", "deletedAt": "2026-..."}
    {"resource": "annotation", "id": "...", "deletedAt": "2026-..."}

Folders are files' parents, not files: a deleted folder's line is there with its own path (and
each file in it has its line too).
"""

from __future__ import annotations

from datetime import datetime
from typing import IO

from sqlalchemy import select

from dql.compiler import json_path_expression
from graph.db.tables import Dataset, Event
from graph.domain.platform import Platform
from graph.domain.triggers import as_utc
from plugins.converters import json_bytes

__all__ = ["PAGE", "write_deleted"]

PAGE = 1000  # events a statement


async def write_deleted(
    platform: Platform, dataset: Dataset, after: datetime, until: datetime, out: IO[bytes]
) -> dict[str, int]:
    """Write the lines of the dataset's files and annotations deleted after ``after``, up to
    and with ``until``, to ``out`` (a page of events at a time, in ``seq`` order, keyset);
    how many of each."""
    dataset_of = json_path_expression(Event.payload, ("datasetId",), platform.db.dialect)
    chosen = [
        Event.project_id == dataset.project_id,
        Event.action == "deleted",
        Event.resource.in_(("item", "annotation")),
        Event.created_at > after,
        Event.created_at <= until,
        dataset_of == dataset.id,
    ]
    counts = {"items": 0, "annotations": 0}
    last = 0
    while True:
        async with platform.db.read() as session:
            connection = await session.connection()
            page = (
                await connection.execute(
                    select(
                        Event.seq,
                        Event.resource,
                        Event.resource_id,
                        Event.payload,
                        Event.created_at,
                    )
                    .where(*chosen, Event.seq > last)
                    .order_by(Event.seq)
                    .limit(PAGE)
                )
            ).all()
        if not page:
            return counts
        for _, resource, resource_id, payload, created_at in page:
            line = {"resource": resource, "id": resource_id}
            if resource == "item":
                line["filename"] = (payload or {}).get("filename")
            line["deletedAt"] = as_utc(created_at).isoformat()
            out.write(json_bytes(line) + b"\n")
            counts["items" if resource == "item" else "annotations"] += 1
        last = page[-1][0]
