"""The plugin contract: every hook Loopline calls, typed and documented.

Hooks are named for what they return and evolve only by adding arguments (an implementation may
accept fewer arguments than its spec, so adding one never breaks a plugin). Built-in features
implement these same hooks.
"""

from __future__ import annotations

import pluggy

from plugins.types import StorageDriverType

__all__ = ["PROJECT", "hookimpl", "hookspec"]

PROJECT = "loopline"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_storage_drivers() -> list[StorageDriverType]:
    """Contribute kinds of storage that datasets can be bound to.

    Called once, the first time the platform needs the table of storage drivers (at server start, in
    the CLI, in workers).

    :return: a list of :class:`plugins.types.StorageDriverType`. Each ``name`` must be unique across
        all plugins; a clash is reported with both plugin names and the later one is ignored.
    """
