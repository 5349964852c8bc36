"""Remote paths of items: ``/dir/sub/name.jpg``, checked so no name can escape its dataset."""

from __future__ import annotations

import posixpath
import unicodedata

from graph.domain.errors import InvalidInput

__all__ = ["ancestors", "join", "normalise_dir", "split"]

_MAX_NAME = 512
_MAX_PATH = 1536


def _segments(path: str, field: str) -> list[str]:
    if not isinstance(path, str):
        raise InvalidInput("a path must be a string", field=field)
    if "\\" in path:
        raise InvalidInput(f"path {path!r} contains a backslash; use '/'", field=field)
    segments = [s for s in path.split("/") if s != ""]
    for segment in segments:
        if segment in (".", ".."):
            raise InvalidInput(f"path {path!r} may not contain '.' or '..' segments", field=field)
        if any(unicodedata.category(ch) == "Cc" for ch in segment):
            raise InvalidInput(f"path {path!r} contains a control character", field=field)
        if len(segment) > _MAX_NAME:
            raise InvalidInput(f"a name in {path!r} is longer than {_MAX_NAME}", field=field)
    if len(path) > _MAX_PATH:
        raise InvalidInput(f"path is longer than {_MAX_PATH} characters", field=field)
    return segments


def normalise_dir(path: str | None, field: str = "dir") -> str:
    """``"a/b/"`` -> ``"/a/b"``; ``None`` or ``""`` -> ``"/"``."""
    return "/" + "/".join(_segments(path or "/", field))


def split(path: str, field: str = "path") -> tuple[str, str]:
    """A file's remote path -> ``(dir, name)``; the path must name a file, not just a folder."""
    segments = _segments(path, field)
    if not segments:
        raise InvalidInput(f"path {path!r} has no file name", field=field)
    return "/" + "/".join(segments[:-1]), segments[-1]


def join(directory: str, name: str) -> str:
    return posixpath.join(directory, name)


def ancestors(directory: str) -> list[str]:
    """``"/a/b"`` -> ``["/a", "/a/b"]``: the folders that must exist for ``directory`` to."""
    segments = [s for s in directory.split("/") if s]
    return ["/" + "/".join(segments[: i + 1]) for i in range(len(segments))]
