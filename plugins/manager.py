"""The plugin manager: built-ins first, then the ``loopline`` entry points, each loaded once."""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any

import pluggy

from plugins import hookspecs
from plugins.converters import ConverterType
from plugins.functions import PackageSpec, UISlot
from plugins.types import StorageDriverType

__all__ = ["BUILTIN_PLUGINS", "PluginFailure", "Plugins"]

log = logging.getLogger(__name__)

BUILTIN_PLUGINS = (
    "plugins.builtin.local_storage",
    "plugins.builtin.s3_storage",
    "plugins.builtin.coco",
    "plugins.builtin.cvat",
    "plugins.builtin.dataloop",
    "plugins.builtin.voc",
    "plugins.builtin.yolo",
)


@dataclass(frozen=True)
class PluginFailure:
    """A plugin that could not be loaded or whose hook raised; the platform runs on without it."""

    plugin: str
    error: str


@dataclass
class Plugins:
    """The plugins of one process and the tables built from their hooks.

    Entry points are read on first use, not at import, and at most once. ``entry_points=False``
    keeps only the built-ins (used to export the schema, so a local plugin never leaks into it).
    """

    entry_points: bool = True
    # modules to register as plugins after the built-ins (``LOOPLINE_PLUGINS``)
    modules: tuple[str, ...] = ()
    failures: list[PluginFailure] = field(default_factory=list)
    _pm: pluggy.PluginManager | None = None
    _storage_drivers: dict[str, StorageDriverType] | None = None
    _packages: dict[str, PackageSpec] | None = None
    _ui_slots: list[UISlot] | None = None
    _converters: dict[str, ConverterType] | None = None

    @property
    def pm(self) -> pluggy.PluginManager:
        if self._pm is None:
            self._pm = self._build()
        return self._pm

    def register(self, plugin: object, name: str) -> None:
        """Register a plugin object by hand (tests, embedding applications)."""
        self.pm.register(plugin, name=name)
        self._storage_drivers = None
        self._packages = None
        self._ui_slots = None
        self._converters = None

    def _build(self) -> pluggy.PluginManager:
        pm = pluggy.PluginManager(hookspecs.PROJECT)
        pm.add_hookspecs(hookspecs)
        for module_name in BUILTIN_PLUGINS:
            pm.register(importlib.import_module(module_name), name=module_name)
        for module_name in self.modules:
            if pm.get_plugin(module_name) is None:
                try:
                    pm.register(importlib.import_module(module_name), name=module_name)
                except Exception as exc:
                    self._fail(module_name, exc)
        if self.entry_points:
            for ep in entry_points(group=hookspecs.PROJECT):
                if pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
                    continue
                try:
                    pm.register(ep.load(), name=ep.name)
                except Exception as exc:  # a broken plugin must never take the platform down
                    self._fail(ep.name, exc)
        pm.check_pending()
        return pm

    def _fail(self, plugin: str, exc: BaseException) -> None:
        message = f"{type(exc).__name__}: {exc}"
        log.error("plugin %r failed: %s", plugin, message)
        self.failures.append(PluginFailure(plugin, message))

    def _collect(self, hook_name: str) -> list[tuple[str, Any]]:
        """Call a list-returning hook plugin by plugin, so one failing plugin is reported by name."""
        results: list[tuple[str, Any]] = []
        for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
            try:
                returned = impl.function()
            except Exception as exc:
                self._fail(impl.plugin_name, exc)
                continue
            results.extend((impl.plugin_name, value) for value in returned or ())
        return results

    def _table(self, hook_name: str, what: str) -> dict[str, tuple[str, Any]]:
        """Name -> (plugin, value) from a list-returning hook. ``get_hookimpls()`` lists plugins
        in registration order (built-ins first), so the first one to claim a name keeps it."""
        table: dict[str, tuple[str, Any]] = {}
        for plugin, value in self._collect(hook_name):
            if value.name in table:
                message = f"{what} {value.name!r} is already provided by {table[value.name][0]!r}"
                self._fail(plugin, ValueError(message))
                continue
            table[value.name] = (plugin, value)
        return table

    @property
    def storage_drivers(self) -> dict[str, StorageDriverType]:
        if self._storage_drivers is None:
            table = self._table("register_storage_drivers", "storage driver")
            self._storage_drivers = {name: driver for name, (_, driver) in table.items()}
        return self._storage_drivers

    @property
    def converters(self) -> dict[str, ConverterType]:
        """Annotation formats by name (``voc``, ``coco``, ...)."""
        if self._converters is None:
            table = self._table("register_converters", "converter")
            self._converters = {name: converter for name, (_, converter) in table.items()}
        return self._converters

    @property
    def packages(self) -> dict[str, PackageSpec]:
        """Packages of functions shipped by plugins, by name; an invalid one is reported."""
        if self._packages is None:
            packages = {}
            for name, (plugin, spec) in self._table("register_functions", "package").items():
                try:
                    spec.check()
                    missing = [m.name for m in spec.modules if m.runner is None]
                    if missing:
                        raise ValueError(f"module {missing[0]!r} of {name!r} has no runner")
                except ValueError as exc:
                    self._fail(plugin, exc)
                    continue
                packages[name] = spec
            self._packages = packages
        return self._packages

    @property
    def ui_slots(self) -> list[UISlot]:
        """Slots registered by plugins (each naming its package)."""
        if self._ui_slots is None:
            slots = []
            for plugin, slot in self._collect("register_ui_slots"):
                if not slot.package:
                    self._fail(plugin, ValueError(f"slot {slot.display_name!r} names no package"))
                    continue
                slots.append(slot)
            self._ui_slots = slots
        return self._ui_slots

    def describe(self) -> list[dict[str, Any]]:
        """Each registered plugin with its hooks, built-ins first, for ``loopline plugins``."""
        rows = []
        for name, plugin in self.pm.list_name_plugin():
            hooks = sorted(
                caller.name
                for caller in self.pm.get_hookcallers(plugin) or ()
                if not caller.name.startswith("_")
            )
            version = getattr(plugin, "__version__", None)
            rows.append(
                {
                    "name": name,
                    "builtin": name in BUILTIN_PLUGINS,
                    "hooks": hooks,
                    "version": version,
                    "module": plugin.__name__ if isinstance(plugin, ModuleType) else None,
                }
            )
        rows.sort(key=lambda row: (not row["builtin"], row["name"]))
        return rows
