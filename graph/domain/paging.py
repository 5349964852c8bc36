"""Keyset paging: a cursor is the sort key of the last row seen, never an offset."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar, overload

from sqlalchemy import ColumnElement, Select, and_, false, literal, or_, tuple_
from sqlalchemy.types import NullType

from graph.domain.errors import InvalidInput

__all__ = ["Order", "Page", "keyset_page", "page_size"]

T = TypeVar("T")
DEFAULT_PAGE_SIZE = 100


@dataclass(frozen=True)
class Order:
    """One sort key: a column and its direction. The last key of an ordering must be unique."""

    column: Any
    descending: bool = False


@dataclass(frozen=True)
class Page(Generic[T]):
    rows: list[T]
    has_next: bool
    cursors: Sequence[str]

    @property
    def end_cursor(self) -> str | None:
        return self.cursors[-1] if self.cursors else None


def page_size(first: int | None, maximum: int) -> int:
    if first is None:
        return min(DEFAULT_PAGE_SIZE, maximum)
    if first < 1 or first > maximum:
        raise InvalidInput(f"first must be between 1 and {maximum}, got {first}", field="first")
    return first


class _Cursors(Sequence[str]):
    """The cursor of each row of a page, encoded when asked for: many callers want only the
    last (encoding all of a page of 100 is a fifth of the time a listing takes)."""

    def __init__(self, rows: list[Any], key_of: Callable[[Any], Sequence[Any]]) -> None:
        self.rows = rows
        self.key_of = key_of

    def __len__(self) -> int:
        return len(self.rows)

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> list[str]: ...

    def __getitem__(self, index: int | slice) -> str | list[str]:
        if isinstance(index, slice):
            return [encode_cursor(self.key_of(row)) for row in self.rows[index]]
        return encode_cursor(self.key_of(self.rows[index]))


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def encode_cursor(values: Sequence[Any]) -> str:
    raw = json.dumps([_plain(v) for v in values], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, n: int) -> list[Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        values = None
    if not isinstance(values, list) or len(values) != n:
        raise InvalidInput("the cursor is not one this list gave out", field="after")
    return values


def _is_datetime(column: Any) -> bool:
    try:
        return column.type.python_type is datetime
    except NotImplementedError:  # expressions of no declared type (JSON values)
        return False


def _after(order: Sequence[Order], values: Sequence[Any]) -> ColumnElement[bool]:
    """Rows strictly after ``values`` in ``order``: (a > x) or (a = x and b > y) or ...

    A NULL sort value (a missing metadata value, sorted last in its own group) has nothing
    strictly after it; equality with it is ``IS NULL``.
    """
    values = [
        datetime.fromisoformat(v) if isinstance(v, str) and _is_datetime(key.column) else v
        for key, v in zip(order, values, strict=True)
    ]
    directions = {key.descending for key in order}
    if len(directions) == 1 and None not in values:
        # one row-value comparison, the same rows as the chain below: an index on the keys
        # serves it as a range, so a page deep in a list reads no more than a first page
        keys = tuple_(*(key.column for key in order))
        after = tuple_(*(_bound(key.column, v) for key, v in zip(order, values, strict=True)))
        return keys < after if directions == {True} else keys > after
    clauses = []
    for i, key in enumerate(order):
        if values[i] is None:
            step: ColumnElement[bool] = false()
        else:
            value = _bound(key.column, values[i])
            step = key.column < value if key.descending else key.column > value
        clauses.append(and_(*(_equal(order[j].column, values[j]) for j in range(i)), step))
    return or_(*clauses)


def _bound(column: Any, value: Any) -> Any:
    """The cursor value typed like its column (a jsonb sort key compares with jsonb)."""
    return value if isinstance(column.type, NullType) else literal(value, column.type)


def _equal(column: Any, value: Any) -> ColumnElement[bool]:
    return column.is_(None) if value is None else column == _bound(column, value)


def keyset_page(
    query: Select[Any],
    order: Sequence[Order],
    first: int,
    after: str | None,
    key_of: Callable[[Any], Sequence[Any]],
) -> tuple[Select[Any], Callable[[Sequence[Any]], Page[Any]]]:
    """Add ordering, the cursor condition and a limit to ``query``.

    Returns the query and a function that turns its rows into a :class:`Page`; ``key_of`` gives a
    row's sort key values, in ``order``.
    """
    if after is not None:
        query = query.where(_after(order, decode_cursor(after, len(order))))
    query = query.order_by(
        *(key.column.desc() if key.descending else key.column.asc() for key in order)
    ).limit(first + 1)

    def finish(rows: Sequence[Any]) -> Page[Any]:
        kept = list(rows[:first])
        return Page(kept, len(rows) > first, _Cursors(kept, key_of))

    return query, finish
