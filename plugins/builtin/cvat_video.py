"""Writing a video item as CVAT for video 1.1: one file per video, its tracks over its frames.

A video annotation (``metadata.system.frame`` .. ``endFrame``, keyframes in ``snapshots_``)
becomes a ``<track>`` (``id`` its ``objectId`` when that is a free whole number): a shape at its
first frame and at each snapshot's (``keyframe`` the snapshot's ``fixed``, ``outside`` when the
object is not visible, the frame's ``namedAttributes``, else the last given), closed by an
``outside`` shape the frame after ``endFrame`` unless that is the video's last. A label
changed by a snapshot starts a new track, as a CVAT track has one label; a segment of several
rings is a track per ring (outside on a frame without it), as CVAT's polygons have no holes. A
``pose`` with child ``point`` annotations (``parentId``) is a track of ``<skeleton>``s, a shape
on each frame the pose or one of its points has a keyframe, each point outside before its first
frame and after its last. The task's ``size`` is the video's frame count when its metadata says it
(``nb_frames``, Dataloop's ``nb_frames_estimation``, ffprobe's ``nb_read_frames``), else one
past the last annotated frame. Annotations that are not video annotations, or whose shape
CVAT cannot hold, are left out and counted.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from plugins.builtin.cvat_meta import meta_xml
from plugins.builtin.cvat_shapes import attributes_xml, geometry_xml, part_xml, rings
from plugins.converters import ItemAnnotations, attributes_of

__all__ = ["input_type", "is_video", "video_path", "video_xml"]


def _system(annotation: dict[str, Any]) -> dict[str, Any]:
    found = (annotation.get("metadata") or {}).get("system")
    return found if isinstance(found, dict) else {}


def is_video(item: ItemAnnotations) -> bool:
    """A video by its metadata's media type; without one, when an annotation has a frame."""
    mimetype = ((item.item.get("metadata") or {}).get("system") or {}).get("mimetype")
    if isinstance(mimetype, str):
        return mimetype.startswith("video/")
    return any(isinstance(_system(a).get("frame"), int) for a in item.annotations)


def video_path(filename: str) -> str:
    """Where a video's file goes in an export: ``/clips/a.mp4`` gives ``videos/clips/a.mp4.xml``."""
    return f"videos/{filename.lstrip('/')}.xml"


def input_type(value: Any) -> str:
    """The CVAT input type of an attribute's value."""
    if isinstance(value, bool):
        return "checkbox"
    return "number" if isinstance(value, int | float) else "text"


def _frame_count(item: ItemAnnotations) -> int | None:
    system = (item.item.get("metadata") or {}).get("system") or {}
    ffmpeg = system.get("ffmpeg") if isinstance(system.get("ffmpeg"), dict) else {}
    for value in (
        system.get("nb_frames"),
        system.get("nb_frames_estimation"),
        ffmpeg.get("nb_read_frames"),
    ):
        try:
            count = int(value)
        except (TypeError, ValueError):
            continue
        if count > 0:
            return count
    return None


def _size(item: ItemAnnotations) -> tuple[Any, Any]:
    system = (item.item.get("metadata") or {}).get("system") or {}
    return item.width or system.get("width"), item.height or system.get("height")


@dataclass(frozen=True)
class _Shape:
    """An annotation's object on one frame."""

    frame: int
    label: Any
    type: Any
    coordinates: Any
    attributes: dict[str, Any]
    outside: bool
    keyframe: bool


def _timeline(annotation: dict[str, Any]) -> tuple[list[_Shape], int] | None:
    """The shapes of a video annotation, by frame, and its last frame; None for one without a
    frame."""
    system = _system(annotation)
    start = system.get("frame")
    if not isinstance(start, int) or isinstance(start, bool):
        return None
    label, kind = annotation.get("label"), annotation.get("type")
    shapes = {
        start: _Shape(
            start,
            label,
            kind,
            annotation.get("coordinates"),
            attributes_of(annotation),
            False,
            True,
        )
    }
    snapshots = system.get("snapshots_") if isinstance(system.get("snapshots_"), list) else []
    later = sorted(
        (
            s
            for s in snapshots
            if isinstance(s, dict) and isinstance(s.get("frame"), int) and s["frame"] > start
        ),
        key=lambda s: s["frame"],
    )
    given = system.get("endFrame")
    end = (
        given
        if isinstance(given, int) and given >= start
        else max([start, *(s["frame"] for s in later)])
    )
    named = shapes[start].attributes
    for snapshot in later:
        if snapshot["frame"] > end:
            break
        named = (
            snapshot["namedAttributes"]
            if isinstance(snapshot.get("namedAttributes"), dict)
            else named
        )
        shapes[snapshot["frame"]] = _Shape(
            snapshot["frame"],
            snapshot.get("label") or label,
            snapshot.get("type") or kind,
            snapshot.get("data"),
            named,
            not snapshot.get("objectVisible", True),
            bool(snapshot.get("fixed", True)),
        )
    return list(shapes.values()), end


def _by_ring(shapes: list[_Shape]) -> list[list[_Shape]]:
    """The shapes of each ring of a segment of several rings (a track each, as CVAT's polygons
    have no holes): a frame without that ring has it outside; else the shapes as they are."""
    split = [rings(s.type, s.coordinates) for s in shapes]
    count = max(len(r) for r in split)
    if count == 1:
        return [shapes]
    return [
        [
            replace(s, coordinates=r[n])
            if n < len(r)
            else replace(s, coordinates=r[0], outside=True)
            for s, r in zip(shapes, split, strict=True)
        ]
        for n in range(count)
    ]


def _at(shapes: Sequence[_Shape], frame: int) -> _Shape | None:
    """The shape on ``frame``: the last given at or before it."""
    found = None
    for shape in shapes:
        if shape.frame > frame:
            break
        found = shape
    return found


class _Ids:
    """Track ids: an annotation's ``objectId`` when it is a whole number no other track has."""

    def __init__(self, wanted: set[str]) -> None:
        self.used: set[str] = set()
        self.reserved = wanted
        self.next = itertools.count()

    def take(self, wanted: Any) -> str:
        if isinstance(wanted, str) and wanted.isdigit() and wanted not in self.used:
            self.used.add(wanted)
            return wanted
        while (candidate := str(next(self.next))) in self.used or candidate in self.reserved:
            pass
        self.used.add(candidate)
        return candidate


class _Video:
    def __init__(self, item: ItemAnnotations) -> None:
        self.item = item
        self.kinds: dict[str, dict[str, str]] = {}
        self.skeletons: dict[str, list[str]] = {}
        self.left_out = 0
        poses = {
            a["id"]: a
            for a in item.annotations
            if a.get("type") == "pose" and a.get("id") is not None
        }
        self.children: dict[Any, list[dict[str, Any]]] = {}
        self.tops: list[dict[str, Any]] = []
        for annotation in item.annotations:
            parent = _system(annotation).get("parentId")
            if annotation.get("type") == "point" and parent in poses:
                self.children.setdefault(parent, []).append(annotation)
            else:
                self.tops.append(annotation)
        for pose_id, pose in poses.items():
            names = self.skeletons.setdefault(pose.get("label") or "", [])
            names += [
                c["label"]
                for c in self.children.get(pose_id, [])
                if c.get("label") and c["label"] not in names
            ]
        ends = [t[1] for t in map(_timeline, item.annotations) if t is not None]
        self.count = max([_frame_count(item) or 0, *(end + 1 for end in ends)])
        self.ids = _Ids({str(_system(a).get("objectId")) for a in self.tops})

    def _declare(self, shape: _Shape) -> None:
        for key, value in shape.attributes.items():
            if key != "occluded":
                self.kinds.setdefault(shape.label, {}).setdefault(key, input_type(value))

    def _line(self, shape: _Shape, frame: int, outside: bool, keyframe: bool) -> str | None:
        found = geometry_xml(shape.type, shape.coordinates)
        if found is None or not shape.label:
            return None
        tag, geometry = found
        self._declare(shape)
        occluded = int(bool(shape.attributes.get("occluded")))
        return (
            f'    <{tag} frame="{frame}" keyframe="{int(keyframe)}" outside="{int(outside)}" '
            f'occluded="{occluded}" {geometry} z_order="0">{attributes_xml(shape.attributes)}'
            f"</{tag}>\n"
        )

    def _track(self, label: Any, object_id: Any, body: list[str]) -> str:
        opening = (
            f'  <track id="{self.ids.take(object_id)}" label={quoteattr(label)} source="manual">'
        )
        return f"{opening}\n{''.join(body)}  </track>\n"

    def shape_tracks(self, annotation: dict[str, Any]) -> str | None:
        timeline = _timeline(annotation)
        if timeline is None:
            return None
        shapes, end = timeline
        tracks = []
        for index, ring_shapes in enumerate(_by_ring(shapes)):
            groups = [list(g) for _, g in itertools.groupby(ring_shapes, key=lambda s: s.label)]
            for number, group in enumerate(groups):
                closing = groups[number + 1][0].frame if number + 1 < len(groups) else end + 1
                body = [self._line(s, s.frame, s.outside, s.keyframe) for s in group]
                if closing < self.count:
                    body.append(self._line(group[-1], closing, True, True))
                if any(line is None for line in body):
                    return None
                first = index == 0 and number == 0
                object_id = _system(annotation).get("objectId") if first else None
                tracks.append(self._track(group[0].label, object_id, body))
        return "".join(tracks)

    def _parts(self, pose: dict[str, Any], end: int) -> dict[str, tuple[list[_Shape], int]]:
        found: dict[str, tuple[list[_Shape], int]] = {}
        for child in self.children.get(pose.get("id"), []):
            timeline = _timeline(child)
            if timeline is None or not child.get("label") or child["label"] in found:
                self.left_out += 1
                continue
            shapes, child_end = timeline
            within = [s for s in shapes if s.frame <= end]
            if not within:  # a point after its pose's last frame
                self.left_out += 1
                continue
            found[child["label"]] = (within, min(child_end, end))
        return found

    def skeleton_track(self, pose: dict[str, Any]) -> str | None:
        timeline = _timeline(pose)
        if timeline is None or not pose.get("label"):
            self.left_out += len(self.children.get(pose.get("id"), []))
            return None
        poses, end = timeline
        parts = self._parts(pose, end)
        if not parts:
            return None
        start = poses[0].frame
        frames = {s.frame for s in poses}
        for shapes, part_end in parts.values():
            frames |= {s.frame for s in shapes if s.frame >= start}
            frames |= {part_end + 1} if part_end < end else set()
        frames |= {end + 1} if end + 1 < self.count else set()
        body = []
        for frame in sorted(frames):
            state = _at(poses, frame)
            assert state is not None  # no frame comes before the pose's first
            hidden = frame > end or state.outside
            elements, any_key = [], False
            for name in self.skeletons[pose["label"]]:
                element, keyframe = self._part(parts.get(name), name, frame, start, hidden)
                elements.append(element)
                any_key = any_key or keyframe
            exact = next((s for s in poses if s.frame == frame), None)
            keyframe = frame > end or any_key or (exact is not None and exact.keyframe)
            self._declare(replace(state, label=pose["label"]))
            body.append(
                f'    <skeleton frame="{frame}" keyframe="{int(keyframe)}" z_order="0">'
                f"{''.join(elements)}{attributes_xml(state.attributes)}</skeleton>\n"
            )
        return self._track(pose["label"], _system(pose).get("objectId"), body)

    def _part(
        self, part: tuple[list[_Shape], int] | None, name: str, frame: int, start: int, hidden: bool
    ) -> tuple[str, bool]:
        """A part of the skeleton on ``frame`` and whether it is a keyframe there: outside
        before the point's first frame (a keyframe on the skeleton's first) and from the
        frame after its last (a keyframe there), else its shape there."""
        if part is None:
            return part_xml(name, {"x": 0, "y": 0}, {}, True, frame == start), frame == start
        shapes, part_end = part
        state = _at(shapes, frame)
        if state is None:
            first = shapes[0]
            return part_xml(
                name, first.coordinates, first.attributes, True, frame == start
            ), frame == start
        self._declare(replace(state, label=name))
        if frame > part_end:
            keyframe = frame == part_end + 1
            return part_xml(name, state.coordinates, state.attributes, True, keyframe), keyframe
        exact = state.frame == frame and state.keyframe
        outside = hidden or state.outside
        return part_xml(name, state.coordinates, state.attributes, outside, exact), exact


def video_xml(item: ItemAnnotations, labels: Sequence[str]) -> tuple[bytes, int]:
    """The CVAT for video file of a video item, and how many of its annotations it left out."""
    video = _Video(item)
    tracks = []
    for annotation in video.tops:
        written = (
            video.skeleton_track(annotation)
            if annotation.get("type") == "pose"
            else video.shape_tracks(annotation)
        )
        if written is None:
            video.left_out += 1
            continue
        tracks.append(written)
    width, height = _size(item)
    task = (
        f"<size>{video.count}</size><mode>interpolation</mode>"
        f"<start_frame>0</start_frame><stop_frame>{max(video.count - 1, 0)}</stop_frame>"
        f"<original_size><width>{width or 0}</width><height>{height or 0}</height></original_size>"
    )
    meta = meta_xml(
        labels,
        video.kinds,
        {k: v for k, v in video.skeletons.items() if v},
        task=task,
        after=f"<source>{escape(item.filename.lstrip('/'))}</source>",
    )
    text = (
        '<?xml version="1.0" encoding="utf-8"?>\n<annotations>\n  <version>1.1</version>\n'
        + meta
        + "".join(tracks)
        + "</annotations>\n"
    )
    return text.encode(), video.left_out
