"""How much two shapes agree, against IoUs worked out by hand: boxes exactly, polygons (a box
with a polygon, a rotated box, an ellipse) and masks within a pixel of their grid, points by
distance; shapes of different kinds never agree. Pure functions: no database."""

from __future__ import annotations

import base64
import io
import math
from typing import Any

import pytest
from PIL import Image

from graph.domain.overlap import POINT_SCALE, shape_of, similarity

GRID = 0.01  # drawn shapes are within about a pixel of a 512-pixel grid


def p(x: float, y: float) -> dict[str, float]:
    return {"x": x, "y": y}


def box(x0: float, y0: float, x1: float, y1: float, angle: float | None = None) -> Any:
    corners: list[Any] = [p(x0, y0), p(x1, y1)]
    return shape_of("box", corners if angle is None else [*corners, angle])


def polygon(*points: tuple[float, float]) -> Any:
    return shape_of("segment", [[p(x, y) for x, y in points]])


def mask(width: int, height: int, inside: Any) -> Any:
    """A Dataloop mask (RGBA PNG data URL, alpha 255 inside) where ``inside(x, y)``."""
    image = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    for x in range(width):
        for y in range(height):
            if inside(x, y):
                image.putpixel((x, y), (255, 0, 0, 255))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return shape_of("binary", "data:image/png;base64," + base64.b64encode(out.getvalue()).decode())


SQUARE = polygon((0, 0), (10, 0), (10, 10), (0, 10))


def test_boxes_are_exact() -> None:
    assert similarity(box(0, 0, 10, 10), box(5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert similarity(box(0, 0, 10, 10), box(0, 0, 10, 10)) == 1
    assert similarity(box(0, 0, 10, 10), box(10, 0, 20, 10)) == 0  # touching is not overlapping
    # the corners in any order are the same box
    assert similarity(box(10, 10, 0, 0), box(0, 0, 10, 10)) == 1


def test_polygons_by_their_area_not_their_bounds() -> None:
    # half the square: a triangle inside it
    triangle = polygon((0, 0), (10, 0), (0, 10))
    assert similarity(triangle, SQUARE) == pytest.approx(50 / 100, abs=GRID)
    # the other half: the same bounds, nothing in common
    other_half = polygon((10, 0), (10, 10), (0, 10))
    assert similarity(triangle, other_half) == pytest.approx(0, abs=GRID)
    # an L (the square less its bottom-right quarter) with a box of the same bounds: 75 / 100
    ell = polygon((0, 0), (10, 0), (10, 5), (5, 5), (5, 10), (0, 10))
    assert similarity(ell, box(0, 0, 10, 10)) == pytest.approx(0.75, abs=GRID)
    assert similarity(box(0, 0, 10, 10), ell) == similarity(ell, box(0, 0, 10, 10))
    # two squares overlapping by half, as polygons
    shifted = polygon((5, 0), (15, 0), (15, 10), (5, 10))
    assert similarity(SQUARE, shifted) == pytest.approx(1 / 3, abs=GRID)
    # a segment's rings are its parts: two halves side by side against the whole
    parts = shape_of(
        "segment",
        [[p(0, 0), p(5, 0), p(5, 10), p(0, 10)], [p(5, 0), p(10, 0), p(10, 10), p(5, 10)]],
    )
    assert similarity(parts, SQUARE) == pytest.approx(1, abs=GRID)


def test_rotated_boxes_and_ellipses_as_polygons() -> None:
    # a square turned 45 degrees about its centre against itself: the octagon they share is
    # (2 * sqrt(2) - 2) of the side squared, so IoU = that / (2 - that) = 1 / sqrt(2)
    assert similarity(box(0, 0, 10, 10, 45), box(0, 0, 10, 10)) == pytest.approx(
        1 / math.sqrt(2), abs=GRID
    )
    assert similarity(box(0, 0, 10, 10, 90), box(0, 0, 10, 10)) == pytest.approx(1, abs=GRID)
    # a circle in its square: pi / 4
    circle = shape_of("ellipse", {"center": p(10, 10), "rx": 10, "ry": 10, "angle": 0})
    assert similarity(circle, box(0, 0, 20, 20)) == pytest.approx(math.pi / 4, abs=GRID)
    # an ellipse turned a quarter is its mirror: 20x10 across against 10x20 across
    wide = shape_of("ellipse", {"center": p(50, 50), "rx": 20, "ry": 10, "angle": 90})
    tall = shape_of("ellipse", {"center": p(50, 50), "rx": 10, "ry": 20, "angle": 0})
    assert similarity(wide, tall) == pytest.approx(1, abs=GRID)


def test_masks_on_their_pixels_and_against_polygons() -> None:
    left = mask(20, 20, lambda x, y: x < 10)
    middle = mask(20, 20, lambda x, y: 5 <= x < 15)
    assert similarity(left, middle) == pytest.approx(100 / 300)
    assert similarity(left, left) == 1
    # a polygon covering exactly the mask's pixels, and a box over half of them
    assert similarity(left, polygon((0, 0), (10, 0), (10, 20), (0, 20))) == pytest.approx(
        1, abs=GRID
    )
    assert similarity(box(5, 0, 15, 20), left) == pytest.approx(100 / 300, abs=GRID)
    # masks wider than 4096 pixels are compared shrunk to that
    wide = mask(5000, 2, lambda x, y: x < 2500)
    shifted = mask(5000, 2, lambda x, y: 1250 <= x < 3750)
    assert similarity(wide, shifted) == pytest.approx(1 / 3, abs=GRID)
    # a mask with nothing inside has no shape
    assert mask(4, 4, lambda x, y: False) is None
    assert shape_of("binary", "data:image/png;base64,bm90IGEgcG5n") is None


def test_points_by_distance() -> None:
    origin = shape_of("point", p(0, 0))
    assert similarity(origin, shape_of("point", p(0, 0))) == 1
    assert similarity(origin, shape_of("point", p(3, 4))) == pytest.approx(math.exp(-25 / 200))
    half = POINT_SCALE * math.sqrt(2 * math.log(2))  # 11.77 pixels
    assert similarity(origin, shape_of("point", p(half, 0))) == pytest.approx(0.5)


def test_shapes_of_different_kinds_never_agree() -> None:
    line = shape_of("polyline", [[p(0, 0), p(10, 10)]])
    point = shape_of("point", p(5, 5))
    assert similarity(point, box(0, 0, 10, 10)) == 0
    assert similarity(line, SQUARE) == 0
    # lines compare with lines by their bounds (padded half a pixel): as before
    assert similarity(line, shape_of("polyline", [[p(0, 0), p(10, 10)]])) == 1
    assert shape_of("class", []) is None


def test_a_shape_too_small_to_agree_is_not_drawn() -> None:
    speck = polygon((1, 1), (2, 1), (1, 2))  # 0.5 of the square's 100
    assert similarity(speck, SQUARE, least=0.5) == 0
    assert similarity(speck, SQUARE) == pytest.approx(0.005, abs=GRID)
