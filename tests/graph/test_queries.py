"""DQL over real data on SQLite and PostgreSQL: the same answers on both, typed comparisons,
relations, JSON arrays, ordering with keyset pages, and errors that name the problem."""

from __future__ import annotations

from typing import Any

import pytest

from dql import parse
from graph.domain import annotations, datasets, items, queries
from graph.domain.errors import InvalidInput
from tests.graphql import gql, gql_errors

ITEMS: dict[str, dict[str, Any]] = {
    "/train/a.jpg": {"camera": "front", "score": 0.9, "reviewed": True, "iso": 100},
    "/train/b.jpg": {"camera": "back", "score": 0.2, "iso": 400},
    "/train/sub/c.png": {"camera": "front", "score": "high", "tags": ["x", "y"]},
    "/val/d.jpg": {"camera": None, "score": 2, "reviewed": False},
    "/val/e.jpg": {},
    "/test/f.jpg": {
        "camera": "side",
        "refs": [{"type": "task", "id": "t1", "metadata": {"status": "completed"}}, "loose"],
    },
}
LABELS = {"/train/a.jpg": ["cat", "cat", "dog"], "/train/b.jpg": ["dog"], "/val/d.jpg": ["cat"]}


@pytest.fixture
async def data(platform, owner, project) -> tuple[str, dict[str, str]]:
    actor = owner[0]
    dataset = await datasets.create_dataset(platform, actor, project.id, "q")
    specs = [
        items.ItemSpec(
            path=path,
            user=meta,
            width=640 if path.endswith(".jpg") else 320,
            mimetype="image/png" if path.endswith(".png") else "image/jpeg",
        )
        for path, meta in ITEMS.items()
    ]
    async with platform.db.write() as session:
        results, _ = await items.insert_items(session, actor, dataset, specs)
    ids = {r.filename: r.item_id for r in results}
    for path, labels in LABELS.items():
        await annotations.create_annotations(
            platform,
            actor,
            ids[path],
            [
                annotations.AnnotationSpec(type="class", label=label, confidence=0.3)
                for label in labels
            ],
        )
    return dataset.id, ids


async def _names(platform, owner, dataset_id, dql=None, dataloop=None) -> set[str]:
    page = await items.list_items(
        platform, owner[0], dataset_id, folders=False, dql=dql, dataloop=dataloop, first=1000
    )
    return {i.filename for i in page.rows}


@pytest.mark.parametrize(
    ("dql", "expected"),
    [
        ('metadata.user.camera = "front"', {"/train/a.jpg", "/train/sub/c.png"}),
        (
            'metadata.user.camera != "front"',
            {"/train/b.jpg", "/val/d.jpg", "/val/e.jpg", "/test/f.jpg"},
        ),
        ("metadata.user.camera = null", {"/val/d.jpg", "/val/e.jpg"}),
        (
            "has metadata.user.camera",
            {"/train/a.jpg", "/train/b.jpg", "/train/sub/c.png", "/test/f.jpg"},
        ),
        ("metadata.user.score > 0.5", {"/train/a.jpg", "/val/d.jpg"}),  # not the string "high"
        ('metadata.user.score = "high"', {"/train/sub/c.png"}),
        ("metadata.user.reviewed = true", {"/train/a.jpg"}),
        ("metadata.user.reviewed = false", {"/val/d.jpg"}),
        (
            "not metadata.user.reviewed = true",
            {"/train/b.jpg", "/train/sub/c.png", "/val/d.jpg", "/val/e.jpg", "/test/f.jpg"},
        ),
        ("metadata.user.iso in (100, 400)", {"/train/a.jpg", "/train/b.jpg"}),
        (
            'metadata.user.camera not in ("front", "back")',
            {"/val/d.jpg", "/val/e.jpg", "/test/f.jpg"},
        ),
        ('filename like "/train/*"', {"/train/a.jpg", "/train/b.jpg"}),
        ('filename like "/train/**"', {"/train/a.jpg", "/train/b.jpg", "/train/sub/c.png"}),
        ('filename like "**.png"', {"/train/sub/c.png"}),
        (
            'dir = "/val" or mimetype = "image/png"',
            {"/val/d.jpg", "/val/e.jpg", "/train/sub/c.png"},
        ),
        ('width >= 640 and not dir = "/val"', {"/train/a.jpg", "/train/b.jpg", "/test/f.jpg"}),
        ('annotations.any(label = "cat")', {"/train/a.jpg", "/val/d.jpg"}),
        (
            'annotations.none(label = "cat")',
            {"/train/b.jpg", "/train/sub/c.png", "/val/e.jpg", "/test/f.jpg"},
        ),
        ('annotations.count(label = "cat") >= 2', {"/train/a.jpg"}),
        ("annotations.count() = 0", {"/train/sub/c.png", "/val/e.jpg", "/test/f.jpg"}),
        (
            "annotations.count() < 2",
            {"/train/b.jpg", "/train/sub/c.png", "/val/d.jpg", "/val/e.jpg", "/test/f.jpg"},
        ),
        (
            'annotations.any(label = "dog" and confidence < 0.5) and metadata.user.camera = "back"',
            {"/train/b.jpg"},
        ),
        ('metadata.system.mimetype = "image/png"', {"/train/sub/c.png"}),
        ('createdAt > "2000-01-01" and createdAt < "2999-01-01T00:00:00Z"', set(ITEMS)),
    ],
)
async def test_text_queries(platform, owner, data, dql, expected) -> None:
    dataset_id, _ = data
    assert await _names(platform, owner, dataset_id, dql) == expected


async def test_true_and_one_are_different_queries(platform, owner, project) -> None:
    """Python holds True == 1 and False == 0; the queries `= true` and `= 1` must still each find
    their own items, whichever ran first (compiled queries are kept between requests)."""
    dataset = await datasets.create_dataset(platform, owner[0], project.id, "truths")
    values = {"/t.jpg": True, "/one.jpg": 1, "/f.jpg": False, "/zero.jpg": 0}
    specs = [items.ItemSpec(path=path, user={"v": value}) for path, value in values.items()]
    async with platform.db.write() as session:
        await items.insert_items(session, owner[0], dataset, specs)
    for dql, expected in [
        ("metadata.user.v = true", {"/t.jpg"}),
        ("metadata.user.v = 1", {"/one.jpg"}),
        ("metadata.user.v = false", {"/f.jpg"}),
        ("metadata.user.v = 0", {"/zero.jpg"}),
        ("metadata.user.v in (1, 0)", {"/one.jpg", "/zero.jpg"}),
        ("metadata.user.v in (true, false)", {"/t.jpg", "/f.jpg"}),
    ]:
        assert await _names(platform, owner, dataset.id, dql) == expected, dql


async def test_dataloop_json_queries(platform, owner, data) -> None:
    dataset_id, _ = data
    subset = {"filter": {"$and": [{"metadata": {"user": {"camera": "front"}}}]}}
    assert await _names(platform, owner, dataset_id, dataloop=subset) == {
        "/train/a.jpg",
        "/train/sub/c.png",
    }
    folder = {"filter": {"$and": [{"filename": "/train"}]}}
    assert await _names(platform, owner, dataset_id, dataloop=folder) == {
        "/train/a.jpg",
        "/train/b.jpg",
        "/train/sub/c.png",
    }
    joined = {
        "filter": {"$and": [{"dir": "/train"}]},
        "join": {
            "on": {"resource": "annotations", "local": "itemId", "forigen": "id"},
            "filter": {"$and": [{"label": {"$in": ["dog"]}}]},
        },
    }
    assert await _names(platform, owner, dataset_id, dataloop=joined) == {
        "/train/a.jpg",
        "/train/b.jpg",
    }
    matched = {
        "filter": {
            "metadata.user.refs": {
                "$match": {"id": "t1", "metadata": {"status": {"$exists": True}}}
            }
        }
    }
    assert await _names(platform, owner, dataset_id, dataloop=matched) == {"/test/f.jpg"}
    no_refs = {"filter": {"metadata.user.refs": []}}
    assert await _names(platform, owner, dataset_id, dataloop=no_refs) == set(ITEMS) - {
        "/test/f.jpg"
    }
    exists = {"filter": {"metadata.user.reviewed": {"$exists": True}}}
    assert await _names(platform, owner, dataset_id, dataloop=exists) == {
        "/train/a.jpg",
        "/val/d.jpg",
    }


async def test_order_by_metadata_pages_through_everything_once(platform, owner, data) -> None:
    dataset_id, _ = data
    seen: list[str] = []
    after = None
    while True:
        page = await items.list_items(
            platform,
            owner[0],
            dataset_id,
            folders=False,
            dql="order by metadata.user.iso desc, filename",
            first=2,
            after=after,
        )
        seen += [i.filename for i in page.rows]
        if not page.has_next:
            break
        after = page.end_cursor
    assert seen[:2] == ["/train/b.jpg", "/train/a.jpg"]  # 400, 100; the rest have no iso
    assert sorted(seen) == sorted(ITEMS) and len(seen) == len(ITEMS)
    assert seen[2:] == sorted(seen[2:])  # missing values last, then by filename


async def test_annotations_by_item_fields(platform, owner, data) -> None:
    dataset_id, _ = data
    page = await annotations.list_annotations(
        platform, owner[0], dataset_id, dql='label = "cat" and item.dir = "/val"'
    )
    assert len(page.rows) == 1 and page.rows[0].label == "cat"
    assert (
        await annotations.count_annotations(
            platform, owner[0], dataset_id, dql='item.metadata.user.camera = "front"'
        )
        == 3
    )


@pytest.mark.parametrize(
    ("dql", "field"),
    [
        ('width > "abc"', "width"),
        ("nosuch = 1", "nosuch"),
        ('createdAt > "yesterday"', "createdAt"),
        ("annotations.any(nosuch = 1)", "nosuch"),
        ("hidden > true", "hidden"),
    ],
)
async def test_field_and_type_errors_name_the_field(platform, owner, data, dql, field) -> None:
    dataset_id, _ = data
    with pytest.raises(InvalidInput) as refused:
        await items.list_items(platform, owner[0], dataset_id, dql=dql)
    assert refused.value.details["field"] == "dql"
    assert refused.value.details["dqlField"] == field


async def test_hostile_strings_are_values_not_sql(platform, owner, data) -> None:
    dataset_id, _ = data
    for hostile in ["'; drop table items; --", 'x" or 1=1 --', "\u202e\u00e9", "%", "_"]:
        escaped = hostile.replace("\\", "\\\\").replace('"', '\\"')
        assert (
            await _names(platform, owner, dataset_id, f'metadata.user.camera = "{escaped}"')
            == set()
        )
        assert await _names(platform, owner, dataset_id, f'filename like "{escaped}*"') == set()
    assert len(await _names(platform, owner, dataset_id)) == len(ITEMS)  # the table is still there
    with pytest.raises(InvalidInput) as refused:
        await _names(platform, owner, dataset_id, 'metadata.user.camera = "a\\u0000b"')
    assert "NUL" in refused.value.message


# Queries of one shape share one compiled expression (dql.shapes) and bind their own values.
SAME_SHAPE: list[list[tuple[str, set[str]]]] = [
    [
        ('metadata.user.camera = "front"', {"/train/a.jpg", "/train/sub/c.png"}),
        ('metadata.user.camera = "back"', {"/train/b.jpg"}),
        ('metadata.user.camera = "none such"', set()),
    ],
    [
        ("metadata.user.score > 0.5", {"/train/a.jpg", "/val/d.jpg"}),
        ("metadata.user.score > 1.5", {"/val/d.jpg"}),
    ],
    [
        ('width >= 640 and dir = "/train"', {"/train/a.jpg", "/train/b.jpg"}),
        ('width >= 100 and dir = "/val"', {"/val/d.jpg", "/val/e.jpg"}),
        ('width >= 641 and dir = "/val"', set()),
    ],
    [
        ('annotations.any(label = "cat")', {"/train/a.jpg", "/val/d.jpg"}),
        ('annotations.any(label = "dog")', {"/train/a.jpg", "/train/b.jpg"}),
    ],
    [
        ('filename like "/train/*"', {"/train/a.jpg", "/train/b.jpg"}),
        ('filename like "/val/*"', {"/val/d.jpg", "/val/e.jpg"}),
    ],
    [
        ('createdAt > "2000-01-01"', set(ITEMS)),
        ('createdAt > "2999-01-01"', set()),
    ],
]


@pytest.mark.parametrize("queries_of_a_shape", SAME_SHAPE)
async def test_queries_of_one_shape_return_their_own_rows(
    platform, owner, data, queries_of_a_shape
) -> None:
    dataset_id, _ = data
    compiled = [
        queries.compile_for(parse(dql), "items", platform.db.dialect, dataset_id).where
        for dql, _ in queries_of_a_shape
    ]
    assert all(where is compiled[0] for where in compiled)  # one expression for the shape
    for _round in range(2):  # in turn, twice: no query sees another's values
        for dql, expected in queries_of_a_shape:
            assert await _names(platform, owner, dataset_id, dql) == expected, dql


@pytest.mark.parametrize(
    ("dql", "expected"),
    [
        ('metadata.user.camera in ("back")', {"/train/b.jpg"}),
        ('metadata.user.camera in ("back", "side")', {"/train/b.jpg", "/test/f.jpg"}),
        (
            'metadata.user.camera in ("back", "side", "front")',
            {"/train/a.jpg", "/train/b.jpg", "/train/sub/c.png", "/test/f.jpg"},
        ),
        ('dir in ("/val")', {"/val/d.jpg", "/val/e.jpg"}),
        ('dir in ("/val", "/test", "/nowhere")', {"/val/d.jpg", "/val/e.jpg", "/test/f.jpg"}),
        ('dir not in ("/val", "/train")', {"/train/sub/c.png", "/test/f.jpg"}),
        ("metadata.user.iso in (100)", {"/train/a.jpg"}),
        ("metadata.user.iso in (100, 400)", {"/train/a.jpg", "/train/b.jpg"}),
        ("width in (320)", {"/train/sub/c.png"}),
        ("width in (320, 640, 1)", set(ITEMS)),
    ],
)
async def test_in_lists_of_any_length(platform, owner, data, dql, expected) -> None:
    dataset_id, _ = data
    assert await _names(platform, owner, dataset_id, dql) == expected


async def test_shapes_share_compiled_conditions_and_keep_their_values(
    platform, owner, data
) -> None:
    dataset_id, _ = data
    dialect = platform.db.dialect
    # a new shape made of conditions compiled before reuses them (and a condition held twice in
    # one query is compiled again, each with its own value)
    first = 'width >= 640 and dir = "/train"'
    shared = queries.compile_for(parse(first), "items", dialect, dataset_id)
    queries.compile_for(parse('metadata.user.camera = "back"'), "items", dialect, dataset_id)
    combined = 'width >= 100 and dir = "/val" or metadata.user.camera = "back"'
    compiled = queries.compile_for(parse(combined), "items", dialect, dataset_id)
    width_and_dir = compiled.where.clauses[0]  # (the query's `and`, first term of its `or`)
    assert list(width_and_dir.clauses) == list(shared.where.clauses)
    cases = [
        (first, {"/train/a.jpg", "/train/b.jpg"}),
        (combined, {"/val/d.jpg", "/val/e.jpg", "/train/b.jpg"}),
        ('dir = "/val" or dir = "/test"', {"/val/d.jpg", "/val/e.jpg", "/test/f.jpg"}),
        ('(dir = "/val" or dir = "/test") and not dir = "/val"', {"/test/f.jpg"}),
        (
            'annotations.any(label = "cat") and not annotations.any(label = "dog")',
            {"/val/d.jpg"},
        ),
    ]
    for _round in range(2):
        for dql, expected in cases:
            assert await _names(platform, owner, dataset_id, dql) == expected, dql


def test_queries_over_two_resources_never_share_a_parameter() -> None:
    # an export runs an item query and an annotation query in one statement
    on_annotations = queries.compile_for(parse('label = "dog"'), "annotations", "sqlite", "d1")
    on_items = queries.compile_for(parse('annotations.any(label = "cat")'), "items", "sqlite", "d1")
    assert on_items.params.keys().isdisjoint(on_annotations.params)
    assert set(on_items.params.values()) | set(on_annotations.params.values()) == {"cat", "dog"}


async def test_a_value_of_another_type_is_another_shape(platform, owner, data) -> None:
    dataset_id, _ = data
    text, number = 'metadata.user.score = "high"', "metadata.user.score = 2"
    dialect = platform.db.dialect
    assert (
        queries.compile_for(parse(text), "items", dialect, dataset_id).where
        is not queries.compile_for(parse(number), "items", dialect, dataset_id).where
    )
    for _round in range(2):
        assert await _names(platform, owner, dataset_id, text) == {"/train/sub/c.png"}
        assert await _names(platform, owner, dataset_id, number) == {"/val/d.jpg"}


async def test_values_are_checked_in_a_known_shape(platform, owner, data) -> None:
    dataset_id, _ = data
    assert await _names(platform, owner, dataset_id, 'createdAt < "2000-01-01"') == set()
    with pytest.raises(InvalidInput) as refused:
        await _names(platform, owner, dataset_id, 'createdAt < "someday"')
    assert refused.value.details["dqlField"] == "createdAt"
    assert await _names(platform, owner, dataset_id, 'filename like "/val/*"')
    with pytest.raises(InvalidInput) as refused:
        await _names(platform, owner, dataset_id, 'filename like "/v\\u0000/*"')
    assert "NUL" in refused.value.message


async def test_queries_over_graphql(client, data) -> None:
    dataset_id, _ = data
    result = await gql(
        client,
        """query($d: ID!, $q: String) {
          items(datasetId: $d, dql: $q, folders: false) { totalCount nodes { filename } }
        }""",
        {"d": dataset_id, "q": 'annotations.any(label = "cat") order by filename desc'},
    )
    assert result["items"]["totalCount"] == 2
    assert [n["filename"] for n in result["items"]["nodes"]] == ["/val/d.jpg", "/train/a.jpg"]
    errors = await gql_errors(
        client,
        'query($d: ID!) { items(datasetId: $d, dql: "width >") { totalCount } }',
        {"d": dataset_id},
    )
    extensions = errors[0]["extensions"]
    assert extensions["code"] == "INVALID_INPUT" and extensions["field"] == "dql"
    assert extensions["line"] == 1 and extensions["column"] >= 7
    annotated = await gql(
        client,
        'query($d: ID!) { annotations(datasetId: $d, dql: "label = \\"dog\\"") { totalCount } }',
        {"d": dataset_id},
    )
    assert annotated["annotations"]["totalCount"] == 2


async def test_active_learning_subset_filter_runs_unchanged(platform, owner, project) -> None:
    """The subset filter of Dataloop's active-learning template, exactly as the template sends it."""
    actor = owner[0]
    dataset = await datasets.create_dataset(platform, actor, project.id, "subsets")
    tags = {"/t1.jpg": "train", "/t2.jpg": "train", "/v1.jpg": "validation", "/n.jpg": None}
    specs = [
        items.ItemSpec(
            path=path,
            system={"tags": {s: (s == tag or None) for s in ("train", "validation", "test")}},
        )
        for path, tag in tags.items()
    ]
    async with platform.db.write() as session:
        await items.insert_items(session, actor, dataset, specs)
    await items.create_folder(platform, actor, dataset.id, "/folder")  # type dir: excluded
    train = {
        "filter": {
            "$and": [
                {"hidden": False},
                {"metadata": {"system": {"tags": {"train": True}}}},
                {"type": "file"},
            ]
        }
    }
    page = await items.list_items(platform, actor, dataset.id, dataloop=train)
    assert {i.filename for i in page.rows} == {"/t1.jpg", "/t2.jpg"}
    missing = {"filter": {"$and": [{"metadata.system.tags.train": {"$ne": True}}]}}
    page = await items.list_items(platform, actor, dataset.id, dataloop=missing)
    assert {i.filename for i in page.rows} == {"/v1.jpg", "/n.jpg"}
