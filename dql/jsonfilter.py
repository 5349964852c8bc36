"""The Dataloop JSON front end: ``from_json(query) -> Query``, so filters written for dtlpy work
unchanged.

Accepts a whole query object (``filter``, ``join``, ``sort``; ``page``, ``pageSize``, ``resource``,
``context`` and ``systemSpace`` are ignored: paging and scope are the caller's) or a bare filter
object. The rules follow what the dtlpy SDK sends and what Dataloop's server does with it:

- ``$and`` / ``$or`` hold lists of filter objects (nested freely); several keys in one object are
  ANDed; ``{path: value}`` is equality and ``{path: {"$op": value}}`` one of ``$eq $ne $gt $gte $lt
  $lte $in $nin $exists $match`` (several operators on one path are ANDed).
- An object without ``$`` keys under a field is a deeper path, not a sub-document:
  ``{"metadata": {"system": {"tags": {"train": true}}}}`` is ``metadata.system.tags.train = true``.
- A string containing ``*`` under equality is a glob (:class:`Like`), and under ``$ne`` its
  negation. ``$in`` / ``$nin`` values are literal.
- Items: a ``filename`` equality without extension and without ``*`` names a folder and matches
  everything under it (``"/dogs"`` and ``"/dogs/"`` become ``filename like "/dogs/**"``).
- ``join`` on annotations (items query) becomes ``annotations.any(<join filter>)``; on items
  (annotations query) ``item.any(<join filter>)``, where ``item`` is the to-one relation from an
  annotation to its item, which the compiler resolves.
- With ``defaults``, the SDK's default conditions are added (items: ``hidden = false`` and
  ``type = "file"``; annotations: ``type != "note"``) except for a field the filter already
  constrains at its top level (Dataloop's "unique fields": the user's condition replaces the
  default for that field).

Every problem is a :class:`DQLError` whose message starts with where it is in the JSON
(``filter.$and[1].width``).
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from dql.ast import (
    And,
    Compare,
    Exists,
    Expr,
    Field,
    In,
    Like,
    Match,
    Not,
    Operator,
    Order,
    Quantified,
    Query,
    Value,
)
from dql.errors import DQLError, DQLTypeError
from dql.parser import MAX_DEPTH, all_of, any_of, number_fits

__all__ = ["from_json"]

_QUERY_KEYS = frozenset({"filter", "join", "sort"})
_IGNORED_KEYS = frozenset({"page", "pageSize", "resource", "context", "systemSpace"})
_COMPARISONS: dict[str, Operator] = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
_OPERATORS = "$eq $ne $gt $gte $lt $lte $in $nin $exists $match"
_DEFAULTS: dict[str, tuple[Compare, ...]] = {
    "items": (Compare(Field(("hidden",)), "=", False), Compare(Field(("type",)), "=", "file")),
    "annotations": (Compare(Field(("type",)), "!=", "note"),),
}
# (resource queried, join.on.resource) -> relation the join becomes
_JOINS = {("items", "annotations"): "annotations", ("annotations", "items"): "item"}
_DIRECTIONS: dict[str | int, bool] = {
    "ascending": False,
    "asc": False,
    1: False,
    "descending": True,
    "desc": True,
    -1: True,
}


def from_json(
    query: Mapping[str, Any] | str, *, resource: str = "items", defaults: bool = True
) -> Query:
    """Turn a Dataloop query or filter (an object, or its JSON text) into a :class:`Query`.

    ``resource`` is what is queried (``items``, ``annotations``, ...): it decides the folder rule,
    the defaults and what a ``join`` means. ``defaults=False`` is dtlpy's ``use_defaults=False``.
    """
    if isinstance(query, str):
        query = _load(query)
    if not isinstance(query, Mapping):
        raise DQLError(f"a Dataloop query is a JSON object, not {_kind(query)}")
    if _QUERY_KEYS.intersection(query) or _IGNORED_KEYS.intersection(query):
        unknown = sorted(str(key) for key in query if key not in _QUERY_KEYS | _IGNORED_KEYS)
        if unknown:
            raise DQLError(
                f"unknown key {unknown[0]!r} in the query: a query has filter, join and sort "
                "(and page, pageSize, resource, context, systemSpace, which are ignored)"
            )
        where, join, sort = query.get("filter"), query.get("join"), query.get("sort")
    else:
        where, join, sort = query, None, None

    conditions = _conjuncts(_filter(where, "filter", resource) if where is not None else None)
    if join is not None:
        conditions.append(_join(join, resource))
    if defaults:
        constrained = {_constrained_field(condition) for condition in conditions}
        kept = [d for d in _DEFAULTS.get(resource, ()) if d.field.path not in constrained]
        conditions[:0] = kept
    order = _sort(sort) if sort is not None else ()
    return Query(all_of(conditions), order)


def _load(text: str) -> Any:
    try:
        return json.loads(text)
    except RecursionError:
        raise DQLError(f"the query nests deeper than {MAX_DEPTH} levels") from None
    except ValueError as error:
        raise DQLError(f"the query is not valid JSON: {error}") from None


def _kind(value: object) -> str:
    """How a JSON value's type reads in a message."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


def _conjuncts(expr: Expr | None) -> list[Expr]:
    if expr is None:
        return []
    return list(expr.items) if isinstance(expr, And) else [expr]


def _constrained_field(condition: Expr) -> tuple[str, ...] | None:
    """The field a top-level condition is about (seen through ``not``), if it is about one."""
    while isinstance(condition, Not):
        condition = condition.item
    if isinstance(condition, Compare | In | Like | Exists):
        return condition.field.path
    return None


def _join(join: Any, resource: str) -> Quantified:
    if not isinstance(join, Mapping):
        raise DQLError(f"join: expected an object with on and filter, found {_kind(join)}")
    on = join.get("on")
    target = on.get("resource") if isinstance(on, Mapping) else None
    relation = _JOINS.get((resource, target)) if isinstance(target, str) else None
    if relation is None:
        joinable = [repr(t) for (r, t) in _JOINS if r == resource]
        raise DQLError(
            f"join.on.resource: {resource} can be joined with {' or '.join(joinable) or 'nothing'}"
            f", not {target!r}"
        )
    where = join.get("filter")
    return Quantified(
        relation,
        "any",
        _filter(where, "join.filter", target) if where is not None else None,
    )


def _sort(sort: Any) -> tuple[Order, ...]:
    if not isinstance(sort, Mapping):
        raise DQLError(f"sort: expected an object of field: direction, found {_kind(sort)}")
    order = []
    for key, direction in sort.items():
        where = f"sort.{key}"
        path = _path((), key, where)
        descending = (
            None
            if isinstance(direction, bool) or not isinstance(direction, str | int)
            else _DIRECTIONS.get(direction.lower() if isinstance(direction, str) else direction)
        )
        if descending is None:
            raise DQLError(
                f"{where}: the direction is ascending or descending (or asc, desc, 1, -1), "
                f"not {direction!r}"
            )
        order.append(Order(Field(path), descending))
    return tuple(order)


# ---------------------------------------------------------------------------------------------
# Filters


def _filter(obj: Any, where: str, resource: str | None, depth: int = 1) -> Expr | None:
    """The condition a filter object states (None if it states none), ``where`` naming it."""
    return all_of(_object(obj, (), where, resource, depth))


def _object(
    obj: Any, prefix: tuple[str, ...], where: str, resource: str | None, depth: int
) -> list[Expr]:
    """The conditions of one object: a filter (``prefix`` empty) or the fields under ``prefix``."""
    if not isinstance(obj, Mapping):
        raise DQLError(f"{where}: expected a filter object, found {_kind(obj)}")
    if depth > MAX_DEPTH:
        raise DQLError(f"{where}: the filter nests deeper than {MAX_DEPTH} levels")
    conditions: list[Expr] = []
    for key, value in obj.items():
        if key in ("$and", "$or") and not prefix:
            conditions.extend(_logical(key, value, f"{where}.{key}", resource, depth))
        elif isinstance(key, str) and key.startswith("$"):
            raise DQLError(
                f"{where}: unknown operator {key!r} here; a filter object has $and, $or and fields"
            )
        else:
            path = _path(prefix, key, where)
            conditions.extend(_field(path, value, f"{where}.{key}", resource, depth))
    return conditions


def _logical(key: str, items: Any, where: str, resource: str | None, depth: int) -> list[Expr]:
    if not isinstance(items, list | tuple):
        raise DQLError(f"{where}: expected a list of filter objects, found {_kind(items)}")
    parts = [
        _filter(item, f"{where}[{index}]", resource, depth + 1) for index, item in enumerate(items)
    ]
    if key == "$and":
        return [part for part in parts if part is not None]
    if not parts:
        raise DQLError(f"{where}: an empty $or would match nothing; give at least one condition")
    alternatives = [part for part in parts if part is not None]
    if len(alternatives) < len(parts):  # an empty alternative matches everything
        return []
    return _conjuncts(any_of(alternatives))


def _path(prefix: tuple[str, ...], key: Any, where: str) -> tuple[str, ...]:
    if not isinstance(key, str):
        raise DQLError(f"{where}: a field name is a string, not {_kind(key)}")
    segments = tuple(key.split("."))
    for segment in segments:
        if not segment:
            raise DQLError(f"{where}: {key!r} is not a field path (an empty name between dots)")
        if segment.startswith("$"):
            raise DQLError(f"{where}: a field name cannot start with '$' ({key!r})")
        _check_text(segment, where)
    return prefix + segments


def _field(
    path: tuple[str, ...], value: Any, where: str, resource: str | None, depth: int
) -> list[Expr]:
    """The conditions ``{path: value}`` states."""
    if isinstance(value, Mapping):
        operators = [key for key in value if isinstance(key, str) and key.startswith("$")]
        if not operators:
            if not value:
                raise DQLError(f"{where}: an empty object is not a condition")
            return _object(value, path, where, resource, depth + 1)
        if len(operators) < len(value):
            raise DQLError(f"{where}: an object mixes operators ($...) and field names")
        return [
            _operator(path, op, operand, f"{where}.{op}", resource, depth)
            for op, operand in value.items()
        ]
    if isinstance(value, list | tuple) and not value:
        # ``{"metadata.system.refs": []}``: the array is empty (or missing) - no element at all
        return [Not(Match(Field(path), None))]
    return [_equals(path, _scalar(value, path, where), resource)]


def _operator(
    path: tuple[str, ...], op: str, operand: Any, where: str, resource: str | None, depth: int
) -> Expr:
    field = Field(path)
    if op == "$eq":
        return _equals(path, _scalar(operand, path, where), resource)
    if op == "$ne":
        value = _scalar(operand, path, where)
        if isinstance(value, str) and "*" in value:
            return Not(Like(field, value))
        return Compare(field, "!=", value)
    if op in _COMPARISONS:
        return Compare(field, _COMPARISONS[op], _scalar(operand, path, where))
    if op in ("$in", "$nin"):
        if not isinstance(operand, list | tuple):
            raise DQLTypeError(
                f"{where}: {op} takes a list of values, found {_kind(operand)}", field=str(field)
            )
        values = tuple(_scalar(item, path, f"{where}[{i}]") for i, item in enumerate(operand))
        return In(field, values, negated=op == "$nin")
    if op == "$exists":
        if not isinstance(operand, bool):
            raise DQLTypeError(
                f"{where}: $exists takes true or false, found {_kind(operand)}", field=str(field)
            )
        return Exists(field) if operand else Not(Exists(field))
    if op == "$match":
        element = _filter(operand, where, None, depth + 1)
        if element is None:
            raise DQLError(f"{where}: $match needs at least one condition on the elements")
        return Match(field, element)
    raise DQLError(f"{where}: unknown operator {op!r}; use one of {_OPERATORS}")


def _equals(path: tuple[str, ...], value: Value, resource: str | None) -> Expr:
    field = Field(path)
    if isinstance(value, str):
        if "*" in value:
            return Like(field, value)
        if resource == "items" and path == ("filename",) and not posixpath.splitext(value)[1]:
            # dtlpy's folder rule: a filename without extension means everything under it
            return Like(field, value.rstrip("/") + "/**")
    return Compare(field, "=", value)


def _scalar(value: Any, path: tuple[str, ...], where: str) -> Value:
    """A JSON value usable in a condition, checked so that the databases can compare it."""
    if value is None or isinstance(value, bool | datetime):
        return value
    if isinstance(value, str):
        _check_text(value, where)
        return value
    if isinstance(value, int | float):
        if not number_fits(value):
            raise DQLTypeError(
                f"{where}: the number {value!r} is out of range", field=".".join(path)
            )
        return value
    raise DQLTypeError(
        f"{where}: expected a string, number, boolean or null, found {_kind(value)}"
        + (" (a list is only taken by $in and $nin)" if isinstance(value, list | tuple) else ""),
        field=".".join(path),
    )


def _check_text(text: str, where: str) -> None:
    """Refuse lone UTF-16 surrogates (JSON ``"\\ud800"`` decodes to one): not text to a database."""
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise DQLError(f"{where}: the text holds half a UTF-16 surrogate pair") from None
