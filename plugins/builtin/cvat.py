"""CVAT for images 1.1: one ``annotations.xml`` with an ``<image>`` per image.

Read: ``<box>`` (with ``rotation``, degrees, as the box's third element), ``<polygon>``,
``<polyline>``, ``<points>`` (a point each), ``<ellipse>``, ``<mask>`` (CVAT's RLE within the
mask's rectangle, row by row, as a ``binary`` mask the size of the image) and ``<tag>`` (a
``class``). ``occluded`` and each ``<attribute>`` become attributes; an attribute the task's
labels declare as ``checkbox`` or ``number`` is read as a boolean or a number, others as text.

Write: the labels with their attributes' types in ``<meta>``, then the images; boxes,
polygons, polylines, points, ellipses, masks and tags.
"""

from __future__ import annotations

import math
import posixpath
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from typing import Any
from xml.etree import ElementTree
from xml.sax.saxutils import escape, quoteattr

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
    with_attributes,
    xml_files,
)
from plugins.hookspecs import hookimpl

__all__ = ["read", "register_converters", "write"]


class _Bad(Exception):
    pass


def _float(element: ElementTree.Element, name: str) -> float:
    value = element.get(name)
    if value is None:
        raise _Bad(f"{name} is missing")
    try:
        number = float(value)
    except ValueError:
        raise _Bad(f"{name} is not a number: {value!r}") from None
    if not math.isfinite(number):
        raise _Bad(f"{name} is not a finite number")
    return int(number) if number.is_integer() else number


def _points(element: ElementTree.Element, least: int) -> list[dict[str, float]]:
    text = element.get("points") or ""
    points = []
    for pair in filter(None, text.split(";")):
        try:
            x, y = (float(n) for n in pair.split(","))
        except ValueError:
            raise _Bad(f"points must be 'x,y;x,y;...', got {pair!r}") from None
        if not (math.isfinite(x) and math.isfinite(y)):
            raise _Bad("points must be finite numbers")
        points.append({"x": int(x) if x.is_integer() else x, "y": int(y) if y.is_integer() else y})
    if len(points) < least:
        raise _Bad(f"needs at least {least} points, got {len(points)}")
    return points


def _mask(element: ElementTree.Element, width: int | None, height: int | None) -> str:
    """CVAT's mask (runs over its rectangle, row by row) as a PNG data URL of the image's size."""
    if not width or not height:
        raise _Bad("a mask needs the image's width and height")
    left, top = int(_float(element, "left")), int(_float(element, "top"))
    box_width, box_height = int(_float(element, "width")), int(_float(element, "height"))
    try:
        lengths = [int(n) for n in (element.get("rle") or "").split(",")]
    except ValueError:
        raise _Bad("rle must be whole numbers separated by commas") from None
    if any(n < 0 for n in lengths) or sum(lengths) != box_width * box_height:
        raise _Bad(f"rle covers {sum(lengths)} pixels, the rectangle {box_width * box_height}")
    alpha = Image.new("L", (width, height), 0)
    pixels = masks.filled(lengths, box_width * box_height)
    alpha.paste(Image.frombytes("L", (box_width, box_height), pixels), (left, top))
    return masks.data_url(alpha)


def _mask_opening(common: str, url: str) -> str | None:
    alpha = masks.alpha_of(url)
    box = alpha.getbbox()
    if box is None:
        return None
    left, top, right, bottom = box
    lengths = ",".join(map(str, masks.runs(alpha.crop(box).tobytes())))
    return (
        f'<mask {common} rle="{lengths}" left="{left}" top="{top}" width="{right - left}" '
        f'height="{bottom - top}" z_order="0">'
    )


def _attribute_types(root: ElementTree.Element) -> dict[tuple[str, str], str]:
    """(label, attribute) -> CVAT input type, from the task's labels."""
    types = {}
    for label in root.iter("label"):
        for attribute in label.iter("attribute"):
            name, kind = attribute.findtext("name"), attribute.findtext("input_type")
            if name and kind:
                types[(label.findtext("name") or "", name)] = kind
    return types


def _attributes(
    element: ElementTree.Element, label: str, types: dict[tuple[str, str], str]
) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    if element.get("occluded") is not None:
        attributes["occluded"] = element.get("occluded") == "1"
    for attribute in element.iter("attribute"):
        name, text = attribute.get("name") or "", attribute.text or ""
        kind = types.get((label, name))
        if kind == "checkbox":
            attributes[name] = text.strip().lower() == "true"
        elif kind == "number":
            try:
                attributes[name] = float(text) if "." in text else int(text)
            except ValueError:
                raise _Bad(f"attribute {name!r} is not a number: {text!r}") from None
        else:
            attributes[name] = text
    return attributes


def _shapes(
    element: ElementTree.Element, item: ItemAnnotations, types: dict[tuple[str, str], str]
) -> list[dict[str, Any]]:
    label = element.get("label")
    if not label:
        raise _Bad("label is missing")
    attributes = _attributes(element, label, types)
    base: dict[str, Any] = with_attributes({"label": label}, attributes)
    kind = element.tag
    if kind == "box":
        corners: list[Any] = [
            {"x": _float(element, "xtl"), "y": _float(element, "ytl")},
            {"x": _float(element, "xbr"), "y": _float(element, "ybr")},
        ]
        if corners[0]["x"] > corners[1]["x"] or corners[0]["y"] > corners[1]["y"]:
            raise _Bad("the box is inverted (xtl > xbr or ytl > ybr)")
        if element.get("rotation") not in (None, "0", "0.0"):
            corners.append(_float(element, "rotation"))
        return [{**base, "type": "box", "coordinates": corners}]
    if kind == "polygon":
        return [{**base, "type": "segment", "coordinates": [_points(element, 3)]}]
    if kind == "polyline":
        return [{**base, "type": "polyline", "coordinates": [_points(element, 2)]}]
    if kind == "points":
        return [{**base, "type": "point", "coordinates": p} for p in _points(element, 1)]
    if kind == "ellipse":
        center = {"x": _float(element, "cx"), "y": _float(element, "cy")}
        ellipse = {"center": center, "rx": _float(element, "rx"), "ry": _float(element, "ry")}
        ellipse["angle"] = _float(element, "rotation") if element.get("rotation") else 0
        return [{**base, "type": "ellipse", "coordinates": ellipse}]
    if kind == "mask":
        return [{**base, "type": "binary", "coordinates": _mask(element, item.width, item.height)}]
    if kind == "tag":
        return [{**base, "type": "class", "coordinates": []}]
    raise _Bad(f"<{kind}> is not read (cuboids, skeletons and tracks are not supported)")


def read(files: Files, sizes: Sizes) -> Iterator[ItemAnnotations | Problem]:
    for found in xml_files(files):
        if isinstance(found, Problem):
            yield found
            continue
        name, root = found
        if root.tag != "annotations":
            yield Problem(name, f"not CVAT for images (root <{root.tag}>)")
            continue
        types = _attribute_types(root)
        for image in root.iter("image"):
            where = f"{name}: image {image.get('id')}"
            if not image.get("name"):
                yield Problem(where, "the image has no name")
                continue
            filename = posixpath.join("/", image.get("name", ""))
            try:
                width, height = int(image.get("width", "")), int(image.get("height", ""))
            except ValueError:
                width, height = sizes(filename) or (None, None)
            item = ItemAnnotations(filename, [], width, height)
            for index, element in enumerate(image, start=1):
                try:
                    item.annotations += _shapes(element, item, types)
                except _Bad as error:
                    yield Problem(f"{where}: <{element.tag}> {index}", str(error))
            yield item


# --- write ----------------------------------------------------------------------------------------


def _number(value: float) -> str:
    return f"{value:.2f}"


def _joined(points: list[dict[str, float]]) -> str:
    return quoteattr(";".join(f"{_number(p['x'])},{_number(p['y'])}" for p in points))


def _element(annotation: dict[str, Any]) -> str | None:
    kind, coordinates = annotation.get("type"), annotation.get("coordinates")
    label = annotation.get("label")
    if not label:
        return None
    attributes = attributes_of(annotation)
    common = f'label={quoteattr(label)} occluded="{int(bool(attributes.get("occluded")))}"'
    if kind == "box" and isinstance(coordinates, list) and len(coordinates) in (2, 3):
        a, b = coordinates[:2]
        rotation = f' rotation="{_number(coordinates[2])}"' if len(coordinates) == 3 else ""
        tag = "box"
        opening = (
            f'<box {common} xtl="{_number(a["x"])}" ytl="{_number(a["y"])}" '
            f'xbr="{_number(b["x"])}" ybr="{_number(b["y"])}"{rotation} z_order="0">'
        )
    elif kind in ("segment", "polyline") and coordinates:
        tag = "polygon" if kind == "segment" else "polyline"
        opening = f'<{tag} {common} points={_joined(coordinates[0])} z_order="0">'
    elif kind == "point" and isinstance(coordinates, dict):
        tag = "points"
        opening = f'<points {common} points={_joined([coordinates])} z_order="0">'
    elif kind == "ellipse" and isinstance(coordinates, dict):
        center = coordinates["center"]
        tag = "ellipse"
        opening = (
            f'<ellipse {common} cx="{_number(center["x"])}" cy="{_number(center["y"])}" '
            f'rx="{_number(coordinates["rx"])}" ry="{_number(coordinates["ry"])}" '
            f'rotation="{_number(coordinates.get("angle", 0))}" z_order="0">'
        )
    elif kind == "binary" and isinstance(coordinates, str):
        tag = "mask"
        mask = _mask_opening(common, coordinates)
        if mask is None:
            return None
        opening = mask
    elif kind == "class":
        tag = "tag"
        opening = f"<tag label={quoteattr(label)}>"
    else:
        return None
    inner = "".join(
        f"<attribute name={quoteattr(str(name))}>{escape(_text(value))}</attribute>"
        for name, value in attributes.items()
        if name != "occluded"
    )
    return f"    {opening}{inner}</{tag}>\n"


def _text(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _input_type(value: Any) -> str:
    if isinstance(value, bool):
        return "checkbox"
    return "number" if isinstance(value, int | float) else "text"


def _meta(labels: Sequence[str], kinds: dict[str, dict[str, str]]) -> str:
    declared = []
    for label in labels:
        attributes = "".join(
            f"<attribute><name>{escape(name)}</name><input_type>{kind}</input_type></attribute>"
            for name, kind in kinds.get(label, {}).items()
        )
        declared.append(
            f"<label><name>{escape(label)}</name><attributes>{attributes}</attributes></label>"
        )
    return f"  <meta><task><labels>{''.join(declared)}</labels></task></meta>\n"


def write(items: Iterable[ItemAnnotations], labels: Sequence[str], output: Output) -> int:
    """The images go through a temporary file while the attributes' types are gathered for
    ``<meta>``, which comes first (flat memory at any size)."""
    left_out = 0
    kinds: dict[str, dict[str, str]] = {}
    with tempfile.TemporaryFile() as images:
        for image_id, item in enumerate(items):
            name = quoteattr(item.filename.lstrip("/"))
            images.write(
                f'  <image id="{image_id}" name={name} width="{item.width or 0}" '
                f'height="{item.height or 0}">\n'.encode()
            )
            for annotation in item.annotations:
                element = _element(annotation)
                if element is None:
                    left_out += 1
                    continue
                for key, value in attributes_of(annotation).items():
                    if key != "occluded":
                        kinds.setdefault(annotation["label"], {}).setdefault(
                            key, _input_type(value)
                        )
                images.write(element.encode())
            images.write(b"  </image>\n")
        with output.open("annotations.xml") as handle:
            handle.write(
                b'<?xml version="1.0" encoding="utf-8"?>\n<annotations>\n  <version>1.1</version>\n'
                + _meta(labels, kinds).encode()
            )
            images.seek(0)
            while chunk := images.read(1 << 20):
                handle.write(chunk)
            handle.write(b"</annotations>\n")
    return left_out


@hookimpl
def register_converters() -> list[ConverterType]:
    return [
        ConverterType(
            name="cvat",
            description="CVAT for images 1.1 XML (boxes, polygons, polylines, points, ellipses, "
            "masks, tags)",
            types=frozenset({"box", "segment", "polyline", "point", "ellipse", "binary", "class"}),
            read=read,
            write=write,
            images=images_below("images"),
        )
    ]
