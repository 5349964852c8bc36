"""The DQL abstract syntax tree: what both front ends (text and Dataloop JSON) produce.

Nodes are frozen dataclasses, so equal queries compare equal whichever front end made them.
Field paths are tuples of names (``("metadata", "user", "camera")``); the first name may be a
relation of the resource (``("item", "width")`` when querying annotations), which the compiler
resolves against the caller's field map.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, TypeAlias

__all__ = [
    "And",
    "Compare",
    "Count",
    "Exists",
    "Expr",
    "Field",
    "In",
    "Like",
    "Match",
    "Not",
    "Operator",
    "Or",
    "Order",
    "Quantified",
    "Query",
    "Value",
]

Value: TypeAlias = str | int | float | bool | datetime | None
Operator: TypeAlias = Literal["=", "!=", "<", "<=", ">", ">="]
OPERATORS: tuple[Operator, ...] = ("=", "!=", "<", "<=", ">", ">=")


@dataclass(frozen=True)
class Field:
    """A dotted field path, e.g. ``width`` or ``metadata.user.camera``."""

    path: tuple[str, ...]

    def __str__(self) -> str:
        return ".".join(self.path)


@dataclass(frozen=True)
class Compare:
    """``field op value``. ``= null`` matches a missing or null value; ``!= null`` the opposite."""

    field: Field
    op: Operator
    value: Value


@dataclass(frozen=True)
class In:
    """``field in (v1, v2, ...)``, or ``not in`` when ``negated``."""

    field: Field
    values: tuple[Value, ...]
    negated: bool = False


@dataclass(frozen=True)
class Like:
    """``field like "pattern"``: ``*`` matches within one path segment, ``**`` across segments."""

    field: Field
    pattern: str


@dataclass(frozen=True)
class Exists:
    """``has field``: the field is present and not null."""

    field: Field


@dataclass(frozen=True)
class And:
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Not:
    item: Expr


@dataclass(frozen=True)
class Quantified:
    """``relation.any(where)`` / ``relation.none(where)``: some / no related row matches
    (``where`` None means any related row at all)."""

    relation: str
    quantifier: Literal["any", "none"]
    where: Expr | None = None


@dataclass(frozen=True)
class Match:
    """Some element of the JSON array at ``field`` satisfies ``where``, whose field paths are
    relative to the element (Dataloop's ``$match``, e.g. on ``metadata.system.refs``); with
    ``where`` None, the array has any element at all."""

    field: Field
    where: Expr | None = None


@dataclass(frozen=True)
class Count:
    """``relation.count(where) op n``: how many related rows match, compared with ``n``."""

    relation: str
    where: Expr | None
    op: Operator
    value: int


Expr: TypeAlias = Compare | In | Like | Exists | And | Or | Not | Quantified | Match | Count


@dataclass(frozen=True)
class Order:
    field: Field
    descending: bool = False


@dataclass(frozen=True)
class Query:
    """A whole query: a filter (None selects everything) and a sort order."""

    where: Expr | None = None
    order: tuple[Order, ...] = ()
