"""Compile a DQL :class:`~dql.ast.Query` to SQLAlchemy Core against a caller's field map.

The caller says what a resource's fields are (:class:`FieldMap`): columns with their kind, JSON
columns whose paths may be queried (``metadata.*``), and relations to other resources
(``annotations`` of an item, the ``item`` of an annotation). Nothing else reaches SQL: an unknown
field or a value of the wrong type is a :class:`~dql.errors.DQLError` naming the field.

Semantics are the same on SQLite and PostgreSQL:

- every predicate is true or false, never NULL, so ``not`` and ``!=`` mean what they say
  (``camera != "front"`` matches items without a camera);
- a JSON value matches a comparison only when it has the compared value's type (``score > 1``
  never matches the string ``"2"``); ``= null`` matches a missing or null value, ``has`` a present,
  non-null one;
- strings compare by code point (PostgreSQL is told ``COLLATE "C"`` for ``<``, ``>``);
- ``like`` globs: ``*`` matches within one ``/``-separated segment, ``**`` across segments.

JSON paths made of plain names are written into the SQL as literals (quoted by SQLAlchemy), so the
expression is exactly the one a metadata index is built on and the index can serve the query; any
other path is a bound parameter. Values are always bound parameters.

Compiled expressions are kept per query *shape* (:mod:`dql.shapes`: the query with its values
replaced by their types) and field map, and their parameters carry no values: a query of a known
shape costs a dictionary lookup and its values, which :attr:`Compiled.params` holds and the
statement is run with. The parameter names are those of the shape's first compilation.
A shape not seen before is compiled from the conditions earlier shapes held (each kept with
the paths of its parameters), so only its new conditions cost SQLAlchemy's construction.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import count as serials
from itertools import islice
from typing import Any, Literal, TypeAlias

from sqlalchemy import (
    ColumnElement,
    and_,
    any_,
    case,
    cast,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import BindParameter, BooleanClauseList
from sqlalchemy.types import Float, String

from dql import ast
from dql.errors import DQLError, DQLFieldError, DQLTypeError
from dql.prototypes import Prototype
from dql.shapes import Path, clause_shape, shape, value_at

__all__ = [
    "Compiled",
    "FieldMap",
    "IndexExpression",
    "Json",
    "Kind",
    "Relation",
    "Scalar",
    "SortKey",
    "clear_caches",
    "compile_query",
    "index_expressions",
    "json_path_expression",
]

Kind: TypeAlias = Literal["string", "integer", "number", "boolean", "datetime"]
Dialect: TypeAlias = Literal["sqlite", "postgresql"]
_MAX_DEPTH = 100
_PLAIN_SEGMENT = re.compile(r"[A-Za-z0-9_]+")


@dataclass(frozen=True)
class Scalar:
    """A column field of a known kind."""

    column: ColumnElement[Any]
    kind: Kind


@dataclass(frozen=True)
class Json:
    """A JSON column whose inner paths are fields: ``metadata`` -> ``metadata.user.camera``.

    ``stored``: inner paths whose expressions the table also holds in columns (e.g. generated
    columns), ``("user", "camera") -> {expression name: column}`` with the names
    :class:`IndexExpression` gives; a comparison on the path reads those columns instead."""

    column: ColumnElement[Any]
    stored: Mapping[tuple[str, ...], Mapping[str, ColumnElement[Any]]] = field(default_factory=dict)


@dataclass(frozen=True)
class Relation:
    """Rows of another resource related to this one: ``local`` (a column here) equals ``remote``
    (a column there). ``fields`` describes the other resource (a callable for cycles); ``where``
    narrows the other side once for every use (e.g. to the same dataset)."""

    fields: FieldMap | Callable[[], FieldMap]
    local: ColumnElement[Any]
    remote: ColumnElement[Any]
    where: ColumnElement[bool] | None = None

    def target(self) -> FieldMap:
        return self.fields() if callable(self.fields) else self.fields


@dataclass(frozen=True)
class FieldMap:
    """What a resource exposes to DQL. ``fields`` are dotted names (``"createdAt"``,
    ``"metadata.system.mimetype"``); ``json`` maps a first path segment to a JSON column."""

    fields: Mapping[str, Scalar]
    json: Mapping[str, Json] = field(default_factory=dict)
    relations: Mapping[str, Relation] = field(default_factory=dict)


@dataclass(frozen=True)
class SortKey:
    """One ``order by`` key: sort by ``nulls_last`` (0 or 1) then ``expression``."""

    field: str
    expression: ColumnElement[Any]
    nulls_last: ColumnElement[Any]
    descending: bool
    json: bool


@dataclass(frozen=True)
class Compiled:
    """A compiled query. ``where`` has bound parameters without values, shared by every query of
    the same shape: run a statement made with it as ``session.execute(statement, params)``."""

    where: ColumnElement[bool]
    order: tuple[SortKey, ...]
    params: Mapping[str, Any] = field(default_factory=dict)


_Bind: TypeAlias = tuple[str, Path, str, Callable[[Any], Any]]
"""A parameter of a compiled shape: ``(name, path, field, convert)``, its value ``convert`` of
the query's value at ``path`` (a value of ``field``). A plain tuple: thousands are kept and
every compilation of a new shape makes some, so they cost as little as can be."""

_Binds: TypeAlias = tuple[tuple[Path, tuple[_Bind, ...]], ...]
"""Parameters by condition: ``(at, binds)``, the binds' paths relative to the condition at
``at`` in the query (a condition reused in a new shape is added as it was kept)."""


@dataclass(frozen=True, slots=True)
class _Template:
    """What a shape compiles to over ``fields``, which it keeps alive: the cache is keyed by the
    field map's ``id``, which no other map can take while the entry holds this one."""

    fields: FieldMap
    where: ColumnElement[bool]
    order: tuple[SortKey, ...]
    binds: _Binds


def _make_room(cache: dict[Any, Any], limit: int) -> None:
    """At ``limit`` entries, the oldest 1/64th of ``cache`` dropped (in one go: dropping the
    first entry of a dict finds it past the slots of those dropped before). Never all at once:
    freeing a full cache's thousands of expressions took ~10 ms in one unlucky call."""
    if len(cache) >= limit:
        for key in list(islice(cache, max(1, limit // 64))):
            del cache[key]


_TEMPLATES: dict[Hashable, _Template] = {}
_TEMPLATE_LIMIT = 1024  # a 10-clause shape holds some 30 KB of expressions
_SERIALS = serials()  # one a compilation: parameter names differ between shapes in one statement


@dataclass(frozen=True, slots=True)
class _Clause:
    """What one condition compiles to, kept for the shapes that hold it: a query of a new shape
    compiles only the conditions no earlier query held. ``binds`` are its parameters, their
    paths relative to the condition. ``fields`` (the condition's resource) and ``root`` (the
    query's) are kept alive as for :class:`_Template`; conditions are shared only between
    queries over one root, so queries over two resources combined in one statement (an export's
    items and annotations) never share a parameter name."""

    fields: FieldMap
    root: FieldMap
    element: ColumnElement[bool]
    binds: tuple[_Bind, ...]
    names: frozenset[str]  # of binds


_CLAUSES: dict[Hashable, _Clause] = {}
_CLAUSE_LIMIT = 4096  # ~30 objects each, which every full garbage collection visits


def compile_query(
    query: ast.Query, fields: FieldMap, dialect: str, *, correlated: bool = False
) -> Compiled:
    """The WHERE clause and sort keys of ``query`` over ``fields``, for ``dialect``.

    Quantifiers (``annotations.any(...)``) compile to membership in the related rows' set
    (``id IN (SELECT item_id ...)``), which suits a rare match; ``correlated`` makes those over
    ``fields``' own relations a correlated ``EXISTS`` instead (the same rows), which suits a
    common one when rows are read in list order until a page is full.
    """
    if dialect not in ("sqlite", "postgresql"):
        raise ValueError(f"DQL compiles for sqlite and postgresql, not {dialect!r}")
    query_shape = shape(query)
    key = (query_shape, id(fields), dialect, correlated)
    template = _TEMPLATES.get(key)
    if template is None:
        compiler = _Compiler(dialect, correlated, fields)  # type: ignore[arg-type]
        if query.where is None:
            where: ColumnElement[bool] = true()
        else:
            where = compiler.expr(query.where, fields, 0, ("where",), query_shape[0])
        order = tuple(_sort_key(o, fields, compiler) for o in query.order)
        template = _Template(fields, where, order, tuple(compiler.binds))
        _make_room(_TEMPLATES, _TEMPLATE_LIMIT)
        _TEMPLATES[key] = template
    params = {}
    for at, binds in template.binds:
        node = value_at(query, at)
        for name, path, field_name, convert in binds:
            params[name] = _bound(field_name, convert, value_at(node, path))
    return Compiled(template.where, template.order, params)


# sort keys by (field path, direction, id of the field map, dialect), with the field map they
# keep alive (as _Template does): a new shape mostly sorts as earlier ones did
_SORT_KEYS: dict[Hashable, tuple[FieldMap, SortKey]] = {}
_SORT_KEY_LIMIT = 1024


def _sort_key(order: ast.Order, fields: FieldMap, compiler: _Compiler) -> SortKey:
    key = (order.field.path, order.descending, id(fields), compiler.dialect)
    found = _SORT_KEYS.get(key)
    if found is not None and found[0] is fields:
        return found[1]
    made = compiler.sort_key(order, fields)
    _make_room(_SORT_KEYS, _SORT_KEY_LIMIT)
    _SORT_KEYS[key] = (fields, made)
    return made


def clear_caches() -> None:
    """Forget every expression kept between compilations (for measuring a cold compile)."""
    for cache in (
        _TEMPLATES,
        _CLAUSES,
        _SORT_KEYS,
        _JSON_EXPRESSIONS,
        _PROTOTYPES,
        _NOT_NULL,
        _AND_TERMS,
    ):
        cache.clear()


def _bound(field_name: str, convert: Callable[[Any], Any], value: Any) -> Any:
    """The value bound for a parameter, checked as compiling the shape checked the first one."""
    _check_nul(value if isinstance(value, tuple) else (value,), field_name)
    return convert(value)


def json_path_expression(column: ColumnElement[Any], path: tuple[str, ...], dialect: str) -> Any:
    """The canonical text expression of a JSON path, as indexes on it must be built."""
    return _Compiler(dialect).json_text(column, path)  # type: ignore[arg-type]


@dataclass(frozen=True)
class IndexExpression:
    """The key expressions of one index on a JSON path, in order: compiled queries compare the
    path through exactly these, so the database matches the index to them. ``serves`` is
    ``"values"`` (strings and booleans; on SQLite numbers too, json_extract being typed) or
    ``"numbers"`` (PostgreSQL's number comparisons). ``names`` name each expression
    (``type-name``, ``text``, ``number``), as :class:`Json`'s ``stored`` columns are keyed."""

    serves: Literal["values", "numbers"]
    expressions: tuple[ColumnElement[Any], ...]
    names: tuple[str, ...]


def index_expressions(
    fields: FieldMap, path: tuple[str, ...], dialect: str
) -> tuple[IndexExpression, ...]:
    """The indexes to build for the JSON ``path`` of ``fields``: their key expressions are made
    by the code that compiles comparisons on the path, so compiled queries use the indexes.

    SQLite: one index on the type name then the value (``json_extract``), which serves every
    typed comparison from the index alone. PostgreSQL: one on the type name then the text
    (``#>>``), one on the type name then the number expression number comparisons use.

    Raises :class:`DQLFieldError` unless ``path`` is a JSON path of ``fields`` (not a column)
    made of plain segments (letters, digits, ``_``): other paths compile to a bound parameter,
    which no index expression can match.
    """
    if dialect not in ("sqlite", "postgresql"):
        raise ValueError(f"DQL compiles for sqlite and postgresql, not {dialect!r}")
    compiler = _Compiler(dialect)  # type: ignore[arg-type]
    resolved = compiler.resolve(path, fields)
    column, inner = resolved.json_column, resolved.json_path
    if column is None:
        raise DQLFieldError(
            f"{resolved.name} is a column, not a JSON path; columns need no declared index",
            field=resolved.name,
        )
    if not all(_PLAIN_SEGMENT.fullmatch(s) for s in inner):
        raise DQLFieldError(
            f"{resolved.name}: an indexed path is made of letters, digits and _ only",
            field=resolved.name,
        )

    def index(serves: Literal["values", "numbers"], *names: str) -> IndexExpression:
        built = tuple(_json_expression(name, column, inner, compiler) for name in names)
        return IndexExpression(serves, built, names)

    if dialect == "sqlite":
        return (index("values", "type-name", "text"),)
    return (index("values", "type-name", "text"), index("numbers", "type-name", "number"))


# --- values -----------------------------------------------------------------------------------------


def _as_datetime(value: ast.Value, name: str) -> datetime:
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise DQLTypeError(
                f"{name} is a date; {value!r} is not an ISO 8601 date", field=name
            ) from None
    else:
        raise DQLTypeError(f"{name} is a date; compare it with an ISO 8601 string", field=name)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _is_number(value: ast.Value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_value(scalar: Scalar, value: ast.Value, name: str) -> ast.Value:
    """``value`` converted for ``scalar``'s column; a mismatch is a DQLTypeError."""
    if value is None:
        return None
    if scalar.kind == "datetime":
        return _as_datetime(value, name)
    if isinstance(value, float) and not math.isfinite(value):
        raise DQLTypeError(f"{name}: {value} is not a finite number", field=name)
    fits = {
        "string": isinstance(value, str),
        "integer": _is_number(value),
        "number": _is_number(value),
        "boolean": isinstance(value, bool),
    }[scalar.kind]
    if not fits:
        raise DQLTypeError(
            f"{name} holds {_KIND_WORDS[scalar.kind]}; {value!r} is not one", field=name
        )
    return value


_KIND_WORDS = {
    "string": "text",
    "integer": "whole numbers",
    "number": "numbers",
    "boolean": "true or false",
    "datetime": "dates",
}


def _check_text(node: ast.Expr, name: str) -> None:
    """No NUL characters: PostgreSQL text cannot hold them, so no stored value can match one."""
    values: tuple[ast.Value, ...] = ()
    if isinstance(node, ast.Compare):
        values = (node.value,)
    elif isinstance(node, ast.In):
        values = node.values
    elif isinstance(node, ast.Like):
        values = (node.pattern,)
    _check_nul(values, name)


def _check_nul(values: tuple[ast.Value, ...], name: str) -> None:
    for value in values:
        if isinstance(value, str) and "\x00" in value:
            raise DQLTypeError(f"{name}: text values may not contain NUL characters", field=name)


def _glob_regex(pattern: str) -> str:
    out = ["^"]
    for token in re.split(r"(\*\*|\*)", pattern):
        if token == "**":
            out.append(".*")
        elif token == "*":
            out.append("[^/]*")
        else:
            out.append(re.escape(token))
    out.append("$")
    return "".join(out)


def _like_prefix(pattern: str) -> str:
    """The literal text before the first ``*``, escaped for LIKE (lets an index narrow the scan)."""
    head = pattern.split("*", 1)[0]
    return head.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


# --- the compiler -----------------------------------------------------------------------------------


@dataclass
class _Resolved:
    """A field path resolved against a field map: a column, or a JSON column with an inner path."""

    name: str
    scalar: Scalar | None = None
    json_column: ColumnElement[Any] | None = None
    json_path: tuple[str, ...] = ()


class _Compiler:
    def __init__(
        self, dialect: Dialect, correlated: bool = False, root: FieldMap | None = None
    ) -> None:
        self.dialect = dialect
        self.root = root  # the field map of the query being compiled
        self.correlated = correlated  # the outermost quantifiers compile to a correlated EXISTS
        self.nesting = 0  # how many related resources' filters are being compiled
        # (JSON column, inner path) -> the path's stored expressions, as resolved field maps say
        self.stored: dict[tuple[Any, tuple[str, ...]], Mapping[str, Any]] = {}
        self.serial = next(_SERIALS)
        self.binds: list[tuple[Path, tuple[_Bind, ...]]] = []  # as _Template.binds
        self.made = 0  # parameters so far, made or reused (named in turn)
        self.names: set[str] = set()  # of self.binds

    def bind(
        self,
        left: Any,
        op: Any,
        sample: Any,
        path: Path,
        field: str,
        convert: Callable[[Any], Any] = lambda value: value,
        expanding: bool = False,
    ) -> BindParameter[Any]:
        """A parameter compared with ``left`` by ``op``, of the type SQLAlchemy gives ``sample``
        (the value of this compilation; ``convert`` makes it from the query's value at
        ``path``). It has no value: every query of the shape brings its own."""
        name = f"dql{self.serial}_{self.made}"
        self.made += 1
        self.binds.append(((), ((name, path, field, convert),)))
        self.names.add(name)
        type_ = left.type.coerce_compared_value(op, sample[0] if expanding else sample)
        return BindParameter(name, type_=type_, expanding=expanding, required=True)

    # resolving -------------------------------------------------------------------------------------

    def resolve(self, path: tuple[str, ...], fields: FieldMap) -> _Resolved:
        name = ".".join(path)
        scalar = fields.fields.get(name)
        if scalar is not None:
            return _Resolved(name, scalar=scalar)
        json_field = fields.json.get(path[0])
        if json_field is not None and len(path) > 1:
            stored = json_field.stored.get(path[1:])
            if stored:
                self.stored[json_field.column, path[1:]] = stored
            return _Resolved(name, json_column=json_field.column, json_path=path[1:])
        raise DQLFieldError(f"unknown field {name!r}", field=name)

    # JSON ------------------------------------------------------------------------------------------

    def path_literal(self, path: tuple[str, ...]) -> Any:
        """The dialect's path argument: ``'$.user.camera'`` or ``'{user,camera}'``.

        Plain paths are rendered inline (quoted by SQLAlchemy), so the expression is the one an
        index is built on; any other path is a bound parameter.
        """
        text, plain = _path_text(path, self.dialect)
        return literal(text, String(), literal_execute=plain)

    def json_text(self, column: ColumnElement[Any], path: tuple[str, ...]) -> Any:
        """The value at ``path``: SQL-native on SQLite (json_extract), text on PostgreSQL (#>>)."""
        return _json_expression("text", column, path, self)

    def json_node(self, column: ColumnElement[Any], path: tuple[str, ...]) -> Any:
        """PostgreSQL: the jsonb value at ``path`` (for its type and ordering)."""
        return _json_expression("node", column, path, self)

    def json_type(self, column: ColumnElement[Any], path: tuple[str, ...]) -> Any:
        """The JSON type name at ``path`` (NULL when missing)."""
        return _json_expression("type", column, path, self)

    def build_json(self, what: str, column: ColumnElement[Any], path: tuple[str, ...]) -> Any:
        if what.startswith("is-not-"):
            kinds = _JSON_KINDS[self.dialect][what[7:]]
            return _json_expression("type-name", column, path, self).not_in(kinds)
        if what.startswith("is-"):
            # the type name, '' when missing, IN the kinds: a term an index on the type name
            # serves (with the value after it, a count never reads the table)
            kinds = _JSON_KINDS[self.dialect][what[3:]]
            return _json_expression("type-name", column, path, self).in_(kinds)
        if what == "has":  # (not `is-not-missing`: the SQL is that of `not (x = null)`)
            return not_(_json_expression("is-missing", column, path, self))
        if what == "type-name":
            return func.coalesce(self.json_type(column, path), _inline(""))
        if what == "number":  # PostgreSQL: cast only what is known to be a number
            is_number = func.jsonb_typeof(self.json_node(column, path)) == _inline("number")
            return case((is_number, cast(self.json_text(column, path), Float())), else_=None)
        if what == "text":
            if self.dialect == "sqlite":
                return func.json_extract(column, self.path_literal(path))
            return column.op("#>>", return_type=String())(self.path_literal(path))
        if what == "node":
            return column.op("#>", return_type=JSONB)(self.path_literal(path))
        if self.dialect == "sqlite":
            return func.json_type(column, self.path_literal(path))
        return func.jsonb_typeof(self.json_node(column, path))

    def json_is(self, resolved: _Resolved, kind: str) -> ColumnElement[bool]:
        """The value at the path is of JSON ``kind`` (string, number, boolean, null); never NULL."""
        assert resolved.json_column is not None
        return _json_expression(f"is-{kind}", resolved.json_column, resolved.json_path, self)

    def json_compare(
        self, resolved: _Resolved, op: ast.Operator, value: ast.Value, at: Path
    ) -> ColumnElement[bool]:
        column, path = resolved.json_column, resolved.json_path
        assert column is not None
        if value is None:
            # missing or JSON null: the type name (see build_json) is '' or 'null'
            if op == "=":
                return self.json_is(resolved, "missing")
            if op == "!=":
                return _json_expression("is-not-missing", column, path, self)
            raise DQLTypeError(
                f"{resolved.name}: only = and != compare with null", field=resolved.name
            )
        if isinstance(value, float) and not math.isfinite(value):
            raise DQLTypeError(
                f"{resolved.name}: {value} is not a finite number", field=resolved.name
            )
        if op == "!=":
            return not_(self.json_compare(resolved, "=", value, at))
        # the value test before the type test: in a scan it fails for most rows, sparing the
        # type test (a second JSON lookup) for them; the result is the same either way
        text = self.json_text(column, path)
        if isinstance(value, bool):
            if op != "=":
                raise DQLTypeError(
                    f"{resolved.name}: true and false compare only with = and !=",
                    field=resolved.name,
                )
            if self.dialect == "sqlite":
                return self.json_is(resolved, "true" if value else "false")
            return and_(text == ("true" if value else "false"), self.json_is(resolved, "boolean"))
        name = resolved.name
        if isinstance(value, datetime | str):
            left: Any = text
            if op != "=" and self.dialect == "postgresql":
                left = text.collate("C")  # code point order, as SQLite compares
            if isinstance(value, datetime):
                bound = self.bind(left, _OPERATORS[op], value.isoformat(), at, name, _iso)
            else:
                bound = self.bind(left, _OPERATORS[op], value, at, name)
            return and_(_apply(left, op, bound), self.json_is(resolved, "string"))
        # a number: PostgreSQL casts only values known to be numbers
        if self.dialect == "sqlite":
            left = text
        else:
            left = _json_expression("number", column, path, self)
        bound = self.bind(left, _OPERATORS[op], value, at, name, _finite(name))
        return and_(_apply(left, op, bound), self.json_is(resolved, "number"))

    # expressions -----------------------------------------------------------------------------------

    def expr(
        self,
        node: ast.Expr,
        fields: FieldMap,
        depth: int,
        at: Path,
        node_shape: Hashable | None = None,
    ) -> ColumnElement[bool]:
        """``node``, found at ``at`` in the query (where its parameters' values are taken from);
        ``node_shape`` its :func:`clause_shape` when the caller has it (part of the query's)."""
        if depth > _MAX_DEPTH:
            raise DQLError(f"the query is nested more than {_MAX_DEPTH} levels deep")
        depth += 1
        if node_shape is None:
            node_shape = clause_shape(node)
        if isinstance(node, ast.And | ast.Or | ast.Not):
            return self.junction(node, fields, depth, at, node_shape)
        # a condition: as an earlier shape compiled it, unless this query holds it twice (one
        # parameter name would then stand for two values)
        correlated = self.correlated and self.nesting == 0
        key = (node_shape, id(fields), id(self.root), self.dialect, correlated)
        clause = _CLAUSES.get(key)
        if clause is not None and clause.fields is fields and clause.root is self.root:
            if self.names.isdisjoint(clause.names):
                self.names |= clause.names
                self.binds.append((at, clause.binds))
                self.made += len(clause.binds)
                return clause.element
        first = len(self.binds)
        element = self.condition(node, fields, depth, at)
        cut = len(at)
        binds = tuple(
            (name, (*inner, *path)[cut:], field_name, convert)
            for inner, made in self.binds[first:]
            for name, path, field_name, convert in made
        )
        del self.binds[first:]
        self.binds.append((at, binds))
        _make_room(_CLAUSES, _CLAUSE_LIMIT)
        _CLAUSES[key] = _Clause(
            fields, self.root, element, binds, frozenset(name for name, *_ in binds)
        )
        return element

    def junction(
        self,
        node: ast.And | ast.Or | ast.Not,
        fields: FieldMap,
        depth: int,
        at: Path,
        node_shape: Any,
    ) -> ColumnElement[bool]:
        """``node`` of shape ``node_shape`` (whose second member holds its items' shapes)."""
        if isinstance(node, ast.Not):
            return not_(self.expr(node.item, fields, depth, (*at, "item"), node_shape[1]))
        items = [
            self.expr(item, fields, depth, (*at, "items", i), item_shape)
            for i, (item, item_shape) in enumerate(zip(node.items, node_shape[1], strict=True))
        ]
        return _all_of(items) if isinstance(node, ast.And) else or_(*items)

    def condition(
        self, node: ast.Expr, fields: FieldMap, depth: int, at: Path
    ) -> ColumnElement[bool]:
        if isinstance(node, ast.Quantified):
            return self.quantified(node, fields, depth, (*at, "where"))
        if isinstance(node, ast.Count):
            return self.count(node, fields, depth, at)
        if isinstance(node, ast.Match):
            return self.match(node, fields, depth, at)
        relation_name = node.field.path[0]
        if relation_name in fields.relations and len(node.field.path) > 1:
            # ``item.width > 5`` on annotations: a condition on the related row (whose values
            # are where they are in ``node``)
            inner = _with_field(node, ast.Field(node.field.path[1:]))
            return self.quantified(ast.Quantified(relation_name, "any", inner), fields, depth, at)
        resolved = self.resolve(node.field.path, fields)
        _check_text(node, resolved.name)
        if isinstance(node, ast.Compare):
            return self.compare(resolved, node.op, node.value, (*at, "value"))
        if isinstance(node, ast.In):
            matched = self.contains(resolved, node.values, (*at, "values"))
            return not_(matched) if node.negated else matched
        if isinstance(node, ast.Like):
            return self.like(resolved, node.pattern, (*at, "pattern"))
        if isinstance(node, ast.Exists):
            if resolved.json_column is not None:
                return _json_expression("has", resolved.json_column, resolved.json_path, self)
            return not_(self.compare(resolved, "=", None, at))
        raise DQLError(f"cannot compile {type(node).__name__}")

    def quantified(
        self, node: ast.Quantified, fields: FieldMap, depth: int, where_at: Path
    ) -> ColumnElement[bool]:
        relation = self.relation(node.relation, fields)
        related = self.related(relation, node.where, depth, where_at)
        if self.correlated and self.nesting == 0:
            found = related.where(relation.remote == relation.local).exists()
        else:
            found = relation.local.in_(related)
        return found if node.quantifier == "any" else not_(found)

    def compare(
        self, resolved: _Resolved, op: ast.Operator, value: ast.Value, at: Path
    ) -> ColumnElement[bool]:
        """``field op value``, the value found at ``at`` in the query."""
        if resolved.scalar is None:
            return self.json_compare(resolved, op, value, at)
        scalar, name = resolved.scalar, resolved.name
        column = scalar.column
        checked = _check_value(scalar, value, name)
        if checked is None:
            if op == "=":
                return column.is_(None)
            if op == "!=":
                return column.is_not(None)
            raise DQLTypeError(
                f"{resolved.name}: only = and != compare with null", field=resolved.name
            )
        if op == "!=":
            return not_(self.compare(resolved, "=", value, at))
        if isinstance(checked, bool):
            if op != "=":
                raise DQLTypeError(f"{name}: true and false compare only with = and !=", field=name)
            return _guarded(column, column == checked)  # (part of the shape, see dql.shapes)
        left: Any = column
        if scalar.kind == "string" and op != "=" and self.dialect == "postgresql":
            left = column.collate("C")
        bound = self.bind(
            left, _OPERATORS[op], checked, at, name, lambda v: _check_value(scalar, v, name)
        )
        return _guarded(column, _apply(left, op, bound))

    def contains(
        self, resolved: _Resolved, values: tuple[ast.Value, ...], at: Path
    ) -> ColumnElement[bool]:
        """``field in (...)``: one ``IN`` on a column (index-friendly), else ORed equalities;
        ``values`` are found at ``at`` in the query."""
        if not values:
            return false()
        scalar, name = resolved.scalar, resolved.name
        ored = lambda: or_(  # noqa: E731
            *(self.compare(resolved, "=", v, (*at, i)) for i, v in enumerate(values))
        )
        if scalar is None:
            if all(isinstance(v, str) for v in values):  # the common case: one type test, one IN
                assert resolved.json_column is not None
                text = self.json_text(resolved.json_column, resolved.json_path)
                bound = self.bind(text, operators.in_op, list(values), at, name, list, True)
                return and_(text.in_(bound), self.json_is(resolved, "string"))
            return ored()
        if None in values:
            return ored()
        checked = [_check_value(scalar, v, name) for v in values]
        bound = self.bind(
            scalar.column,
            operators.in_op,
            checked,
            at,
            name,
            lambda vs: [_check_value(scalar, v, name) for v in vs],
            True,
        )
        return _guarded(scalar.column, scalar.column.in_(bound))

    def like(self, resolved: _Resolved, pattern: str, at: Path) -> ColumnElement[bool]:
        """``field like pattern``, the pattern found at ``at`` in the query."""
        if resolved.scalar is not None:
            if resolved.scalar.kind != "string":
                raise DQLTypeError(
                    f"{resolved.name} is not text; like needs text", field=resolved.name
                )
            text: Any = resolved.scalar.column
            guard: ColumnElement[bool] = text.is_not(None)
        else:
            assert resolved.json_column is not None
            text = self.json_text(resolved.json_column, resolved.json_path)
            guard = self.json_is(resolved, "string")
        name = resolved.name
        if "*" not in pattern:
            return and_(guard, text == self.bind(text, operators.eq, pattern, at, name))
        prefix = _like_prefix(pattern)
        if prefix == "%":
            narrowed: ColumnElement[bool] = true()
        else:
            bound = self.bind(text, operators.like_op, prefix, at, name, _like_prefix)
            narrowed = text.like(bound, escape="\\")
        regex = self.bind(
            text, operators.regexp_match_op, _glob_regex(pattern), at, name, _glob_regex
        )
        return and_(guard, narrowed, func.coalesce(text.regexp_match(regex), false()))

    def match(self, node: ast.Match, fields: FieldMap, depth: int, at: Path) -> ColumnElement[bool]:
        """Some element of the JSON array at the field satisfies the element filter."""
        resolved = self.resolve(node.field.path, fields)
        column, path = resolved.json_column, resolved.json_path
        if column is None:
            raise DQLFieldError(f"{resolved.name} is not a JSON array", field=resolved.name)
        if self.dialect == "sqlite":
            each = func.json_each(column, self.path_literal(path)).table_valued("value", "type")
            is_array = self.json_type(column, path) == "array"
            # only objects have fields; json_extract would fail on a bare string element
            value: Any = case((each.c.type == "object", each.c.value), else_=None)
            elements: Any = each
        else:
            node_value = self.json_node(column, path)
            is_array = func.jsonb_typeof(node_value) == "array"
            elements = func.jsonb_array_elements(
                case((is_array, node_value), else_=cast(literal("[]"), JSONB))
            ).table_valued("value")
            value = elements.c.value
        element = FieldMap(fields={}, json={"": Json(value)})
        found = select(true()).select_from(elements)
        if node.where is not None:
            # (the prefixed filter keeps the shape of node.where, so values are where they were)
            where = _prefix_paths(node.where, "")
            found = found.where(self.expr(where, element, depth, (*at, "where")))
        found = found.exists()
        return and_(func.coalesce(is_array, false()), found)

    def relation(self, name: str, fields: FieldMap) -> Relation:
        relation = fields.relations.get(name)
        if relation is None:
            raise DQLFieldError(f"unknown relation {name!r}", field=name)
        return relation

    def related(
        self, relation: Relation, where: ast.Expr | None, depth: int, where_at: Path
    ) -> Any:
        """SELECT remote FROM the related resource WHERE its filter (and the relation's own)."""
        self.nesting += 1  # (an error ends the whole compilation, so no need to restore it)
        conditions = [] if where is None else [self.expr(where, relation.target(), depth, where_at)]
        self.nesting -= 1
        if relation.where is not None:
            conditions.append(relation.where)
        return select(relation.remote).where(*conditions)

    def count(self, node: ast.Count, fields: FieldMap, depth: int, at: Path) -> ColumnElement[bool]:
        """``relation.count(where) op n`` as membership in a grouped subquery (no per-row count)."""
        relation = self.relation(node.relation, fields)
        n = node.value

        def member(op: str, k: int, negated: bool = False) -> ColumnElement[bool]:
            """Rows whose related rows number ``op`` k (``>=`` or ``=``), or the others."""
            tally = func.count()
            grouped = (
                self.related(relation, node.where, depth, (*at, "where"))
                .group_by(relation.remote)
                .having(tally >= k if op == ">=" else tally == k)
            )
            if negated:
                return not_(relation.local.in_(grouped))
            if self.dialect == "postgresql":
                # PostgreSQL cannot estimate how many groups pass HAVING (34k for 7.7k at 1M
                # items) and joins the whole table to them; handed the ids as an array, it
                # fetches those rows by key (307 -> 50 ms)
                return relation.local == any_(func.array(grouped.scalar_subquery()))
            return relation.local.in_(grouped)

        if node.op == ">=":
            return true() if n <= 0 else member(">=", n)
        if node.op == ">":
            return true() if n < 0 else member(">=", n + 1)
        if node.op == "<=":
            return false() if n < 0 else member(">=", n + 1, negated=True)
        if node.op == "<":
            return false() if n <= 0 else member(">=", n, negated=True)
        if node.op == "=":
            if n < 0:
                return false()
            return member(">=", 1, negated=True) if n == 0 else member("=", n)
        if n < 0:  # !=
            return true()
        return member(">=", 1) if n == 0 else member("=", n, negated=True)

    # ordering --------------------------------------------------------------------------------------

    def sort_key(self, order: ast.Order, fields: FieldMap) -> SortKey:
        resolved = self.resolve(order.field.path, fields)
        if resolved.scalar is not None:
            expression: Any = resolved.scalar.column
            is_json = False
        else:
            assert resolved.json_column is not None
            is_json = True
            if self.dialect == "sqlite":
                expression = self.json_text(resolved.json_column, resolved.json_path)
            else:
                expression = self.json_node(resolved.json_column, resolved.json_path)
        nulls_last = case((expression.is_(None), 1), else_=0)
        return SortKey(resolved.name, expression, nulls_last, order.descending, is_json)


def _all_of(elements: list[ColumnElement[bool]]) -> ColumnElement[bool]:
    """``and_(*elements)``, the same SQL at a fraction of the cost: each element's terms (itself
    grouped, or the terms of an ``AND``) are found once and kept, where ``and_`` coerces and
    groups every element of every query (~2 us each: a fifth of a new 10-clause shape's cost)."""
    terms: list[ColumnElement[bool]] = []
    for element in elements:
        kept = _AND_TERMS.get(id(element))
        if kept is None or kept[0] is not element:
            if element is _TRUE or element is _FALSE:  # (and_ drops or keeps only these)
                return and_(*elements)
            grouped = element.self_group(against=operators.and_)
            if getattr(grouped, "operator", None) is operators.and_:
                found = tuple(grouped._flattened_operator_clauses)  # type: ignore[attr-defined]
            else:
                found = (grouped,)
            _make_room(_AND_TERMS, _JSON_CACHE_LIMIT)
            kept = _AND_TERMS[id(element)] = (element, found)
        terms.extend(kept[1])
    if len(terms) < 2:
        return and_(*elements)
    # (the constructor and_ ends with, once its elements are coerced, grouped and flattened)
    return BooleanClauseList._construct_raw(operators.and_, terms)


# the terms an element contributes to an AND (see _all_of), by id with the element kept alive
_AND_TERMS: dict[int, tuple[ColumnElement[bool], tuple[ColumnElement[bool], ...]]] = {}
_TRUE, _FALSE = true(), false()


def _guarded(column: Any, predicate: ColumnElement[bool]) -> ColumnElement[bool]:
    """``predicate`` made two-valued: false, not NULL, where a nullable column is NULL."""
    if getattr(column, "nullable", True) is False:
        return predicate
    guard = _NOT_NULL.get(column)
    if guard is None:
        _make_room(_NOT_NULL, _JSON_CACHE_LIMIT)
        guard = _NOT_NULL[column] = column.is_not(None)
    return and_(guard, predicate)


# `column IS NOT NULL` of the columns fields map to, made once as JSON expressions are (below)
_NOT_NULL: dict[Any, ColumnElement[bool]] = {}


_JSON_KINDS = {
    "sqlite": {
        "string": ("text",),
        "number": ("integer", "real"),
        "boolean": ("true", "false"),
        "true": ("true",),
        "false": ("false",),
        "null": ("null",),
        "missing": ("", "null"),
    },
    "postgresql": {
        "string": ("string",),
        "number": ("number",),
        "boolean": ("boolean",),
        "null": ("null",),
        "missing": ("", "null"),
    },
}
# Expressions for a JSON path are immutable and the same in every query that names the path, so
# they are built once (a few hundred paths, not per query or per value). Keyed by the column's id
# (every expression holds its column, so no other takes the id while the entry lives): a key of
# strings and numbers is one the garbage collector stops tracking.
_JSON_EXPRESSIONS: dict[tuple[str, int, tuple[str, ...], str], Any] = {}
_JSON_CACHE_LIMIT = 4096


def _inline(value: str) -> Any:
    """A constant written into the SQL, as it is in an index built on the expression around it
    (a bound parameter there would keep the database from matching the index)."""
    return literal(value, String(), literal_execute=True)


def _path_text(path: tuple[str, ...], dialect: str) -> tuple[str, bool]:
    """The text of :meth:`_Compiler.path_literal` and whether it is written inline."""
    plain = all(_PLAIN_SEGMENT.fullmatch(s) for s in path)
    if dialect == "sqlite":
        text = "$" + "".join(
            f".{s}" if _PLAIN_SEGMENT.fullmatch(s) else '."' + s.replace('"', '\\"') + '"'
            for s in path
        )
    else:
        quoted = path if plain else ['"' + s.replace('"', '\\"') + '"' for s in path]
        text = "{" + ",".join(quoted) + "}"
    return text, plain


def _json_expression(what: str, column: Any, path: tuple[str, ...], compiler: _Compiler) -> Any:
    stored = compiler.stored.get((column, path))
    if stored is not None:  # built on the stored columns: not for the cache of plain paths
        return stored[what] if what in stored else compiler.build_json(what, column, path)
    dialect = compiler.dialect
    key = (what, id(column), path, dialect)
    found = _JSON_EXPRESSIONS.get(key)
    if found is None:
        kind = (what, column, dialect)
        prototype = _PROTOTYPES.get(kind, _UNSEEN)
        if prototype is _UNSEEN:  # the first path of its kind: most queries name only one
            found = compiler.build_json(what, column, path)
            _make_room(_PROTOTYPES, _PROTOTYPE_LIMIT)
            _PROTOTYPES[kind] = None
        elif prototype is None or not prototype.usable:
            found = compiler.build_json(what, column, path)
            if prototype is None:  # the second: what the next are copied from
                _keep_prototype(what, column, path, dialect, found)
        else:
            text, plain = _path_text(path, dialect)
            found = prototype.made(
                text, plain, lambda part: _json_expression(part, column, path, compiler)
            )
        _make_room(_JSON_EXPRESSIONS, _JSON_CACHE_LIMIT)
        _JSON_EXPRESSIONS[key] = found
    return found


# the expression of each kind built for a JSON column's second path, which those for the next
# paths are copied from (dql.prototypes): a few dozen for the tables' columns (more only for the
# elements of $match arrays, a column each compilation); None after the first path (a query of
# one path, e.g. on a cold start, spends nothing on a prototype)
_PROTOTYPES: dict[tuple[str, Any, str], Prototype | None] = {}
_UNSEEN = Prototype.__new__(Prototype)  # (a marker: no path of the kind built yet)
_PROTOTYPE_LIMIT = 256


def _json_parts(what: str) -> tuple[str, ...]:
    """The path's other expressions ``what`` may hold (see build_json), at any depth: a
    negation (``has``) holds the parts of what it negates, not that itself."""
    if what == "has":
        return ("is-missing", "type-name", "type", "node")
    if what.startswith("is-"):
        return ("type-name", "type", "node")
    if what == "type-name":
        return ("type", "node")
    if what == "number":
        return ("node", "text")
    return ("node",) if what == "type" else ()


def _keep_prototype(
    what: str, column: Any, path: tuple[str, ...], dialect: str, built: Any
) -> None:
    """``built`` (the expression ``what`` of ``path``) made the prototype of its kind (unusable
    when it does not depend on the path: then every path's is built)."""
    parts = {}
    for part in _json_parts(what):
        found = _JSON_EXPRESSIONS.get((part, id(column), path, dialect))
        if found is not None:
            parts[id(found)] = part
    _PROTOTYPES[what, column, dialect] = Prototype(
        built, column, _path_text(path, dialect)[0], parts
    )


_OPERATORS = {
    "=": operators.eq,
    "!=": operators.ne,
    "<": operators.lt,
    "<=": operators.le,
    ">": operators.gt,
    ">=": operators.ge,
}


def _iso(value: datetime) -> str:
    return value.isoformat()


def _finite(name: str) -> Callable[[Any], Any]:
    def finite(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            raise DQLTypeError(f"{name}: {value} is not a finite number", field=name)
        return value

    return finite


def _apply(left: Any, op: ast.Operator, value: Any) -> ColumnElement[bool]:
    if op == "=":
        return left == value
    if op == "!=":
        return left != value
    if op == "<":
        return left < value
    if op == "<=":
        return left <= value
    if op == ">":
        return left > value
    return left >= value


def _with_field(node: ast.Expr, new: ast.Field) -> ast.Expr:
    if isinstance(node, ast.Compare):
        return ast.Compare(new, node.op, node.value)
    if isinstance(node, ast.In):
        return ast.In(new, node.values, node.negated)
    if isinstance(node, ast.Like):
        return ast.Like(new, node.pattern)
    if isinstance(node, ast.Exists):
        return ast.Exists(new)
    if isinstance(node, ast.Match):
        return ast.Match(new, node.where)
    raise DQLError(f"cannot apply {type(node).__name__} to a related field")


def _prefix_paths(node: ast.Expr, prefix: str) -> ast.Expr:
    """Element-relative paths of a ``$match`` become paths under the element's JSON column."""
    if isinstance(node, ast.And):
        return ast.And(tuple(_prefix_paths(i, prefix) for i in node.items))
    if isinstance(node, ast.Or):
        return ast.Or(tuple(_prefix_paths(i, prefix) for i in node.items))
    if isinstance(node, ast.Not):
        return ast.Not(_prefix_paths(node.item, prefix))
    if isinstance(node, ast.Compare | ast.In | ast.Like | ast.Exists | ast.Match):
        return _with_field(node, ast.Field((prefix, *node.field.path)))
    raise DQLError("a $match filter may not hold relation quantifiers")
