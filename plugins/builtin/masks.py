"""Masks as Dataloop holds them (an RGBA PNG data URL the size of the image, set where alpha is
over 127) and as run lengths, which COCO and CVAT both use (runs alternate, 0s first)."""

from __future__ import annotations

import base64
import io
from itertools import groupby

from PIL import Image

__all__ = ["alpha_of", "data_url", "filled", "runs"]

_DATA_URL = "data:image/png;base64,"


def filled(lengths: list[int], size: int) -> bytes:
    """``size`` bytes, 255 in the odd runs (the set ones), 0 elsewhere."""
    pixels = bytearray(size)
    at = 0
    for index, run in enumerate(lengths):
        if index % 2:
            pixels[at : at + run] = b"\xff" * run
        at += run
    return bytes(pixels)


def runs(pixels: bytes) -> list[int]:
    """Run lengths of 0 (unset) and non-0 (set) bytes, starting with the unset."""
    lengths, expected = [], False
    for is_set, group in groupby(bool(p) for p in pixels):
        if is_set != expected:
            lengths.append(0)
        lengths.append(sum(1 for _ in group))
        expected = not is_set
    return lengths


def data_url(alpha: Image.Image) -> str:
    """A white RGBA PNG with this alpha, as a data URL."""
    white = Image.new("L", alpha.size, 255)
    png = io.BytesIO()
    Image.merge("RGBA", (white, white, white, alpha)).save(png, "PNG")
    return _DATA_URL + base64.b64encode(png.getvalue()).decode()


def alpha_of(url: str) -> Image.Image:
    """A data URL mask as an 8-bit image, 255 where set (alpha > 127), 0 elsewhere."""
    with Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))) as image:
        return image.convert("RGBA").getchannel("A").point(lambda v: 255 if v > 127 else 0)
