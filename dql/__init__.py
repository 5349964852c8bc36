"""DQL, the Loopline query language: text and Dataloop JSON filters compiled to SQL.

Imports nothing else of Loopline's; callers supply the field map of the resource they query.

- :func:`parse` reads DQL text, :func:`from_json` a Dataloop (dtlpy) query or filter; both give the
  same :class:`Query` AST for the same meaning.
- Every problem with a query is a :class:`DQLError` (syntax errors say line and column).
"""

from dql.ast import (
    And,
    Compare,
    Count,
    Exists,
    Expr,
    Field,
    In,
    Like,
    Match,
    Not,
    Or,
    Order,
    Quantified,
    Query,
    Value,
)
from dql.errors import DQLError, DQLFieldError, DQLSyntaxError, DQLTypeError
from dql.jsonfilter import from_json
from dql.parser import parse

# The compiler (dql/compiler.py) adds its entry point here: `from dql.compiler import compile`.

__all__ = [
    "And",
    "Compare",
    "Count",
    "DQLError",
    "DQLFieldError",
    "DQLSyntaxError",
    "DQLTypeError",
    "Exists",
    "Expr",
    "Field",
    "In",
    "Like",
    "Match",
    "Not",
    "Or",
    "Order",
    "Quantified",
    "Query",
    "Value",
    "from_json",
    "parse",
]
