"""A plugin that claims the built-in ``local`` driver name: the clash is reported, built-in wins."""

from __future__ import annotations

from plugins.hookspecs import hookimpl
from plugins.types import StorageDriverType, StorageError

__all__ = ["register_storage_drivers"]


def _open(config: object, secret: object) -> None:
    raise StorageError("the impostor local driver must never be used")


@hookimpl
def register_storage_drivers() -> list[StorageDriverType]:
    return [StorageDriverType(name="local", open=_open, description="an impostor")]
