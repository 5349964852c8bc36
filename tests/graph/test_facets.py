"""Facets on SQLite and PostgreSQL: files per value of a column or metadata path and annotations
per label, within item and annotation queries; typed values; limits; roles and bad input."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace
from typing import Any

import pytest

from graph.domain import annotations, datasets, facets, items, projects, tasks
from graph.domain.annotations import AnnotationSpec
from graph.domain.errors import InvalidInput, NotFound
from tests.asserts import count_statements
from tests.conftest import make_user
from tests.graphql import gql, gql_errors

# camera: strings, a number, a string that looks like it, a boolean, a JSON null, and absent
CAMERAS: dict[str, Any] = {
    "/a/1.jpg": "front",
    "/a/2.jpg": "front",
    "/a/3.jpg": "front",
    "/b/1.jpg": "back",
    "/b/2.jpg": "back",
    "/b/3.jpg": 1,
    "/c/1.jpg": "1",
    "/c/2.jpg": True,
    "/c/3.jpg": None,
}
ABSENT = "/c/4.png"


def _pairs(found: facets.Facet) -> list[tuple[str, int]]:
    """Values with their type (``1``, ``"1"`` and ``true`` are three values), sorted."""
    return sorted((json.dumps(v.value), v.count) for v in found.values)


@pytest.fixture
async def data(platform, owner, project) -> Any:
    actor = owner[0]
    dataset = await datasets.create_dataset(platform, actor, project.id, "f")
    specs = [
        items.ItemSpec(path=path, url=f"https://x.test{path}", mimetype="image/jpeg", user=user)
        for path, user in [
            (p, {"camera": c, "rank": i}) for i, (p, c) in enumerate(CAMERAS.items())
        ]
    ]
    specs.append(items.ItemSpec(path=ABSENT, url="https://x.test/c/4.png", user={"rank": 9}))
    async with platform.db.write() as session:
        results, _ = await items.insert_items(session, actor, dataset, specs)
    ids = {r.filename: r.item_id for r in results}
    labels = {
        "/a/1.jpg": [("cat", 0.9), ("cat", 0.8), ("dog", 0.3)],
        "/a/2.jpg": [("cat", 0.95)],
        "/b/1.jpg": [("dog", 0.5), (None, None)],
    }
    made = {}
    for path, specs in labels.items():
        made[path] = await annotations.create_annotations(
            platform,
            actor,
            ids[path],
            [
                AnnotationSpec(
                    type="box" if label else "note",
                    label=label,
                    coordinates=[{"x": 1, "y": 1}, {"x": 5, "y": 5}] if label else {},
                    confidence=confidence,
                )
                for label, confidence in specs
            ],
        )
    return SimpleNamespace(id=dataset.id, project_id=project.id, ids=ids, made=made)


async def test_files_per_metadata_value_keep_types_and_count_the_missing(
    platform, owner, data
) -> None:
    found = await facets.item_facet(platform, owner[0], data.id, "metadata.user.camera")
    assert found.values[:2] == [
        facets.FacetValue("front", 3),
        facets.FacetValue("back", 2),
    ]
    assert _pairs(found) == [('"1"', 1), ('"back"', 2), ('"front"', 3), ("1", 1), ("true", 1)]
    assert {type(v.value) for v in found.values if v.count == 1} == {str, int, bool}
    # JSON null and an absent key are both missing, as `= null` means in DQL; folders not counted
    assert (found.total, found.missing, found.distinct) == (10, 2, 5)
    missing = await items.count_items(
        platform, owner[0], data.id, dql='type = "file" and metadata.user.camera = null'
    )
    assert missing == found.missing


async def test_columns_queries_and_limits(platform, owner, data) -> None:
    actor = owner[0]
    by_dir = await facets.item_facet(platform, actor, data.id, "dir")
    assert [(v.value, v.count) for v in by_dir.values] == [("/c", 4), ("/a", 3), ("/b", 3)]
    annotated = await facets.item_facet(platform, actor, data.id, "annotated")
    assert [(v.value, v.count) for v in annotated.values] == [(False, 7), (True, 3)]
    # the Dataloop alias of a column is the column
    mimetypes = await facets.item_facet(platform, actor, data.id, "metadata.system.mimetype")
    assert [(v.value, v.count) for v in mimetypes.values] == [("image/jpeg", 9)]
    assert mimetypes.missing == 1

    within = await facets.item_facet(
        platform, actor, data.id, "metadata.user.camera", dql='dir = "/a" or dir = "/b"'
    )
    assert _pairs(within) == [('"back"', 2), ('"front"', 3), ("1", 1)]
    assert (within.total, within.missing, within.distinct) == (6, 0, 3)
    dataloop = await facets.item_facet(
        platform,
        actor,
        data.id,
        "metadata.user.camera",
        dql="metadata.user.rank >= 1",
        dataloop={"filter": {"dir": "/a"}},
    )
    assert [(v.value, v.count) for v in dataloop.values] == [("front", 2)]
    annotated_cats = await facets.item_facet(
        platform, actor, data.id, "dir", dql='annotations.any(label = "cat")'
    )
    assert [(v.value, v.count) for v in annotated_cats.values] == [("/a", 2)]

    top = await facets.item_facet(platform, actor, data.id, "metadata.user.camera", limit=1)
    assert top.values == [facets.FacetValue("front", 3)]
    assert (top.total, top.missing, top.distinct) == (10, 2, 5)
    nothing = await facets.item_facet(platform, actor, data.id, "dir", dql='name = "none"')
    assert (nothing.values, nothing.total, nothing.missing, nothing.distinct) == ([], 0, 0, 0)


async def test_annotations_per_label_and_type_follow_changes(platform, owner, data) -> None:
    actor = owner[0]
    labels = await facets.annotation_facet(platform, actor, data.id)
    assert [(v.value, v.count) for v in labels.values] == [("cat", 3), ("dog", 2)]
    assert (labels.total, labels.missing, labels.distinct) == (6, 1, 2)
    types = await facets.annotation_facet(platform, actor, data.id, "type")
    assert [(v.value, v.count) for v in types.values] == [("box", 5), ("note", 1)]

    on_b = await facets.annotation_facet(platform, actor, data.id, item_dql='dir = "/b"')
    assert [(v.value, v.count) for v in on_b.values] == [("dog", 1)]
    assert on_b.missing == 1
    boxes_on_1 = await facets.annotation_facet(
        platform, actor, data.id, dql='type = "box" and item.name = "1.jpg"'
    )
    assert [(v.value, v.count) for v in boxes_on_1.values] == [("cat", 2), ("dog", 2)]
    both = await facets.annotation_facet(
        platform, actor, data.id, dql='label = "cat"', item_dql='name = "2.jpg"'
    )
    assert [(v.value, v.count) for v in both.values] == [("cat", 1)]

    # a label change, a delete and an item delete show at once
    first_cat = data.made["/a/1.jpg"][0]
    await annotations.update_annotation(platform, actor, first_cat.id, {"label": "dog"})
    await annotations.delete_annotations(platform, actor, [data.made["/a/2.jpg"][0].id])
    await items.delete_items(platform, actor, [data.ids["/b/1.jpg"]])
    after = await facets.annotation_facet(platform, actor, data.id)
    assert [(v.value, v.count) for v in after.values] == [("dog", 2), ("cat", 1)]
    assert (after.total, after.missing) == (3, 0)


async def test_histograms_of_numbers(platform, owner, data) -> None:
    actor = owner[0]
    rank = "metadata.user.rank"  # 0 to 9, one file each
    found = await facets.item_histogram(platform, actor, data.id, rank, bins=3)
    assert (found.edges, found.counts) == ([0, 3, 6, 9], [3, 3, 4])  # 9 is in the last bin
    assert (found.missing, found.outside, found.total) == (0, 0, 10)
    narrow = await facets.item_histogram(platform, actor, data.id, rank, bins=3, low=2, high=5)
    assert (narrow.edges, narrow.counts, narrow.outside) == ([2, 3, 4, 5], [1, 1, 2], 6)
    within = await facets.item_histogram(platform, actor, data.id, rank, dql='dir = "/a"', bins=2)
    assert (within.edges, within.counts, within.total) == ([0, 1, 2], [1, 2], 3)
    # only numbers count: one camera is the number 1 ("1" and true are not)
    cameras = await facets.item_histogram(platform, actor, data.id, "metadata.user.camera")
    assert (cameras.counts[0], sum(cameras.counts), cameras.missing) == (1, 1, 9)
    assert cameras.edges[0] == 1 and cameras.edges[-1] == 2
    empty = await facets.item_histogram(platform, actor, data.id, "width")
    assert (empty.edges, empty.counts, empty.missing, empty.total) == ([], [], 10, 10)

    confidence = await facets.annotation_histogram(platform, actor, data.id, bins=2, low=0, high=1)
    assert (confidence.counts, confidence.missing, confidence.total) == ([1, 4], 1, 6)
    cats = await facets.annotation_histogram(
        platform, actor, data.id, dql='label = "cat"', item_dql='name = "1.jpg"', bins=1
    )
    assert (cats.edges, cats.counts) == ([0.8, 0.9], [2])

    for call, field in [
        (facets.item_histogram(platform, actor, data.id, "dir"), "field"),
        (facets.item_histogram(platform, actor, data.id, "metadata.x-y"), "field"),
        (facets.item_histogram(platform, actor, data.id, rank, bins=0), "bins"),
        (facets.item_histogram(platform, actor, data.id, rank, bins=1001), "bins"),
        (facets.item_histogram(platform, actor, data.id, rank, low=3, high=3), "min"),
        (facets.item_histogram(platform, actor, data.id, rank, low=math.inf), "min"),
        (facets.annotation_histogram(platform, actor, data.id, "label"), "field"),
        (facets.annotation_histogram(platform, actor, data.id, dql="confidence >"), "dql"),
    ]:
        with pytest.raises(InvalidInput) as caught:
            await call
        assert caught.value.details["field"] == field


async def test_bad_input_roles_and_statements(platform, owner, data) -> None:
    actor = owner[0]
    for call, field in [
        (facets.item_facet(platform, actor, data.id, "nope"), "field"),
        (facets.item_facet(platform, actor, data.id, "metadata"), "field"),
        (facets.item_facet(platform, actor, data.id, "annotations.label"), "field"),
        (facets.item_facet(platform, actor, data.id, "metadata.user.a-b"), "field"),
        (facets.item_facet(platform, actor, data.id, "dir", dql="width >"), "dql"),
        (facets.item_facet(platform, actor, data.id, "dir", dql="nope = 1"), "dql"),
        (facets.item_facet(platform, actor, data.id, "dir", limit=0), "limit"),
        (facets.item_facet(platform, actor, data.id, "dir", limit=facets.MAX_LIMIT + 1), "limit"),
        (facets.annotation_facet(platform, actor, data.id, "width"), "field"),
        (facets.annotation_facet(platform, actor, data.id, item_dql="label = 1"), "dql"),
    ]:
        with pytest.raises(InvalidInput) as caught:
            await call
        assert caught.value.details["field"] == field

    with pytest.raises(NotFound):
        await facets.item_facet(platform, actor, "no-such-dataset", "dir")
    stranger, _ = await make_user(platform, "stranger@example.com")
    with pytest.raises(NotFound):
        await facets.annotation_facet(platform, stranger, data.id)
    annotator, _ = await make_user(platform, "annotator@example.com")
    await projects.add_member(platform, actor, data.project_id, annotator.email, "annotator")
    # an annotator counts the annotations of the items given to it in tasks: none, then all
    assert (await facets.annotation_facet(platform, annotator, data.id)).total == 0
    await tasks.create_task(
        platform, actor, data.id, "all", dql="", workload=[(annotator.email, 100)]
    )
    assert (await facets.annotation_facet(platform, annotator, data.id)).total == 6

    with count_statements(platform.db.engine) as log:
        await facets.annotation_facet(platform, actor, data.id, item_dql='dir = "/a"')
        await facets.item_facet(
            platform, actor, data.id, "metadata.user.camera", dql="metadata.user.rank > 1"
        )
        await facets.item_histogram(platform, actor, data.id, "metadata.user.rank", bins=100)
    # facets: the role check and the grouped count; a histogram: also its bounds
    assert len(log) == 2 + 2 + 3, str(log)


async def test_over_graphql(client, data) -> None:
    await gql(
        client,
        """mutation($p: ID!) {
          createSavedQuery(projectId: $p, name: "a", resource: "items", dql: "dir = \\"/a\\"")
            { id }
        }""",
        {"p": data.project_id},
    )
    answer = await gql(
        client,
        """query($d: ID!) { dataset(id: $d) {
          cameras: facet(field: "metadata.user.camera", limit: 2)
            { field values { value count } missing total distinct }
          saved: facet(field: "dir", saved: "a") { values { value count } }
          created: facet(field: "createdAt", limit: 1) { values { value } }
          labels: annotationFacet { values { value count } missing total }
          ranks: histogram(field: "metadata.user.rank", bins: 3, min: 0, max: 9, dql: "metadata.user.rank >= 3")
            { edges counts missing outside total }
          confidence: annotationHistogram(bins: 2, min: 0, max: 1) { edges counts missing }
          dogs: annotationFacet(field: "type", filter: {filter: {label: "dog"}}, itemDql: "dir = \\"/a\\"")
            { values { value count } }
        } }""",
        {"d": data.id},
    )
    found = answer["dataset"]
    assert found["cameras"] == {
        "field": "metadata.user.camera",
        "values": [{"value": "front", "count": 3}, {"value": "back", "count": 2}],
        "missing": 2,
        "total": 10,
        "distinct": 5,
    }
    assert found["saved"]["values"] == [{"value": "/a", "count": 3}]
    assert found["created"]["values"][0]["value"].endswith("Z")
    assert found["labels"] == {
        "values": [{"value": "cat", "count": 3}, {"value": "dog", "count": 2}],
        "missing": 1,
        "total": 6,
    }
    assert found["dogs"]["values"] == [{"value": "box", "count": 1}]
    assert found["ranks"] == {
        "edges": [0, 3, 6, 9],
        "counts": [0, 3, 4],
        "missing": 0,
        "outside": 0,
        "total": 7,
    }
    assert found["confidence"] == {"edges": [0, 0.5, 1], "counts": [1, 4], "missing": 1}

    for query, code, field in [
        ('facet(field: "nope") { total }', "INVALID_INPUT", "field"),
        ('facet(field: "dir", dql: "dir =") { total }', "INVALID_INPUT", "dql"),
        ('facet(field: "dir", limit: 0) { total }', "INVALID_INPUT", "limit"),
        ('facet(field: "dir", saved: "none") { total }', "NOT_FOUND", None),
        ('annotationFacet(itemDql: "label = 1") { total }', "INVALID_INPUT", "dql"),
        ('histogram(field: "dir") { total }', "INVALID_INPUT", "field"),
        ('histogram(field: "size", min: 2, max: 1) { total }', "INVALID_INPUT", "min"),
        ("annotationHistogram(bins: 0) { total }", "INVALID_INPUT", "bins"),
    ]:
        errors = await gql_errors(
            client, f"query($d: ID!) {{ dataset(id: $d) {{ {query} }} }}", {"d": data.id}
        )
        assert errors[0]["extensions"]["code"] == code, errors
        assert errors[0]["extensions"].get("field") == field
