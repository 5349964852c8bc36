"""CVAT's ``<meta>``: the task's labels (attribute types, skeletons and their points) and, for a
video task, its frames, frame size and the video's name; read from a file, written for one.

CVAT lists a skeleton's points as labels of their own whose ``<parent>`` is the skeleton's
label (``<label><name>thumb</name><type>points</type><parent>hand</parent></label>``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from xml.etree import ElementTree
from xml.sax.saxutils import escape

__all__ = ["Meta", "meta_xml"]


def _whole(text: str | None) -> int | None:
    try:
        return int(text or "")
    except ValueError:
        return None


@dataclass
class Meta:
    """What a file's ``<meta>`` says."""

    # (label, attribute) -> CVAT input type (checkbox, number, select, radio, text)
    types: dict[tuple[str, str], str] = field(default_factory=dict)
    # skeleton label -> the labels of its points, as declared
    sublabels: dict[str, list[str]] = field(default_factory=dict)
    size: int | None = None  # frames (or images) of the task
    source: str | None = None  # a video task's file name
    width: int | None = None  # a video's frame size (``original_size``)
    height: int | None = None

    @classmethod
    def of(cls, root: ElementTree.Element) -> Meta:
        meta = cls()
        found = root.find("meta")
        if found is None:
            return meta
        for label in found.iter("label"):
            name = label.findtext("name") or ""
            for attribute in label.iter("attribute"):
                key, kind = attribute.findtext("name"), attribute.findtext("input_type")
                if key and kind:
                    meta.types[(name, key)] = kind
            parent = label.findtext("parent")
            if parent:
                meta.sublabels.setdefault(parent, []).append(name)
        task = found.find("task")
        if task is not None:
            meta.size = _whole(task.findtext("size"))
            meta.width = _whole(task.findtext("original_size/width"))
            meta.height = _whole(task.findtext("original_size/height"))
        meta.source = (found.findtext("source") or "").strip() or None
        return meta


def _label(
    name: str, kinds: Mapping[str, str], kind: str | None = None, parent: str | None = None
) -> str:
    attributes = "".join(
        f"<attribute><name>{escape(key)}</name><input_type>{type_}</input_type></attribute>"
        for key, type_ in kinds.items()
    )
    typed = f"<type>{kind}</type>" if kind else ""
    child = f"<parent>{escape(parent)}</parent>" if parent else ""
    return (
        f"<label><name>{escape(name)}</name>{typed}<attributes>{attributes}</attributes>"
        f"{child}</label>"
    )


def meta_xml(
    labels: Sequence[str],
    kinds: Mapping[str, Mapping[str, str]],
    skeletons: Mapping[str, Sequence[str]],
    *,
    task: str = "",
    after: str = "",
) -> str:
    """``<meta>`` declaring ``labels`` with their attributes' input types (``kinds``: label ->
    attribute -> type), skeletons (label -> its points' labels) typed so with their points as
    labels of their own; ``task`` and ``after`` are more of ``<task>`` and of ``<meta>``."""
    declared = [
        _label(name, kinds.get(name, {}), "skeleton" if name in skeletons else None)
        for name in dict.fromkeys([*labels, *skeletons])
    ]
    for skeleton, points in skeletons.items():
        declared += [_label(point, kinds.get(point, {}), "points", skeleton) for point in points]
    return f"  <meta><task>{task}<labels>{''.join(declared)}</labels></task>{after}</meta>\n"
