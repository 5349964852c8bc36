"""Types that plugins implement or receive."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, BinaryIO, Protocol, runtime_checkable

__all__ = [
    "ObjectInfo",
    "StorageBackend",
    "StorageDriverType",
    "StorageError",
]


class StorageError(Exception):
    """Raised by a storage backend when its store cannot be reached or refuses an operation.

    The message is shown to users, so it must say what failed without leaking credentials.
    """


@dataclass(frozen=True)
class ObjectInfo:
    """One object in a store, as listed by :meth:`StorageBackend.list`."""

    key: str
    size: int
    etag: str | None = None
    modified: datetime | None = None


@runtime_checkable
class StorageBackend(Protocol):
    """A place that holds bytes under string keys (a folder, a bucket and prefix, ...).

    Methods are synchronous: the platform calls them from worker threads. Keys use ``/`` and are
    relative to the backend's root or prefix.
    """

    def put(
        self, key: str, data: BinaryIO, size: int, content_type: str | None = None
    ) -> str | None:
        """Store ``size`` bytes read from ``data`` under ``key``; return the new etag if known."""
        ...

    def open(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Yield the bytes of ``key`` from ``start`` to ``end`` (inclusive), in chunks."""
        ...

    def delete(self, key: str) -> None:
        """Remove ``key``; removing a missing key is not an error."""
        ...

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Yield every object whose key starts with ``prefix``, in key order."""
        ...


@dataclass(frozen=True)
class StorageDriverType:
    """A kind of storage a dataset can be bound to (``local``, ``s3``, ...).

    ``open`` builds a backend from the driver's public ``config`` (bucket, prefix, region, ...) and the
    ``secret`` of its integration (``None`` when the driver has none). ``config_fields`` names the
    config keys a user may set; ``secret_fields`` the keys the integration secret may hold.
    """

    name: str
    open: Callable[[Mapping[str, Any], Mapping[str, Any] | None], StorageBackend]
    description: str = ""
    config_fields: tuple[str, ...] = ()
    secret_fields: tuple[str, ...] = ()
