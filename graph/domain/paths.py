"""Remote paths of items: ``/dir/sub/name.jpg``, checked so no name can escape its dataset."""

from __future__ import annotations

import re

from graph.domain.errors import InvalidInput

__all__ = ["ancestors", "join", "normalise_dir", "split"]

_MAX_NAME = 512
_MAX_PATH = 1536
# backslashes and the control characters (Unicode category Cc: C0, DEL and C1)
_FORBIDDEN = re.compile(r"[\\\x00-\x1f\x7f-\x9f]")


def _segments(path: str, field: str) -> list[str]:
    if not isinstance(path, str):
        raise InvalidInput("a path must be a string", field=field)
    bad = _FORBIDDEN.search(path)
    if bad is not None:
        what = "a backslash; use '/'" if bad.group() == "\\" else "a control character"
        raise InvalidInput(f"path {path!r} contains {what}", field=field)
    segments = [s for s in path.split("/") if s]
    if "." in segments or ".." in segments:
        raise InvalidInput(f"path {path!r} may not contain '.' or '..' segments", field=field)
    if len(path) > _MAX_PATH:
        raise InvalidInput(f"path is longer than {_MAX_PATH} characters", field=field)
    if any(len(segment) > _MAX_NAME for segment in segments):
        raise InvalidInput(f"a name in {path!r} is longer than {_MAX_NAME}", field=field)
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
    return "/" + name if directory == "/" else directory + "/" + name


def ancestors(directory: str) -> list[str]:
    """``"/a/b"`` -> ``["/a", "/a/b"]``: the folders that must exist for ``directory`` to."""
    segments = [s for s in directory.split("/") if s]
    return ["/" + "/".join(segments[: i + 1]) for i in range(len(segments))]
