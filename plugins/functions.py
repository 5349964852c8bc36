"""Packages of functions: what a plugin ships through ``register_functions`` and what an uploaded
archive's manifest (``loopline.json``) declares, in one shape.

The manifest follows Dataloop's package JSON, so packages written for dtlpy carry over::

    {"name": "detector",
     "modules": [{"name": "default_module", "entryPoint": "main.py", "className": "ServiceRunner",
                  "initInputs": [{"name": "threshold", "type": "Float"}],
                  "functions": [{"name": "run",
                                 "input": [{"name": "item", "type": "Item"}],
                                 "output": [{"name": "item", "type": "Item",
                                             "actions": ["good", "bad"]}]}]}]}

A module is a class (constructed once per worker process with the service's ``initParams``) whose
methods are the functions; a function receives its inputs by name, plus ``progress`` and
``context`` when its signature asks for them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ENTITY_TYPES",
    "IO_TYPES",
    "SLOT_RESOURCES",
    "DisplayScope",
    "FunctionIO",
    "FunctionSpec",
    "ModuleSpec",
    "PackageSpec",
    "SpecError",
    "UISlot",
]

ENTITY_TYPES = ("Item", "Dataset", "Annotation", "Execution", "Model")
_SCALARS = ("Json", "String", "Number", "Integer", "Float", "Boolean")
IO_TYPES = tuple(t + suffix for t in (*ENTITY_TYPES, *_SCALARS) for suffix in ("", "[]"))
SLOT_RESOURCES = ("item", "annotation", "dataset", "task", "datasetQuery")
_PANELS = ("browser", "studio", "table", "all")
_POST_ACTIONS = ("noAction", "download", "drawAnnotation")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]{0,199}$")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,199}$")


class SpecError(ValueError):
    """A package declaration that cannot be used; ``where`` locates it (``modules[0].functions[1]``)."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}" if where else message)
        self.where = where


@dataclass(frozen=True)
class FunctionIO:
    """One input or output of a function: ``type`` is one of :data:`IO_TYPES`; ``actions`` on an
    output are the named branches the function may choose (pipelines route on them)."""

    name: str
    type: str = "Json"
    description: str = ""
    actions: tuple[str, ...] = ()
    mandatory: bool = True
    default: Any = None


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    inputs: tuple[FunctionIO, ...] = ()
    outputs: tuple[FunctionIO, ...] = ()
    description: str = ""
    display_name: str = ""

    def input(self, name: str) -> FunctionIO | None:
        return next((io for io in self.inputs if io.name == name), None)


@dataclass(frozen=True)
class ModuleSpec:
    """A module: for a plugin, ``runner`` is the class (or any callable returning the object whose
    methods are the functions); for an archive, ``entry_point`` and ``class_name`` locate it."""

    name: str = "default_module"
    functions: tuple[FunctionSpec, ...] = ()
    init_inputs: tuple[FunctionIO, ...] = ()
    entry_point: str = "main.py"
    class_name: str = "ServiceRunner"
    runner: Callable[..., Any] | None = field(default=None, compare=False)

    def function(self, name: str) -> FunctionSpec | None:
        return next((f for f in self.functions if f.name == name), None)


@dataclass(frozen=True)
class DisplayScope:
    """Where a slot's button shows: on entities of ``resource`` that match the DQL ``filter``
    (empty: all of them), in ``panel``."""

    resource: str
    filter: str = ""
    panel: str = "all"


@dataclass(frozen=True)
class UISlot:
    """A button a frontend shows for a function (Dataloop's package slots). ``package`` is set
    for slots a plugin registers with ``register_ui_slots``; a package's own slots leave it
    empty. ``post_action`` says what the frontend does with the output."""

    display_name: str
    module_name: str
    function_name: str
    display_scopes: tuple[DisplayScope, ...]
    post_action: str = "noAction"
    display_icon: str = ""
    default_inputs: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    package: str = ""


@dataclass(frozen=True)
class PackageSpec:
    name: str
    modules: tuple[ModuleSpec, ...] = ()
    description: str = ""
    version: str = ""
    slots: tuple[UISlot, ...] = ()

    def module(self, name: str) -> ModuleSpec | None:
        return next((m for m in self.modules if m.name == name), None)

    def to_manifest(self) -> dict[str, Any]:
        """The JSON form (as stored with a revision and returned by the API)."""
        return {
            "name": self.name,
            "description": self.description,
            "version": self.version,
            "modules": [
                {
                    "name": m.name,
                    "entryPoint": m.entry_point,
                    "className": m.class_name,
                    "initInputs": [_io_json(io) for io in m.init_inputs],
                    "functions": [
                        {
                            "name": f.name,
                            "description": f.description,
                            "displayName": f.display_name,
                            "input": [_io_json(io) for io in f.inputs],
                            "output": [_io_json(io) for io in f.outputs],
                        }
                        for f in m.functions
                    ],
                }
                for m in self.modules
            ],
            "slots": [_slot_json(slot) for slot in self.slots],
        }

    @classmethod
    def from_manifest(cls, manifest: Any) -> PackageSpec:
        """Read and check a manifest; :class:`SpecError` says where it is wrong."""
        doc = _mapping(manifest, "")
        name = _name(doc.get("name"), "name")
        modules_doc = doc.get("modules")
        if not isinstance(modules_doc, list) or not modules_doc:
            raise SpecError("modules", "a package needs a non-empty list of modules")
        modules = tuple(_module(m, f"modules[{i}]") for i, m in enumerate(modules_doc))
        _unique([m.name for m in modules], "modules", "module")
        slots_doc = doc.get("slots") or []
        if not isinstance(slots_doc, list):
            raise SpecError("slots", "must be a list")
        slots = tuple(read_slot(raw, f"slots[{i}]") for i, raw in enumerate(slots_doc))
        for i, slot in enumerate(slots):
            module = next((m for m in modules if m.name == slot.module_name), None)
            if module is None or module.function(slot.function_name) is None:
                raise SpecError(
                    f"slots[{i}]",
                    f"no function {slot.function_name!r} in module {slot.module_name!r}",
                )
        return cls(
            name=name,
            modules=modules,
            description=_text(doc.get("description"), "description"),
            version=_text(doc.get("version"), "version"),
            slots=slots,
        )

    def check(self) -> None:
        """Check a spec built in code (a plugin's) the way a manifest is checked."""
        PackageSpec.from_manifest(self.to_manifest())


def _io_json(io: FunctionIO) -> dict[str, Any]:
    out: dict[str, Any] = {"name": io.name, "type": io.type}
    if io.description:
        out["description"] = io.description
    if io.actions:
        out["actions"] = list(io.actions)
    if not io.mandatory:
        out["mandatory"] = False
    if io.default is not None:
        out["default"] = io.default
    return out


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise SpecError(where, "must be a JSON object")
    return value


def _text(value: Any, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise SpecError(where, "must be a string")
    return value


def _name(value: Any, where: str, pattern: re.Pattern[str] = _NAME) -> str:
    if not isinstance(value, str) or not pattern.match(value):
        raise SpecError(where, f"{value!r} is not a valid name (letters, digits, _ and -)")
    return value


def _unique(names: Sequence[str], where: str, what: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise SpecError(where, f"two {what}s are named {name!r}")
        seen.add(name)


def _ios(value: Any, where: str) -> tuple[FunctionIO, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise SpecError(where, "must be a list")
    ios = []
    for i, raw in enumerate(value):
        at = f"{where}[{i}]"
        doc = _mapping(raw, at)
        kind = doc.get("type", "Json")
        if kind not in IO_TYPES:
            raise SpecError(f"{at}.type", f"unknown type {kind!r}; one of {', '.join(IO_TYPES)}")
        actions = doc.get("actions") or []
        if not isinstance(actions, list) or not all(isinstance(a, str) and a for a in actions):
            raise SpecError(f"{at}.actions", "must be a list of names")
        mandatory = doc.get("mandatory", True)
        if not isinstance(mandatory, bool):
            raise SpecError(f"{at}.mandatory", "must be true or false")
        ios.append(
            FunctionIO(
                name=_name(doc.get("name"), f"{at}.name", _IDENTIFIER),
                type=kind,
                description=_text(doc.get("description"), f"{at}.description"),
                actions=tuple(actions),
                mandatory=mandatory,
                default=doc.get("default"),
            )
        )
    _unique([io.name for io in ios], where, "input or output")
    return tuple(ios)


def _module(raw: Any, where: str) -> ModuleSpec:
    doc = _mapping(raw, where)
    functions_doc = doc.get("functions")
    if not isinstance(functions_doc, list) or not functions_doc:
        raise SpecError(f"{where}.functions", "a module needs a non-empty list of functions")
    functions = []
    for i, raw_function in enumerate(functions_doc):
        at = f"{where}.functions[{i}]"
        fdoc = _mapping(raw_function, at)
        functions.append(
            FunctionSpec(
                name=_name(fdoc.get("name"), f"{at}.name", _IDENTIFIER),
                inputs=_ios(fdoc.get("input"), f"{at}.input"),
                outputs=_ios(fdoc.get("output"), f"{at}.output"),
                description=_text(fdoc.get("description"), f"{at}.description"),
                display_name=_text(fdoc.get("displayName"), f"{at}.displayName"),
            )
        )
    _unique([f.name for f in functions], f"{where}.functions", "function")
    entry_point = _text(doc.get("entryPoint"), f"{where}.entryPoint") or "main.py"
    if not re.match(r"^[A-Za-z0-9_][A-Za-z0-9_/\-]*\.py$", entry_point) or ".." in entry_point:
        raise SpecError(f"{where}.entryPoint", f"{entry_point!r} is not a relative .py path")
    return ModuleSpec(
        name=_name(doc.get("name", "default_module"), f"{where}.name"),
        functions=tuple(functions),
        init_inputs=_ios(doc.get("initInputs"), f"{where}.initInputs"),
        entry_point=entry_point,
        class_name=_name(doc.get("className", "ServiceRunner"), f"{where}.className", _IDENTIFIER),
    )


def _slot_json(slot: UISlot) -> dict[str, Any]:
    return {
        "displayName": slot.display_name,
        "displayIcon": slot.display_icon,
        "moduleName": slot.module_name,
        "functionName": slot.function_name,
        "displayScopes": [
            {"resource": s.resource, "filter": s.filter, "panel": s.panel}
            for s in slot.display_scopes
        ],
        "postAction": {"type": slot.post_action},
        "defaultInputs": slot.default_inputs,
    }


def read_slot(raw: Any, where: str) -> UISlot:
    """A slot in Dataloop's JSON form; the scope ``filter`` is DQL text (or empty)."""
    doc = _mapping(raw, where)
    scopes_doc = doc.get("displayScopes")
    if not isinstance(scopes_doc, list) or not scopes_doc:
        raise SpecError(f"{where}.displayScopes", "a slot needs a non-empty list of scopes")
    scopes = []
    for i, scope_raw in enumerate(scopes_doc):
        at = f"{where}.displayScopes[{i}]"
        scope = _mapping(scope_raw, at)
        resource = scope.get("resource")
        if resource not in SLOT_RESOURCES:
            raise SpecError(f"{at}.resource", f"one of {', '.join(SLOT_RESOURCES)}")
        panel = scope.get("panel", "all")
        if panel not in _PANELS:
            raise SpecError(f"{at}.panel", f"one of {', '.join(_PANELS)}")
        scopes.append(DisplayScope(resource, _text(scope.get("filter"), f"{at}.filter"), panel))
    post = doc.get("postAction") or {}
    post_type = post.get("type", "noAction") if isinstance(post, Mapping) else post
    if post_type not in _POST_ACTIONS:
        raise SpecError(f"{where}.postAction", f"type is one of {', '.join(_POST_ACTIONS)}")
    defaults = doc.get("defaultInputs") or {}
    if not isinstance(defaults, Mapping):
        raise SpecError(f"{where}.defaultInputs", "must be a JSON object")
    return UISlot(
        display_name=_text(doc.get("displayName"), f"{where}.displayName") or "",
        display_icon=_text(doc.get("displayIcon"), f"{where}.displayIcon"),
        module_name=_name(doc.get("moduleName", "default_module"), f"{where}.moduleName"),
        function_name=_name(doc.get("functionName"), f"{where}.functionName", _IDENTIFIER),
        display_scopes=tuple(scopes),
        post_action=post_type,
        default_inputs=dict(defaults),
        package=_text(doc.get("package"), f"{where}.package"),
    )
