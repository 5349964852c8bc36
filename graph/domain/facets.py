"""Facets: how many items (or annotations) of a dataset have each value of a field, within an
optional DQL query: the counts behind a filter panel (FiftyOne's ``count_values``, Dataloop's
label counts).

One ``GROUP BY`` statement per facet, over the same conditions the lists use (the listing of a
dataset's files; the compiled DQL of :mod:`queries`), so what a facet counts is what the list with
the same query shows. A JSON path is grouped by the expressions its declared index is built on:
on SQLite (type name, value), which the index holds in order, so the facet reads the index and one
table row per distinct value; on PostgreSQL by the jsonb value (its declared indexes hold the
text, which cannot tell ``1`` from ``"1"`` or ``true``), so a facet there reads the rows the
conditions select. A missing value, a JSON ``null`` and a NULL column are all "missing", as
``= null`` in DQL means.

Histograms count the numbers of a field per equal bin: one statement for the bounds (when not
given) and the rows without a number, one ``GROUP BY`` of the bin.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from sqlalchemy import ColumnElement, Integer, case, cast, func, select

from dql import Field, Order, Query
from dql.compiler import FieldMap, index_expressions
from graph.db.tables import Annotation, Item
from graph.domain import indexes, items, queries
from graph.domain.access import Actor, Role
from graph.domain.datasets import dataset_and_scope
from graph.domain.errors import InvalidInput
from graph.domain.label_counts import label_counts
from graph.domain.platform import Platform
from graph.domain.reach import Viewer

__all__ = [
    "DEFAULT_BINS",
    "DEFAULT_LIMIT",
    "MAX_BINS",
    "MAX_LIMIT",
    "Facet",
    "FacetValue",
    "Histogram",
    "annotation_facet",
    "annotation_histogram",
    "item_facet",
    "item_histogram",
]

DEFAULT_LIMIT = 20
MAX_LIMIT = 1000
DEFAULT_BINS = 10
MAX_BINS = 1000
_PLAIN_SEGMENT = re.compile(r"[A-Za-z0-9_]+")
# SQLite type names (json_type, '' when missing) and how a grouped value reads back
_MISSING_TYPES = ("", "null")
_DECODE: dict[str, Callable[[Any], Any]] = {
    "true": lambda _: True,
    "false": lambda _: False,
    "object": json.loads,
    "array": json.loads,
}


@dataclass(frozen=True)
class FacetValue:
    value: Any
    count: int


@dataclass(frozen=True)
class Facet:
    """The most frequent values of ``field`` among the matched rows, most frequent first (ties
    by value), at most the limit asked; ``total`` rows matched, ``missing`` of them have no value,
    ``distinct`` values in all. The values beyond the limit hold
    ``total - missing - sum(counts)`` rows."""

    field: str
    values: list[FacetValue]
    missing: int
    total: int
    distinct: int


@dataclass(frozen=True)
class _Key:
    """What a field's rows are grouped by, which groups are "missing", how a group reads back."""

    columns: tuple[ColumnElement[Any], ...]
    missing: ColumnElement[bool]
    decode: Callable[[Sequence[Any]], Any]


def _json_path(fields: FieldMap, field: str) -> tuple[str, ...]:
    """``field`` as a JSON path of ``fields`` made of plain names (as indexed paths are)."""
    path = tuple(field.split("."))
    if len(path) < 2 or path[0] not in fields.json:
        raise InvalidInput(f"unknown field {field!r}", field="field")
    if not all(_PLAIN_SEGMENT.fullmatch(s) for s in path):
        raise InvalidInput(
            f"{field}: a facet path is names of letters, digits and _, joined by dots",
            field="field",
        )
    return path


def _key(fields: FieldMap, resource: str, field: str, dialect: str, dataset_id: str) -> _Key:
    scalar = fields.fields.get(field)
    if scalar is not None:
        column = scalar.column
        return _Key((column,), column.is_(None), lambda group: group[0])
    path = _json_path(fields, field)
    if dialect == "sqlite":
        # (type name, json_extract value): the key of the path's declared index, in its order
        type_name, value = index_expressions(fields, path, dialect)[0].expressions
        return _Key(
            (type_name, value),
            type_name.in_(_MISSING_TYPES),
            lambda group: _DECODE.get(group[0], lambda v: v)(group[1]),
        )
    # the jsonb value, as ``order by`` sorts the path: typed, decoded by the driver
    order = Query(order=(Order(Field(path)),))
    node = queries.compile_for(order, resource, dialect, dataset_id).order[0].expression
    return _Key((node,), func.coalesce(func.jsonb_typeof(node), "null") == "null", lambda g: g[0])


def _limit(limit: int | None) -> int:
    if limit is None:
        return DEFAULT_LIMIT
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}, got {limit}", field="limit")
    return limit


def _statement(
    key: _Key, where: Sequence[ColumnElement[bool]], limit: int
) -> tuple[Any, Callable[[Sequence[Any]], tuple[list[FacetValue], int, int, int]]]:
    """The grouped counts, missing groups first (a path has at most two: absent and ``null``),
    then the most frequent; every row also carries the number of groups and of matched rows."""
    missing = case((key.missing, 1), else_=0)
    count = func.count()
    statement = (
        select(
            missing.label("missing"),
            count.label("n"),
            func.count().over().label("groups"),
            func.sum(count).over().label("total"),
            *key.columns,
        )
        .where(*where)
        .group_by(*key.columns)
        .order_by(missing.desc(), count.desc(), *key.columns)
        .limit(limit + len(_MISSING_TYPES))
    )

    def read(rows: Sequence[Any]) -> tuple[list[FacetValue], int, int, int]:
        values, absent, absent_groups = [], 0, 0
        for row in rows:
            if row[0]:
                absent += row[1]
                absent_groups += 1
            elif len(values) < limit:
                values.append(FacetValue(key.decode(row[4:]), int(row[1])))
        groups, total = (int(rows[0][2]), int(rows[0][3])) if rows else (0, 0)
        return values, int(absent), groups - absent_groups, total

    return statement, read


async def _facet(
    platform: Platform,
    actor: Actor,
    dataset_id: str,
    resource: str,
    field: str,
    rows: Rows,
    limit: int | None,
) -> Facet:
    size = _limit(limit)
    async with platform.db.read() as session:
        _, scope = await dataset_and_scope(session, actor, dataset_id, Role.annotator)
        # an annotator's field values are as it sees them (``annotationsCount``: its own)
        fields = queries.fields_for(resource, dataset_id, scope.viewer)
        key = _key(fields, resource, field, platform.db.dialect, dataset_id)
        where, params = rows(await indexes.stored(session), scope.viewer)
        where = [*where, *scope.rows(resource)]
        statement, read = _statement(key, where, size)
        values, missing, distinct, total = read((await session.execute(statement, params)).all())
    return Facet(field, values, missing, total, distinct)


Matched: TypeAlias = tuple[list[ColumnElement[bool]], Mapping[str, Any]]
Rows: TypeAlias = Callable[[queries.Stored, Viewer | None], Matched]
"""The conditions that select the rows counted and the values of the queries' parameters among
them, given the JSON paths the database stores in columns (``indexes.stored``, read in the
counting transaction) and the annotator counting (``Scope.viewer``), whose queries reach only
the annotations it sees."""


def _files(
    dataset_id: str, query: Query, dialect: str, stored: queries.Stored, viewer: Viewer | None
) -> Matched:
    """The dataset's files (folders are not data) matching an item query, as lists select them."""
    compiled = queries.compile_for(
        query, "items", dialect, dataset_id, stored=stored, viewer=viewer
    )
    return [*items.listing(dataset_id, folders=False), compiled.where], compiled.params


def _item_rows(
    dataset_id: str, dql: str | None, dataloop: Mapping[str, Any] | None, dialect: str
) -> Rows:
    query = queries.parse_query(dql, dataloop, resource="items")
    return lambda stored, viewer: _files(dataset_id, query, dialect, stored, viewer)


def _annotation_rows(
    dataset_id: str,
    dql: str | None,
    dataloop: Mapping[str, Any] | None,
    item_dql: str | None,
    dialect: str,
) -> Rows:
    """Annotations of the dataset matching an annotation query, on the files an item query
    selects (if given)."""
    query = queries.parse_query(dql, dataloop, resource="annotations")
    on_items = None if item_dql is None else queries.parse_query(item_dql, resource="items")

    def rows(stored: queries.Stored, viewer: Viewer | None) -> Matched:
        compiled = queries.compile_for(
            query, "annotations", dialect, dataset_id, stored=stored, viewer=viewer
        )
        where = [Annotation.dataset_id == dataset_id, compiled.where]
        if on_items is None:
            return where, compiled.params
        # the two queries compile over different field maps, so their parameters' names differ
        files, params = _files(dataset_id, on_items, dialect, stored, viewer)
        where.append(Annotation.item_id.in_(select(Item.id).where(*files)))
        return where, {**compiled.params, **params}

    return rows


async def item_facet(
    platform: Platform,
    actor: Actor,
    dataset_id: str,
    field: str,
    *,
    dql: str | None = None,
    dataloop: Mapping[str, Any] | None = None,
    limit: int | None = None,
) -> Facet:
    """Files of a dataset per value of ``field`` (a column such as ``dir``, ``mimetype``,
    ``annotated``, or a JSON path such as ``metadata.user.camera``), among those matching a DQL
    query (text and/or Dataloop JSON)."""
    rows = _item_rows(dataset_id, dql, dataloop, platform.db.dialect)
    return await _facet(platform, actor, dataset_id, "items", field, rows, limit)


async def annotation_facet(
    platform: Platform,
    actor: Actor,
    dataset_id: str,
    field: str = "label",
    *,
    dql: str | None = None,
    dataloop: Mapping[str, Any] | None = None,
    item_dql: str | None = None,
    limit: int | None = None,
) -> Facet:
    """Annotations of a dataset per value of ``field`` (``label``, ``type``, or any annotation
    field or JSON path), among those matching an annotation query and, with ``item_dql``, on the
    files an item query selects. The labels of a whole dataset are read from the counts the
    database keeps (:mod:`label_counts`), not counted anew."""
    if field == "label" and item_dql is None:
        query = queries.parse_query(dql, dataloop, resource="annotations")
        if query.where is None:
            return await _dataset_labels(platform, actor, dataset_id, _limit(limit))
    rows = _annotation_rows(dataset_id, dql, dataloop, item_dql, platform.db.dialect)
    return await _facet(platform, actor, dataset_id, "annotations", field, rows, limit)


async def _dataset_labels(platform: Platform, actor: Actor, dataset_id: str, limit: int) -> Facet:
    async with platform.db.read() as session:
        _, scope = await dataset_and_scope(session, actor, dataset_id, Role.annotator)
        if scope.limited:  # the kept counts are the whole dataset's: count what it reaches
            found = await session.execute(
                select(Annotation.label, func.count())
                .where(Annotation.dataset_id == dataset_id, *scope.annotations())
                .group_by(Annotation.label)
            )
            counts = {label: int(n) for label, n in found.all()}
        else:
            counts = await label_counts(session, dataset_id)
    missing = counts.pop(None, 0)
    ranked = sorted(counts.items(), key=lambda pair: (-pair[1], pair[0]))
    values = [FacetValue(label, n) for label, n in ranked[:limit]]
    return Facet("label", values, missing, missing + sum(counts.values()), len(counts))


# --- histograms -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Histogram:
    """How many matched rows have a number of ``field`` in each of ``len(counts)`` equal bins
    between ``edges[0]`` and ``edges[-1]`` (each bin holds its low edge; the last, its high edge
    too). ``missing`` rows have no number there, ``outside`` have one beyond the edges."""

    field: str
    edges: list[float]
    counts: list[int]
    missing: int
    outside: int
    total: int


def _number(fields: FieldMap, field: str, dialect: str) -> ColumnElement[Any]:
    """The field's value where it is a number, else NULL."""
    scalar = fields.fields.get(field)
    if scalar is not None:
        if scalar.kind not in ("integer", "number"):
            raise InvalidInput(f"{field} is a {scalar.kind}, not a number", field="field")
        return scalar.column
    path = _json_path(fields, field)
    found = {
        name: expression
        for index in index_expressions(fields, path, dialect)
        for name, expression in zip(index.names, index.expressions, strict=True)
    }
    if dialect == "sqlite":
        return case((found["type-name"].in_(("integer", "real")), found["text"]), else_=None)
    return found["number"]  # the number expression PostgreSQL's number index holds


def _bounds(
    bins: int, low: float | None, high: float | None
) -> tuple[int, float | None, float | None]:
    if not 1 <= bins <= MAX_BINS:
        raise InvalidInput(f"bins must be between 1 and {MAX_BINS}, got {bins}", field="bins")
    for name, value in (("min", low), ("max", high)):
        if value is not None and not math.isfinite(value):
            raise InvalidInput(f"{name} must be a finite number", field=name)
    if low is not None and high is not None and low >= high:
        raise InvalidInput(f"min ({low}) must be below max ({high})", field="min")
    return bins, low, high


async def _histogram(
    platform: Platform,
    actor: Actor,
    dataset_id: str,
    resource: str,
    field: str,
    rows: Rows,
    bins: int,
    low: float | None,
    high: float | None,
) -> Histogram:
    bins, low, high = _bounds(bins, low, high)
    dialect = platform.db.dialect
    async with platform.db.read() as session:
        _, scope = await dataset_and_scope(session, actor, dataset_id, Role.annotator)
        x = _number(queries.fields_for(resource, dataset_id, scope.viewer), field, dialect)
        where, params = rows(await indexes.stored(session), scope.viewer)
        where = [*where, *scope.rows(resource)]
        stats = select(func.count(), func.count(x), func.min(x), func.max(x)).where(*where)
        total, numbers, smallest, largest = (await session.execute(stats, params)).one()
        low = float(smallest) if low is None and smallest is not None else low
        high = float(largest) if high is None and largest is not None else high
        if low is None or high is None:  # no number, and no bound given in its place
            return Histogram(field, [], [], int(total), 0, int(total))
        if low >= high:  # every number is the same (or all lie below a given max): one unit wide
            high = low + 1
        scale = bins / (high - low)
        offset = (x - low) * scale
        # x >= low, so truncating is flooring; the high edge belongs to the last bin
        step = cast(offset, Integer) if dialect == "sqlite" else func.floor(offset)
        bucket = case((x >= high, bins - 1), else_=step)
        grouped = select(bucket, func.count()).where(*where, x >= low, x <= high).group_by(bucket)
        counts = [0] * bins
        for at, n in (await session.execute(grouped, params)).all():
            counts[min(int(at), bins - 1)] += int(n)
    edges = [low + (high - low) * i / bins for i in range(bins)] + [high]
    outside = int(numbers) - sum(counts)
    return Histogram(field, edges, counts, int(total) - int(numbers), outside, int(total))


async def item_histogram(
    platform: Platform,
    actor: Actor,
    dataset_id: str,
    field: str,
    *,
    dql: str | None = None,
    dataloop: Mapping[str, Any] | None = None,
    bins: int = DEFAULT_BINS,
    low: float | None = None,
    high: float | None = None,
) -> Histogram:
    """Files of a dataset per range of a number field (``size``, ``width``, a metadata path),
    among those matching a DQL query; ``low``/``high`` default to the smallest/largest number."""
    rows = _item_rows(dataset_id, dql, dataloop, platform.db.dialect)
    return await _histogram(platform, actor, dataset_id, "items", field, rows, bins, low, high)


async def annotation_histogram(
    platform: Platform,
    actor: Actor,
    dataset_id: str,
    field: str = "confidence",
    *,
    dql: str | None = None,
    dataloop: Mapping[str, Any] | None = None,
    item_dql: str | None = None,
    bins: int = DEFAULT_BINS,
    low: float | None = None,
    high: float | None = None,
) -> Histogram:
    """Annotations per range of a number field (``confidence`` by default), as
    :func:`annotation_facet` selects them."""
    rows = _annotation_rows(dataset_id, dql, dataloop, item_dql, platform.db.dialect)
    return await _histogram(
        platform, actor, dataset_id, "annotations", field, rows, bins, low, high
    )
