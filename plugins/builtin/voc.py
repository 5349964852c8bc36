"""Pascal VOC: one XML per image with its size and a ``bndbox`` per object.

Each ``*.xml`` names its image in ``<filename>``, in the XML's folder. Objects become boxes with
the corners as given (VOC's pixel numbers are kept, not shifted); ``pose``, ``truncated``,
``difficult`` and ``occluded`` become attributes; parts (``<part>``: a person's head, hands,
feet) become boxes whose ``metadata.system.parentId`` is their object, and are written back as
parts.
"""

from __future__ import annotations

import math
import posixpath
from collections.abc import Iterable, Iterator, Sequence
from typing import Any
from xml.etree import ElementTree

from plugins.converters import (
    ConverterType,
    Files,
    ItemAnnotations,
    Output,
    Problem,
    Sizes,
    attributes_of,
    images_below,
    with_attributes,
    xml_files,
)
from plugins.hookspecs import hookimpl

__all__ = ["read", "register_converters", "write"]

_FLAGS = ("truncated", "difficult", "occluded")


class _Bad(Exception):
    pass


def _text(element: ElementTree.Element, tag: str) -> str | None:
    found = element.find(tag)
    return None if found is None or found.text is None else found.text.strip()


def _number(element: ElementTree.Element, tag: str) -> float:
    value = _text(element, tag)
    if value is None:
        raise _Bad(f"<{tag}> is missing")
    try:
        number = float(value)
    except ValueError:
        raise _Bad(f"<{tag}> is not a number: {value!r}") from None
    if not math.isfinite(number):
        raise _Bad(f"<{tag}> is not a finite number: {value!r}")
    return int(number) if number.is_integer() else number


def _box(element: ElementTree.Element) -> dict[str, Any]:
    label = _text(element, "name")
    if not label:
        raise _Bad("<name> is missing")
    box = element.find("bndbox")
    if box is None:
        raise _Bad("<bndbox> is missing")
    xmin, ymin, xmax, ymax = (_number(box, tag) for tag in ("xmin", "ymin", "xmax", "ymax"))
    if xmin > xmax or ymin > ymax:
        raise _Bad(f"the box is inverted (xmin {xmin}, xmax {xmax}, ymin {ymin}, ymax {ymax})")
    attributes: dict[str, Any] = {}
    pose = _text(element, "pose")
    if pose:
        attributes["pose"] = pose
    for flag in _FLAGS:
        value = _text(element, flag)
        if value is not None:
            attributes[flag] = value in ("1", "true")
    annotation: dict[str, Any] = {
        "type": "box",
        "label": label,
        "coordinates": [{"x": xmin, "y": ymin}, {"x": xmax, "y": ymax}],
    }
    return with_attributes(annotation, attributes)


def _size(root: ElementTree.Element) -> tuple[int | None, int | None]:
    size = root.find("size")
    if size is None:
        return None, None
    width, height = _number(size, "width"), _number(size, "height")
    if width <= 0 or height <= 0:
        return None, None  # VOC files made without the image often say 0
    return int(width), int(height)


def read(files: Files, sizes: Sizes) -> Iterator[ItemAnnotations | Problem]:
    for found in xml_files(files):
        if isinstance(found, Problem):
            yield found
            continue
        name, root = found
        if root.tag != "annotation":
            yield Problem(name, f"not a VOC annotation (root <{root.tag}>)")
            continue
        filename = _text(root, "filename")
        if not filename:
            yield Problem(name, "<filename> is missing")
            continue
        try:
            width, height = _size(root)
        except _Bad as error:
            yield Problem(f"{name}: <size>", str(error))
            width = height = None
        path = posixpath.join("/", posixpath.dirname(name), filename)
        if width is None or height is None:
            width, height = sizes(path) or (None, None)
        item = ItemAnnotations(path, [], width, height)
        for index, element in enumerate(root.iter("object"), start=1):
            try:
                box = _box(element)
                parts = [_box(part) for part in element.iter("part")]
            except _Bad as error:
                yield Problem(f"{name}: object {index}", str(error))
                continue
            item.annotations.append(box)
            if parts:
                box["id"] = f"voc:{index}"
                for part in parts:
                    part.setdefault("metadata", {}).setdefault("system", {})["parentId"] = box["id"]
                item.annotations += parts
        yield item


def _element(parent: ElementTree.Element, tag: str, text: Any) -> ElementTree.Element:
    child = ElementTree.SubElement(parent, tag)
    child.text = str(text)
    return child


def _document(item: ItemAnnotations) -> tuple[ElementTree.ElementTree, int]:
    root = ElementTree.Element("annotation")
    _element(root, "folder", posixpath.dirname(item.filename).strip("/"))
    _element(root, "filename", posixpath.basename(item.filename))
    size = ElementTree.SubElement(root, "size")
    for tag, value in (("width", item.width or 0), ("height", item.height or 0), ("depth", 3)):
        _element(size, tag, value)
    boxes = [a for a in item.annotations if _is_box(a)]
    parts: dict[Any, list[dict[str, Any]]] = {}
    for annotation in boxes:
        parent = ((annotation.get("metadata") or {}).get("system") or {}).get("parentId")
        if parent is not None:
            parts.setdefault(parent, []).append(annotation)
    in_parts = {id(a) for group in parts.values() for a in group}
    objects = [a for a in boxes if id(a) not in in_parts]
    written = len(objects)
    for annotation in objects:
        element = ElementTree.SubElement(root, "object")
        _element(element, "name", annotation["label"])
        attributes = attributes_of(annotation)
        _element(element, "pose", attributes.get("pose", "Unspecified"))
        for flag in ("truncated", "difficult"):
            _element(element, flag, int(bool(attributes.get(flag, False))))
        if "occluded" in attributes:
            _element(element, "occluded", int(bool(attributes["occluded"])))
        _bndbox(element, annotation)
        for part in parts.get(annotation.get("id"), []) if annotation.get("id") else []:
            part_element = ElementTree.SubElement(element, "part")
            _element(part_element, "name", part["label"])
            _bndbox(part_element, part)
            written += 1
    ElementTree.indent(root, space="\t")
    return ElementTree.ElementTree(root), len(item.annotations) - written


def _is_box(annotation: dict[str, Any]) -> bool:
    coordinates = annotation.get("coordinates") or []
    return (
        annotation.get("type") == "box" and len(coordinates) == 2 and bool(annotation.get("label"))
    )


def _bndbox(parent: ElementTree.Element, annotation: dict[str, Any]) -> None:
    box = ElementTree.SubElement(parent, "bndbox")
    a, b = annotation["coordinates"]
    for tag, value in (("xmin", a["x"]), ("ymin", a["y"]), ("xmax", b["x"]), ("ymax", b["y"])):
        _element(box, tag, value)


def write(items: Iterable[ItemAnnotations], labels: Sequence[str], output: Output) -> int:
    left_out = 0
    for item in items:
        document, skipped = _document(item)
        left_out += skipped
        stem = posixpath.splitext(item.filename.lstrip("/"))[0]
        with output.open(f"{stem}.xml") as handle:
            document.write(handle, encoding="utf-8", xml_declaration=False)
    return left_out


@hookimpl
def register_converters() -> list[ConverterType]:
    return [
        ConverterType(
            name="voc",
            description="Pascal VOC XML, one file per image (boxes)",
            types=frozenset({"box"}),
            read=read,
            write=write,
            images=images_below("JPEGImages"),
        )
    ]
