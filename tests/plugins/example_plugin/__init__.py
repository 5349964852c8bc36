"""A third-party plugin, as a separate distribution would ship it: a ``memory`` storage driver.

Each store is a dict of bytes named by ``config.store``; tests put objects into :data:`STORES` the
way a user would upload to a bucket.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator, Mapping
from typing import Any, BinaryIO

from plugins.hookspecs import hookimpl
from plugins.types import ObjectInfo, StorageDriverType, StorageError

__all__ = ["STORES", "MemoryBackend", "register_storage_drivers"]
__version__ = "1.0"

STORES: dict[str, dict[str, bytes]] = {}


class MemoryBackend:
    def __init__(self, objects: dict[str, bytes]) -> None:
        self.objects = objects

    def put(
        self, key: str, data: BinaryIO, size: int, content_type: str | None = None
    ) -> str | None:
        self.objects[key] = data.read()
        return _etag(self.objects[key])

    def open(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        if key not in self.objects:
            raise StorageError(f"object {key!r} is not in the memory store")
        stream = io.BytesIO(self.objects[key])
        stream.seek(start)
        yield stream.read(None if end is None else end - start + 1)

    def delete(self, key: str) -> None:
        self.objects.pop(key, None)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        for key in sorted(self.objects):
            if key.startswith(prefix):
                yield ObjectInfo(key, len(self.objects[key]), _etag(self.objects[key]))


def _etag(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _open(config: Mapping[str, Any], secret: Mapping[str, Any] | None) -> MemoryBackend:
    store = config.get("store")
    if not isinstance(store, str) or not store:
        raise StorageError("a memory driver needs config.store, the name of the store")
    if store not in STORES:
        raise StorageError(f"memory store {store!r} does not exist")
    return MemoryBackend(STORES[store])


@hookimpl
def register_storage_drivers() -> list[StorageDriverType]:
    return [
        StorageDriverType(
            name="memory",
            open=_open,
            description="Objects in a dict of the server process (a test plugin).",
            config_fields=("store",),
        )
    ]
