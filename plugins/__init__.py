"""The plugin contract for Loopline: what plugin authors import.

A plugin is a module or object with functions marked ``@hookimpl``, registered through the
``loopline`` entry-point group::

    [project.entry-points.loopline]
    my_storage = "my_package.plugin"
"""

from plugins.hookspecs import hookimpl
from plugins.types import ObjectInfo, StorageBackend, StorageDriverType, StorageError

__all__ = ["ObjectInfo", "StorageBackend", "StorageDriverType", "StorageError", "hookimpl"]
