"""Annotation storage: Dataloop's fields round-trip; bad input is refused whole."""

from __future__ import annotations

import pytest

from graph.domain import annotations, datasets, items
from graph.domain.errors import InvalidInput, NotFound
from tests.conftest import make_user
from tests.graphql import gql, gql_errors

BOX = [{"x": 174, "y": 101, "z": 0}, {"x": 349, "y": 351, "z": 0}]


@pytest.fixture
async def item_id(platform, owner, project) -> str:
    dataset = await datasets.create_dataset(platform, owner[0], project.id, "ds")
    async with platform.db.write() as session:
        results, _ = await items.insert_items(
            session, owner[0], dataset, [items.ItemSpec(path="/a.jpg")]
        )
    return results[0].item_id


async def test_fields_round_trip_and_counters_follow(platform, owner, item_id) -> None:
    spec = annotations.AnnotationSpec(
        type="box",
        label="person",
        coordinates=BOX,
        attributes={"occluded": "mid"},
        object_id="7",
        frame=0,
        end_frame=4,
        source="sdk",
        model_id="m1",
        model_name="yolo",
        confidence=0.91,
        metadata={"user": {"note": "x"}},
    )
    [box] = await annotations.create_annotations(platform, owner[0], item_id, [spec])
    [point] = await annotations.create_annotations(
        platform,
        owner[0],
        item_id,
        [annotations.AnnotationSpec(type="point", coordinates={"x": 1, "y": 2}, parent_id=box.id)],
    )
    got = await annotations.get_annotation(platform, owner[0], box.id)
    assert (got.type, got.label, got.coordinates, got.attributes) == (
        "box",
        "person",
        BOX,
        {"occluded": "mid"},
    )
    assert (got.object_id, got.frame, got.end_frame, got.confidence) == ("7", 0, 4, 0.91)
    assert point.parent_id == box.id
    item = await items.get_item(platform, owner[0], item_id)
    assert (item.annotated, item.annotations_count) == (True, 2)
    # deleting the parent takes its children with it
    assert await annotations.delete_annotations(platform, owner[0], [box.id]) == 2
    item = await items.get_item(platform, owner[0], item_id)
    assert (item.annotated, item.annotations_count) == (False, 0)


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        (annotations.AnnotationSpec(type="blob"), "annotations[1].type"),
        (annotations.AnnotationSpec(type="box", confidence=1.5), "annotations[1].confidence"),
        (annotations.AnnotationSpec(type="box", frame=5, end_frame=2), "annotations[1].endFrame"),
        (
            annotations.AnnotationSpec(type="box", coordinates=[{"x": float("nan")}]),
            "annotations[1].coordinates",
        ),
        (annotations.AnnotationSpec(type="box", status="done"), "annotations[1].status"),
        (
            annotations.AnnotationSpec(
                type="point", coordinates={"x": 1, "y": 2}, parent_id="0" * 24
            ),
            "parentId",
        ),
    ],
)
async def test_bad_annotations_are_refused_whole(platform, owner, item_id, spec, field) -> None:
    good = annotations.AnnotationSpec(type="class", label="ok")
    with pytest.raises(InvalidInput) as refused:
        await annotations.create_annotations(platform, owner[0], item_id, [good, spec])
    assert refused.value.details["field"] == field
    assert (await items.get_item(platform, owner[0], item_id)).annotations_count == 0


async def test_update_only_touches_given_fields(platform, owner, item_id) -> None:
    [a] = await annotations.create_annotations(
        platform,
        owner[0],
        item_id,
        [annotations.AnnotationSpec(type="box", label="cat", coordinates=BOX)],
    )
    updated = await annotations.update_annotation(platform, owner[0], a.id, {"status": "approved"})
    assert (updated.status, updated.label, updated.coordinates) == ("approved", "cat", BOX)
    with pytest.raises(InvalidInput):
        await annotations.update_annotation(platform, owner[0], a.id, {"type": "point"})
    with pytest.raises(InvalidInput):
        await annotations.update_annotation(platform, owner[0], a.id, {"confidence": -1})
    with pytest.raises(NotFound):
        await annotations.update_annotation(platform, owner[0], "missing", {"label": "x"})


async def test_strangers_cannot_read_or_write(platform, item_id) -> None:
    stranger, _ = await make_user(platform, "s@example.com")
    with pytest.raises(NotFound):
        await annotations.create_annotations(
            platform, stranger, item_id, [annotations.AnnotationSpec(type="class")]
        )


async def test_annotations_over_graphql(client, item_id) -> None:
    created = await gql(
        client,
        """mutation($i: ID!, $c: JSON) {
          createAnnotations(itemId: $i, annotations: [
            {type: "box", label: "dog", coordinates: $c, model: {name: "m", confidence: 0.5}}
          ]) { id label coordinates model { name confidence } }
        }""",
        {"i": item_id, "c": BOX},
    )
    [a] = created["createAnnotations"]
    assert a["coordinates"] == BOX and a["model"] == {"name": "m", "confidence": 0.5}
    patched = await gql(
        client,
        'mutation($id: ID!) { updateAnnotation(id: $id, patch: {label: "cat"}) { label coordinates } }',
        {"id": a["id"]},
    )
    assert patched["updateAnnotation"] == {"label": "cat", "coordinates": BOX}
    item = await gql(
        client,
        "query($i: ID!) { item(id: $i) { annotations { label } annotationsCount } }",
        {"i": item_id},
    )
    assert item["item"] == {"annotations": [{"label": "cat"}], "annotationsCount": 1}
    errors = await gql_errors(
        client,
        'mutation($i: ID!) { createAnnotations(itemId: $i, annotations: [{type: "nope"}]) { id } }',
        {"i": item_id},
    )
    assert errors[0]["extensions"]["code"] == "INVALID_INPUT"


async def test_deleting_items_keeps_dataset_annotation_count_right(
    platform, owner, item_id
) -> None:
    [a] = await annotations.create_annotations(
        platform, owner[0], item_id, [annotations.AnnotationSpec(type="class", label="x")]
    )
    item = await items.get_item(platform, owner[0], item_id)
    assert (await datasets.get_dataset(platform, owner[0], item.dataset_id)).annotations_count == 1
    await items.delete_items(platform, owner[0], [item_id])
    assert (await datasets.get_dataset(platform, owner[0], item.dataset_id)).annotations_count == 0
    with pytest.raises(NotFound):
        await annotations.get_annotation(platform, owner[0], a.id)


async def test_provenance_is_queryable(platform, owner, item_id) -> None:
    """Who or what made an annotation (user, model and its confidence, when) is in DQL."""

    def predicted(label: str, confidence: float, model: str = "yolo") -> annotations.AnnotationSpec:
        return annotations.AnnotationSpec(
            type="class", label=label, model_name=model, model_id="m1", confidence=confidence
        )

    await annotations.create_annotations(
        platform,
        owner[0],
        item_id,
        [predicted("cat", 0.3), predicted("dog", 0.9), predicted("cat", 0.2, "detr")],
    )
    await annotations.create_annotations(
        platform, owner[0], item_id, [annotations.AnnotationSpec(type="class", label="cat")]
    )
    dataset_id = (await items.get_item(platform, owner[0], item_id)).dataset_id

    async def count(dql: str) -> int:
        return await annotations.count_annotations(platform, owner[0], dataset_id, dql=dql)

    assert await count('model.name = "yolo" and confidence < 0.4') == 1
    assert await count("not has modelName") == 1  # ground truth: no model
    assert await count('creator = "owner@example.com" and createdAt > "2020-01-01"') == 4
    assert await count("has executionId") == 0  # none made by a function
    low = 'annotations.any(model.name = "yolo" and confidence < 0.4)'
    assert await items.count_items(platform, owner[0], dataset_id, dql=low) == 1
    assert (
        await items.count_items(platform, owner[0], dataset_id, dql=low.replace("0.4", "0.3")) == 0
    )
