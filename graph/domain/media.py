"""What a file really is: its media type read from its bytes and, for images, what a viewer needs.

The type a client claims (a ``Content-Type``, a file extension) is only a hint: clients send
``image/jpeg`` for anything named ``.jpg``. The bytes decide; a claim the bytes contradict is kept in
``metadata.system.mimetypeClaimed`` so nothing the client said is lost. Images are measured as they
are displayed (EXIF orientation applied) and get a small JPEG thumbnail. Everything here is
synchronous CPU work over a local file, meant to run in a worker thread.
"""

from __future__ import annotations

import codecs
import io
import json
import math
import mimetypes
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

__all__ = ["THUMBNAIL_SIZE", "Media", "inspect", "sniff"]

THUMBNAIL_SIZE = 256
_HEAD = 4096
_JSON_PARSE_LIMIT = 16 << 20  # a bigger text file starting with '{' is not parsed to prove it
_THUMBNAIL_QUALITY = 80
OCTET_STREAM = "application/octet-stream"

# signature at offset 0 -> type; RIFF, ISO-BMFF (ftyp) and MP3 frames are told apart in sniff()
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
    (b"%PDF-", "application/pdf"),
    (b"OggS", "audio/ogg"),
    (b"fLaC", "audio/flac"),
    (b"ID3", "audio/mpeg"),
    (b"PK\x03\x04", "application/zip"),
    (b"\x1f\x8b", "application/gzip"),
)
_RIFF = {b"WEBP": "image/webp", b"WAVE": "audio/wav", b"AVI ": "video/x-msvideo"}
_FTYP = {
    b"qt  ": "video/quicktime",
    b"M4A ": "audio/mp4",
    b"heic": "image/heic",
    b"heix": "image/heic",
    b"mif1": "image/heif",
    b"avif": "image/avif",
}
_BMP_HEADER_SIZES = (12, 40, 52, 56, 64, 108, 124)
# every type sniff() can return: a claim of one of these that the bytes do not show is refused
_SNIFFABLE = frozenset(
    {t for _, t in _SIGNATURES}
    | set(_RIFF.values())
    | set(_FTYP.values())
    | {"video/mp4", "video/webm", "video/x-matroska", "image/bmp"}
)
# the images decoded here (others, e.g. HEIC, keep their type but get no size or thumbnail)
_PILLOW_FORMATS = {
    "image/jpeg": "JPEG",
    "image/png": "PNG",
    "image/gif": "GIF",
    "image/bmp": "BMP",
    "image/tiff": "TIFF",
    "image/webp": "WEBP",
}
_TEXTUAL = frozenset(
    {
        "application/json",
        "application/xml",
        "application/javascript",
        "application/yaml",
        "application/x-yaml",
        "application/x-ndjson",
        "application/csv",
        "image/svg+xml",
    }
)
# what clients send when they do not know (curl --data-binary says form-urlencoded): no claim
_NO_CLAIM = frozenset(
    {
        OCTET_STREAM,
        "binary/octet-stream",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    }
)
_ORIENTATION_TAG = 0x0112
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


@dataclass
class Media:
    """What :func:`inspect` found: the item's columns, extra ``metadata.system`` and a thumbnail."""

    mimetype: str
    width: int | None = None
    height: int | None = None
    thumbnail: bytes | None = None
    system: dict[str, Any] = field(default_factory=dict)


def sniff(head: bytes) -> str | None:
    """The media type the first bytes of a file prove, or None when they prove none."""
    for signature, mimetype in _SIGNATURES:
        if head.startswith(signature):
            return mimetype
    if head.startswith(b"RIFF") and head[8:12] in _RIFF:
        return _RIFF[head[8:12]]
    if head[4:8] == b"ftyp":
        return _FTYP.get(head[8:12], "video/mp4")
    if head.startswith(b"\x1aE\xdf\xa3"):  # EBML: WebM names its doctype near the start
        return "video/webm" if b"webm" in head[:64] else "video/x-matroska"
    if head.startswith(b"BM") and int.from_bytes(head[14:18], "little") in _BMP_HEADER_SIZES:
        return "image/bmp"
    if len(head) > 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and head[1] & 0x06:
        return "audio/mpeg"  # an MPEG audio frame sync with a valid layer
    return None


def _normalise(mimetype: str | None) -> str | None:
    if not mimetype:
        return None
    value = mimetype.split(";", 1)[0].strip().lower()
    return None if value in _NO_CLAIM or "/" not in value else value


def _is_textual(mimetype: str) -> bool:
    return (
        mimetype.startswith("text/") or mimetype in _TEXTUAL or mimetype.endswith(("+json", "+xml"))
    )


def _as_text(head: bytes, whole: bool) -> str | None:
    """The head decoded as UTF-8 if it looks like text (no NUL, valid UTF-8), else None."""
    if b"\x00" in head:
        return None
    try:
        return codecs.getincrementaldecoder("utf-8-sig")().decode(head, final=whole)
    except UnicodeDecodeError:
        return None


def _text_type(path: Path, size: int, text: str) -> str:
    start = text.lstrip()[:1]
    if start in ("{", "[") and size <= _JSON_PARSE_LIMIT:
        try:
            json.loads(path.read_bytes())
        except ValueError:
            return "text/plain"
        return "application/json"
    lowered = text.lstrip()[:512].lower()
    if lowered.startswith("<svg") or (lowered.startswith("<?xml") and "<svg" in lowered):
        return "image/svg+xml"
    return "text/plain"


def _unsniffed_type(path: Path, size: int, head: bytes, candidates: list[str]) -> str:
    """The type of content no signature matched: a fitting claim, else text or octet-stream."""
    text = _as_text(head, whole=size <= len(head))
    if text is not None:
        for candidate in candidates:
            if _is_textual(candidate):
                return candidate
        return _text_type(path, size, text) if size else OCTET_STREAM
    for candidate in candidates:
        if candidate not in _SNIFFABLE and not _is_textual(candidate):
            return candidate
    return OCTET_STREAM


def _channels(image: Image.Image) -> int:
    if image.mode == "P":
        return 4 if "transparency" in image.info else 3
    return len(image.getbands())


def _orientation(image: Image.Image) -> int | None:
    value = image.getexif().get(_ORIENTATION_TAG)
    return value if isinstance(value, int) and 1 <= value <= 8 else None


def _thumbnail(image: Image.Image, orientation: int | None) -> bytes:
    """A JPEG whose longest side is at most THUMBNAIL_SIZE, shown the right way up."""
    width, height = image.size
    scale = min(1.0, THUMBNAIL_SIZE / max(width, height))
    target = (max(1, round(width * scale)), max(1, round(height * scale)))
    # JPEG: decode at 1/2, 1/4 or 1/8 scale when that gives at least 90% of the target; decoding
    # is most of the cost, and a stretch of under 10% cannot be seen at this size
    image.draft(None, (math.ceil(target[0] * 0.9), math.ceil(target[1] * 0.9)))
    if image.size != target:
        image = image.resize(target, Image.Resampling.BILINEAR, reducing_gap=None)
    if orientation in _TRANSPOSE:
        image = image.transpose(_TRANSPOSE[orientation])
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        image = flat
    elif image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    out = io.BytesIO()
    image.save(out, "JPEG", quality=_THUMBNAIL_QUALITY)
    return out.getvalue()


def _image(path: Path, mimetype: str) -> Media:
    """Size as displayed, channels, EXIF orientation and a thumbnail; raises if not decodable."""
    with Image.open(path, formats=[_PILLOW_FORMATS[mimetype]]) as image:
        width, height = image.size
        orientation = _orientation(image)
        channels = _channels(image)
        thumbnail = _thumbnail(image, orientation)
    if orientation in (5, 6, 7, 8):  # rotated a quarter turn: displayed sideways
        width, height = height, width
    exif = {} if orientation is None else {"orientation": orientation}
    return Media(
        mimetype,
        width,
        height,
        thumbnail,
        {"channels": channels, "exif": exif},
    )


def inspect(path: Path, size: int, name: str, claimed: str | None) -> Media:
    """Inspect the file at ``path`` (``size`` bytes) uploaded as ``name`` with type ``claimed``.

    Content that claims (by type or extension) or looks like an image but does not decode is kept
    as ``application/octet-stream`` with ``metadata.system.note`` saying why: an upload never
    fails because of what the bytes are. An empty file is ``application/octet-stream`` unless it
    was claimed to be text.
    """
    claim = _normalise(claimed)
    guessed = _normalise(mimetypes.guess_type(name)[0])
    candidates = [c for c in (claim, guessed) if c is not None]
    with path.open("rb") as handle:
        head = handle.read(_HEAD)
    detected = sniff(head)
    note = None
    if detected is None:
        media = Media(_unsniffed_type(path, size, head, candidates))
        expected = next((c for c in candidates if c in _SNIFFABLE), None)
        if expected is not None and expected.startswith("image/"):
            if size == 0:
                reason = "the file is empty"
            elif media.mimetype == OCTET_STREAM:
                reason = f"its bytes are not {expected}"
            else:
                reason = f"its bytes are {media.mimetype}, not {expected}"
            note = f"not a readable image: {reason}"
    elif detected in _PILLOW_FORMATS:
        try:
            media = _image(path, detected)
        except Exception as exc:  # untrusted bytes: Pillow raises many types for broken files
            media = Media(OCTET_STREAM)
            note = f"not a readable image: the {detected} content does not decode ({exc})"
    else:
        media = Media(detected)
    if note is not None:
        media.system["note"] = note
    if claim is not None and claim != media.mimetype:
        media.system["mimetypeClaimed"] = claim
    return media
