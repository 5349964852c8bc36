"""A JSON path the table also holds in columns compiles to those columns: every expression a
comparison on the path needs, none of the JSON; other paths, and field maps without the columns,
are unaffected."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import JSON, Column, Float, MetaData, String, Table, column
from sqlalchemy.dialects import postgresql, sqlite

from dql import parse
from dql.compiler import FieldMap, Json, Scalar, compile_query, index_expressions

_TABLE = Table("things", MetaData(), Column("id", String), Column("doc", JSON))
PATH = ("user", "camera")
JSON_COLUMN = re.compile(r"things\.doc(?!_)")  # the JSON column, not the stored ones


def _column(name: str, type_: Any) -> Any:
    found = column(name, type_)
    found.table = _TABLE
    return found


def _fields(stored: bool) -> FieldMap:
    columns = {"text": _column("doc_text", String()), "type-name": _column("doc_type", String())}
    columns["number"] = _column("doc_number", Float())
    return FieldMap(
        fields={"id": Scalar(_TABLE.c.id, "string")},
        json={"doc": Json(_TABLE.c.doc, {PATH: columns} if stored else {})},
    )


def _sql(dql: str, fields: FieldMap, dialect: str) -> str:
    """The SQL, its parameters named alike whichever compilation of the shape named them."""
    where = compile_query(parse(dql), fields, dialect).where
    engine_dialect = postgresql.dialect() if dialect == "postgresql" else sqlite.dialect()
    return re.sub(r"dql\d+_", "dql_", str(where.compile(dialect=engine_dialect)))


@pytest.mark.parametrize(
    "dql",
    [
        'doc.user.camera = "front"',
        'doc.user.camera in ("front", "back")',
        'doc.user.camera > "l"',
        'doc.user.camera like "fr*"',
        "doc.user.camera = true",
        "doc.user.camera > 0.5",
        "not doc.user.camera <= 2",
    ],
)
@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
def test_a_stored_path_reads_its_columns(dql: str, dialect: str) -> None:
    plain = _sql(dql, _fields(stored=False), dialect)
    stored = _sql(dql, _fields(stored=True), dialect)
    assert JSON_COLUMN.search(plain) and "doc_" not in plain
    assert not JSON_COLUMN.search(stored) and "things.doc_type" in stored
    # compiled again without the columns: nothing of the stored form was kept for the path
    assert _sql(dql, _fields(stored=False), dialect) == plain


def test_other_paths_still_read_the_json() -> None:
    sql = _sql('doc.user.site = "a" and doc.user.camera = "b"', _fields(True), "postgresql")
    assert "things.doc #>> " in sql and "things.doc_text" in sql


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
def test_index_expressions_name_what_columns_are_keyed_by(dialect: str) -> None:
    made = index_expressions(_fields(stored=False), ("doc", *PATH), dialect)
    names = {name for index in made for name in index.names}
    assert names == (
        {"type-name", "text"} if dialect == "sqlite" else {"type-name", "text", "number"}
    )
    assert all(len(i.names) == len(i.expressions) for i in made)
