"""``explain`` on SQLite and PostgreSQL: the plan of the statement a list runs, and a verdict
that names the declared index it uses or the index to add."""

from __future__ import annotations

import re

import pytest

from graph.domain import explain, indexes, projects
from graph.domain.errors import InvalidInput, NotFound
from tests.conftest import make_user
from tests.graph import test_indexes
from tests.graphql import gql, gql_errors

# the indexed dataset, and the platform that drops SQL indexes tests leave behind
platform = test_indexes.platform
dataset_id = test_indexes.dataset_id

# reading every row of the dataset: in any order, or in list order until a page is full (which
# may take all of them)
SCANS = re.compile(
    r"scans the dataset's [\d,]+ rows|reads the dataset's [\d,]+ rows in list order until a "
    "page is full"
)
ORDER = "ORDER BY items.type ASC, items.filename ASC, items.id ASC"


async def _declare(platform, actor, resource: str, path: str) -> set[str]:
    return set((await indexes.create_index(platform, actor, resource, path)).sql_indexes.values())


@pytest.mark.parametrize(
    ("dql", "path"),
    [
        ('metadata.user.camera = "front"', "metadata.user.camera"),
        ("metadata.user.score > 0.99", "metadata.user.score"),
    ],
)
async def test_scan_with_advice_then_the_index(
    platform,
    owner,
    project,
    dataset_id,
    dql,
    path,
) -> None:
    actor = owner[0]
    before = await explain.explain(platform, actor, "items", dataset_id, dql)
    assert not before.uses_index
    assert SCANS.match(before.verdict)
    assert before.verdict.endswith(f"add an index on {path} (`loopline index add items {path}`)")
    assert not any("ix_meta_" in line for line in before.plan)
    names = await _declare(platform, actor, "items", path)
    after = await explain.explain(platform, actor, "items", dataset_id, dql)
    assert after.uses_index
    used = [n for n in names if n in after.verdict]
    assert len(used) == 1 and after.verdict == f"uses index {used[0]} on {path}"
    assert any(used[0] in line for line in after.plan)
    if not platform.db.is_sqlite:
        # PostgreSQL: the statement reads the generated columns holding the path's expressions
        before_where, after_where = before.sql.split("WHERE")[1], after.sql.split("WHERE")[1]
        assert "items.metadata" in before_where and "items.metadata" not in after_where
        assert "items.meta_" in after_where
        return
    # SQLite: the index changes the plan, not the statement; except that the few matches of a
    # range are then found through it and sorted rather than met walking the list (planning.py)
    expected = before.sql
    if ">" in dql:
        expected = expected.replace(
            ORDER, "ORDER BY (+ items.type) ASC, (+ items.filename) ASC, (+ items.id) ASC"
        )
    assert after.sql == expected


async def test_sql_shows_placeholders_not_values(platform, owner, project, dataset_id) -> None:
    found = await explain.explain(
        platform, owner[0], "items", dataset_id, 'metadata.user.camera = "fr\\"ont" and width > 7'
    )
    assert found.sql.startswith("SELECT ") and "fr" not in found.sql and " 7" not in found.sql
    assert ("?" if platform.db.is_sqlite else "$1") in found.sql
    assert ORDER in found.sql


async def test_annotations_and_relations(platform, owner, project, dataset_id) -> None:
    actor = owner[0]
    related = await explain.explain(
        platform, actor, "items", dataset_id, 'annotations.any(attributes.color = "red")'
    )
    assert not related.uses_index
    assert related.verdict.endswith(
        "add an index on annotations attributes.color "
        "(`loopline index add annotations attributes.color`)"
    )
    names = await _declare(platform, actor, "annotations", "attributes.color")
    found = await explain.explain(
        platform, actor, "annotations", dataset_id, 'attributes.color = "red"'
    )
    assert found.uses_index and found.verdict in {
        f"uses index {n} on attributes.color" for n in names
    }
    assert found.sql.startswith("SELECT annotations.")


async def test_column_filters_name_their_index(platform, owner, project, dataset_id) -> None:
    found = await explain.explain(platform, owner[0], "annotations", dataset_id, 'label = "car"')
    assert found.verdict.startswith("uses index") or SCANS.match(found.verdict)
    assert "add an index" not in found.verdict  # a column needs no declaration
    everything = await explain.explain(platform, owner[0], "items", dataset_id)
    assert not everything.uses_index and SCANS.fullmatch(everything.verdict)


async def test_dataloop_filters_are_explained(platform, owner, project, dataset_id) -> None:
    await _declare(platform, owner[0], "items", "metadata.user.camera")
    found = await explain.explain(
        platform,
        owner[0],
        "items",
        dataset_id,
        dataloop={"filter": {"metadata": {"user": {"camera": "front"}}}},
    )
    assert found.uses_index and found.verdict.endswith("on metadata.user.camera")


@pytest.mark.parametrize(
    ("resource", "dql", "field"),
    [
        ("datasets", "name = 'x'", "resource"),
        ("items", "metadata.user.camera = ", "dql"),
        ("items", "nosuch = 1", "dql"),
        ("items", "width > 'abc'", "dql"),
        ("annotations", "'; DROP TABLE items; --", "dql"),
    ],
)
async def test_bad_input(platform, owner, project, dataset_id, resource, dql, field) -> None:
    with pytest.raises(InvalidInput) as raised:
        await explain.explain(platform, owner[0], resource, dataset_id, dql)
    assert raised.value.details["field"] == field


async def test_roles(platform, owner, project, dataset_id) -> None:
    annotator, _ = await make_user(platform, "annotator@example.com")
    stranger, _ = await make_user(platform, "stranger@example.com")
    await projects.add_member(platform, owner[0], project.id, annotator.email, "annotator")
    found = await explain.explain(platform, annotator, "items", dataset_id, "width > 5")
    assert found.plan
    with pytest.raises(NotFound):
        await explain.explain(platform, stranger, "items", dataset_id, "width > 5")
    with pytest.raises(NotFound):
        await explain.explain(platform, owner[0], "items", "0" * 24, "width > 5")


EXPLAIN = """query($d: ID!, $q: String, $f: JSON) {
  explain(resource: "items", datasetId: $d, dql: $q, filter: $f) { sql plan verdict usesIndex }
}"""


async def test_api(platform, owner, project, dataset_id, client) -> None:
    q = 'metadata.user.camera = "front"'
    before = (await gql(client, EXPLAIN, {"d": dataset_id, "q": q}))["explain"]
    assert before["usesIndex"] is False and "loopline index add items" in before["verdict"]
    assert before["sql"].startswith("SELECT ") and before["plan"]
    await _declare(platform, owner[0], "items", "metadata.user.camera")
    after = (await gql(client, EXPLAIN, {"d": dataset_id, "q": q}))["explain"]
    assert after["usesIndex"] is True and after["verdict"].startswith("uses index ix_meta_items_")
    errors = await gql_errors(client, EXPLAIN, {"d": dataset_id, "q": "width >"})
    assert errors[0]["extensions"]["code"] == "INVALID_INPUT"
