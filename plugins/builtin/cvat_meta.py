"""CVAT's ``<meta>``: the labels (attribute types, skeletons and their points) and the tasks
(a task export's one, or a project export's several): their frames and, for a video task, its
frame size and the video's name; read from a file, written for one.

CVAT lists a skeleton's points as labels of their own whose ``<parent>`` is the skeleton's
label (``<label><name>thumb</name><type>points</type><parent>hand</parent></label>``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from xml.etree import ElementTree
from xml.sax.saxutils import escape

__all__ = ["Meta", "Task", "meta_xml"]


def _whole(text: str | None) -> int | None:
    try:
        return int(text or "")
    except ValueError:
        return None


def _step(frame_filter: str | None) -> int:
    """The step of CVAT's ``frame_filter`` (``step=5``: every fifth frame of the video); 1
    without one."""
    for part in (frame_filter or "").split(","):
        key, _, value = part.partition("=")
        if key.strip() == "step" and (step := _whole(value)) is not None and step > 0:
            return step
    return 1


@dataclass(eq=False)
class Task:
    """A task's frames as ``<task>`` says: ``size`` frames from ``start`` every ``step``
    frames of its video (``start_frame``, ``frame_filter`` ``step=N``; CVAT numbers a task's
    frames by the video's frame, ``start + i * step`` for its ``i``-th), and, for a video task,
    the video's name and frame size."""

    id: str | None = None
    size: int | None = None
    start: int = 0
    step: int = 1
    stop: int | None = None  # ``stop_frame``, the last frame when ``size`` is not given
    source: str | None = None
    width: int | None = None
    height: int | None = None
    subset: str | None = None  # a project's task's: its images are below images/<subset>/

    @classmethod
    def of(cls, task: ElementTree.Element) -> Task:
        return cls(
            id=(task.findtext("id") or "").strip() or None,
            size=_whole(task.findtext("size")),
            start=max(_whole(task.findtext("start_frame")) or 0, 0),
            step=_step(task.findtext("frame_filter")),
            stop=_whole(task.findtext("stop_frame")),
            source=(task.findtext("source") or "").strip() or None,
            width=_whole(task.findtext("original_size/width")),
            height=_whole(task.findtext("original_size/height")),
            subset=(task.findtext("subset") or "").strip() or None,
        )

    # what a project export adds to the task's frame numbers (CVAT numbers the frames of a
    # subset's tasks one after the other: each task's after the frames of those before it)
    offset: int = 0

    @property
    def last(self) -> int | None:
        """The task's last frame (a video's frame index), when it says."""
        if self.size is not None:
            return self.start + (max(self.size, 1) - 1) * self.step
        return self.stop

    def frame(self, index: int) -> int:
        """The frame number of the task's ``index``-th frame in the file."""
        return self.offset + self.start + index * self.step

    def video_frame(self, frame: int) -> int:
        """The video's frame index of frame number ``frame`` of the file."""
        return frame - self.offset

    def fits(self, frame: int, offset: int) -> bool:
        """Whether ``frame`` is one of the task's frames numbered after ``offset``."""
        index, rest = divmod(frame - offset - self.start, self.step)
        return index >= 0 and not rest and (self.size is None or index < self.size)

    def settle(self, frames: set[int]) -> None:
        """Number the task's frames as a project export of an older CVAT did (no offset) when
        only that numbering fits the ``frames`` the file gives."""
        if self.offset and not all(self.fits(f, self.offset) for f in frames):
            if all(self.fits(f, 0) for f in frames):
                self.offset = 0


@dataclass
class Meta:
    """What a file's ``<meta>`` says: of a task export (``<meta><task>``) or of a project's
    (``<meta><project>`` with its ``<tasks>``, whose images and tracks carry ``task_id``)."""

    # (label, attribute) -> CVAT input type (checkbox, number, select, radio, text)
    types: dict[tuple[str, str], str] = field(default_factory=dict)
    # skeleton label -> the labels of its points, as declared
    sublabels: dict[str, list[str]] = field(default_factory=dict)
    # the tasks by id (a task export's one task under its id, and under None)
    tasks: dict[str | None, Task] = field(default_factory=dict)
    project: bool = False

    @classmethod
    def of(cls, root: ElementTree.Element) -> Meta:
        meta = cls()
        found = root.find("meta")
        if found is None:
            meta.tasks[None] = Task()
            return meta
        for label in found.iter("label"):
            name = label.findtext("name") or ""
            for attribute in label.iter("attribute"):
                key, kind = attribute.findtext("name"), attribute.findtext("input_type")
                if key and kind:
                    meta.types[(name, key)] = kind
            parent = label.findtext("parent")
            if parent and name not in meta.sublabels.get(parent, []):
                meta.sublabels.setdefault(parent, []).append(name)
        project = found.find("project")
        if project is not None:
            meta.project = True
            after: dict[str | None, int] = {}  # a subset's frames so far
            for element in project.iterfind("tasks/task"):
                task = Task.of(element)
                task.offset = after.get(task.subset, 0)
                after[task.subset] = task.offset + task.start + task.step * (task.size or 0)
                meta.tasks[task.id] = task
            return meta
        element = found.find("task")
        task = Task() if element is None else Task.of(element)
        # a video task export names its video beside the task
        task.source = (found.findtext("source") or "").strip() or task.source
        meta.tasks[None] = task
        if task.id is not None:
            meta.tasks[task.id] = task
        return meta

    def alone_in_subset(self, task: Task) -> bool:
        """Whether ``task`` is the only image task of its subset (whose images it can tell by
        their folder)."""
        peers = {t for t in self.tasks.values() if not t.source and t.subset == task.subset}
        return task.subset is not None and peers == {task}

    def task(self, task_id: str | None) -> Task | None:
        """The task of an image or track by its ``task_id`` (a task export's one task also when
        it gives none, as CVAT's task exports do); None for an unknown task."""
        if task_id is None and self.project and len(self.tasks) == 1:
            return next(iter(self.tasks.values()))
        return self.tasks.get(task_id)


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
