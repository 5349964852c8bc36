"""YOLO: a text file per image, a line per object, class and box normalised to the image size.

Read: the class names come from ``data.yaml`` (Ultralytics: ``names`` as a list or an
``{id: name}`` map), else a ``*.names`` file (darknet, CVAT's YOLO 1.1) or ``labels.txt`` /
``classes.txt``, a name per line. Every other ``.txt`` is an image's labels: ``class cx cy w h``
(a box) or ``class x1 y1 x2 y2 x3 y3 ...`` (a polygon, Ultralytics segments), numbers in [0, 1];
lists of image paths (``train.txt``) only tell the images' extensions. A label file's image is
the file of the same name beside it, or in ``images/`` for one in ``labels/``, or in the root for
CVAT's ``obj_<subset>_data/``; pixels need the image's size, which the platform gives. The
images of an archive are those beside the label files in ``obj_<subset>_data/`` (the folder left
out of their path, as the label files' images) and the files below an ``images/`` folder
(Ultralytics: ``images/<split>/``, their path kept).

Write, two formats, numbers with 6 decimals:

- ``yolo``: CVAT's YOLO 1.1 layout (``obj.names``, ``obj.data``, ``train.txt``,
  ``obj_train_data/<image>.txt``), boxes.
- ``ultralytics``: the Ultralytics layout, boxes and polygons (a segment's rings, a line each):
  ``labels/<split>/<image>.txt`` and ``data.yaml`` (``train``, ``val`` and ``test`` as
  ``images/<split>``, ``nc``, ``names`` by class id), where the images go (an export holds
  annotations, not images). An item's split is its top folder when that is ``train``, ``val``
  or ``test`` (``/val/a/b.jpg``: ``labels/val/a/b.txt``), else ``train``; ``val`` is
  ``images/train`` when no item is in ``val`` (Ultralytics requires one). Both read back with
  either name.
"""

from __future__ import annotations

import math
import posixpath
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import yaml

from plugins.converters import (
    ConverterType,
    Files,
    ItemAnnotations,
    Output,
    Problem,
    Sizes,
    images_below,
)
from plugins.hookspecs import hookimpl

__all__ = ["image_path", "read", "register_converters", "write", "write_ultralytics"]

_NAMES_FILES = ("labels.txt", "classes.txt")
_CONTAINER = re.compile(r"obj_[A-Za-z0-9]+_data")
_IMAGE = re.compile(r"\.(jpe?g|png|bmp|gif|tiff?|webp)$", re.IGNORECASE)


class _Bad(Exception):
    pass


def _lines(files: Files, name: str) -> list[str]:
    with files.open(name) as handle:
        return handle.read().decode("utf-8-sig").splitlines()


def _names(files: Files, names: list[str]) -> tuple[str | None, list[str]]:
    """The file that names the classes, and the names by class id."""
    for name in names:
        if posixpath.basename(name) in ("data.yaml", "data.yml"):
            with files.open(name) as handle:
                data = yaml.safe_load(handle) or {}
            found = data.get("names") if isinstance(data, dict) else None
            if isinstance(found, dict):
                return name, [str(found[k]) for k in sorted(found)]
            if isinstance(found, list):
                return name, [str(n) for n in found]
    for name in names:
        base = posixpath.basename(name)
        if base.endswith(".names") or base in _NAMES_FILES:
            return name, [line.strip() for line in _lines(files, name) if line.strip()]
    return None, []


def _image_path(label_file: str) -> str:
    """Where a label file's image is, without its extension."""
    parts = posixpath.splitext(label_file)[0].split("/")
    containers = [i for i, part in enumerate(parts[:-1]) if _CONTAINER.fullmatch(part)]
    if containers:
        del parts[containers[0]]
    elif "labels" in parts[:-1]:
        at = len(parts) - 2 - parts[-2::-1].index("labels")
        parts[at] = "images"
    return "/" + "/".join(parts)


_BESIDE_LABELS = images_below("obj_*_data")


def image_path(name: str) -> str | None:
    """The item a file of an archive is the image of (see the module's docstring), or None."""
    if "images" in name.split("/")[:-1] and not posixpath.basename(name).startswith("."):
        return "/" + name
    return _BESIDE_LABELS(name) if _IMAGE.search(name) else None


def _numbers(line: str) -> list[float]:
    try:
        numbers = [float(token) for token in line.split()]
    except ValueError:
        raise _Bad(f"not numbers: {line.strip()!r}") from None
    if not all(math.isfinite(n) for n in numbers):
        raise _Bad("numbers must be finite")
    return numbers


def _annotation(numbers: list[float], names: list[str], width: int, height: int) -> dict[str, Any]:
    count = len(numbers)
    if count != 5 and (count < 7 or count % 2 == 0):
        raise _Bad(
            f"{count} numbers: a box is 'class cx cy w h' (5), a polygon 'class' and 3 or more "
            "x y pairs"
        )
    class_id = numbers[0]
    if not class_id.is_integer() or not 0 <= class_id < len(names):
        raise _Bad(f"class {numbers[0]:g} is not in the {len(names)} class names")
    if not all(0 <= n <= 1 for n in numbers[1:]):
        raise _Bad("coordinates must be normalised to [0, 1]")
    label = names[int(class_id)]

    def point(x: float, y: float) -> dict[str, float]:
        # within the image: 6 printed decimals put a box's edge a hair outside it
        return {"x": min(max(x, 0.0), 1.0) * width, "y": min(max(y, 0.0), 1.0) * height}

    if count == 5:
        cx, cy, w, h = numbers[1:]
        corners = [point(cx - w / 2, cy - h / 2), point(cx + w / 2, cy + h / 2)]
        return {"type": "box", "label": label, "coordinates": corners}
    ring = [point(x, y) for x, y in zip(numbers[1::2], numbers[2::2], strict=True)]
    return {"type": "segment", "label": label, "coordinates": [ring]}


def read(files: Files, sizes: Sizes) -> Iterator[ItemAnnotations | Problem]:
    all_names = sorted(files.names())
    names_file, names = _names(files, all_names)
    if names_file is None:
        yield Problem("", "no class names: expected data.yaml, a *.names file or labels.txt")
        return
    extensions: dict[str, str] = {}  # image path without extension -> with
    label_files = []
    for name in all_names:
        if name == names_file or not name.endswith(".txt"):
            if _IMAGE.search(name):
                extensions["/" + posixpath.splitext(name)[0]] = "/" + name
            continue
        lines = [line for line in _lines(files, name) if line.strip()]
        if lines and _IMAGE.search(lines[0].strip()):  # a list of images (train.txt)
            for line in lines:
                listed = line.strip().removeprefix("./").removeprefix("data/")
                listed = "/" + _CONTAINER.sub("", listed, count=1).lstrip("/")
                extensions[posixpath.splitext(listed)[0]] = listed
            continue
        label_files.append((name, lines))
    for name, lines in label_files:
        stem = _image_path(name)
        path = extensions.get(stem, stem)
        size = sizes(path)
        if size is None:
            yield Problem(name, f"the size of {path} is unknown: normalised boxes cannot be placed")
            continue
        item = ItemAnnotations(path, [], *size)
        for number, line in enumerate(lines, start=1):
            try:
                item.annotations.append(_annotation(_numbers(line), names, *size))
            except _Bad as error:
                yield Problem(f"{name}: line {number}", str(error))
        yield item


_SPLITS = ("train", "val", "test")


def _number(value: float) -> str:
    return f"{min(max(value, 0.0), 1.0):.6f}"


def _label_lines(
    item: ItemAnnotations, class_ids: dict[str, int], types: frozenset[str]
) -> tuple[list[str], int]:
    """The lines of an item's label file (normalised to its size), and how many of its
    annotations they cannot hold (another type, a label not in the list, an image of unknown
    size)."""
    lines: list[str] = []
    left_out = 0
    width, height = item.width, item.height
    for annotation in item.annotations:
        class_id = class_ids.get(annotation.get("label") or "")
        kind, coordinates = annotation.get("type"), annotation.get("coordinates")
        if kind not in types or class_id is None or not width or not height or not coordinates:
            left_out += 1
        elif kind == "box":
            a, b = coordinates[:2]
            cx, cy = (a["x"] + b["x"]) / 2 / width, (a["y"] + b["y"]) / 2 / height
            w, h = abs(b["x"] - a["x"]) / width, abs(b["y"] - a["y"]) / height
            lines.append(f"{class_id} {' '.join(_number(n) for n in (cx, cy, w, h))}\n")
        else:  # a segment: a line per ring (YOLO's polygon has one)
            for ring in coordinates:
                numbers = (n for p in ring for n in (p["x"] / width, p["y"] / height))
                lines.append(f"{class_id} {' '.join(_number(n) for n in numbers)}\n")
    return lines, left_out


def write(items: Iterable[ItemAnnotations], labels: Sequence[str], output: Output) -> int:
    class_ids = {label: i for i, label in enumerate(labels)}
    left_out = 0
    listed = []
    for item in items:
        path = item.filename.lstrip("/")
        listed.append(f"data/obj_train_data/{path}\n")
        lines, missed = _label_lines(item, class_ids, frozenset({"box"}))
        left_out += missed
        with output.open(f"obj_train_data/{posixpath.splitext(path)[0]}.txt") as handle:
            handle.write("".join(lines).encode())
    with output.open("obj.names") as handle:
        handle.write("".join(f"{label}\n" for label in labels).encode())
    with output.open("obj.data") as handle:
        handle.write(
            f"classes = {len(labels)}\ntrain = data/train.txt\nnames = data/obj.names\n"
            "backup = backup/\n".encode()
        )
    with output.open("train.txt") as handle:
        handle.write("".join(listed).encode())
    return left_out


def _split(filename: str) -> tuple[str, str]:
    """An item's split and its path within it (``/val/a/b.jpg``: ``val``, ``a/b.jpg``)."""
    top, _, rest = filename.lstrip("/").partition("/")
    return (top, rest) if top in _SPLITS and rest else ("train", filename.lstrip("/"))


def write_ultralytics(
    items: Iterable[ItemAnnotations], labels: Sequence[str], output: Output
) -> int:
    class_ids = {label: i for i, label in enumerate(labels)}
    left_out = 0
    splits: set[str] = set()
    for item in items:
        split, path = _split(item.filename)
        splits.add(split)
        lines, missed = _label_lines(item, class_ids, frozenset({"box", "segment"}))
        left_out += missed
        with output.open(f"labels/{split}/{posixpath.splitext(path)[0]}.txt") as handle:
            handle.write("".join(lines).encode())
    data: dict[str, Any] = {
        "train": "images/train",
        "val": "images/val" if "val" in splits else "images/train",
    }
    if "test" in splits:
        data["test"] = "images/test"
    data.update(nc=len(labels), names=dict(enumerate(labels)))
    with output.open("data.yaml") as handle:
        handle.write(yaml.safe_dump(data, allow_unicode=True, sort_keys=False).encode())
    return left_out


@hookimpl
def register_converters() -> list[ConverterType]:
    return [
        ConverterType(
            name="yolo",
            description="YOLO text files, normalised (reads YOLO 1.1 and Ultralytics layouts; "
            "writes YOLO 1.1 boxes)",
            types=frozenset({"box"}),
            read=read,
            write=write,
            images=image_path,
        ),
        ConverterType(
            name="ultralytics",
            description="YOLO in the Ultralytics layout (data.yaml, labels/<split>/): boxes "
            "and polygons (reads YOLO 1.1 too)",
            types=frozenset({"box", "segment"}),
            read=read,
            write=write_ultralytics,
            images=image_path,
        ),
    ]
