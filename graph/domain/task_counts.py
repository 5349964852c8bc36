"""A task's progress as counts kept beside its items: a read costs the same for ten items as for
a million.

``task_counts`` (graph/db/tables.py ``TaskCount``) holds a task's ``task_items`` rows per
(assignment, status), but for the free rows (neither), whose key holds all of the task's rows
instead: free rows are what is left once the others are taken off. Every writer of
``task_items`` puts what it changed into a :class:`Tally` and saves it in the same transaction
(a pull on PostgreSQL counts in the database function that takes the rows instead:
``loopline_pull``, graph/db/migrations/versions/0010_pull_function.py),
from the rows as the database reports them (``RETURNING``, a row count, a grouped read of a
task nobody else sees yet) or as the writer read them under a lock, so that the counts stay
exact with concurrent writers. A writer saves after its changes to ``task_items``: a counter
row stays locked until the commit, and counter rows taken after the item rows, in key order,
add no wait in a circle between two writers.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import func, literal, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession

from graph.db.tables import TaskCount, TaskItem

__all__ = ["Counts", "Tally", "count_new", "counts_of", "not_done"]

_NONE = ""  # no assignment, no status: the key takes no NULL


@dataclass(frozen=True)
class Counts:
    """A task's rows: in all, and per (assignment, status), the free rows (``(None, None)``)
    included; keys with no rows are left out."""

    total: int
    by_key: dict[tuple[str | None, str | None], int]


class Tally:
    """Changes to tasks' counts, gathered while a transaction writes ``task_items`` and saved
    by :meth:`save` at its end."""

    def __init__(self) -> None:
        self._changes: Counter[tuple[str, str, str]] = Counter()

    def add(self, task_id: str, assignment_id: str | None, status: str | None, n: int = 1) -> None:
        """``n`` rows put into the task with this assignment and status."""
        self._changes[(task_id, _NONE, _NONE)] += n
        if assignment_id is not None or status is not None:
            self._changes[(task_id, assignment_id or _NONE, status or _NONE)] += n

    def remove(
        self, task_id: str, assignment_id: str | None, status: str | None, n: int = 1
    ) -> None:
        """``n`` rows with this assignment and status taken out of the task."""
        self.add(task_id, assignment_id, status, -n)

    def move(
        self,
        task_id: str,
        before: tuple[str | None, str | None],
        after: tuple[str | None, str | None],
        n: int = 1,
    ) -> None:
        """``n`` of the task's rows that went from one (assignment, status) to another."""
        if before == after:
            return
        for (assignment_id, status), sign in ((before, -1), (after, 1)):
            if assignment_id is not None or status is not None:
                key = (task_id, assignment_id or _NONE, status or _NONE)
                self._changes[key] += sign * n

    async def save(self, session: AsyncSession) -> None:
        """Add the changes to the counts: one statement, its rows in key order."""
        rows = self._rows()
        if rows:
            await session.execute(_upsert(session.bind.dialect.name), rows)

    def save_on(self, connection: Connection) -> None:
        """:meth:`save` on a synchronous connection (a write of a group commit,
        graph/db/grouped.py)."""
        rows = self._rows()
        if rows:
            connection.execute(_upsert(connection.dialect.name), rows)

    def _rows(self) -> list[dict[str, Any]]:
        rows = [
            {"task_id": t, "assignment_id": a, "status": s, "n": n}
            for (t, a, s), n in sorted(self._changes.items())
            if n
        ]
        self._changes.clear()
        return rows


@cache
def _upsert(dialect: str) -> Any:
    """Add ``n`` to a counter row, made if missing: built and compiled once per dialect (a
    pull on SQLite runs it every time)."""
    counts = TaskCount.__table__
    insert = (postgresql_insert if dialect == "postgresql" else sqlite_insert)(counts)
    return insert.on_conflict_do_update(
        index_elements=[counts.c.task_id, counts.c.assignment_id, counts.c.status],
        set_={"n": counts.c.n + insert.excluded.n},
    )


async def count_new(session: AsyncSession, task_id: str, added: int) -> None:
    """The counts of a task whose ``added`` rows were all just inserted, without a status, in
    this transaction (nobody else sees them yet): one grouped statement over them."""
    counts = TaskCount.__table__
    given = (
        select(TaskItem.task_id, TaskItem.assignment_id, literal(_NONE), func.count())
        .where(TaskItem.task_id == task_id, TaskItem.assignment_id.is_not(None))
        .group_by(TaskItem.task_id, TaskItem.assignment_id)
    )
    columns = ("task_id", "assignment_id", "status", "n")
    await session.execute(counts.insert().from_select(columns, given))
    await session.execute(
        counts.insert().values(task_id=task_id, assignment_id=_NONE, status=_NONE, n=added)
    )


def not_done(task_id: Any, assignment_id: Any) -> Any:
    """A scalar subquery: how many of the task's rows the assignment holds without a status
    (one counter row, however many it holds)."""
    counts = TaskCount.__table__
    held = select(counts.c.n).where(
        counts.c.task_id == task_id,
        counts.c.assignment_id == assignment_id,
        counts.c.status == _NONE,
    )
    return func.coalesce(held.scalar_subquery(), 0)


async def counts_of(session: AsyncSession, task_ids: Sequence[str]) -> dict[str, Counts]:
    """Each task's counts, with one statement reading only its counter rows."""
    rows = await session.execute(
        select(TaskCount.task_id, TaskCount.assignment_id, TaskCount.status, TaskCount.n).where(
            TaskCount.task_id.in_(task_ids)
        )
    )
    totals: dict[str, int] = {t: 0 for t in task_ids}
    by_key: dict[str, dict[tuple[str | None, str | None], int]] = {t: {} for t in task_ids}
    for task_id, assignment_id, status, n in rows.all():
        if assignment_id == _NONE and status == _NONE:
            totals[task_id] = n
        elif n:  # a key whose rows all went keeps its counter, at 0
            by_key[task_id][(assignment_id or None, status or None)] = n
    out = {}
    for task_id in task_ids:
        free = totals[task_id] - sum(by_key[task_id].values())
        if free:
            by_key[task_id][(None, None)] = free
        out[task_id] = Counts(totals[task_id], by_key[task_id])
    return out
