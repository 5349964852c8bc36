"""Annotations per label of a whole dataset, read from the counts the database keeps.

Triggers on ``annotations`` (migration 0002) keep ``label_counts``: a label's count is the sum of
its rows. On PostgreSQL each statement that adds, removes or relabels annotations appends a row
per label it changed (append-only, so concurrent writers never wait on a counter row);
:func:`fold` sums them back to one row per label and runs in the scheduler's housekeeping. A
reader sums whatever rows are there, so the counts are exact whether folded or not: folding only
keeps the reads short.
"""

from __future__ import annotations

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from graph.db.tables import LabelCount
from graph.domain.platform import Platform

__all__ = ["fold", "label_counts"]

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
