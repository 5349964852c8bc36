"""Annotation coordinates: every type's layout accepted in Dataloop's form and refused with the
place named when wrong; points outside the item refused or clipped; nothing half-written."""

from __future__ import annotations

import base64
import struct
import zlib
from typing import Any

import pytest

from graph.domain import annotations, datasets, items
from graph.domain.annotations import AnnotationSpec
from graph.domain.errors import InvalidInput
from graph.domain.geometry import check_coordinates
from tests.graphql import gql, gql_errors

W, H = 100, 50


def _png(width: int, height: int) -> str:
    """A real RGBA PNG data URL of that size (all transparent)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    rows = b"".join(b"\x00" + b"\x00" * 4 * width for _ in range(height))
    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )
    return "data:image/png;base64," + base64.b64encode(png).decode()


def p(x: float, y: float) -> dict[str, float]:
    return {"x": x, "y": y}


GOOD: list[tuple[str, Any, Any]] = [
    # (type, given, stored)
    ("box", [p(90, 40), p(10, 5)], [p(10, 5), p(90, 40)]),  # corners put in order
    ("box", [{**p(1, 2), "z": 0}, p(3, 4), 0.5], [{**p(1, 2), "z": 0}, p(3, 4), 0.5]),
    ("segment", [[p(0, 0), p(10, 0), p(5, 8)]], [[p(0, 0), p(10, 0), p(5, 8)]]),
    ("polyline", [[p(0, 0), p(10, 10)]], [[p(0, 0), p(10, 10)]]),
    ("point", p(3, 4), p(3, 4)),
    (
        "ellipse",
        {"center": p(50, 25), "rx": 10, "ry": 5},
        {"center": p(50, 25), "rx": 10, "ry": 5, "angle": 0},
    ),
    ("class", None, []),
    ("class", [], []),
    (
        "cube_3d",
        {
            "position": {"x": 1, "y": 2, "z": 3},
            "scale": {"x": 1, "y": 1, "z": 1},
            "rotation": {"x": 0, "y": 0, "z": 0},
        },
        None,
    ),  # fmt: skip
    ("pose", {"templateId": "t", "instanceId": "i"}, None),
    ("note", {"box": [p(1, 1), p(5, 5)], "note": {"messages": []}}, None),
    ("subtitle", {"text": "hello"}, None),
    ("item_description", {"text": "a cat on a mat"}, None),
    ("text_mark", {"start": 3, "end": 9, "label": "PER"}, None),
    ("text", "free text", None),
    ("comparison", {"anything": [1, 2]}, None),
]

BAD: list[tuple[str, Any, str, str]] = [
    # (type, given, field under "a.coordinates", words in the message)
    ("box", [p(1, 1)], "", "got 1 elements"),
    ("box", [p(1, 1), p(2, 2), p(3, 3), p(4, 4)], "", "got 4 elements"),
    ("box", [p(1, 1), {"x": 2}], "[1]", "needs y"),
    ("box", [p(1, 1), {"x": "2", "y": 2}], "[1].x", "expected a number, got str"),
    ("box", [p(1, 1), {"x": True, "y": 2}], "[1].x", "got bool"),
    ("box", [p(1, 1), {"x": float("nan"), "y": 2}], "[1].x", "finite"),
    ("box", [p(1, 1), {"x": float("inf"), "y": 2}], "[1].x", "finite"),
    ("box", {"x": 1}, "", "expected a box"),
    ("segment", [[p(0, 0), p(1, 1)]], "[0]", "at least 3 points, got 2"),
    ("segment", [], "", "at least one"),
    ("segment", [p(0, 0), p(1, 1), p(2, 2)], "[0]", "expected a polygon ring"),
    ("polyline", [[p(0, 0)]], "[0]", "at least 2 points"),
    ("point", [1, 2], "", "expected a point"),
    ("ellipse", {"center": p(1, 1), "rx": -1, "ry": 1}, ".rx", "negative"),
    ("ellipse", {"rx": 1, "ry": 1}, ".center", "got null"),
    ("class", [p(1, 1)], "", "no coordinates"),
    ("cube", {"front_tl": p(1, 1)}, ".front_tr", "got null"),
    ("cube_3d", {"position": {"x": 1, "y": 2}}, ".position.z", "got null"),
    ("binary", "not a data url", "", "PNG data URL"),
    ("binary", "data:image/png;base64,@@@", "", "base64 is corrupt"),
    (
        "binary",
        "data:image/png;base64," + base64.b64encode(b"GIF89a" * 5).decode(),
        "",
        "not a PNG",
    ),
    ("subtitle", {"text": 5}, ".text", "expected a string"),
    ("text_mark", {"start": 9, "end": 3}, "", "start <= end"),
    ("text", ["x"], "", "expected a string"),
    ("comparison", {"score": float("inf")}, "", "non-finite"),
]


@pytest.mark.parametrize(("kind", "given", "stored"), GOOD)
def test_each_layout_is_accepted(kind: str, given: Any, stored: Any) -> None:
    assert check_coordinates(kind, given, "a.coordinates") == (given if stored is None else stored)


def test_a_cube_of_eight_corners_and_a_mask_of_the_item_size() -> None:
    corners = ("front_tl", "front_tr", "front_br", "front_bl", "back_tl", "back_tr", "back_br")
    cube = {name: p(i, i) for i, name in enumerate((*corners, "back_bl"))} | {"angle": 0.2}
    assert check_coordinates("cube", cube, "a", (W, H)) == cube
    mask = _png(W, H)
    assert check_coordinates("binary", mask, "a", (W, H)) == mask
    with pytest.raises(InvalidInput, match="the mask is 10x5, the item 100x50"):
        check_coordinates("binary", _png(10, 5), "a", (W, H))


@pytest.mark.parametrize(("kind", "given", "place", "words"), BAD)
def test_each_bad_layout_is_named(kind: str, given: Any, place: str, words: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        check_coordinates(kind, given, "a.coordinates")
    assert refused.value.details["field"] == f"a.coordinates{place}"
    assert words in str(refused.value)


def test_outside_the_item_is_refused_or_clipped() -> None:
    box = [p(-5, 10), p(120, 60)]
    with pytest.raises(InvalidInput) as refused:
        check_coordinates("box", box, "a", (W, H))
    assert refused.value.details["field"] == "a[0].x"
    assert "outside the item (0 to 100)" in str(refused.value)
    assert check_coordinates("box", box, "a", (W, H), "clip") == [p(0, 10), p(W, H)]
    ring = [[p(50, -1), p(101, 25), p(50, 51)]]
    assert check_coordinates("segment", ring, "a", (W, H), "clip") == [
        [p(50, 0), p(W, 25), p(50, H)]
    ]
    assert check_coordinates("box", box, "a") == [p(-5, 10), p(120, 60)]  # size unknown: kept


@pytest.fixture
async def sized(platform, owner, project) -> str:
    dataset = await datasets.create_dataset(platform, owner[0], project.id, "geo")
    async with platform.db.write() as session:
        results, _ = await items.insert_items(
            session, owner[0], dataset, [items.ItemSpec(path="/a.jpg", width=W, height=H)]
        )
    return results[0].item_id


async def test_a_bad_annotation_refuses_the_whole_call(platform, owner, sized) -> None:
    good = AnnotationSpec(type="box", label="ok", coordinates=[p(1, 1), p(9, 9)])
    outside = AnnotationSpec(type="point", label="far", coordinates=p(200, 1))
    with pytest.raises(InvalidInput) as refused:
        await annotations.create_annotations(platform, owner[0], sized, [good, outside])
    assert refused.value.details["field"] == "annotations[1].coordinates.x"
    dataset_id = (await items.get_item(platform, owner[0], sized)).dataset_id
    assert await annotations.count_annotations(platform, owner[0], dataset_id) == 0

    made = await annotations.create_annotations(
        platform, owner[0], sized, [good, outside], outside="clip"
    )
    assert [a.coordinates for a in made] == [[p(1, 1), p(9, 9)], p(W, 1)]


async def test_video_keyframes_are_checked_too(platform, owner, sized) -> None:
    snapshots = [
        {"frame": 5, "fixed": True, "data": [p(2, 2), p(8, 8)]},
        {"frame": 9, "fixed": True, "data": [p(2, 2)]},
    ]
    track = AnnotationSpec(
        type="box",
        label="car",
        coordinates=[p(1, 1), p(5, 5)],
        object_id="1",
        frame=0,
        end_frame=9,
        metadata={"system": {"snapshots_": snapshots}},
    )
    with pytest.raises(InvalidInput) as refused:
        await annotations.create_annotations(platform, owner[0], sized, [track])
    assert refused.value.details["field"] == "annotations[0].metadata.system.snapshots_[1].data"
    snapshots[1]["data"] = [p(9, 9), p(3, 3)]
    [made] = await annotations.create_annotations(platform, owner[0], sized, [track])
    kept = made.metadata_["system"]["snapshots_"]
    assert [s["data"] for s in kept] == [[p(2, 2), p(8, 8)], [p(3, 3), p(9, 9)]]


async def test_updates_are_checked_and_clipped_over_graphql(client, sized) -> None:
    made = await gql(
        client,
        """mutation($i: ID!) { createAnnotations(itemId: $i, annotations: [
             {type: "box", label: "cat", coordinates: [{x: 1, y: 1}, {x: 9, y: 9}]}]) { id } }""",
        {"i": sized},
    )
    annotation_id = made["createAnnotations"][0]["id"]
    patch = "mutation($a: ID!, $c: JSON) { updateAnnotation(id: $a, patch: {coordinates: $c}%s) { coordinates } }"
    errors = await gql_errors(client, patch % "", {"a": annotation_id, "c": [p(1, 1), p(1, 900)]})
    assert errors[0]["extensions"]["field"] == "patch.coordinates[1].y"
    clipped = await gql(
        client, patch % ", outOfBounds: CLIP", {"a": annotation_id, "c": [p(1, 1), p(1, 900)]}
    )
    assert clipped["updateAnnotation"]["coordinates"] == [p(1, 1), p(1, H)]
