"""The plugin contract: every hook Loopline calls, typed and documented.

Hooks are named for what they return and evolve only by adding arguments (an implementation may
accept fewer arguments than its spec, so adding one never breaks a plugin). Built-in features
implement these same hooks.
"""

from __future__ import annotations

import pluggy

from plugins.converters import ConverterType
from plugins.functions import PackageSpec, UISlot
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


@hookspec
def register_functions() -> list[PackageSpec]:
    """Contribute packages of functions that every project can deploy as services.

    Called once per process, the first time the platform needs the table of packages: in the
    API process (to list them and check deployments and inputs) and in each worker process (to
    run them). Each module's ``runner`` must be set: the class whose methods are the functions,
    constructed once per worker process with the service's ``initParams``. Functions receive their
    inputs by name (entity inputs as runtime objects, see :mod:`workers.runtime`), plus
    ``progress`` and ``context`` when their signature names them.

    :return: a list of :class:`plugins.functions.PackageSpec`. Each ``name`` must be unique across
        all plugins and must not be the name of a package uploaded to a project; a clash is
        reported with both plugin names and the later one is ignored, as is a spec that fails
        :meth:`~plugins.functions.PackageSpec.check`.
    """


@hookspec
def register_ui_slots() -> list[UISlot]:
    """Contribute buttons that frontends show for functions of packages (in addition to the
    slots a package declares itself).

    Called once per process, the first time the platform lists the slots of an entity. A slot
    applies in a project where its package (``UISlot.package``, required here) is deployed as an
    active service; its display scopes say on which entities (a resource and a DQL filter
    evaluated on the entity) and in which panel it shows. Running one creates an execution of
    the slot's function with the entity as its input of that type.

    :return: a list of :class:`plugins.functions.UISlot`. A slot without ``package`` is reported
        as a failure of its plugin and ignored.
    """


@hookspec
def register_converters() -> list[ConverterType]:
    """Contribute annotation file formats that datasets can import from and export to.

    Called once per process, the first time the platform needs the table of formats: in the API
    process (to list them and check an import or export request) and in each worker process (to
    run the import or export). The built-in formats (``coco``, ``cvat``, ``dataloop``, ``voc``, ``yolo``) are registered
    through this hook too.

    :return: a list of :class:`plugins.converters.ConverterType`. Each ``name`` must be unique
        across all plugins; a clash is reported with both plugin names and the later one is
        ignored.
    """
