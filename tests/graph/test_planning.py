"""The SQLite probe that picks how a first page is read (graph/domain/planning.py): few matches
are found through the filter's index and sorted, many are met walking the list in order; the
choice shows in ``explain``, and whichever way is taken, every page holds what the query means,
on both databases."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from dql import ast, parse
from graph.config import Settings
from graph.db.tables import Item
from graph.domain import annotations, datasets, explain, indexes, items, planning
from graph.domain.access import Actor, Role
from graph.domain.platform import Platform
from tests.asserts import count_statements
from tests.graph import test_indexes

# the platform that drops SQL indexes tests leave behind
platform = test_indexes.platform

N = 300
PAGE = 10  # the largest page (settings below): planning.enough(PAGE, N) is 109, the line
# between few and many matches
DOGS = range(0, N, 2)  # 150 items have a dog (many), 5 a cat (few)
CATS = (7, 61, 150, 211, 299)


async def _fill(platform: Platform, actor: Actor, project_id: str) -> tuple[str, list[str]]:
    """N items, item i scored i/N; returns the dataset and the item ids by their index."""
    dataset = await datasets.create_dataset(platform, actor, project_id, "planned")
    specs = [items.ItemSpec(path=f"/d{i % 3}/{i:04d}.jpg", user={"score": i / N}) for i in range(N)]
    async with platform.db.write() as session:
        results, _ = await items.insert_items(session, actor, dataset, specs)
    ids = [r.item_id for r in results]
    for i in DOGS:
        labels = ["dog", "cat"] if i in CATS else ["dog"]
        specs = [annotations.AnnotationSpec(type="class", label=label) for label in labels]
        await annotations.create_annotations(platform, actor, ids[i], specs)
    for i in CATS:
        if i not in DOGS:
            spec = annotations.AnnotationSpec(type="class", label="cat")
            await annotations.create_annotations(platform, actor, ids[i], [spec])
    await indexes.create_index(platform, actor, "items", "metadata.user.score")
    await test_indexes.analyze(platform)
    return dataset.id, ids


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """Pages of at most PAGE, so a few hundred items are a large list (explain plans a page of
    the largest size there is up to 100)."""
    return Settings(home=tmp_path / "home", database_url=database_url, max_page_size=PAGE)


@pytest.fixture
async def filled(platform, owner, project) -> tuple[str, list[str]]:
    return await _fill(platform, owner[0], project.id)


# (query, the item indexes it matches, how SQLite is made to read it: matches sorted, as its planner
# plans, or quantifiers correlated)
CASES = [
    ("metadata.user.score > 0.9", [i for i in range(N) if i / N > 0.9], "sorted"),
    ("metadata.user.score >= 0.2", [i for i in range(N) if i / N >= 0.2], "as planned"),
    ('annotations.any(label = "cat")', list(CATS), "as planned"),
    ('annotations.any(label = "dog")', list(DOGS), "correlated"),
    (
        'annotations.any(label = "dog") and annotations.none(label = "cat")',
        [i for i in DOGS if i not in CATS],
        "correlated",
    ),
    (
        'annotations.any(label = "dog") and metadata.user.score < 0.2',
        [i for i in DOGS if i / N < 0.2],
        "sorted",
    ),
]


async def test_every_page_holds_what_the_query_means(platform, owner, filled) -> None:
    """Pages of PAGE through the whole list: the matches in list order (folders first, then by
    path), whichever way the pages were read; and the way is the probe's on SQLite (PostgreSQL's
    statistics see value ranges: nothing to decide there)."""
    dataset_id, ids = filled
    paths = {ids[i]: f"/d{i % 3}/{i:04d}.jpg" for i in range(N)}
    ways = {
        "sorted": planning.Plan(sort_matches=True),
        "as planned": planning.Plan(),
        "correlated": planning.Plan(correlated=True),
    }
    for dql, matched, way in CASES:
        expected = sorted((ids[i] for i in matched), key=lambda item_id: paths[item_id])
        seen: list[str] = []
        after = None
        while True:
            page = await items.list_items(platform, owner[0], dataset_id, dql=dql, after=after)
            seen.extend(item.id for item in page.rows)
            if not page.has_next:
                break
            after = page.end_cursor
        assert seen == expected, dql
        chosen = await _plan(platform, dataset_id, dql)
        assert chosen == (ways[way] if platform.db.is_sqlite else planning.Plan()), dql


async def _plan(platform: Platform, dataset_id: str, dql: str) -> planning.Plan:
    async with platform.db.read() as session:
        rows = await session.scalar(select(func.count()).where(Item.dataset_id == dataset_id))
        return await planning.plan(
            session, parse(dql), "items", dataset_id, items.listing(dataset_id), rows, PAGE
        )


async def test_explain_shows_the_plan_that_runs(platform, owner, filled) -> None:
    """``explain`` plans as the list does: a selective range is read through its index and
    sorted; a common quantifier is an EXISTS tested as the list is walked, a rare one gathers
    its few matches; and a probe costs the list one bounded statement."""
    dataset_id, _ = filled
    actor = owner[0]
    statements = {}
    for dql in ("metadata.user.score > 0.98", 'annotations.any(label = "dog")', "width > 3"):
        for turn in ("first", "again"):
            with count_statements(platform.db.engine) as log:
                await items.list_items(platform, actor, dataset_id, dql=dql)
            statements[dql, turn] = len(log) - 2  # besides the dataset and role, and the page
    if not platform.db.is_sqlite:
        assert set(statements.values()) == {0}
        return
    # the range: counted, and a sample of the path drawn (its last row id, its rows), which
    # then judges it with no statement; the quantifier is counted each time
    assert list(statements.values()) == [3, 0, 1, 1, 0, 0]
    few = await explain.explain(platform, actor, "items", dataset_id, "metadata.user.score > 0.98")
    assert "(+ items.type)" in few.sql
    assert any("ix_meta_items_" in line for line in few.plan)
    assert any("TEMP B-TREE FOR ORDER BY" in line for line in few.plan)
    assert few.uses_index
    common = await explain.explain(
        platform, actor, "items", dataset_id, 'annotations.any(label = "dog")'
    )
    assert "EXISTS (SELECT" in common.sql and " IN (SELECT" not in common.sql
    assert not any("TEMP B-TREE FOR ORDER BY" in line for line in common.plan)
    assert common.verdict.startswith("reads the dataset's 300 rows in list order until a page")
    rare = await explain.explain(
        platform, actor, "items", dataset_id, 'annotations.any(label = "cat")'
    )
    assert " IN (SELECT" in rare.sql and "EXISTS" not in rare.sql


async def test_an_undeclared_path_is_not_counted(platform, owner, filled) -> None:
    """A probe through no index would scan the dataset: without a declared index on the path,
    the database plans alone, however few rows match."""
    dataset_id, _ = filled
    assert await _plan(platform, dataset_id, "metadata.user.other > 1") == planning.Plan()
    declared = await _plan(platform, dataset_id, "metadata.user.score > 2")
    assert declared == planning.Plan(sort_matches=platform.db.is_sqlite)


async def test_a_list_narrowed_to_a_folder_is_not_probed(platform, owner, filled) -> None:
    """Walking the dataset in order meets a folder's matches at no rate a dataset-wide count
    tells: a folder's list is planned by the database alone, and holds what it should."""
    dataset_id, ids = filled
    with count_statements(platform.db.engine) as log:
        page = await items.list_items(
            platform, owner[0], dataset_id, dir="/d1", dql='annotations.any(label = "dog")'
        )
    assert len(log) == 2  # the dataset and role, the page
    in_folder = [ids[i] for i in DOGS if i % 3 == 1]  # by path, as their indexes go
    assert [item.id for item in page.rows] == in_folder[:PAGE]


async def test_a_sample_of_the_path_decides_clear_cases_and_is_drawn_again(
    platform, owner, filled
) -> None:
    """Once a range on an indexed path has been counted, a sample of the path's values judges
    the next ranges on it without a count where it is clearly few or many matches (and counts
    where it cannot tell); a dataset that grew by more than a tenth is sampled again."""
    if not platform.db.is_sqlite:
        return  # PostgreSQL plans ranges from its own statistics
    dataset_id, ids = filled
    actor = owner[0]
    await items.list_items(platform, actor, dataset_id, dql="metadata.user.score > 0.5")
    for dql, counted in [
        ("metadata.user.score > 0.97", 0),  # 8 of 300: few, sorted
        ("metadata.user.score >= 0.3", 1),  # 210: more than the line (109), not thrice: counted
        ("metadata.user.score < 0.5", 1),  # 150: counted
        ("metadata.user.score < 0.2", 0),  # 60: few
        ("metadata.user.score in (0.5, 0.25)", 0),
    ]:
        with count_statements(platform.db.engine) as log:
            page = await items.list_items(platform, actor, dataset_id, dql=dql, first=PAGE)
        assert len(log) - 2 == counted, dql
        expected = sorted(
            (i for i in range(N) if _holds(dql, i / N)), key=lambda i: f"/d{i % 3}/{i:04d}"
        )
        assert [item.id for item in page.rows] == [ids[i] for i in expected[:PAGE]], dql
    assert await _plan(platform, dataset_id, "metadata.user.score > 0.97") == planning.Plan(
        sort_matches=True
    )
    more = [items.ItemSpec(path=f"/more/{i}.jpg", user={"score": 2}) for i in range(40)]
    async with platform.db.write() as session:
        dataset = await datasets.dataset_for(session, actor, dataset_id, Role.owner)
        await items.insert_items(session, actor, dataset, more)
    with count_statements(platform.db.engine) as log:
        await items.list_items(platform, actor, dataset_id, dql="metadata.user.score > 0.97")
    assert len(log) - 2 == 3  # counted, and sampled again
    await indexes.drop_index(platform, actor, "items", "metadata.user.score")
    assert await _plan(platform, dataset_id, "metadata.user.score > 0.97") == planning.Plan()


def _holds(dql: str, score: float) -> bool:
    condition = parse(dql).where
    if isinstance(condition, ast.In):
        return score in condition.values
    assert isinstance(condition, ast.Compare)
    return {"<": score < condition.value, ">": score > condition.value}.get(
        condition.op, score >= condition.value
    )
