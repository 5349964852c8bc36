"""Annotation converters on real data: the PASCAL VOC 2007 sample's ground truth in VOC and YOLO
gives the same boxes; each format round-trips; each kind of bad record is reported by file and
place while the rest is read; converters are found through the plugin hook."""

from __future__ import annotations

import base64
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from PIL import Image

from plugins.builtin import coco, cvat, dataloop, voc, yolo
from plugins.converters import (
    ConverterType,
    FolderFiles,
    ItemAnnotations,
    Problem,
    ZipFiles,
    ZipOutput,
    attributes_of,
)
from plugins.hookspecs import hookimpl
from plugins.manager import Plugins
from tests.conftest import shared_data


@pytest.fixture(scope="module")
def shared_data_dir() -> Path:
    return shared_data()


@pytest.fixture(scope="module")
def sample() -> Path:
    return shared_data() / "voc2007-100"


@pytest.fixture(scope="module")
def sizes(sample: Path) -> dict[str, tuple[int, int]]:
    """Image sizes read from the images themselves, by ``/name.jpg``."""
    found = {}
    for image in (sample / "images").iterdir():
        with Image.open(image) as opened:
            found[f"/{image.name}"] = opened.size
    return found


def _read(
    read: Any, files: Any, sizes: dict[str, tuple[int, int]]
) -> tuple[list[ItemAnnotations], list[Problem]]:
    items, problems = [], []
    for record in read(files, sizes.get):
        (problems if isinstance(record, Problem) else items).append(record)
    return items, problems


def _boxes(items: list[ItemAnnotations]) -> dict[str, list[tuple[str, float, float, float, float]]]:
    """Each image's boxes as (label, x1, y1, x2, y2), sorted."""
    return {
        item.filename: sorted(
            (a["label"], *(c[k] for c in a["coordinates"] for k in "xy")) for a in item.annotations
        )
        for item in items
    }


def _zip_of(files: dict[str, str]) -> ZipFiles:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return ZipFiles(zipfile.ZipFile(buffer))


def _written(write: Any, items: list[ItemAnnotations], labels: list[str]) -> tuple[ZipFiles, int]:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        left_out = write(iter(items), labels, ZipOutput(archive))
    return ZipFiles(zipfile.ZipFile(buffer)), left_out


def test_voc_and_yolo_give_the_same_boxes(sample, sizes) -> None:
    from_voc, problems = _read(voc.read, FolderFiles(sample / "voc"), sizes)
    assert problems == []
    assert len(from_voc) == 100
    assert sum(len(i.annotations) for i in from_voc) > 250
    first = next(i for i in from_voc if i.filename == "/2007_000027.jpg")
    assert (first.width, first.height) == sizes["/2007_000027.jpg"] == (486, 500)
    assert first.annotations == [
        {
            "type": "box",
            "label": "person",
            "coordinates": [{"x": 174, "y": 101}, {"x": 349, "y": 351}],
            "metadata": {
                "system": {
                    "attributes": {"pose": "Unspecified", "truncated": False, "difficult": False}
                }
            },
        }
    ]

    from_yolo, problems = _read(yolo.read, FolderFiles(sample / "yolo"), sizes)
    assert problems == []
    voc_boxes, yolo_boxes = _boxes(from_voc), _boxes(from_yolo)
    assert voc_boxes.keys() == yolo_boxes.keys()
    for filename, boxes in voc_boxes.items():
        others = yolo_boxes[filename]
        assert [b[0] for b in boxes] == [b[0] for b in others], filename
        for mine, theirs in zip(boxes, others, strict=True):
            assert max(abs(a - b) for a, b in zip(mine[1:], theirs[1:], strict=True)) <= 1, filename


def test_each_format_round_trips(sample, sizes) -> None:
    original, _ = _read(voc.read, FolderFiles(sample / "voc"), sizes)
    labels = sorted({a["label"] for i in original for a in i.annotations})

    archive, left_out = _written(voc.write, original, labels)
    again, problems = _read(voc.read, archive, sizes)
    assert (left_out, problems) == (0, [])
    assert [(i.filename, i.width, i.height, i.annotations) for i in again] == [
        (i.filename, i.width, i.height, i.annotations) for i in original
    ]

    archive, left_out = _written(yolo.write, original, labels)
    assert archive.open("obj.names").read().decode().split() == labels
    again, problems = _read(yolo.read, archive, sizes)
    assert (left_out, problems) == (0, [])
    back = _boxes(again)
    for filename, boxes in _boxes(original).items():
        for mine, theirs in zip(boxes, back[filename], strict=True):
            assert mine[0] == theirs[0]
            assert max(abs(a - b) for a, b in zip(mine[1:], theirs[1:], strict=True)) < 0.01


def test_the_ultralytics_layout_round_trips(sample, sizes) -> None:
    original, _ = _read(voc.read, FolderFiles(sample / "voc"), sizes)
    # a third in val, the rest in train (as folders of the dataset)
    for n, item in enumerate(original):
        item.filename = ("/val" if n % 3 == 0 else "/train") + item.filename
    labels = sorted({a["label"] for i in original for a in i.annotations})

    archive, left_out = _written(yolo.write_ultralytics, original, labels)
    assert left_out == 0
    data = yaml.safe_load(archive.open("data.yaml"))
    assert data == {
        "train": "images/train",
        "val": "images/val",
        "nc": len(labels),
        "names": dict(enumerate(labels)),
    }
    stem = original[0].filename[len("/val/") : -len(".jpg")]
    assert f"labels/val/{stem}.txt" in set(archive.names())
    # the reader finds each label file's image in images/<split>/ (no images in an export: the
    # platform matches them to the dataset's files by name)
    by_image = {"/images" + i.filename.rsplit(".", 1)[0]: (i.width, i.height) for i in original}
    again, problems = _read(yolo.read, archive, by_image)
    assert problems == []
    back = {name.replace("/images", "", 1): boxes for name, boxes in _boxes(again).items()}
    assert len(back) == len(original)
    for filename, boxes in _boxes(original).items():
        theirs = back[filename.rsplit(".", 1)[0]]
        assert [b[0] for b in boxes] == [b[0] for b in theirs]
        for mine, found in zip(boxes, theirs, strict=True):
            assert max(abs(a - b) for a, b in zip(mine[1:], found[1:], strict=True)) < 0.01


def test_ultralytics_writes_polygons_a_line_a_ring() -> None:
    square = [{"x": 0, "y": 0}, {"x": 10, "y": 0}, {"x": 10, "y": 5}]
    item = ItemAnnotations(
        "/test/a/b.jpg",
        [
            {"type": "segment", "label": "cat", "coordinates": [square]},
            {"type": "segment", "label": "dog", "coordinates": [square, square[::-1]]},
            {"type": "box", "label": "dog", "coordinates": [{"x": 0, "y": 0}, {"x": 5, "y": 5}]},
            {"type": "point", "label": "cat", "coordinates": {"x": 1, "y": 1}},
        ],
        10,
        10,
    )
    archive, left_out = _written(yolo.write_ultralytics, [item], ["cat", "dog"])
    assert left_out == 1  # the point
    data = yaml.safe_load(archive.open("data.yaml"))
    assert (data["val"], data["test"]) == ("images/train", "images/test")  # no val split
    assert archive.open("labels/test/a/b.txt").read().decode().splitlines() == [
        "0 0.000000 0.000000 1.000000 0.000000 1.000000 0.500000",
        "1 0.000000 0.000000 1.000000 0.000000 1.000000 0.500000",
        "1 1.000000 0.500000 1.000000 0.000000 0.000000 0.000000",
        "1 0.250000 0.250000 0.500000 0.500000",
    ]
    [again], problems = _read(yolo.read, archive, {"/images/test/a/b": (10, 10)})
    assert problems == []
    assert [(a["type"], a["label"]) for a in again.annotations] == [
        ("segment", "cat"),
        ("segment", "dog"),
        ("segment", "dog"),
        ("box", "dog"),
    ]
    assert again.annotations[0]["coordinates"] == [
        [{"x": 0.0, "y": 0.0}, {"x": 10.0, "y": 0.0}, {"x": 10.0, "y": 5.0}]
    ]


def test_what_a_format_cannot_hold_is_counted_not_written() -> None:
    item = ItemAnnotations(
        "/a.jpg",
        [
            {"type": "box", "label": "cat", "coordinates": [{"x": 1, "y": 2}, {"x": 3, "y": 4}]},
            {"type": "point", "label": "eye", "coordinates": {"x": 1, "y": 1}},
            {
                "type": "box",
                "label": "unlisted",
                "coordinates": [{"x": 1, "y": 2}, {"x": 3, "y": 4}],
            },
        ],
        10,
        10,
    )
    archive, left_out = _written(yolo.write, [item], ["cat"])
    assert left_out == 2
    assert archive.open("obj_train_data/a.txt").read() == b"0 0.200000 0.300000 0.200000 0.200000\n"
    _, left_out = _written(voc.write, [item], ["cat"])
    assert left_out == 1


VOC_BOX = "<object><name>{name}</name><bndbox><xmin>{x1}</xmin><ymin>1</ymin><xmax>{x2}</xmax><ymax>9</ymax></bndbox></object>"


def _voc(*objects: str, filename: str = "a.jpg") -> str:
    return (
        f"<annotation><filename>{filename}</filename><size><width>10</width><height>10</height>"
        f"</size>{''.join(objects)}</annotation>"
    )


def test_bad_voc_records_are_reported_and_the_rest_read() -> None:
    files = _zip_of(
        {
            "a.xml": _voc(
                VOC_BOX.format(name="cat", x1=1, x2=5), VOC_BOX.format(name="dog", x1=8, x2=2)
            ),
            "b.xml": "<annotation><filename>b.jpg</filename>",
            "c.xml": "<html/>",
            "d.xml": _voc(VOC_BOX.format(name="cat", x1="one", x2=5), filename="d.jpg"),
            "e.xml": "<annotation><size><width>1</width></size></annotation>",
        }
    )
    items, problems = _read(voc.read, files, {})
    assert [(i.filename, [a["label"] for a in i.annotations]) for i in items] == [
        ("/a.jpg", ["cat"]),
        ("/d.jpg", []),
    ]
    assert [p.where for p in problems] == [
        "a.xml: object 2",
        "b.xml",
        "c.xml",
        "d.xml: object 1",
        "e.xml",
    ]
    assert "inverted (xmin 8, xmax 2" in problems[0].message
    assert "not well-formed XML" in problems[1].message
    assert "not a VOC annotation" in problems[2].message
    assert "<xmin> is not a number: 'one'" in problems[3].message
    assert "<filename> is missing" in problems[4].message


def test_bad_yolo_lines_are_reported_and_the_rest_read() -> None:
    files = _zip_of(
        {
            "obj.names": "cat\ndog\n",
            "obj_train_data/a.txt": "\n".join(
                [
                    "0 0.5 0.5 0.2 0.2",
                    "1 0.5 0.5 0.2",  # 4 numbers
                    "1 0.5 0.5 0.2 0.2 0.9",  # 6 numbers
                    "0 1.5 0.5 0.2 0.2",  # outside [0, 1]
                    "7 0.5 0.5 0.2 0.2",  # no such class
                    "0 x 0.5 0.2 0.2",
                    "1 0.1 0.1 0.9 0.1 0.5 0.9",  # a polygon
                ]
            ),
            "obj_train_data/unknown.txt": "0 0.5 0.5 0.2 0.2",
        }
    )
    items, problems = _read(yolo.read, files, {"/a": (100, 50)})
    [item] = items
    assert item.filename == "/a"  # no image or list names its extension: matched by name
    assert [a["type"] for a in item.annotations] == ["box", "segment"]
    assert item.annotations[0]["coordinates"] == [{"x": 40.0, "y": 20.0}, {"x": 60.0, "y": 30.0}]
    assert item.annotations[1]["coordinates"] == [
        [{"x": 10.0, "y": 5.0}, {"x": 90.0, "y": 5.0}, {"x": 50.0, "y": 45.0}]
    ]
    where = {p.where: p.message for p in problems}
    assert "4 numbers" in where["obj_train_data/a.txt: line 2"]
    assert "6 numbers" in where["obj_train_data/a.txt: line 3"]
    assert "normalised to [0, 1]" in where["obj_train_data/a.txt: line 4"]
    assert "class 7 is not in the 2 class names" in where["obj_train_data/a.txt: line 5"]
    assert "not numbers" in where["obj_train_data/a.txt: line 6"]
    assert "size of /unknown is unknown" in where["obj_train_data/unknown.txt"]
    assert len(problems) == 6

    nothing, problems = _read(yolo.read, _zip_of({"a.txt": "0 0.5 0.5 0.1 0.1"}), {})
    assert nothing == [] and "no class names" in problems[0].message


def test_ultralytics_layout_with_data_yaml() -> None:
    files = _zip_of(
        {
            "data.yaml": "path: .\ntrain: images/train\nnames:\n  0: cat\n  1: dog\n",
            "images/train/x.png": "",
            "labels/train/x.txt": "1 0.5 0.5 1 1\n",
        }
    )
    [item], problems = _read(yolo.read, files, {"/images/train/x.png": (20, 10)})
    assert problems == []
    assert (item.filename, item.annotations[0]["label"]) == ("/images/train/x.png", "dog")
    assert item.annotations[0]["coordinates"] == [{"x": 0.0, "y": 0.0}, {"x": 20.0, "y": 10.0}]


def test_converters_are_found_through_the_hook() -> None:
    class Csv:
        @hookimpl
        def register_converters(self) -> list[ConverterType]:
            return [ConverterType("csv", "boxes as CSV", frozenset({"box"}), None, None)]

    class Clash:
        @hookimpl
        def register_converters(self) -> list[ConverterType]:
            return [ConverterType("voc", "another VOC", frozenset(), None, None)]

    plugins = Plugins(entry_points=False)
    assert {"coco", "cvat", "dataloop", "ultralytics", "voc", "yolo"} <= set(plugins.converters)
    plugins.register(Csv(), "csv-plugin")
    plugins.register(Clash(), "clash-plugin")
    assert plugins.converters["csv"].description == "boxes as CSV"
    assert plugins.converters["voc"].read is voc.read  # the built-in keeps its name
    assert [f.plugin for f in plugins.failures] == ["clash-plugin"]
    assert "already provided by 'plugins.builtin.voc'" in plugins.failures[0].error


def test_coco_gives_the_same_boxes_as_voc(sample, sizes) -> None:
    from_voc, _ = _read(voc.read, FolderFiles(sample / "voc"), sizes)
    from_coco, problems = _read(coco.read, FolderFiles(sample / "coco"), sizes)
    assert problems == []
    assert _boxes(from_coco) == _boxes(from_voc)
    first = next(i for i in from_coco if i.filename == "/2007_000027.jpg")
    assert attributes_of(first.annotations[0]) == {"occluded": False}  # CVAT's attributes kept


def _pixels(url: str) -> bytes:
    with Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))) as image:
        return image.getchannel("A").tobytes()


def test_coco_polygons_and_masks_read_and_round_trip(shared_data_dir) -> None:
    folder = shared_data_dir / "dataloop-json" / "coco" / "coco"
    raw = json.loads((folder / "annotations.json").read_text())
    items, problems = _read(coco.read, FolderFiles(folder), {})
    assert problems == []
    assert sum(len(i.annotations) for i in items) == len(raw["annotations"])
    kinds = {a["type"] for i in items for a in i.annotations}
    assert kinds == {"segment", "binary"}
    # a mask sets exactly the pixels COCO counts as its area
    crowd = next(a for a in raw["annotations"] if isinstance(a["segmentation"], dict))
    image = next(i for i in raw["images"] if i["id"] == crowd["image_id"])
    item = next(i for i in items if i.filename == f"/{image['file_name']}")
    masks = [a for a in item.annotations if a["type"] == "binary"]
    assert crowd["area"] in [sum(1 for v in _pixels(m["coordinates"]) if v > 127) for m in masks]

    labels = sorted({a["label"] for i in items for a in i.annotations})
    archive, left_out = _written(coco.write, items, labels)
    again, problems = _read(coco.read, archive, {})
    assert (left_out, problems) == (0, [])
    for before, after in zip(items, again, strict=True):
        assert (before.filename, before.width, before.height) == (
            after.filename,
            after.width,
            after.height,
        )
        for a, b in zip(before.annotations, after.annotations, strict=True):
            assert (a["type"], a["label"]) == (b["type"], b["label"])
            if a["type"] == "binary":
                assert _pixels(a["coordinates"]) == _pixels(b["coordinates"])
            else:
                assert a["coordinates"] == b["coordinates"]


def test_coco_compressed_rle_and_keypoints() -> None:
    # a 3x2 mask (column-major runs: 1 zero, 3 ones, 2 zeros), compressed as COCO writes it
    rle = {"size": [2, 3], "counts": "132"}
    skeleton = ["nose", "eye", "ear"]
    data = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 3, "height": 2}],
        "categories": [{"id": 1, "name": "face", "keypoints": skeleton}, {"id": 2, "name": "blob"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 2, "segmentation": rle, "iscrowd": 1},
            {"id": 2, "image_id": 1, "category_id": 1, "keypoints": [1, 1, 2, 0, 0, 0, 2, 1, 1]},
        ],
    }
    [item], problems = _read(coco.read, _zip_of({"c.json": json.dumps(data)}), {})
    assert problems == []
    mask, pose, nose, ear = item.annotations
    assert list(_pixels(mask["coordinates"])) == [0, 255, 0, 255, 255, 0]  # row by row
    assert (pose["type"], pose["label"]) == ("pose", "face")
    assert [
        (p["label"], p["coordinates"], p["metadata"]["system"]["parentId"]) for p in (nose, ear)
    ] == [
        ("nose", {"x": 1, "y": 1}, pose["id"]),
        ("ear", {"x": 2, "y": 1}, pose["id"]),
    ]
    # runs 5, 40, 3, 2: 40 takes two characters, the last is stored as 2 - 40
    data["annotations"] = [
        data["annotations"][0] | {"segmentation": {"size": [5, 10], "counts": "5X13jN"}}
    ]
    data["images"][0].update(width=10, height=5)
    [long], _ = _read(coco.read, _zip_of({"c.json": json.dumps(data)}), {})
    column_major = (
        Image.open(
            io.BytesIO(base64.b64decode(long.annotations[0]["coordinates"].split(",", 1)[1]))
        )
        .getchannel("A")
        .transpose(Image.Transpose.TRANSPOSE)
        .tobytes()
    )
    assert column_major == b"\0" * 5 + b"\xff" * 40 + b"\0" * 3 + b"\xff" * 2

    archive, left_out = _written(coco.write, [item], ["blob", "face"])
    written = json.loads(archive.open("annotations.json").read())
    assert left_out == 0
    assert written["annotations"][0]["segmentation"] == {"size": [2, 3], "counts": [1, 3, 2]}
    assert written["annotations"][1]["keypoints"] == [1, 1, 2, 2, 1, 1]  # nose, ear (eye unseen)
    assert written["categories"][1] == {
        "id": 2, "name": "face", "supercategory": "", "keypoints": ["nose", "ear"], "skeleton": []
    }  # fmt: skip


def test_bad_coco_records_are_reported_and_the_rest_read() -> None:
    data = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 10, "height": 10}, {"id": 2}],
        "categories": [{"id": 1, "name": "cat"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 4, 4]},
            {"id": 2, "image_id": 9, "category_id": 1, "bbox": [1, 1, 4, 4]},
            {"id": 3, "image_id": 1, "category_id": 7, "bbox": [1, 1, 4, 4]},
            {"id": 4, "image_id": 1, "category_id": 1, "bbox": [1, 1, -4, 4]},
            {"id": 5, "image_id": 1, "category_id": 1, "segmentation": [[1, 2, 3, 4]]},
            {
                "id": 6,
                "image_id": 1,
                "category_id": 1,
                "segmentation": {"size": [2, 2], "counts": [1]},
            },
        ],
    }
    files = _zip_of({"good.json": json.dumps(data), "bad.json": "{not json", "other.json": "[]"})
    [item], problems = _read(coco.read, files, {})
    assert item.annotations == [
        {"label": "cat", "type": "box", "coordinates": [{"x": 1, "y": 1}, {"x": 5, "y": 5}]}
    ]
    where = {p.where: p.message for p in problems}
    assert "not JSON" in where["bad.json"]
    assert "not COCO" in where["other.json"]
    assert "needs id and file_name" in where["good.json: images[1]"]
    assert "image_id 9 is not in images" in where["good.json: annotations[1]"]
    assert "category_id 7 is not in categories" in where["good.json: annotations[2]"]
    assert "negative size" in where["good.json: annotations[3]"]
    assert "3 or more x, y pairs" in where["good.json: annotations[4]"]
    assert "RLE runs cover 1 pixels, the mask has 4" in where["good.json: annotations[5]"]


def test_coco_bbox_numbers_are_checked() -> None:
    bboxes = [[1.5, 1, 4, 4], ["1", 1, 4, 4], [True, 1, 4, 4], [1, 1, 4, None], [1, 1, 4]]
    data = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 10, "height": 10}],
        "categories": [{"id": 1, "name": "cat"}],
        "annotations": [
            {"id": n, "image_id": 1, "category_id": 1, "bbox": bbox}
            for n, bbox in enumerate(bboxes)
        ],
    }
    [item], problems = _read(coco.read, _zip_of({"a.json": json.dumps(data)}), {})
    assert [a["coordinates"] for a in item.annotations] == [
        [{"x": 1.5, "y": 1}, {"x": 5.5, "y": 5}]
    ]
    where = {p.where: p.message for p in problems}
    for n in (1, 2, 3):
        assert "a bbox number must be a finite number" in where[f"a.json: annotations[{n}]"]
    assert "bbox must be [x, y, width, height]" in where["a.json: annotations[4]"]


def test_dataloop_exports_keep_every_field_and_round_trip(shared_data_dir) -> None:
    root = shared_data_dir / "dataloop-json"
    for folder in ("voc", "yolo"):
        items, problems = _read(dataloop.read, FolderFiles(root / folder / "dataloop" / "json"), {})
        assert problems == []
        raw = {
            i.filename: json.loads(p.read_text())
            for p in (root / folder / "dataloop" / "json").rglob("*.json")
            for i in items
            if json.loads(p.read_text())["filename"] == i.filename
        }
        assert len(raw) == len(items) > 5
        for item in items:
            source = raw[item.filename]
            assert item.item["metadata"] == source["metadata"]
            for kept, given in zip(item.annotations, source["annotations"], strict=True):
                for name in (
                    "type",
                    "label",
                    "coordinates",
                    "attributes",
                    "metadata",
                    "id",
                    "createdAt",
                ):
                    assert kept.get(name) == given.get(name), (item.filename, name)
                assert "url" not in kept and "hash" not in kept
        archive, left_out = _written(dataloop.write, items, [])
        again, problems = _read(dataloop.read, archive, {})
        assert (left_out, problems) == (0, [])
        assert [(i.filename, i.annotations, i.item) for i in again] == [
            (i.filename, i.annotations, i.item) for i in items
        ]

    video = next(i for i in items if i.filename.endswith(".webm"))
    track = video.annotations[0]["metadata"]["system"]
    assert (track["frame"], track["endFrame"], track["objectId"]) == (0, 50, "2")
    assert len(track["snapshots_"]) > 10 and track["snapshots_"][0]["type"] == "box"
    assert any(i.filename.startswith("/sub/") for i in items)  # folders mirrored


def test_dataloop_and_voc_exports_of_the_same_images_agree(shared_data_dir) -> None:
    root = shared_data_dir / "dataloop-json" / "voc"
    from_dataloop, _ = _read(dataloop.read, FolderFiles(root / "dataloop" / "json"), {})
    from_voc, problems = _read(voc.read, FolderFiles(root / "voc" / "annotations"), {})
    assert problems == []
    boxes = {
        i.filename: sorted(
            (a["label"], *(c[k] for c in a["coordinates"] for k in "xy"))
            for a in i.annotations
            if a["type"] == "box"
        )
        for i in from_dataloop
    }
    person = next(i for i in from_voc if i.filename == "/2007_000027.jpg").annotations
    parents = [((a.get("metadata") or {}).get("system") or {}).get("parentId") for a in person]
    assert [a["label"] for a in person] == ["person", "head", "hand", "foot", "foot"]
    assert parents == [None, *[person[0]["id"]] * 4]
    archive, left_out = _written(voc.write, from_voc, [])
    again, _ = _read(voc.read, archive, {})
    assert (left_out, again) == (0, from_voc)  # parts written back as parts
    for item in from_voc:  # Dataloop's export left VOC's parts (a person's head, hands) out
        item.annotations = [
            a for a in item.annotations if "parentId" not in a["metadata"]["system"]
        ]
    assert {k: v for k, v in boxes.items() if v} == {k: v for k, v in _boxes(from_voc).items() if v}


def test_bad_dataloop_files_are_reported() -> None:
    files = _zip_of(
        {
            "a.json": json.dumps({"filename": "/a.jpg", "annotations": [{"type": "box"}, 5]}),
            "b.json": "{",
            "c.json": json.dumps({"filename": "b.jpg", "annotations": []}),
            "d.json": json.dumps({"filename": "/d.jpg"}),
        }
    )
    items, problems = _read(dataloop.read, files, {})
    assert [(i.filename, len(i.annotations)) for i in items] == [("/a.jpg", 1)]
    assert [p.where for p in problems] == ["a.json: annotations[1]", "b.json", "c.json", "d.json"]


def test_cvat_gives_the_same_boxes_as_voc_and_round_trips(sample, sizes) -> None:
    from_voc, _ = _read(voc.read, FolderFiles(sample / "voc"), sizes)
    from_cvat, problems = _read(cvat.read, FolderFiles(sample / "cvat"), sizes)
    assert problems == []
    assert _boxes(from_cvat) == _boxes(from_voc)
    assert all(attributes_of(a) == {"occluded": False} for i in from_cvat for a in i.annotations)
    labels = sorted({a["label"] for i in from_cvat for a in i.annotations})
    archive, left_out = _written(cvat.write, from_cvat, labels)
    again, problems = _read(cvat.read, archive, sizes)
    assert (left_out, problems) == (0, [])
    assert sorted((i.filename, i.width, i.height, i.annotations) for i in again) == sorted(
        (i.filename, i.width, i.height, i.annotations) for i in from_cvat
    )


def p(x: float, y: float) -> dict[str, float]:
    return {"x": x, "y": y}


CVAT_SHAPES = """<annotations><version>1.1</version><meta><task><labels>
  <label><name>car</name><attributes>
    <attribute><name>parked</name><input_type>checkbox</input_type></attribute>
    <attribute><name>doors</name><input_type>number</input_type></attribute>
    <attribute><name>color</name><input_type>select</input_type></attribute>
  </attributes></label></labels></task></meta>
<image id="0" name="sub/a.png" width="6" height="4">
  <box label="car" occluded="1" xtl="1" ytl="1" xbr="4.5" ybr="3" rotation="30">
    <attribute name="parked">true</attribute><attribute name="doors">4</attribute>
    <attribute name="color">red</attribute></box>
  <polygon label="road" occluded="0" points="0,0;5,0;5,3.5"/>
  <polyline label="lane" occluded="0" points="0,1;6,1"/>
  <points label="eye" occluded="0" points="1,1;2,2"/>
  <ellipse label="wheel" occluded="0" cx="3" cy="2" rx="1" ry="0.5" rotation="10"/>
  <mask label="sky" occluded="0" rle="1,2,1,2" left="2" top="1" width="3" height="2"/>
  <tag label="day"/>
</image></annotations>"""


def test_cvat_shapes_attributes_and_masks() -> None:
    [item], problems = _read(cvat.read, _zip_of({"annotations.xml": CVAT_SHAPES}), {})
    assert problems == []
    assert item.filename == "/sub/a.png"
    box, road, lane, eye1, eye2, wheel, sky, day = item.annotations
    attributes = {"occluded": True, "parked": True, "doors": 4, "color": "red"}
    assert box == {
        "label": "car",
        "metadata": {"system": {"attributes": attributes}},
        "type": "box",
        "coordinates": [{"x": 1, "y": 1}, {"x": 4.5, "y": 3}, 30],
    }
    assert (road["type"], road["coordinates"]) == ("segment", [[p(0, 0), p(5, 0), p(5, 3.5)]])
    assert (lane["type"], eye1["coordinates"], eye2["coordinates"]) == (
        "polyline",
        p(1, 1),
        p(2, 2),
    )
    assert wheel["coordinates"] == {"center": p(3, 2), "rx": 1, "ry": 0.5, "angle": 10}
    # the mask's rectangle (3 x 2 at 2, 1): runs 1 unset, 2 set, 1 unset, 2 set, row by row
    assert (
        list(_pixels(sky["coordinates"]))
        == [0] * 6 + [0, 0, 0, 255, 255, 0] + [0, 0, 0, 255, 255, 0] + [0] * 6
    )
    assert (day["type"], day["coordinates"]) == ("class", [])

    archive, left_out = _written(cvat.write, [item], ["car"])
    [again], problems = _read(cvat.read, archive, {})
    assert (left_out, problems) == (0, [])
    for before, after in zip(item.annotations, again.annotations, strict=True):
        if before["type"] == "binary":
            assert _pixels(before["coordinates"]) == _pixels(after["coordinates"])
            continue
        expected = dict(before)
        if before["type"] != "class":  # every shape is written with its occluded flag
            written = {"occluded": False, **attributes_of(before)}
            expected["metadata"] = {"system": {"attributes": written}}
        assert after == expected


def test_bad_cvat_records_are_reported_and_the_rest_read() -> None:
    image = """<annotations><image id="0" name="a.jpg" width="10" height="10">
      <box label="car" xtl="5" ytl="1" xbr="2" ybr="3"/>
      <box xtl="1" ytl="1" xbr="2" ybr="3"/>
      <polygon label="road" points="0,0;5,0"/>
      <polyline label="lane" points="0,x"/>
      <mask label="sky" rle="1,2" left="0" top="0" width="3" height="2"/>
      <cuboid label="box3d"/>
      <rectangle label="car"/>
      <box label="car" xtl="1" ytl="1" xbr="2" ybr="3"/>
    </image><image id="1" width="5"/></annotations>"""
    files = _zip_of({"a.xml": image, "b.xml": "<annotations>", "c.xml": "<annotation/>"})
    [item], problems = _read(cvat.read, files, {})
    assert len(item.annotations) == 1
    where = {p.where: p.message for p in problems}
    assert "inverted" in where["a.xml: image 0: <box> 1"]
    assert "label is missing" in where["a.xml: image 0: <box> 2"]
    assert "at least 3 points, got 2" in where["a.xml: image 0: <polygon> 3"]
    assert "points must be" in where["a.xml: image 0: <polyline> 4"]
    assert "rle covers 3 pixels, the rectangle 6" in where["a.xml: image 0: <mask> 5"]
    assert "xtl1 is missing" in where["a.xml: image 0: <cuboid> 6"]
    assert "<rectangle> is not a CVAT shape" in where["a.xml: image 0: <rectangle> 7"]
    assert "has no name" in where["a.xml: image 1"]
    assert "not well-formed" in where["b.xml"]
    assert "not CVAT" in where["c.xml"]


def test_polygons_of_several_rings_keep_every_ring() -> None:
    """A segment with a hole, or of two parts: CVAT writes a polygon per ring (grouped: CVAT has
    no holes), COCO a segmentation list per ring, Dataloop JSON keeps it whole, Ultralytics YOLO
    a line per ring (test above); VOC and YOLO boxes hold no segments and count them."""
    outer = [p(0, 0), p(8, 0), p(8, 8), p(0, 8)]
    hole = [p(2, 2), p(4, 2), p(4, 4)]
    far = [p(9, 1), p(10, 1), p(10, 3)]
    item = ItemAnnotations(
        "/a.png",
        [
            {"type": "segment", "label": "road", "coordinates": [outer, hole]},
            {"type": "segment", "label": "lake", "coordinates": [far]},
            {"type": "polyline", "label": "lane", "coordinates": [outer[:2], hole[:2]]},
        ],
        10,
        10,
    )
    archive, left_out = _written(cvat.write, [item], ["road", "lake", "lane"])
    assert left_out == 0
    xml = archive.open("annotations.xml").read().decode()
    assert xml.count('group_id="1"') == 2 and xml.count('group_id="2"') == 2
    assert xml.count("<polygon") == 3 and xml.count("<polyline") == 2
    [again], problems = _read(cvat.read, archive, {})
    assert problems == []
    assert [(a["type"], a["label"], a["coordinates"]) for a in again.annotations] == [
        ("segment", "road", [outer]),
        ("segment", "road", [hole]),
        ("segment", "lake", [far]),
        ("polyline", "lane", [outer[:2]]),
        ("polyline", "lane", [hole[:2]]),
    ]

    archive, left_out = _written(coco.write, [item], ["road", "lake"])
    assert left_out == 1  # the polyline
    document = json.loads(archive.open("annotations.json").read())
    road = document["annotations"][0]
    assert road["segmentation"] == [[0, 0, 8, 0, 8, 8, 0, 8], [2, 2, 4, 2, 4, 4]]
    assert road["bbox"] == [0, 0, 8, 8]  # the whole extent
    [again], _ = _read(coco.read, archive, {"/a.png": (10, 10)})
    assert again.annotations[0]["coordinates"] == [outer, hole]

    archive, left_out = _written(dataloop.write, [item], [])
    [again], problems = _read(dataloop.read, archive, {})
    assert (left_out, problems) == (0, [])
    assert [a["coordinates"] for a in again.annotations] == [
        a["coordinates"] for a in item.annotations
    ]

    for write in (voc.write, yolo.write):
        _, left_out = _written(write, [item], ["road", "lake", "lane"])
        assert left_out == 3
