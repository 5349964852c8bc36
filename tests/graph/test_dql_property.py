"""Property test: random DQL over random items gives, on SQLite and on PostgreSQL, exactly the
items a plain Python evaluation of the same query picks.

The items (random metadata of every JSON type, random widths, names and annotations) are made once
per database; hypothesis writes the queries, prints them as DQL text and runs them through the
domain layer, so the parser, the compiler and both dialects are all under test.
"""

from __future__ import annotations

import json
import math
import random
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from dql import ast, parse
from graph.db.tables import Item
from graph.domain import annotations, datasets, indexes, items, queries
from tests.graph import test_indexes

KEYS = ("a", "b", "c")
LABELS = ("cat", "dog", "car")
MISSING = object()
SCALARS: list[Any] = [0, 1, 2, -1, 2.5, 10, "x", "y", "x/y", "", "X", True, False, None]


def _random_value(rng: random.Random) -> Any:
    roll = rng.random()
    if roll < 0.8:
        return rng.choice(SCALARS)
    if roll < 0.9:
        return [rng.choice(SCALARS) for _ in range(rng.randint(0, 2))]
    return {"a": rng.choice(SCALARS)}


def _random_items(n: int) -> list[dict[str, Any]]:
    rng = random.Random(20261122)
    rows = []
    for i in range(n):
        metadata = {k: _random_value(rng) for k in KEYS if rng.random() < 0.7}
        rows.append(
            {
                "path": f"/{rng.choice(['p', 'q', 'p/r'])}/{i:03}{rng.choice(['.jpg', '.png', ''])}",
                "width": rng.choice([None, 100, 640, 1024]),
                "metadata": metadata,
                "labels": [rng.choice(LABELS) for _ in range(rng.choice([0, 0, 1, 2, 3]))],
            }
        )
    return rows


ROWS = _random_items(60)


@pytest.fixture(params=[False, True], ids=["json", "indexed"])
async def population(
    request, platform, owner, project
) -> AsyncIterator[tuple[str, dict[str, dict[str, Any]]]]:
    """The items; ``indexed``: with indexes declared on two of the keys, which queries then read
    through (on PostgreSQL, generated columns), the third left to the JSON expressions."""
    actor = owner[0]
    dataset = await datasets.create_dataset(platform, actor, project.id, "random")
    specs = [items.ItemSpec(path=r["path"], width=r["width"], user=r["metadata"]) for r in ROWS]
    async with platform.db.write() as session:
        results, _ = await items.insert_items(session, actor, dataset, specs)
    for row, result in zip(ROWS, results, strict=True):
        if row["labels"]:
            await annotations.create_annotations(
                platform,
                actor,
                result.item_id,
                [annotations.AnnotationSpec(type="class", label=label) for label in row["labels"]],
            )
    if not request.param:
        yield dataset.id, {r["path"]: r for r in ROWS}
        return
    await test_indexes.drop_sql_indexes(platform)  # PostgreSQL's left by other tests
    for key in KEYS[:2]:
        await indexes.create_index(platform, actor, "items", f"metadata.user.{key}")
    async with platform.db.read() as session:
        stored = {path for _, path, _ in await indexes.stored(session)}
    assert stored == (set() if platform.db.is_sqlite else {"metadata.user.a", "metadata.user.b"})
    yield dataset.id, {r["path"]: r for r in ROWS}
    await test_indexes.drop_sql_indexes(platform)


# --- the reference semantics ------------------------------------------------------------------------


def _lookup(row: dict[str, Any], field: ast.Field) -> Any:
    path = field.path
    if path == ("width",):
        return row["width"]
    if path == ("filename",):
        return row["path"]
    if path == ("label",):
        return row["label"]
    value: Any = row["metadata"]
    for segment in path[2:]:  # metadata.user.<...>
        if not isinstance(value, dict) or segment not in value:
            return MISSING
        value = value[segment]
    return value


def _kind(value: Any) -> str:
    if value is MISSING or value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "other"


def _equals(actual: Any, value: Any) -> bool:
    if value is None:
        return _kind(actual) == "null"
    return _kind(actual) == _kind(value) and actual == value


def _compare(actual: Any, op: str, value: Any) -> bool:
    if op == "=":
        return _equals(actual, value)
    if op == "!=":
        return not _equals(actual, value)
    if _kind(actual) != _kind(value) or _kind(value) not in ("number", "string"):
        return False
    return {"<": actual < value, "<=": actual <= value, ">": actual > value, ">=": actual >= value}[
        op
    ]


def _glob(pattern: str) -> re.Pattern[str]:
    parts = re.split(r"(\*\*|\*)", pattern)
    body = "".join(".*" if p == "**" else "[^/]*" if p == "*" else re.escape(p) for p in parts)
    return re.compile(body, re.DOTALL)


def evaluate(node: ast.Expr | None, row: dict[str, Any]) -> bool:
    if node is None:
        return True
    if isinstance(node, ast.And):
        return all(evaluate(i, row) for i in node.items)
    if isinstance(node, ast.Or):
        return any(evaluate(i, row) for i in node.items)
    if isinstance(node, ast.Not):
        return not evaluate(node.item, row)
    if isinstance(node, ast.Quantified):
        hits = [evaluate(node.where, {**row, "label": label}) for label in row["labels"]]
        return any(hits) if node.quantifier == "any" else not any(hits)
    if isinstance(node, ast.Count):
        n = sum(evaluate(node.where, {**row, "label": label}) for label in row["labels"])
        return _compare(n, node.op, node.value)
    actual = _lookup(row, node.field)
    if isinstance(node, ast.Compare):
        return _compare(actual, node.op, node.value)
    if isinstance(node, ast.In):
        found = any(_equals(actual, v) for v in node.values)
        return not found if node.negated else found
    if isinstance(node, ast.Like):
        return isinstance(actual, str) and _glob(node.pattern).fullmatch(actual) is not None
    if isinstance(node, ast.Exists):
        return _kind(actual) != "null"
    raise AssertionError(node)


# --- queries, and printing them as DQL text ---------------------------------------------------------

metadata_field = st.sampled_from(KEYS).map(lambda k: ast.Field(("metadata", "user", k)))
scalar = st.sampled_from([v for v in SCALARS if not (isinstance(v, float) and math.isnan(v))])
op = st.sampled_from(ast.OPERATORS)


@st.composite
def _comparison(
    draw: Any, field: st.SearchStrategy[ast.Field], values: st.SearchStrategy[Any]
) -> ast.Compare:
    """Only comparisons DQL accepts: null and true/false compare with = and != alone."""
    value = draw(values)
    ops = ("=", "!=") if value is None or isinstance(value, bool) else ast.OPERATORS
    return ast.Compare(draw(field), draw(st.sampled_from(ops)), value)


def _leaf(field: st.SearchStrategy[ast.Field]) -> st.SearchStrategy[ast.Expr]:
    return st.one_of(
        _comparison(field, scalar),
        st.builds(ast.In, field, st.lists(scalar, max_size=3).map(tuple), st.booleans()),
        st.builds(ast.Exists, field),
        st.builds(ast.Like, field, st.sampled_from(["x*", "*", "**", "x/*", "*y", ""])),
    )


item_leaf = st.one_of(
    _leaf(metadata_field),
    _comparison(st.just(ast.Field(("width",))), st.sampled_from([None, 100, 640, 700])),
    st.builds(
        ast.Like,
        st.just(ast.Field(("filename",))),
        st.sampled_from(["/p/*", "/p/**", "**.jpg", "/q/0*"]),
    ),
)
label_filter = st.one_of(
    st.none(),
    st.builds(
        ast.Compare,
        st.just(ast.Field(("label",))),
        st.sampled_from(["=", "!="]),
        st.sampled_from(LABELS),
    ),
)
relation = st.one_of(
    st.builds(
        ast.Quantified, st.just("annotations"), st.sampled_from(["any", "none"]), label_filter
    ),
    st.builds(ast.Count, st.just("annotations"), label_filter, op, st.integers(-1, 3)),
)


def _tree(children: st.SearchStrategy[ast.Expr]) -> st.SearchStrategy[ast.Expr]:
    return st.one_of(
        st.lists(children, min_size=2, max_size=3).map(lambda xs: ast.And(tuple(xs))),
        st.lists(children, min_size=2, max_size=3).map(lambda xs: ast.Or(tuple(xs))),
        children.map(ast.Not),
    )


dql_queries = st.recursive(st.one_of(item_leaf, relation), _tree, max_leaves=6)


def _value(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, bool) else ("true" if value else "false")


def to_text(node: ast.Expr | None) -> str:
    if node is None:
        return ""
    if isinstance(node, ast.And | ast.Or):
        word = " and " if isinstance(node, ast.And) else " or "
        return "(" + word.join(to_text(i) for i in node.items) + ")"
    if isinstance(node, ast.Not):
        return f"not ({to_text(node.item)})"
    if isinstance(node, ast.Quantified):
        return f"{node.relation}.{node.quantifier}({to_text(node.where)})"
    if isinstance(node, ast.Count):
        return f"{node.relation}.count({to_text(node.where)}) {node.op} {node.value}"
    field = str(node.field)
    if isinstance(node, ast.Compare):
        return f"{field} {node.op} {_value(node.value)}"
    if isinstance(node, ast.In):
        values = ", ".join(_value(v) for v in node.values)
        return f"{field} {'not in' if node.negated else 'in'} ({values})"
    if isinstance(node, ast.Like):
        return f"{field} like {json.dumps(node.pattern)}"
    return f"has {field}"


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(query=dql_queries)
async def test_databases_agree_with_the_reference(platform, owner, population, query) -> None:
    dataset_id, rows = population
    text = to_text(query)
    expected = {path for path, row in rows.items() if evaluate(query, row)}
    page = await items.list_items(
        platform, owner[0], dataset_id, folders=False, dql=text, first=1000
    )
    assert {i.filename for i in page.rows} == expected, text
    count = await items.count_items(platform, owner[0], dataset_id, folders=False, dql=text)
    assert count == len(expected), text
    # quantifiers as the correlated EXISTS a SQLite list may be planned with (planning.py)
    async with platform.db.read() as session:
        compiled = queries.compile_for(
            parse(text),
            "items",
            platform.db.dialect,
            dataset_id,
            correlated=True,
            stored=await indexes.stored(session),
        )
        found = await session.scalars(
            select(Item.filename).where(*items.listing(dataset_id, folders=False), compiled.where),
            compiled.params,
        )
        assert set(found) == expected, text
