"""Annotations per label of a whole dataset, read from the counts the database keeps.

Triggers on ``annotations`` (migration 0002) keep ``label_counts``: a label's count is the sum of
its rows. On PostgreSQL each statement that adds, removes or relabels annotations appends a row
per label it changed (append-only, so concurrent writers never wait on a counter row);
:func:`fold` sums them back to one row per label and runs in the scheduler's housekeeping. A
reader sums whatever rows are there, so the counts are exact whether folded or not: folding only
keeps the reads short.

SQLite has only row triggers, whose cost per row outweighed the insert itself, so there inserts
are counted by :func:`insert_annotations` (migration 0005), the one way annotation rows are
inserted; deletes and relabels stay with the triggers.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from graph.db.bulk import insert_many
from graph.db.tables import Annotation, LabelCount
from graph.domain.platform import Platform

__all__ = ["fold", "insert_annotations", "label_counts"]

_COUNTS = LabelCount.__table__

# Every dataset with a label held in more than one row: its rows go, their sums come back
# (rows that a concurrent statement appends after this one's snapshot are left for the next fold).
_FOLD = text(
    """
    WITH folded AS (
        DELETE FROM label_counts WHERE dataset_id IN (
            SELECT dataset_id FROM label_counts
            GROUP BY dataset_id, label HAVING count(*) > 1
        )
        RETURNING dataset_id, label, n
    )
    INSERT INTO label_counts (dataset_id, label, n)
    SELECT dataset_id, label, sum(n) FROM folded
    GROUP BY dataset_id, label HAVING sum(n) <> 0
    """
)


async def label_counts(session: AsyncSession, dataset_id: str) -> dict[str | None, int]:
    """How many annotations of the dataset carry each label (``None``: without a label)."""
    total = func.sum(LabelCount.n)
    rows = await session.execute(
        select(LabelCount.label, total)
        .where(LabelCount.dataset_id == dataset_id)
        .group_by(LabelCount.label)
        .having(total > 0)
    )
    return {label: int(n) for label, n in rows}


async def fold(platform: Platform) -> int:
    """Sum the rows PostgreSQL's triggers appended into one per label; how many rows remain of
    the datasets folded. SQLite's triggers keep one row per label already."""
    if platform.db.is_sqlite:
        return 0
    async with platform.db.write(durable=False) as session:
        return (await session.execute(_FOLD)).rowcount or 0


async def insert_annotations(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``annotations`` rows (dicts with the same keys, parents before their children) in
    the session's transaction, counted in ``label_counts`` as one statement per label group."""
    if not rows:
        return
    await insert_many(session, Annotation.__table__, rows)
    if (await session.connection()).dialect.name != "sqlite":
        return  # PostgreSQL's statement trigger has counted them
    added = Counter((row["dataset_id"], row["label"]) for row in rows)
    held = await session.execute(
        select(LabelCount.dataset_id, LabelCount.label).where(
            LabelCount.dataset_id.in_({dataset_id for dataset_id, _ in added})
        )
    )
    existing = {(dataset_id, label) for dataset_id, label in held} & added.keys()
    if existing:
        await session.execute(
            update(_COUNTS)
            .where(
                _COUNTS.c.dataset_id == bindparam("d"),
                _COUNTS.c.label.is_not_distinct_from(bindparam("l")),
            )
            .values(n=_COUNTS.c.n + bindparam("added")),
            [{"d": d, "l": label, "added": added[d, label]} for d, label in existing],
        )
    new = added.keys() - existing
    if new:
        await session.execute(
            insert(_COUNTS),
            [{"dataset_id": d, "label": label, "n": added[d, label]} for d, label in new],
        )
