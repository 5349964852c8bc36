"""Samples of a dataset's values at an indexed JSON path: how planning estimates, without reading
the index, how many rows a range or ``in`` on the path matches (SQLite; see planning.py).

SQLite keeps no statistics on how values spread, so planning once counted the matches through
the index, up to :func:`planning.enough` of them: a few milliseconds whenever a filter matches
many rows (a range over 10% of 1M items: 3.5 ms to count 20k entries, twice what the page then
takes). A sample of :data:`SIZE` rows, drawn at random by row id (a lookup each, some 20 ms for
the whole sample), answers the same question for every value compared with the path, with the
error of a sample: the planner trusts it only when it is clearly on one side (see
:meth:`Sample.verdict`) and counts otherwise.

Samples are kept in the process, per database, dataset and path, and drawn again once the
dataset's row count has moved by a tenth or after :data:`LIFETIME` seconds, so values rewritten
in place are seen in time; a stale sample costs a slower plan, never a wrong row.
"""

from __future__ import annotations

import math
import random
import time
import weakref
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import ColumnElement, func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from dql import ast
from graph.domain import indexes

__all__ = ["LIFETIME", "SIZE", "Sample", "draw", "forget", "kept"]

SIZE = 2000
"""Rows looked up for a sample (fewer are found where row ids have gaps or other datasets)."""

LIFETIME = 600.0
"""Seconds a sample serves before it is drawn again."""

_MIN_FOUND = 200  # fewer rows of the dataset found than this: the sample says nothing
_DRIFT = 0.1
_NUMBERS = ("integer", "real")

Verdict = Literal["few", "many", "unsure"]


@dataclass(frozen=True)
class Sample:
    """Of the ``found`` rows looked up: the ``numbers`` and ``texts`` at the path, each sorted
    (other JSON types and missing values are only counted), drawn when the dataset held ``rows``
    rows, at ``drawn`` (monotonic seconds)."""

    found: int
    numbers: tuple[int | float, ...]
    texts: tuple[str, ...]
    rows: int
    drawn: float

    def fresh(self, rows: int) -> bool:
        return (
            abs(rows - self.rows) <= _DRIFT * max(self.rows, 1)
            and time.monotonic() - self.drawn < LIFETIME
        )

    def verdict(self, condition: ast.Expr, rows: int, bound: int) -> Verdict:
        """Whether ``condition`` matches fewer than ``bound`` of the ``rows`` rows ("few"),
        three times as many or more ("many"), or the sample cannot tell ("unsure")."""
        if self.found < _MIN_FOUND:
            return "unsure"
        matched = self._matched(condition)
        if matched is None:
            return "unsure"
        # a binomial count: above it by three standard deviations is unlikely either way
        spread = 3 * math.sqrt(matched) + 3
        if (matched + spread) * rows / self.found < bound:
            return "few"
        if (matched - spread) * rows / self.found >= 3 * bound:
            return "many"
        return "unsure"

    def _matched(self, condition: ast.Expr) -> int | None:
        """How many sampled values ``condition`` holds for, as SQLite's typed comparisons
        decide (a number matches numbers, text and dates text); None: not judged here."""
        if isinstance(condition, ast.Compare):
            values = self._of(condition.value)
            if values is None or condition.op == "!=":
                return None
            target = _comparable(condition.value)
            low, high = bisect_left(values, target), bisect_right(values, target)
            return {
                "=": high - low,
                "<": low,
                "<=": high,
                ">": len(values) - high,
                ">=": len(values) - low,
            }[condition.op]
        if isinstance(condition, ast.In) and not condition.negated:
            total = 0
            for value in set(condition.values):
                values = self._of(value)
                if values is None:
                    return None
                target = _comparable(value)
                total += bisect_right(values, target) - bisect_left(values, target)
            return total
        return None

    def _of(self, value: ast.Value) -> tuple[Any, ...] | None:
        if isinstance(value, bool) or value is None:
            return None
        return self.numbers if isinstance(value, int | float) else self.texts


def _comparable(value: ast.Value) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


_KEPT: weakref.WeakKeyDictionary[AsyncEngine, dict[tuple[str, str, str], Sample]] = (
    weakref.WeakKeyDictionary()
)


def kept(
    session: AsyncSession, resource: str, dataset_id: str, path: str, rows: int
) -> Sample | None:
    """The sample kept of ``path`` in the dataset, if one is fresh for its ``rows`` rows."""
    found = _KEPT.get(session.bind, {}).get((resource, dataset_id, path))  # type: ignore[call-overload]
    return found if found is not None and found.fresh(rows) else None


def forget(engine: AsyncEngine, resource: str, path: str) -> None:
    """Drop the samples of ``path`` (its index is gone: nothing may be planned on it)."""
    kept = _KEPT.get(engine, {})
    for key in [k for k in kept if k[0] == resource and k[2] == path]:
        del kept[key]


async def draw(
    session: AsyncSession,
    resource: str,
    dataset_id: str,
    path: str,
    scope: Sequence[ColumnElement[bool]],
    rows: int,
) -> Sample:
    """Draw and keep a sample of ``path`` among the dataset's ``rows`` rows (``scope`` the
    conditions that select them)."""
    table = indexes.resource_of(resource).table
    type_name, value = indexes.expressions(resource, path, "sqlite")[0].expressions
    rowid = literal_column("rowid")
    last = await session.scalar(select(func.max(rowid)).select_from(table)) or 0
    picked = random.sample(range(1, last + 1), min(SIZE, last))
    drawn = await session.execute(
        select(type_name, value).select_from(table).where(rowid.in_(picked), *scope)
    )
    values = drawn.all()
    numbers = sorted(v for kind, v in values if kind in _NUMBERS)
    texts = sorted(v for kind, v in values if kind == "text")
    found = Sample(len(values), tuple(numbers), tuple(texts), rows, time.monotonic())
    _KEPT.setdefault(session.bind, {})[resource, dataset_id, path] = found  # type: ignore[arg-type]
    return found
