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


def _tag(value: ast.Value) -> Hashable:
    kind = type(value)
    if kind is bool or value is None:
        return repr(value)  # built into the SQL: true and false, null
    return kind


def clause_shape(node: ast.Expr) -> Hashable:
    """The shape of one condition (or junction) of a query, as :func:`shape` is of a query."""
    if isinstance(node, ast.Compare):
        return ast.Compare, node.field.path, node.op, _tag(node.value)
    if isinstance(node, ast.And | ast.Or):
        return type(node), tuple(clause_shape(item) for item in node.items)
    if isinstance(node, ast.In):
        values = node.values
        if values and all(type(v) is str for v in values):
            listed: Hashable = str  # one IN of any length
        else:
            listed = tuple(_tag(v) for v in values)
        return ast.In, node.field.path, node.negated, listed
    if isinstance(node, ast.Like):
        pattern = node.pattern
        return ast.Like, node.field.path, "*" in pattern, pattern.startswith("*")
    if isinstance(node, ast.Exists):
        return ast.Exists, node.field.path
    if isinstance(node, ast.Not):
        return ast.Not, clause_shape(node.item)
    inner = None if node.where is None else clause_shape(node.where)
    if isinstance(node, ast.Quantified):
        return ast.Quantified, node.relation, node.quantifier, inner
    if isinstance(node, ast.Count):
        return ast.Count, node.relation, inner, node.op, node.value
    return ast.Match, node.field.path, inner
