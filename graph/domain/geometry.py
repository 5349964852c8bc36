"""Annotation coordinates: each Dataloop type's layout checked, put in one form, kept in bounds.

Layouts (pixels of the original image, as Dataloop JSON has them):

- ``box``: ``[{x, y}, {x, y}]`` two corners (stored top-left, bottom-right whatever the order
  given) and an optional third element, the rotation angle;
- ``segment`` (polygon): ``[[{x, y}, ...]]`` rings of at least 3 points; ``polyline``: lines of
  at least 2;
- ``point``: ``{x, y}``; ``ellipse``: ``{center: {x, y}, rx, ry, angle}``;
- ``cube``: the 8 corners ``front_tl`` ... ``back_bl`` and an optional ``angle``;
  ``cube_3d``: ``{position, scale, rotation}`` each ``{x, y, z}``;
- ``binary``: a ``data:image/png;base64,...`` mask the size of the item;
- ``class``: no coordinates (stored as ``[]``); ``pose``: ``{templateId, instanceId}`` (its
  points are child annotations); ``note``: ``{box?, note?}``;
- ``subtitle``, ``item_description``: ``{text}``; ``text_mark``: ``{start, end, ...}``;
  ``text``: a string; other types are kept as given (numbers finite).

Every point may carry ``z``. When the item's size is known, a point outside ``[0, width] x
[0, height]`` is refused, or with ``outside="clip"`` moved to the nearest edge.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Callable
from typing import Any, Literal, TypeAlias

from graph.domain.errors import InvalidInput

__all__ = ["Outside", "Size", "check_coordinates"]

Outside: TypeAlias = Literal["reject", "clip"]
Size: TypeAlias = tuple[int, int] | None  # the item's (width, height), when known
_CUBE_CORNERS = tuple(
    f"{face}_{corner}" for face in ("front", "back") for corner in "tl tr br bl".split()
)
_PNG = b"\x89PNG\r\n\x1a\n"
_DATA_URL = "data:image/png;base64,"


class _Check:
    def __init__(self, where: str, size: Size, outside: Outside) -> None:
        self.where, self.size, self.outside = where, size, outside

    def fail(self, path: str, message: str) -> InvalidInput:
        return InvalidInput(f"{self.where}{path}: {message}", field=f"{self.where}{path}")

    def number(self, value: Any, path: str) -> float | int:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(path, f"expected a number, got {_kind(value)}")
        if not math.isfinite(value):
            raise self.fail(path, "a number must be finite")
        return value

    def mapping(self, value: Any, path: str, shape: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(path, f"expected {shape}, got {_kind(value)}")
        return value

    def sequence(self, value: Any, path: str, shape: str) -> list[Any]:
        if not isinstance(value, list):
            raise self.fail(path, f"expected {shape}, got {_kind(value)}")
        return value

    def point(self, value: Any, path: str, *, bounded: bool = True) -> dict[str, Any]:
        point = dict(self.mapping(value, path, "a point {x, y}"))
        for axis in ("x", "y"):
            if axis not in point:
                raise self.fail(path, f"a point needs {axis}")
            given = point[axis]
            # the common case checked without naming its place (imports check 100ks of points)
            if given.__class__ is not float and given.__class__ is not int or given != given:
                point[axis] = self.number(given, f"{path}.{axis}")
            elif given in (math.inf, -math.inf):
                raise self.fail(f"{path}.{axis}", "a number must be finite")
        if "z" in point:
            point["z"] = self.number(point["z"], f"{path}.z")
        if bounded and self.size is not None:
            for axis, limit in zip(("x", "y"), self.size, strict=True):
                if 0 <= point[axis] <= limit:
                    continue
                if self.outside == "reject":
                    raise self.fail(
                        f"{path}.{axis}",
                        f"{point[axis]} is outside the item (0 to {limit}); "
                        "send outOfBounds: CLIP to move such points to the edge",
                    )
                point[axis] = min(max(point[axis], 0), limit)
        return point

    def points(self, value: Any, path: str, least: int, shape: str) -> list[dict[str, Any]]:
        listed = self.sequence(value, path, shape)
        if len(listed) < least:
            raise self.fail(path, f"{shape} needs at least {least} points, got {len(listed)}")
        return [self.point(p, f"{path}[{i}]") for i, p in enumerate(listed)]

    def text(self, value: Any, path: str) -> str:
        if not isinstance(value, str):
            raise self.fail(path, f"expected a string, got {_kind(value)}")
        return value

    # --- the types ------------------------------------------------------------------------------

    def box(self, value: Any, path: str) -> list[Any]:
        plain = _plain_box(value, self.size)
        if plain is not None:
            return plain
        shape = "a box [{x, y}, {x, y}] and an optional rotation"
        listed = self.sequence(value, path, shape)
        if len(listed) not in (2, 3):
            raise self.fail(path, f"{shape}; got {len(listed)} elements")
        a, b = self.point(listed[0], path + "[0]"), self.point(listed[1], path + "[1]")
        top_left = {**a, "x": min(a["x"], b["x"]), "y": min(a["y"], b["y"])}
        bottom_right = {**b, "x": max(a["x"], b["x"]), "y": max(a["y"], b["y"])}
        rotation = [self.number(listed[2], f"{path}[2]")] if len(listed) == 3 else []
        return [top_left, bottom_right, *rotation]

    def rings(self, value: Any, path: str, least: int, shape: str) -> list[list[dict[str, Any]]]:
        rings = self.sequence(value, path, f"a list of {shape}s [[{{x, y}}, ...]]")
        if not rings:
            raise self.fail(path, f"needs at least one {shape}")
        return [self.points(r, f"{path}[{i}]", least, f"a {shape}") for i, r in enumerate(rings)]

    def segment(self, value: Any, path: str) -> Any:
        return self.rings(value, path, 3, "polygon ring")

    def polyline(self, value: Any, path: str) -> Any:
        return self.rings(value, path, 2, "line")

    def ellipse(self, value: Any, path: str) -> dict[str, Any]:
        ellipse = dict(self.mapping(value, path, "an ellipse {center, rx, ry, angle}"))
        ellipse["center"] = self.point(ellipse.get("center"), f"{path}.center")
        for radius in ("rx", "ry"):
            ellipse[radius] = self.number(ellipse.get(radius), f"{path}.{radius}")
            if ellipse[radius] < 0:
                raise self.fail(f"{path}.{radius}", "a radius cannot be negative")
        ellipse["angle"] = self.number(ellipse.get("angle", 0), f"{path}.angle")
        return ellipse

    def cube(self, value: Any, path: str) -> dict[str, Any]:
        cube = dict(self.mapping(value, path, "a cube of 8 corners front_tl ... back_bl"))
        for corner in _CUBE_CORNERS:
            cube[corner] = self.point(cube.get(corner), f"{path}.{corner}")
        if "angle" in cube:
            cube["angle"] = self.number(cube["angle"], f"{path}.angle")
        return cube

    def cube_3d(self, value: Any, path: str) -> dict[str, Any]:
        cube = dict(self.mapping(value, path, "{position, scale, rotation}"))
        for part in ("position", "scale", "rotation"):
            vector = dict(self.mapping(cube.get(part), f"{path}.{part}", "{x, y, z}"))
            for axis in "xyz":
                vector[axis] = self.number(vector.get(axis), f"{path}.{part}.{axis}")
            cube[part] = vector
        return cube

    def binary(self, value: Any, path: str) -> str:
        text = self.text(value, path)
        if not text.startswith(_DATA_URL):
            raise self.fail(path, f"a mask is a PNG data URL starting {_DATA_URL!r}")
        try:
            png = base64.b64decode(text[len(_DATA_URL) :], validate=True)
        except binascii.Error as error:
            raise self.fail(path, f"the mask's base64 is corrupt ({error})") from None
        if len(png) < 24 or not png.startswith(_PNG) or png[12:16] != b"IHDR":
            raise self.fail(path, "the mask is not a PNG image")
        size = (int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big"))
        if self.size is not None and size != self.size:
            raise self.fail(
                path, f"the mask is {size[0]}x{size[1]}, the item {self.size[0]}x{self.size[1]}"
            )
        return text

    def none(self, value: Any, path: str) -> list[Any]:
        if value not in (None, [], {}):
            raise self.fail(path, "a classification has no coordinates")
        return []

    def note(self, value: Any, path: str) -> dict[str, Any]:
        note = dict(self.mapping(value, path, "a note {box, note}"))
        if "box" in note:
            note["box"] = self.box(note["box"], f"{path}.box")
        return note

    def with_text(self, value: Any, path: str) -> dict[str, Any]:
        holder = self.mapping(value, path, "{text}")
        self.text(holder.get("text"), f"{path}.text")
        return holder

    def text_mark(self, value: Any, path: str) -> dict[str, Any]:
        mark = dict(self.mapping(value, path, "a text span {start, end}"))
        start = self.number(mark.get("start"), f"{path}.start")
        end = self.number(mark.get("end"), f"{path}.end")
        if not 0 <= start <= end:
            raise self.fail(
                path, f"a span runs from start to end, 0 <= start <= end (got {start}, {end})"
            )
        return mark

    def pose(self, value: Any, path: str) -> dict[str, Any]:
        return {} if value is None else self.mapping(value, path, "{templateId, instanceId}")

    def opaque(self, value: Any, path: str) -> Any:
        _finite(value, lambda: self.fail(path, "holds a non-finite number"))
        return value


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _finite(value: Any, fail: Callable[[], InvalidInput]) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise fail()
    inner = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    for element in inner:
        _finite(element, fail)


_LAYOUTS: dict[str, Callable[[_Check, Any, str], Any]] = {
    "box": _Check.box,
    "segment": _Check.segment,
    "polyline": _Check.polyline,
    "point": _Check.point,
    "ellipse": _Check.ellipse,
    "class": _Check.none,
    "binary": _Check.binary,
    "cube": _Check.cube,
    "cube_3d": _Check.cube_3d,
    "pose": _Check.pose,
    "note": _Check.note,
    "subtitle": _Check.with_text,
    "item_description": _Check.with_text,
    "text_mark": _Check.text_mark,
    "text": _Check.text,
}


def check_coordinates(
    annotation_type: str,
    coordinates: Any,
    where: str,
    size: Size = None,
    outside: Outside = "reject",
) -> Any:
    """``coordinates`` of an annotation of ``annotation_type`` in their stored form, or an
    :class:`InvalidInput` naming the place under ``where`` (``annotations[2].coordinates``)."""
    check = _Check(where, size, outside)
    layout = _LAYOUTS.get(annotation_type, _Check.opaque)
    return layout(check, coordinates, "")


def _plain_box(coordinates: Any, size: Size) -> list[dict[str, Any]] | None:
    """The stored form of the usual box, two corners ``{x, y}`` of finite numbers inside the
    item, checked with a few comparisons (an import checks 100,000s); None for any other box,
    which the full check then refuses, clips or keeps, saying where."""
    if coordinates.__class__ is not list or len(coordinates) != 2:
        return None
    a, b = coordinates
    if a.__class__ is not dict or b.__class__ is not dict or len(a) != 2 or len(b) != 2:
        return None
    try:
        corners = ax, ay, bx, by = a["x"], a["y"], b["x"], b["y"]
    except KeyError:
        return None
    for n in corners:  # n - n is 0 for a finite number only (inf - inf and NaN are NaN)
        if n.__class__ is not float and n.__class__ is not int or n - n != 0:
            return None
    if size is not None:
        width, height = size
        if not (0 <= ax <= width and 0 <= bx <= width and 0 <= ay <= height and 0 <= by <= height):
            return None
    return [{"x": min(ax, bx), "y": min(ay, by)}, {"x": max(ax, bx), "y": max(ay, by)}]
