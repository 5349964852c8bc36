"""CVAT's shape elements, the same in an ``<image>`` and a ``<track>``, to and from Dataloop's
types and coordinates.

``<box>`` is a ``box`` (``rotation``, degrees, its third element), ``<polygon>`` a ``segment``,
``<polyline>`` a ``polyline``, ``<points>`` a ``point`` each, ``<ellipse>`` an ``ellipse``,
``<mask>`` (CVAT's RLE within the mask's rectangle, row by row) a ``binary`` mask the size of
the image, ``<cuboid>`` a ``cube``: CVAT's first face (``xtl1`` ... ``ybr1``) is the cube's front,
its second (``*2``) the back, each corner ``{x, y}``; a Dataloop cube turned by an ``angle``
has no CVAT form. A ``<skeleton>``'s parts are ``<points>`` of one point, labelled with the
skeleton's sublabels. ``occluded`` and each ``<attribute>`` become attributes; an attribute
the task's labels declare as ``checkbox`` or ``number`` is read as a boolean or a number,
others as text.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any
from xml.etree import ElementTree
from xml.sax.saxutils import escape, quoteattr

from PIL import Image

from plugins.builtin import masks
from plugins.builtin.cvat_meta import Meta

__all__ = [
    "Bad",
    "Part",
    "attributes",
    "attributes_xml",
    "flag",
    "geometry",
    "geometry_xml",
    "rings",
    "number_text",
    "one_point",
    "parts",
    "part_xml",
]

_CORNERS = ("tl", "bl", "tr", "br")  # CVAT's order within a face
_FACES = (("front", "1"), ("back", "2"))


class Bad(Exception):
    """A shape that cannot be read; the message says why."""


def _float(element: ElementTree.Element, name: str) -> float:
    value = element.get(name)
    if value is None:
        raise Bad(f"{name} is missing")
    try:
        number = float(value)
    except ValueError:
        raise Bad(f"{name} is not a number: {value!r}") from None
    if not math.isfinite(number):
        raise Bad(f"{name} is not a finite number")
    return int(number) if number.is_integer() else number


def flag(element: ElementTree.Element, name: str, default: bool = False) -> bool:
    """A ``0``/``1`` attribute of the element."""
    value = element.get(name)
    return default if value is None else value.strip() == "1"


def _points(element: ElementTree.Element, least: int) -> list[dict[str, float]]:
    text = element.get("points") or ""
    points = []
    for pair in filter(None, text.split(";")):
        try:
            x, y = (float(n) for n in pair.split(","))
        except ValueError:
            raise Bad(f"points must be 'x,y;x,y;...', got {pair!r}") from None
        if not (math.isfinite(x) and math.isfinite(y)):
            raise Bad("points must be finite numbers")
        points.append({"x": int(x) if x.is_integer() else x, "y": int(y) if y.is_integer() else y})
    if len(points) < least:
        raise Bad(f"needs at least {least} points, got {len(points)}")
    return points


def one_point(element: ElementTree.Element) -> dict[str, float]:
    """The one point of a ``<points>`` that stands for a single Dataloop point (a track's, a
    skeleton's part)."""
    points = _points(element, 1)
    if len(points) > 1:
        raise Bad(f"holds {len(points)} points where one is read (a Dataloop point is one)")
    return points[0]


def _mask(element: ElementTree.Element, width: int | None, height: int | None) -> str:
    """CVAT's mask (runs over its rectangle, row by row) as a PNG data URL of the image's size."""
    if not width or not height:
        raise Bad("a mask needs the image's width and height")
    left, top = int(_float(element, "left")), int(_float(element, "top"))
    box_width, box_height = int(_float(element, "width")), int(_float(element, "height"))
    try:
        lengths = [int(n) for n in (element.get("rle") or "").split(",")]
    except ValueError:
        raise Bad("rle must be whole numbers separated by commas") from None
    if any(n < 0 for n in lengths) or sum(lengths) != box_width * box_height:
        raise Bad(f"rle covers {sum(lengths)} pixels, the rectangle {box_width * box_height}")
    alpha = Image.new("L", (width, height), 0)
    pixels = masks.filled(lengths, box_width * box_height)
    alpha.paste(Image.frombytes("L", (box_width, box_height), pixels), (left, top))
    return masks.data_url(alpha)


def geometry(
    element: ElementTree.Element, width: int | None, height: int | None
) -> tuple[str, Any]:
    """The Dataloop type and coordinates of a shape element; ``<points>`` gives a list of
    points (images read a ``point`` each)."""
    kind = element.tag
    if kind == "box":
        corners: list[Any] = [
            {"x": _float(element, "xtl"), "y": _float(element, "ytl")},
            {"x": _float(element, "xbr"), "y": _float(element, "ybr")},
        ]
        if corners[0]["x"] > corners[1]["x"] or corners[0]["y"] > corners[1]["y"]:
            raise Bad("the box is inverted (xtl > xbr or ytl > ybr)")
        if element.get("rotation") not in (None, "0", "0.0", "0.00"):
            corners.append(_float(element, "rotation"))
        return "box", corners
    if kind == "polygon":
        return "segment", [_points(element, 3)]
    if kind == "polyline":
        return "polyline", [_points(element, 2)]
    if kind == "points":
        return "point", _points(element, 1)
    if kind == "ellipse":
        center = {"x": _float(element, "cx"), "y": _float(element, "cy")}
        ellipse = {"center": center, "rx": _float(element, "rx"), "ry": _float(element, "ry")}
        ellipse["angle"] = _float(element, "rotation") if element.get("rotation") else 0
        return "ellipse", ellipse
    if kind == "mask":
        return "binary", _mask(element, width, height)
    if kind == "cuboid":
        return "cube", {
            f"{face}_{corner}": {
                "x": _float(element, f"x{corner}{n}"),
                "y": _float(element, f"y{corner}{n}"),
            }
            for face, n in _FACES
            for corner in _CORNERS
        }
    raise Bad(f"<{kind}> is not a CVAT shape")


def attributes(
    element: ElementTree.Element, label: str, types: dict[tuple[str, str], str]
) -> dict[str, Any]:
    """``occluded`` and the element's own ``<attribute>`` children (not its parts')."""
    found: dict[str, Any] = {}
    if element.get("occluded") is not None:
        found["occluded"] = flag(element, "occluded")
    for attribute in element.findall("attribute"):
        name, text = attribute.get("name") or "", attribute.text or ""
        kind = types.get((label, name))
        if kind == "checkbox":
            found[name] = text.strip().lower() == "true"
        elif kind == "number":
            try:
                found[name] = float(text) if "." in text else int(text)
            except ValueError:
                raise Bad(f"attribute {name!r} is not a number: {text!r}") from None
        else:
            found[name] = text
    return found


@dataclass
class Part:
    """A part (point) of a skeleton as one shape of it holds it."""

    label: str
    point: dict[str, float]
    attributes: dict[str, Any]
    outside: bool
    keyframe: bool


def parts(skeleton: ElementTree.Element, label: str, meta: Meta) -> list[Part]:
    """The parts of a ``<skeleton>`` of ``label``, each labelled with one of the skeleton's
    sublabels when the task declares them."""
    declared = meta.sublabels.get(label)
    found: list[Part] = []
    for index, element in enumerate(skeleton, start=1):
        if element.tag == "attribute":
            continue
        if element.tag != "points":
            raise Bad(f"part {index} is a <{element.tag}>: a skeleton's parts are <points>")
        name = element.get("label")
        if not name:
            raise Bad(f"part {index} has no label")
        if declared and name not in declared:
            raise Bad(
                f"part {index}: label {name!r} is not a sublabel of skeleton {label!r}; "
                f"its sublabels: {', '.join(declared)}"
            )
        if any(part.label == name for part in found):
            raise Bad(f"part {index}: the skeleton has two parts labelled {name!r}")
        try:
            point = one_point(element)
        except Bad as error:
            raise Bad(f"part {index} ({name}): {error}") from None
        found.append(
            Part(
                name,
                point,
                attributes(element, name, meta.types),
                flag(element, "outside"),
                flag(element, "keyframe", default=True),
            )
        )
    return found


# --- write ----------------------------------------------------------------------------------------


def number_text(value: float) -> str:
    """A coordinate as CVAT writes it (2 decimals), or in full where 2 decimals would change it."""
    short = f"{value:.2f}"
    return short if float(short) == value else repr(float(value))


def _joined(points: list[dict[str, float]]) -> str:
    return quoteattr(";".join(f"{number_text(p['x'])},{number_text(p['y'])}" for p in points))


def _mask_xml(url: str) -> str | None:
    alpha = masks.alpha_of(url)
    box = alpha.getbbox()
    if box is None:
        return None
    left, top, right, bottom = box
    lengths = ",".join(map(str, masks.runs(alpha.crop(box).tobytes())))
    return (
        f'rle="{lengths}" left="{left}" top="{top}" width="{right - left}" height="{bottom - top}"'
    )


def geometry_xml(kind: Any, coordinates: Any) -> tuple[str, str] | None:
    """The CVAT tag and geometry attributes of Dataloop coordinates of type ``kind``; None when
    CVAT has no such shape (or the mask is empty; a segment of several rings is several shapes:
    :func:`rings`)."""
    n = number_text
    if kind == "box" and isinstance(coordinates, list) and len(coordinates) in (2, 3):
        a, b = coordinates[:2]
        rotation = f' rotation="{n(coordinates[2])}"' if len(coordinates) == 3 else ""
        return (
            "box",
            f'xtl="{n(a["x"])}" ytl="{n(a["y"])}" xbr="{n(b["x"])}" ybr="{n(b["y"])}"{rotation}',
        )
    if kind in ("segment", "polyline") and isinstance(coordinates, list) and len(coordinates) == 1:
        return ("polygon" if kind == "segment" else "polyline"), f"points={_joined(coordinates[0])}"
    if kind == "point" and isinstance(coordinates, dict):
        return "points", f"points={_joined([coordinates])}"
    if kind == "ellipse" and isinstance(coordinates, dict):
        center = coordinates["center"]
        return "ellipse", (
            f'cx="{n(center["x"])}" cy="{n(center["y"])}" rx="{n(coordinates["rx"])}" '
            f'ry="{n(coordinates["ry"])}" rotation="{n(coordinates.get("angle", 0))}"'
        )
    if kind == "binary" and isinstance(coordinates, str):
        mask = _mask_xml(coordinates)
        return None if mask is None else ("mask", mask)
    if kind == "cube" and isinstance(coordinates, dict) and not coordinates.get("angle"):
        return "cuboid", " ".join(
            f'x{corner}{i}="{n(coordinates[f"{face}_{corner}"]["x"])}" '
            f'y{corner}{i}="{n(coordinates[f"{face}_{corner}"]["y"])}"'
            for face, i in _FACES
            for corner in _CORNERS
        )
    return None


def rings(kind: Any, coordinates: Any) -> list[Any]:
    """The coordinates of each CVAT shape an annotation becomes: a ``segment`` or ``polyline``
    of several rings (a polygon with holes, or of several parts) a shape per ring, as CVAT's
    polygons have no holes; any other annotation one."""
    if kind in ("segment", "polyline") and isinstance(coordinates, list) and len(coordinates) > 1:
        return [[ring] for ring in coordinates]
    return [coordinates]


def _text(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def attributes_xml(attributes: dict[str, Any]) -> str:
    """``<attribute>`` children for attributes by name (``occluded`` is the shape's flag)."""
    return "".join(
        f"<attribute name={quoteattr(str(name))}>{escape(_text(value))}</attribute>"
        for name, value in attributes.items()
        if name != "occluded"
    )


def part_xml(
    label: str,
    point: dict[str, float],
    attributes: dict[str, Any],
    outside: bool,
    keyframe: bool | None,
) -> str:
    """A skeleton's part (``keyframe`` None: a shape of an image, which has none)."""
    key = "" if keyframe is None else f' keyframe="{int(keyframe)}"'
    return (
        f'<points label={quoteattr(label)}{key} outside="{int(outside)}" '
        f'occluded="{int(bool(attributes.get("occluded")))}" points={_joined([point])}>'
        f"{attributes_xml(attributes)}</points>"
    )
