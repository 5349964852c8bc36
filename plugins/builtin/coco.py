"""COCO detection JSON: ``images``, ``annotations`` and ``categories`` in one file.

Read (every ``*.json`` holding ``images`` and ``annotations``): an annotation with polygons in
``segmentation`` becomes a ``segment`` whose rings are the object's parts; with an RLE
(``{counts, size}``, plain or compressed) a ``binary`` mask; with neither, a ``box`` from
``bbox``; ``keypoints`` (of a category naming them) a ``pose`` with a child ``point`` per
labelled keypoint (visibility as an attribute). ``attributes`` (as CVAT writes them) are kept.
A category's ``name`` is the label as it is (``supercategory`` is not prefixed: COCO's own files
would otherwise all change labels).

Write (``annotations.json``): streamed, so an export holds one image at a time in memory: the
annotations are written as they come, the images through a temporary file, the categories at
the end (a label ``animal.dog`` is the category ``animal.dog`` with the supercategory
``animal``).
"""

from __future__ import annotations

import math
import posixpath
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from PIL import Image

from plugins.builtin import masks
from plugins.converters import (
    ConverterType,
    Files,
    ItemAnnotations,
    Output,
    Problem,
    Sizes,
    attributes_of,
    images_below,
    json_bytes,
    json_files,
    with_attributes,
)
from plugins.hookspecs import hookimpl

__all__ = ["read", "register_converters", "write"]


class _Bad(Exception):
    pass


# --- RLE ------------------------------------------------------------------------------------------


def _counts(counts: Any) -> list[int]:
    """Run lengths of an RLE: a list as is, or COCO's compressed string (5 bits a character,
    continuation bit 0x20, sign bit 0x10 on the last, runs after the second stored as the
    difference to the run two before)."""
    if isinstance(counts, list):
        if not all(isinstance(c, int) and c >= 0 for c in counts):
            raise _Bad("RLE counts must be whole numbers >= 0")
        return counts
    if not isinstance(counts, str):
        raise _Bad("RLE counts must be a list or a string")
    runs: list[int] = []
    position = 0
    while position < len(counts):
        value, shift, more = 0, 0, True
        while more:
            if position >= len(counts):
                raise _Bad("RLE string ends inside a number")
            chunk = ord(counts[position]) - 48
            value |= (chunk & 0x1F) << (5 * shift)
            more = bool(chunk & 0x20)
            position += 1
            shift += 1
            if not more and chunk & 0x10:
                value |= -1 << (5 * shift)
        if len(runs) > 2:
            value += runs[-2]
        if value < 0:
            raise _Bad("RLE string decodes to a negative run")
        runs.append(value)
    return runs


def _mask_url(rle: dict[str, Any]) -> str:
    """A COCO RLE (column-major runs) as a PNG data URL."""
    size = rle.get("size")
    if not (
        isinstance(size, list)
        and len(size) == 2
        and all(isinstance(n, int) and n > 0 for n in size)
    ):
        raise _Bad("RLE size must be [height, width]")
    height, width = size
    lengths = _counts(rle.get("counts"))
    if sum(lengths) != width * height:
        raise _Bad(f"RLE runs cover {sum(lengths)} pixels, the mask has {width * height}")
    columns = Image.frombytes("L", (height, width), masks.filled(lengths, width * height))
    return masks.data_url(columns.transpose(Image.Transpose.TRANSPOSE))


def _rle(url: str) -> tuple[dict[str, Any], list[int]]:
    """A PNG data URL mask as an uncompressed COCO RLE, and its bbox."""
    alpha = masks.alpha_of(url)
    width, height = alpha.size
    lengths = masks.runs(alpha.transpose(Image.Transpose.TRANSPOSE).tobytes())
    left, top, right, bottom = alpha.getbbox() or (0, 0, 0, 0)
    return {"size": [height, width], "counts": lengths}, [left, top, right - left, bottom - top]


# --- read -----------------------------------------------------------------------------------------


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _Bad(f"{what} must be a finite number, got {value!r}")
    return value


def _polygons(segmentation: list[Any]) -> list[list[dict[str, float]]]:
    rings = []
    for part in segmentation:
        if not isinstance(part, list) or len(part) < 6 or len(part) % 2:
            raise _Bad("a polygon is a list of 3 or more x, y pairs")
        numbers = [_number(n, "a polygon coordinate") for n in part]
        rings.append([{"x": x, "y": y} for x, y in zip(numbers[::2], numbers[1::2], strict=True)])
    return rings


def _shapes(raw: dict[str, Any], category: dict[str, Any]) -> list[dict[str, Any]]:
    label = category["name"]
    attributes = raw.get("attributes") if isinstance(raw.get("attributes"), dict) else {}

    def shape(kind: str, coordinates: Any, **more: Any) -> dict[str, Any]:
        found = {"label": label, "type": kind, "coordinates": coordinates, **more}
        return with_attributes(found, dict(attributes)) if attributes else found

    keypoints = raw.get("keypoints")
    if keypoints:
        names = category.get("keypoints") or []
        if len(keypoints) != 3 * len(names):
            raise _Bad(f"{len(keypoints)} keypoint numbers for {len(names)} named keypoints")
        pose_id = f"coco:{raw['id']}"
        shapes = [shape("pose", {}, id=pose_id)]
        triples = [keypoints[i : i + 3] for i in range(0, len(keypoints), 3)]
        for name, (x, y, visibility) in zip(names, triples, strict=True):
            if visibility:
                point = {"x": _number(x, "a keypoint x"), "y": _number(y, "a keypoint y")}
                system = {"parentId": pose_id, "attributes": {"visibility": visibility}}
                shapes.append(
                    {
                        "type": "point",
                        "label": name,
                        "coordinates": point,
                        "metadata": {"system": system},
                    }
                )
        return shapes
    segmentation = raw.get("segmentation")
    if isinstance(segmentation, dict):
        return [shape("binary", _mask_url(segmentation))]
    if segmentation:
        if not isinstance(segmentation, list):
            raise _Bad("segmentation must be polygons or an RLE")
        return [shape("segment", _polygons(segmentation))]
    bbox = raw.get("bbox")
    if not isinstance(bbox, list) or len(bbox) != 4:
        raise _Bad("bbox must be [x, y, width, height]")
    x, y, w, h = bbox
    for n in bbox:  # the usual numbers passed with two comparisons (n - n is 0 when finite)
        if n.__class__ is not float and n.__class__ is not int or n - n != 0:
            _number(n, "a bbox number")
    if w < 0 or h < 0:
        raise _Bad(f"bbox has a negative size ({w} x {h})")
    return [shape("box", [{"x": x, "y": y}, {"x": x + w, "y": y + h}])]


def _read_file(name: str, data: Any) -> Iterator[ItemAnnotations | Problem]:
    categories = {c.get("id"): c for c in data.get("categories") or [] if isinstance(c, dict)}
    items: dict[Any, ItemAnnotations] = {}
    for index, image in enumerate(data["images"]):
        if not isinstance(image, dict) or not image.get("file_name") or "id" not in image:
            yield Problem(f"{name}: images[{index}]", "an image needs id and file_name")
            continue
        width, height = image.get("width"), image.get("height")
        sized = all(isinstance(n, int) and n > 0 for n in (width, height))
        filename = posixpath.join("/", image["file_name"])
        items[image["id"]] = ItemAnnotations(
            filename, [], *((width, height) if sized else (None, None))
        )
    for index, raw in enumerate(data["annotations"]):
        where = f"{name}: annotations[{index}]"
        if not isinstance(raw, dict):
            yield Problem(where, "an annotation is an object")
            continue
        item = items.get(raw.get("image_id"))
        category = categories.get(raw.get("category_id"))
        if item is None:
            yield Problem(where, f"image_id {raw.get('image_id')!r} is not in images")
        elif category is None or not category.get("name"):
            yield Problem(where, f"category_id {raw.get('category_id')!r} is not in categories")
        else:
            try:
                item.annotations.extend(_shapes(raw, category))
            except _Bad as error:
                yield Problem(where, str(error))
    yield from items.values()


def read(files: Files, sizes: Sizes) -> Iterator[ItemAnnotations | Problem]:
    for found in json_files(files):
        if isinstance(found, Problem):
            yield found
            continue
        name, data = found
        if not isinstance(data, dict) or not all(
            isinstance(data.get(k), list) for k in ("images", "annotations")
        ):
            yield Problem(name, "not COCO: expected lists of images and annotations")
            continue
        for record in _read_file(name, data):
            if isinstance(record, ItemAnnotations) and record.width is None:
                record.width, record.height = sizes(record.filename) or (None, None)
            yield record


# --- write ----------------------------------------------------------------------------------------


def _parent(annotation: dict[str, Any]) -> Any:
    return ((annotation.get("metadata") or {}).get("system") or {}).get("parentId")


def _bounds(points: list[dict[str, float]]) -> list[float]:
    xs, ys = [p["x"] for p in points], [p["y"] for p in points]
    return [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]


def _area(ring: list[dict[str, float]]) -> float:
    pairs = zip(ring, ring[1:] + ring[:1], strict=True)
    return abs(sum(a["x"] * b["y"] - b["x"] * a["y"] for a, b in pairs)) / 2


class _Writer:
    def __init__(self, labels: Sequence[str]) -> None:
        self.category_ids = {label: i for i, label in enumerate(labels, start=1)}
        self.keypoints: dict[str, list[str]] = {}  # category -> keypoint names, first seen order
        self.next_id = 1
        self.left_out = 0

    def annotations(self, item: ItemAnnotations, image_id: int) -> Iterator[dict[str, Any]]:
        children: dict[Any, list[dict[str, Any]]] = {}
        tops = []
        for annotation in item.annotations:
            parent = _parent(annotation) if annotation.get("type") == "point" else None
            if parent is None:
                tops.append(annotation)
            else:  # written with its pose
                children.setdefault(parent, []).append(annotation)
        for annotation in tops:
            category_id = self.category_ids.get(annotation.get("label") or "")
            shape = self.shape(annotation, children.get(annotation.get("id"), []))
            if category_id is None or shape is None:
                self.left_out += 1
                continue
            shape.update(id=self.next_id, image_id=image_id, category_id=category_id, iscrowd=0)
            attributes = attributes_of(annotation)
            if attributes:
                shape["attributes"] = attributes
            self.next_id += 1
            yield shape

    def shape(
        self, annotation: dict[str, Any], points: list[dict[str, Any]]
    ) -> dict[str, Any] | None:
        kind, coordinates = annotation.get("type"), annotation.get("coordinates")
        if kind == "box" and isinstance(coordinates, list) and len(coordinates) == 2:
            (x1, y1), (x2, y2) = ((p["x"], p["y"]) for p in coordinates)
            width, height = abs(x2 - x1), abs(y2 - y1)
            box = [min(x1, x2), min(y1, y2), width, height]
            return {"bbox": box, "area": width * height, "segmentation": []}
        if kind == "segment" and coordinates:
            flat = [[n for p in ring for n in (p["x"], p["y"])] for ring in coordinates]
            area = sum(_area(ring) for ring in coordinates)
            return {
                "bbox": _bounds([p for r in coordinates for p in r]),
                "area": area,
                "segmentation": flat,
            }
        if kind == "binary" and isinstance(coordinates, str):
            rle, box = _rle(coordinates)
            return {"bbox": box, "area": sum(rle["counts"][1::2]), "segmentation": rle}
        if kind == "pose":
            names = self.keypoints.setdefault(annotation["label"], [])
            for point in points:
                if point["label"] not in names:
                    names.append(point["label"])
            by_name = {p["label"]: p for p in points}
            keypoints: list[float] = []
            for name in names:
                point = by_name.get(name)
                visibility = attributes_of(point).get("visibility", 2) if point else 0
                keypoints += (
                    [point["coordinates"]["x"], point["coordinates"]["y"], visibility]
                    if point
                    else [0, 0, 0]
                )
            located = [p["coordinates"] for p in points]
            box = _bounds(located) if located else [0, 0, 0, 0]
            return {
                "bbox": box,
                "area": box[2] * box[3],
                "segmentation": [],
                "keypoints": keypoints,
                "num_keypoints": len(points),
            }
        return None

    def categories(self) -> list[dict[str, Any]]:
        categories = []
        for label, category_id in self.category_ids.items():
            category = {"id": category_id, "name": label, "supercategory": label.rpartition(".")[0]}
            if label in self.keypoints:
                category.update(keypoints=self.keypoints[label], skeleton=[])
            categories.append(category)
        return categories


def write(items: Iterable[ItemAnnotations], labels: Sequence[str], output: Output) -> int:
    writer = _Writer(labels)
    with tempfile.TemporaryFile() as images, output.open("annotations.json") as handle:
        handle.write(b'{"info": {"description": "exported by Loopline"}, "annotations": [')
        first = True
        for image_id, item in enumerate(items, start=1):
            image = {
                "id": image_id,
                "file_name": item.filename.lstrip("/"),
                "width": item.width or 0,
                "height": item.height or 0,
            }
            images.write((b"," if image_id > 1 else b"") + json_bytes(image))
            for shape in writer.annotations(item, image_id):
                handle.write((b"" if first else b",") + json_bytes(shape))
                first = False
        handle.write(b'], "images": [')
        images.seek(0)
        while chunk := images.read(1 << 20):
            handle.write(chunk)
        handle.write(b'], "categories": ' + json_bytes(writer.categories()) + b"}")
    return writer.left_out


@hookimpl
def register_converters() -> list[ConverterType]:
    return [
        ConverterType(
            name="coco",
            description="COCO detection JSON (boxes, polygons, RLE masks, keypoints)",
            types=frozenset({"box", "segment", "binary", "pose", "point"}),
            read=read,
            write=write,
            images=images_below("images"),
        )
    ]
