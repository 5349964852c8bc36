"""The labels of an ontology: a tree addressed by dot paths (``animal.dog``), each label with a
display name and a color.

Stored in Dataloop's wire form, ``[{tag, displayLabel, color, children: [...]}]`` where a node's
``tag`` is its own name; worked on here as a flat mapping of paths to labels, in tree order.
Input is accepted as that tree, as Dataloop's ``{value: {...}, children}`` roots, or flat with dot
paths (``{"tag": "animal.dog"}``, as Dataloop's ``labelsNode``); a path's missing parents are
added with default display names and colors.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from graph.domain.errors import Conflict, InvalidInput

__all__ = [
    "MAX_PATH",
    "Label",
    "check_path",
    "completed",
    "flatten",
    "merged",
    "parse_labels",
    "removed",
    "renamed",
    "tree",
    "within",
]

MAX_PATH = 512  # the annotation label column
_KEYS = frozenset({"tag", "displayLabel", "color", "children"})
_HEX = re.compile(r"#([0-9a-fA-F]{3}|[0-9a-fA-F]{6})")


@dataclass(frozen=True)
class Label:
    path: str
    display_label: str
    color: str

    @property
    def tag(self) -> str:
        return self.path.rpartition(".")[2]


def within(path: str, root: str) -> bool:
    """Whether ``path`` is ``root`` or one of its descendants."""
    return path == root or path.startswith(root + ".")


def default_color(path: str) -> str:
    """A stable color per path, so a label made without one keeps it across reads."""
    return "#" + hashlib.sha1(path.encode()).hexdigest()[:6]


def check_path(path: Any, field: str) -> str:
    if not isinstance(path, str):
        raise InvalidInput("a label is text, e.g. animal.dog", field=field)
    parts = [part.strip() for part in path.split(".")]
    if not all(parts) or len(path) > MAX_PATH:
        raise InvalidInput(
            f"label {path!r} is not a dot path of non-empty names (at most {MAX_PATH} characters)",
            field=field,
        )
    return ".".join(parts)


def _color(value: Any, field: str) -> str:
    if isinstance(value, str) and _HEX.fullmatch(value.strip()):
        digits = value.strip()[1:].lower()
        return "#" + (digits if len(digits) == 6 else "".join(c * 2 for c in digits))
    if (
        isinstance(value, list | tuple)
        and len(value) == 3
        and all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 255 for c in value)
    ):
        return "#" + "".join(f"{c:02x}" for c in value)
    raise InvalidInput(f"color must be #rrggbb or [r, g, b], got {value!r}", field=field)


def _nodes(value: Any, field: str) -> list[Any]:
    if not isinstance(value, list):
        raise InvalidInput("labels must be a list of {tag, displayLabel, color, children}", field)
    return value


def parse_labels(value: Any, field: str = "labels") -> dict[str, Label]:
    """Labels given by a user, by path (missing parents not added: see :func:`completed`); a
    path given twice is refused."""
    out: dict[str, Label] = {}

    def add(nodes: Any, parent: str | None, where: str) -> None:
        for index, node in enumerate(_nodes(nodes, where)):
            at = f"{where}[{index}]"
            if isinstance(node, dict) and isinstance(node.get("value"), dict):
                node = {**node["value"], "children": node.get("children") or []}
            if not isinstance(node, dict):
                raise InvalidInput("a label is an object {tag, displayLabel, color}", field=at)
            unknown = sorted(set(node) - _KEYS)
            if unknown:
                raise InvalidInput(
                    f"unknown label field {unknown[0]!r}; a label has tag, displayLabel, color, "
                    "children",
                    field=f"{at}.{unknown[0]}",
                )
            tag = check_path(node.get("tag"), f"{at}.tag")
            path = check_path(f"{parent}.{tag}" if parent else tag, f"{at}.tag")
            if path in out:
                raise InvalidInput(f"label {path!r} is given twice", field=f"{at}.tag")
            display = node.get("displayLabel")
            if display is not None and (not isinstance(display, str) or not display.strip()):
                raise InvalidInput(
                    "displayLabel must be non-empty text", field=f"{at}.displayLabel"
                )
            color = node.get("color")
            out[path] = Label(
                path,
                display.strip() if display else path.rpartition(".")[2],
                default_color(path) if color is None else _color(color, f"{at}.color"),
            )
            add(node.get("children") or [], path, f"{at}.children")

    add(value, None, field)
    return out


def _ancestors(path: str) -> list[str]:
    parts = path.split(".")
    return [".".join(parts[:n]) for n in range(1, len(parts))]


def _default(path: str) -> Label:
    return Label(path, path.rpartition(".")[2], default_color(path))


def flatten(stored: Iterable[Mapping[str, Any]], parent: str | None = None) -> dict[str, Label]:
    """The stored tree as paths to labels, in tree order."""
    out: dict[str, Label] = {}
    for node in stored:
        path = f"{parent}.{node['tag']}" if parent else str(node["tag"])
        out[path] = Label(path, str(node.get("displayLabel") or node["tag"]), str(node["color"]))
        out.update(flatten(node.get("children") or [], path))
    return out


def tree(labels: Mapping[str, Label]) -> list[dict[str, Any]]:
    """The stored (wire) tree of labels given by path; parents come before their children."""
    roots: list[dict[str, Any]] = []
    nodes: dict[str, dict[str, Any]] = {}
    for path, label in labels.items():
        node = {
            "tag": label.tag,
            "displayLabel": label.display_label,
            "color": label.color,
            "children": [],
        }
        nodes[path] = node
        parent = path.rpartition(".")[0]
        (nodes[parent]["children"] if parent else roots).append(node)
    return roots


def completed(labels: Mapping[str, Label]) -> dict[str, Label]:
    """``labels`` with their missing parents (default display names and colors), parents before
    children, siblings in the order first seen."""
    full = dict(labels)
    for path in labels:
        for ancestor in _ancestors(path):
            full.setdefault(ancestor, _default(ancestor))
    order = {path: n for n, path in enumerate(full)}
    return {
        path: full[path]
        for path in sorted(full, key=lambda p: [order[a] for a in [*_ancestors(p), p]])
    }


def merged(
    current: Mapping[str, Label], added: Mapping[str, Label], *, upsert: bool
) -> dict[str, Label]:
    """``current`` with ``added``; a label that exists already is refused unless ``upsert``, which
    takes its display name and color from ``added``."""
    for path in added:
        if path in current and not upsert:
            raise Conflict(f"label {path!r} exists already", field="labels", label=path)
    return completed({**current, **added})


def renamed(current: Mapping[str, Label], old: str, new: str) -> dict[str, Label]:
    """Labels with ``old`` and its descendants moved to ``new``; ``new``'s missing parents are
    added. A display name equal to the old name follows the new one."""
    if old not in current:
        raise InvalidInput(f"label {old!r} is not in the ontology", field="label")
    if new in current:
        raise Conflict(f"label {new!r} exists already", field="newLabel", label=new)
    if within(new, old):
        raise InvalidInput(f"label {old!r} cannot move under itself", field="newLabel")
    out: dict[str, Label] = {}
    for path, label in current.items():
        if not within(path, old):
            out[path] = label
            continue
        moved = new + path[len(old) :]
        display = label.display_label
        if path == old and display == label.tag:
            display = new.rpartition(".")[2]
        out[moved] = Label(moved, display, label.color)
    return completed(out)


def removed(current: Mapping[str, Label], path: str) -> dict[str, Label]:
    """Labels without ``path`` and its descendants."""
    if path not in current:
        raise InvalidInput(f"label {path!r} is not in the ontology", field="label")
    return {p: label for p, label in current.items() if not within(p, path)}
