"""How much two annotations' shapes agree, 0 to 1: what consensus matches and scores by.

- Areas (``box``, ``segment``, ``ellipse``, ``binary``) compare by IoU, whatever their types (a
  polygon with a box, a mask with a polygon). Two unrotated boxes: exactly. Polygons (a
  segment's rings are its parts; a rotated box and an ellipse as polygons): both are drawn as
  masks on the union of their bounds, :data:`RESOLUTION` pixels along its longer side, and the
  masks' IoU taken: within about a pixel of that grid (0.335 for two squares overlapping by
  half, 1/3 exactly). Two ``binary`` masks: exactly, on the item's pixels; a mask with a
  polygon: the mask's pixels grown to whole squares of that grid.
- Points (``point``): ``exp(-d² / 2σ²)`` of their distance ``d``, σ = :data:`POINT_SCALE`
  pixels (COCO's keypoint similarity with one fixed scale): 1 on the spot, 0.5 at 11.8 px.
- Other shapes (lines, cubes, ...) compare with their own type by the IoU of their bounds (a
  line's bounds padded by half a pixel).

A shape that cannot agree with another by at least ``least`` (bounds apart, or too unequal in
size) scores 0 without being drawn.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageChops, ImageDraw, UnidentifiedImageError

__all__ = ["AREAS", "POINT_SCALE", "RESOLUTION", "Shape", "shape_of", "similarity"]

RESOLUTION = 512
"""Pixels along the longer side of the grid two polygons are drawn on."""
POINT_SCALE = 10.0
"""σ of the point similarity, in pixels."""
AREAS = frozenset({"box", "segment", "ellipse", "binary"})
"""Types compared with each other by the IoU of their areas."""

_ELLIPSE_SIDES = 64
_LARGEST = 4096  # pixels along the longer side of a mask's comparison, at most
_DATA_URL = "data:image/png;base64,"

Bounds = tuple[float, float, float, float]  # x0, y0, x1, y1
Ring = tuple[tuple[float, float], ...]


@dataclass(frozen=True, eq=False)
class Shape:
    """An annotation's geometry: its ``family`` (what it compares with), its bounds, its area
    (at least: the largest of a polygon's parts), and one of ``box`` (exact corners), ``rings``
    (a polygon's parts), ``mask`` (an ``L`` image of the item, 255 inside) or ``point``."""

    family: str
    bounds: Bounds
    area: float
    box: Bounds | None = None
    rings: tuple[Ring, ...] = ()
    mask: Image.Image | None = None
    point: tuple[float, float] | None = None


def shape_of(type: str, coordinates: Any) -> Shape | None:
    """The shape of an annotation of ``type`` with ``coordinates`` as stored
    (graph/domain/geometry.py); None when it has none (a class) or it cannot be read."""
    if type == "binary":
        return _mask(coordinates)
    if type == "point" and isinstance(coordinates, dict):
        xy = _xy(coordinates)
        if xy is not None:
            return Shape("point", (*xy, *xy), 0.0, point=xy)
        return None
    if type == "box":
        return _box(coordinates)
    if type == "segment":
        return _polygon([_ring(r) for r in coordinates] if isinstance(coordinates, list) else [])
    if type == "ellipse":
        return _ellipse(coordinates)
    points = list(_points(coordinates))
    if not points:
        return None
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    # a point or a line has no area: half a pixel around it
    bounds = (min(xs) - 0.5, min(ys) - 0.5, max(xs) + 0.5, max(ys) + 0.5)
    return Shape(f"bounds:{type}", bounds, _size(bounds), box=bounds)


def similarity(a: Shape, b: Shape, least: float = 0.0) -> float:
    """How much ``a`` and ``b`` agree (see the module); 0 when it is surely below ``least``."""
    if a.family != b.family:
        return 0.0
    if a.point is not None and b.point is not None:
        distance2 = (a.point[0] - b.point[0]) ** 2 + (a.point[1] - b.point[1]) ** 2
        return math.exp(-distance2 / (2 * POINT_SCALE**2))
    if a.box is not None and b.box is not None:
        return _box_iou(a.box, b.box)
    common = _intersection(a.bounds, b.bounds)
    if common is None:
        return 0.0
    # the common area is at most that of the bounds', the union at least the larger shape
    larger = max(a.area, b.area)
    if larger > 0 and _size(common) / larger < least:
        return 0.0
    union = _union(a.bounds, b.bounds)
    if a.mask is not None or b.mask is not None:
        return _mask_iou(a, b, union)
    return _drawn_iou(a, b, union)


# --- reading shapes -------------------------------------------------------------------------------


def _xy(point: Any) -> tuple[float, float] | None:
    if not isinstance(point, dict):
        return None
    x, y = point.get("x"), point.get("y")
    if isinstance(x, int | float) and isinstance(y, int | float):
        return float(x), float(y)
    return None


def _points(coordinates: Any) -> Iterator[tuple[float, float]]:
    """Every ``{x, y}`` anywhere in the coordinates."""
    if isinstance(coordinates, dict):
        xy = _xy(coordinates)
        if xy is not None:
            yield xy
        for value in coordinates.values():
            if isinstance(value, dict | list):
                yield from _points(value)
    elif isinstance(coordinates, list):
        for value in coordinates:
            yield from _points(value)


def _ring(points: Any) -> Ring:
    listed = points if isinstance(points, list) else []
    return tuple(xy for xy in map(_xy, listed) if xy is not None)


def _box(coordinates: Any) -> Shape | None:
    if not isinstance(coordinates, list) or len(coordinates) < 2:
        return None
    a, b = _xy(coordinates[0]), _xy(coordinates[1])
    if a is None or b is None:
        return None
    x0, x1 = sorted((a[0], b[0]))
    y0, y1 = sorted((a[1], b[1]))
    angle = coordinates[2] if len(coordinates) > 2 else 0
    if isinstance(angle, int | float) and angle % 360:
        # rotated (degrees) about its centre: a polygon
        corners = ((x0, y0), (x1, y0), (x1, y1), (x0, y1))
        return _polygon([_rotated(corners, ((x0 + x1) / 2, (y0 + y1) / 2), angle)])
    bounds = (x0, y0, x1, y1)
    return Shape("area", bounds, _size(bounds), box=bounds)


def _ellipse(coordinates: Any) -> Shape | None:
    if not isinstance(coordinates, dict):
        return None
    centre = _xy(coordinates.get("center"))
    rx, ry, angle = (coordinates.get(k, 0) for k in ("rx", "ry", "angle"))
    if centre is None or not all(isinstance(v, int | float) for v in (rx, ry, angle)):
        return None
    steps = [2 * math.pi * k / _ELLIPSE_SIDES for k in range(_ELLIPSE_SIDES)]
    ring = tuple((centre[0] + rx * math.cos(t), centre[1] + ry * math.sin(t)) for t in steps)
    return _polygon([_rotated(ring, centre, angle)])


def _rotated(
    ring: Sequence[tuple[float, float]], centre: tuple[float, float], degrees: float
) -> Ring:
    turn = math.radians(degrees)
    cos, sin = math.cos(turn), math.sin(turn)
    cx, cy = centre
    return tuple(
        (cx + (x - cx) * cos - (y - cy) * sin, cy + (x - cx) * sin + (y - cy) * cos)
        for x, y in ring
    )


def _polygon(rings: Sequence[Ring]) -> Shape | None:
    parts = tuple(r for r in rings if len(r) >= 3)
    if not parts:
        return None
    xs = [x for r in parts for x, _ in r]
    ys = [y for r in parts for _, y in r]
    area = max(_shoelace(r) for r in parts)
    return Shape("area", (min(xs), min(ys), max(xs), max(ys)), area, rings=parts)


def _shoelace(ring: Ring) -> float:
    twice = sum(
        x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(ring, ring[1:] + ring[:1], strict=True)
    )
    return abs(twice) / 2


def _mask(coordinates: Any) -> Shape | None:
    if not isinstance(coordinates, str) or not coordinates.startswith(_DATA_URL):
        return None
    try:
        image = Image.open(io.BytesIO(base64.b64decode(coordinates[len(_DATA_URL) :])))
        image.load()
    except (
        binascii.Error,
        OSError,
        UnidentifiedImageError,
        ValueError,
        Image.DecompressionBombError,
    ):
        return None
    # Dataloop's masks are RGBA, inside where alpha > 127; a mask without alpha: not black
    if "A" in image.getbands():
        mask = image.getchannel("A").point(lambda v: 255 if v > 127 else 0)
    else:
        mask = image.convert("L").point(lambda v: 255 if v > 0 else 0)
    found = mask.getbbox()
    if found is None:
        return None
    bounds = tuple(float(v) for v in found)
    return Shape("area", bounds, float(_count(mask)), mask=mask)  # type: ignore[arg-type]


# --- comparing ------------------------------------------------------------------------------------


def _size(bounds: Bounds) -> float:
    return max(bounds[2] - bounds[0], 0.0) * max(bounds[3] - bounds[1], 0.0)


def _intersection(a: Bounds, b: Bounds) -> Bounds | None:
    found = (max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3]))
    return found if found[0] < found[2] and found[1] < found[3] else None


def _union(a: Bounds, b: Bounds) -> Bounds:
    return min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])


def _box_iou(a: Bounds, b: Bounds) -> float:
    common = _intersection(a, b)
    if common is None:
        return 1.0 if a == b else 0.0  # two equal boxes without area agree
    shared = _size(common)
    return shared / (_size(a) + _size(b) - shared)


def _count(mask: Image.Image) -> int:
    return mask.histogram()[255]


def _ratio(a: Image.Image, b: Image.Image) -> float:
    union = _count(ImageChops.lighter(a, b))
    return _count(ImageChops.darker(a, b)) / union if union else 0.0


def _drawn(shape: Shape, origin: tuple[float, float], scale: float, size: tuple[int, int]) -> Any:
    """The shape as an ``L`` mask of ``size``, ``origin`` at its top left, ``scale`` pixels a
    unit (Pillow puts the corners on whole pixels and fills the edges too: up to a pixel more
    than the shape, on either shape alike)."""
    canvas = Image.new("L", size, 0)
    draw = ImageDraw.Draw(canvas)
    rings = shape.rings
    if shape.box is not None:
        x0, y0, x1, y1 = shape.box
        rings = (((x0, y0), (x1, y0), (x1, y1), (x0, y1)),)
    ox, oy = origin
    for ring in rings:
        draw.polygon([((x - ox) * scale, (y - oy) * scale) for x, y in ring], fill=255)
    return canvas


def _drawn_iou(a: Shape, b: Shape, union: Bounds) -> float:
    longer = max(union[2] - union[0], union[3] - union[1])
    scale = RESOLUTION / longer
    size = (
        math.ceil((union[2] - union[0]) * scale) + 1,
        math.ceil((union[3] - union[1]) * scale) + 1,
    )
    origin = (union[0], union[1])
    return _ratio(_drawn(a, origin, scale, size), _drawn(b, origin, scale, size))


def _mask_iou(a: Shape, b: Shape, union: Bounds) -> float:
    """On the item's pixels over the union of the bounds, each a square of whole grid pixels
    (a polygon drawn against a mask: about :data:`RESOLUTION` along the longer side); a union
    longer than :data:`_LARGEST` pixels, shrunk to that."""
    left, top = math.floor(union[0]), math.floor(union[1])
    width, height = math.ceil(union[2]) - left, math.ceil(union[3]) - top
    longer = max(width, height, 1)
    scale = max(1, RESOLUTION // longer) if longer <= _LARGEST else _LARGEST / longer
    grown = (math.ceil(width * scale), math.ceil(height * scale))
    size = (grown[0] + 1, grown[1] + 1)
    masks = []
    for shape in (a, b):
        if shape.mask is None:
            masks.append(_drawn(shape, (left, top), scale, size))
            continue
        region = shape.mask.crop((left, top, left + width, top + height))
        canvas = Image.new("L", size, 0)
        canvas.paste(region.resize(grown, Image.Resampling.NEAREST))
        masks.append(canvas)
    return _ratio(masks[0], masks[1])
