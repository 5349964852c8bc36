"""The shape of a query: the query with its values replaced by what the compiler decides on.

Two queries of the same shape compile to the same SQL and differ only in the values bound to its
parameters, so the compiler keeps one compiled expression per shape (see
:func:`dql.compiler.compile_query`). A value's type is part of the shape (a number and a string
compare through different SQL), and so is every value the SQL is built around rather than bound:
``true``, ``false`` and ``null``, a ``count`` bound, whether a ``like`` pattern has a ``*`` and
starts with one, the length of an ``in`` list of anything but strings.

A value is found again by its :data:`Path` from the query: attribute names and tuple indexes.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any, TypeAlias

from dql import ast

__all__ = ["Path", "clause_shape", "shape", "value_at"]

Path: TypeAlias = tuple[str | int, ...]


def shape(query: ast.Query) -> Hashable:
    """The shape of ``query``: equal for queries that differ only in bound values."""
    where = None if query.where is None else clause_shape(query.where)
    return where, tuple((o.field.path, o.descending) for o in query.order)


def value_at(query: ast.Query, path: Path) -> Any:
    """The value (or tuple of values) at ``path`` in ``query``."""
    found: Any = query
    for step in path:
        found = found[step] if isinstance(step, int) else getattr(found, step)
    return found


def _tag(value: ast.Value) -> str:
    kind = type(value)
    if kind is bool or value is None:
        return repr(value)  # built into the SQL: true and false, null
    return kind.__name__  # (bool, None and these never share a name)


def clause_shape(node: ast.Expr) -> Hashable:
    """The shape of one condition (or junction) of a query, as :func:`shape` is of a query.

    Made of strings, numbers and tuples only, which the garbage collector stops tracking: the
    compiler keeps thousands of shapes as cache keys, and every object it tracks lengthens each
    full collection (a class in a shape would keep the tuple tracked)."""
    if isinstance(node, ast.Compare):
        return "compare", node.field.path, node.op, _tag(node.value)
    if isinstance(node, ast.And | ast.Or):
        return "and" if isinstance(node, ast.And) else "or", tuple(
            clause_shape(item) for item in node.items
        )
    if isinstance(node, ast.In):
        values = node.values
        if values and all(type(v) is str for v in values):
            listed: Hashable = "strings"  # one IN of any length
        else:
            listed = tuple(_tag(v) for v in values)
        return "in", node.field.path, node.negated, listed
    if isinstance(node, ast.Like):
        pattern = node.pattern
        return "like", node.field.path, "*" in pattern, pattern.startswith("*")
    if isinstance(node, ast.Exists):
        return "has", node.field.path
    if isinstance(node, ast.Not):
        return "not", clause_shape(node.item)
    inner = None if node.where is None else clause_shape(node.where)
    if isinstance(node, ast.Quantified):
        return "quantified", node.relation, node.quantifier, inner
    if isinstance(node, ast.Count):
        return "count", node.relation, inner, node.op, node.value
    return "match", node.field.path, inner
