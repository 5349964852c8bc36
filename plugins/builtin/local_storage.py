"""The ``local`` storage driver: a folder on this machine.

The platform's own blob store is a ``local`` backend under ``LOOPLINE_HOME/blobs``; a dataset can also
be bound to any other folder (``config: {"path": ...}``) and synced from it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from plugins.hookspecs import hookimpl
from plugins.types import ObjectInfo, StorageDriverType, StorageError

__all__ = ["LocalBackend", "register_storage_drivers"]

_CHUNK = 1 << 20


class LocalBackend:
    """Bytes in files below ``root``; keys are relative paths that may not leave the root."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def _path(self, key: str) -> Path:
        path = (self.root / key.lstrip("/")).resolve()
        if path != self.root and self.root not in path.parents:
            raise StorageError(f"key {key!r} points outside the storage folder")
        return path

    def put(
        self, key: str, data: BinaryIO, size: int, content_type: str | None = None
    ) -> str | None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(data, out, _CHUNK)
            os.replace(tmp, path)  # readers never see a half-written file
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return None

    def place(self, key: str, source: Path) -> None:
        """Move a finished local file into place (the upload path hashes into a temp file first)."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, path)

    def open(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        path = self._path(key)
        try:
            handle = path.open("rb")
        except FileNotFoundError:
            raise StorageError(f"object {key!r} is missing from the storage folder") from None
        with handle:
            handle.seek(start)
            remaining = None if end is None else end - start + 1
            while remaining is None or remaining > 0:
                chunk = handle.read(_CHUNK if remaining is None else min(_CHUNK, remaining))
                if not chunk:
                    break
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        if not self.root.is_dir():
            raise StorageError(f"storage folder {str(self.root)!r} does not exist")
        found = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for filename in filenames:
                if filename.startswith("."):
                    continue
                full = Path(dirpath, filename)
                key = full.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    stat = full.stat()
                    found.append(
                        ObjectInfo(
                            key=key,
                            size=stat.st_size,
                            etag=f"{stat.st_mtime_ns:x}-{stat.st_size:x}",
                            modified=datetime.fromtimestamp(stat.st_mtime, UTC),
                        )
                    )
        found.sort(key=lambda info: info.key)
        yield from found


def _open(config: Mapping[str, Any], secret: Mapping[str, Any] | None) -> LocalBackend:
    path = config.get("path")
    if not isinstance(path, str) or not path:
        raise StorageError("a local driver needs config.path, the folder that holds the files")
    return LocalBackend(Path(path))


@hookimpl
def register_storage_drivers() -> list[StorageDriverType]:
    return [
        StorageDriverType(
            name="local",
            open=_open,
            description="A folder on the server's file system.",
            config_fields=("path",),
        )
    ]
