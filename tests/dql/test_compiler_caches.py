"""What the compiler keeps between queries never shows in what a query compiles to: a JSON path's
expressions copied from another path's (dql.prototypes), conditions and sort keys reused by new
shapes, and entries evicted from full caches all give the SQL and the values a compilation with
every cache empty gives."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import JSON, Column, Integer, MetaData, String, Table, select
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.postgresql import asyncpg

from dql import compiler, from_json, parse
from dql.compiler import Compiled, FieldMap, Json, Relation, Scalar, compile_query

_META = MetaData()
_THINGS = Table(
    "things", _META, Column("id", String), Column("width", Integer), Column("doc", JSON)
)
_PARTS = Table("parts", _META, Column("thing_id", String), Column("label", String))
PARTS = FieldMap(fields={"label": Scalar(_PARTS.c.label, "string")})
THINGS = FieldMap(
    fields={"id": Scalar(_THINGS.c.id, "string"), "width": Scalar(_THINGS.c.width, "integer")},
    json={"doc": Json(_THINGS.c.doc)},
    relations={"parts": Relation(PARTS, _THINGS.c.id, _PARTS.c.thing_id)},
)
DIALECTS = {"sqlite": sqlite.dialect(), "postgresql": asyncpg.dialect()}
_CACHES = (
    compiler._TEMPLATES,
    compiler._CLAUSES,
    compiler._SORT_KEYS,
    compiler._JSON_EXPRESSIONS,
    compiler._PROTOTYPES,
)

# every kind of condition on a JSON path, on the path {p}; plain and quoted segments
CONDITIONS = [
    'doc.{p} = "x"',
    "doc.{p} != 2",
    "doc.{p} < 2.5",
    'doc.{p} >= "b"',
    "doc.{p} = true",
    "doc.{p} != false",
    "doc.{p} = null",
    "doc.{p} != null",
    "has doc.{p}",
    "not has doc.{p}",
    'doc.{p} in ("a", "b")',
    "doc.{p} in (1, null)",
    'doc.{p} not in ("a")',
    'doc.{p} like "a*"',
    'doc.{p} like "*a/**"',
    'doc.{p} like "abc"',
    "width > 3 order by doc.{p} desc, width",
    'parts.any(label = "cat") and doc.{p} > 1 order by doc.{p}',
]
PATHS = ["a", "b.c", "`odd key`.x", "d"]


@pytest.fixture(autouse=True)
def _empty_caches() -> Iterator[None]:
    _clear()
    yield
    _clear()


def _clear() -> None:
    compiler.clear_caches()


def _rendered(compiled: Compiled, dialect: str) -> tuple[str, str, list[Any]]:
    """The statement as compiled (parameter names but the compilation's serial), as the driver
    gets it, and its values in order."""
    statement = select(_THINGS.c.id).where(compiled.where)
    for key in compiled.order:
        statement = statement.order_by(key.nulls_last, key.expression)
    made = statement.compile(dialect=DIALECTS[dialect])
    expanded = made._process_parameters_for_postcompile(made.construct_params(compiled.params))
    names = expanded.positiontup or sorted(expanded.parameters)
    values = [expanded.parameters[name] for name in names]
    return re.sub(r"dql\d+_", "dql_", str(made)), expanded.statement, values


def _fresh(text: str, dialect: str) -> tuple[str, str, list[Any]]:
    """``text`` compiled with nothing kept from before (nor kept after)."""
    saved = [dict(cache) for cache in _CACHES]
    _clear()
    try:
        return _rendered(compile_query(parse(text), THINGS, dialect), dialect)
    finally:
        for cache, entries in zip(_CACHES, saved, strict=True):
            cache.clear()
            cache.update(entries)


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("condition", CONDITIONS)
def test_a_new_path_compiles_as_if_it_were_the_first(dialect: str, condition: str) -> None:
    for path in PATHS:  # the first builds the prototypes, the others are copied from them
        text = condition.format(p=path)
        compiled = _rendered(compile_query(parse(text), THINGS, dialect), dialect)
        assert compiled == _fresh(text, dialect), text
        last = path.split(".")[-1].strip("`")
        assert last in compiled[1] or any(last in str(v) for v in compiled[2])  # (bound if odd)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_two_new_paths_in_one_query_keep_their_own_literals_and_values(dialect: str) -> None:
    compile_query(parse("has doc.a and doc.a > 1 and doc.a in ('x')"), THINGS, dialect)
    text = 'has doc.p and has doc.q and doc.p > 2 and doc.q > 3 and doc.p in ("u", "v")'
    compiled = compile_query(parse(text), THINGS, dialect)
    assert _rendered(compiled, dialect) == _fresh(text, dialect)
    assert sorted(v for v in compiled.params.values() if not isinstance(v, list)) == [2, 3]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_match_elements_are_not_copied_with_their_paths(dialect: str) -> None:
    # the column of a $match element is an expression over the array's table-valued function,
    # which stays one FROM however many paths of the element a filter names
    query = {"doc.refs": {"$match": {"type": "task", "meta.status": {"$in": ["a", "b"]}}}}
    compiled = compile_query(from_json(query, defaults=False), THINGS, dialect)
    statement = select(_THINGS.c.id).where(compiled.where).compile(dialect=DIALECTS[dialect])
    assert (
        str(statement).count("json_each(" if dialect == "sqlite" else "jsonb_array_elements(") == 1
    )


@pytest.mark.parametrize("dialect", DIALECTS)
def test_queries_sharing_a_condition_keep_their_own_values(dialect: str) -> None:
    first = compile_query(parse('width > 3 and doc.a = "x"'), THINGS, dialect)
    second = compile_query(parse('doc.a = "y" or has doc.b and width > 4'), THINGS, dialect)
    assert sorted(map(str, first.params.values())) == ["3", "x"]
    assert sorted(map(str, second.params.values())) == ["4", "y"]
    # the condition compiled for the first is the second's: its values are bound by name
    assert first.params.keys() & second.params.keys()
    twice = compile_query(parse('doc.a = "p" and doc.a = "q"'), THINGS, dialect)
    assert sorted(twice.params.values()) == ["p", "q"]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_full_caches_drop_their_oldest_entries_and_compile_the_same(
    dialect: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("_TEMPLATE_LIMIT", "_CLAUSE_LIMIT", "_SORT_KEY_LIMIT", "_JSON_CACHE_LIMIT"):
        monkeypatch.setattr(compiler, name, 5)
    monkeypatch.setattr(compiler, "_PROTOTYPE_LIMIT", 3)
    texts = [
        condition.format(p=path) + f" and width != {n}"
        for n, path in enumerate(PATHS * 2)
        for condition in CONDITIONS[:8]
    ]
    for text in texts:
        compiled = compile_query(parse(text), THINGS, dialect)
        assert _rendered(compiled, dialect) == _fresh(text, dialect), text
        assert all(len(cache) <= 5 for cache in _CACHES)
