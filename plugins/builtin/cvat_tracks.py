"""Reading CVAT's ``<track>``: an object over frames, a shape per frame with ``outside``,
``occluded``, ``keyframe`` and its attributes.

On a video (CVAT for video 1.1) a track is one Dataloop video annotation: its first visible
frame is the annotation (``frame``, coordinates, attributes), the later shapes its
``metadata.system.snapshots_`` (``fixed`` the keyframe flag, ``objectVisible`` not
``outside``, ``namedAttributes`` the frame's attributes), ``objectId`` the track's id. A track
ends at the frame before its closing ``outside`` shape, else at the video's last frame (CVAT
goes on to the end). A shape CVAT interpolated (not a keyframe) that is the same as the one
before is left out, as Dataloop copies a frame's shape to the next. A track of ``<skeleton>``
is a ``pose`` annotation (hidden on a frame whose parts are all outside) with a child
``point`` video annotation per part (``metadata.system.parentId``).

A frame number of the file is the video's frame (a task from ``start_frame`` every ``step``
frames has only those, less the project export's offset: :class:`cvat_meta.Task`); a number
that is none of the task's refuses the track.

On images (a track in an image task's export) frame *n* is the image of id *n* (or the task's
*i*-th image for frame ``start + i * step``), and each image a track is visible on gets the
shape that frame has (or the last one before it), with the track's ``objectId``.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from xml.etree import ElementTree

from plugins.builtin.cvat_meta import Meta, Task
from plugins.builtin.cvat_shapes import Bad, attributes, flag, geometry, one_point, parts
from plugins.converters import ItemAnnotations, with_attributes

__all__ = ["Frames", "read_track"]


@dataclass(frozen=True)
class _State:
    """The track's object on one frame."""

    frame: int
    type: str
    coordinates: Any
    attributes: dict[str, Any]
    outside: bool
    keyframe: bool

    def same_as(self, other: _State) -> bool:
        return (self.type, self.coordinates, self.attributes, self.outside) == (
            other.type,
            other.coordinates,
            other.attributes,
            other.outside,
        )


@dataclass
class Frames:
    """Where a file's track frames are: a ``video`` (the frames of its ``task``), or
    ``images`` by frame."""

    video: ItemAnnotations | None = None
    task: Task = field(default_factory=Task)
    images: dict[int, ItemAnnotations] = field(default_factory=dict)

    def at(self, frame: int) -> int:
        """Where frame number ``frame`` of the file is: the video's frame index, or the key
        of its image; :class:`Bad` when it is none of the task's frames."""
        if self.video is None:
            if frame not in self.images:
                raise Bad(
                    f"frame {frame} has no image (the file's images are frames "
                    f"{min(self.images)} to {max(self.images)})"
                )
            return frame
        task, last = self.task, self.task.last
        index = task.video_frame(frame)
        if last is not None and index > last:
            raise Bad(f"frame {frame} is beyond the video's last frame {last + task.offset}")
        if index < task.start or (index - task.start) % task.step:
            raise Bad(
                f"frame {frame} is not one of the task's frames (from {task.frame(0)} every "
                f"{task.step})"
            )
        return index

    def size(self, frame: int) -> tuple[int | None, int | None]:
        """The width and height of the frame (a mask needs them)."""
        item = self.video if self.video is not None else self.images[frame]
        return item.width, item.height

    @property
    def end(self) -> int | None:
        """The last frame an object on them may run to."""
        return max(self.images) if self.video is None else self.task.last


def _frame(element: ElementTree.Element, frames: Frames) -> int:
    text = element.get("frame")
    try:
        frame = int(text or "")
    except ValueError:
        raise Bad(f"frame is not a whole number: {text!r}") from None
    if frame < 0:
        raise Bad(f"frame {frame} is negative")
    return frames.at(frame)


def _span(
    states: list[_State], last: int | None, *, copies: bool = False
) -> tuple[list[_State], int] | None:
    """The states from the first visible one to the last, without interpolated copies (with
    ``copies``, without keyframes that are copies too), and the object's last frame; None when
    it is never visible."""
    visible = [i for i, s in enumerate(states) if not s.outside]
    if not visible:
        return None
    first, final = visible[0], visible[-1]
    if final + 1 < len(states):
        end = states[final + 1].frame - 1  # closed by an outside shape
    else:
        end = states[final].frame if last is None else max(last, states[final].frame)
    kept = [states[first]]
    for state in states[first + 1 : final + 1]:
        if not state.same_as(kept[-1]) or (state.keyframe and not copies):
            kept.append(state)
    return kept, end


def _ordered(states: list[_State]) -> list[_State]:
    states.sort(key=lambda s: s.frame)
    for before, after in zip(states, states[1:], strict=False):
        if before.frame == after.frame:
            raise Bad(f"frame {after.frame} has two shapes")
    return states


def _video_annotation(
    label: str, states: list[_State], end: int, system: dict[str, Any]
) -> dict[str, Any]:
    first = states[0]
    snapshots = [
        {
            "frame": s.frame,
            "fixed": s.keyframe,
            "label": label,
            "type": s.type,
            "objectVisible": not s.outside,
            "data": s.coordinates,
            "namedAttributes": s.attributes,
        }
        for s in states[1:]
    ]
    system = {**system, "frame": first.frame, "endFrame": end, "snapshots_": snapshots}
    annotation = {
        "type": first.type,
        "label": label,
        "coordinates": first.coordinates,
        "metadata": {"system": system},
    }
    return with_attributes(annotation, dict(first.attributes))


def _on_frames(
    states: list[_State], end: int, frames: Sequence[int]
) -> Iterator[tuple[int, _State]]:
    """Each of ``frames`` the object is visible on, with its state there (the last before)."""
    starts = [s.frame for s in states]
    for frame in frames:
        if states[0].frame <= frame <= end:
            state = states[bisect.bisect_right(starts, frame) - 1]
            if not state.outside:
                yield frame, state


def _shape(label: str, state: _State, **more: Any) -> dict[str, Any]:
    shape = {"type": state.type, "label": label, "coordinates": state.coordinates, **more}
    return with_attributes(shape, dict(state.attributes))


def _shapes(track: ElementTree.Element, label: str, meta: Meta, frames: Frames) -> list[_State]:
    states = []
    for index, element in enumerate(track, start=1):
        try:
            frame = _frame(element, frames)
            kind, coordinates = geometry(element, *frames.size(frame))
            if kind == "point":
                coordinates = one_point(element)
            states.append(
                _State(
                    frame,
                    kind,
                    coordinates,
                    attributes(element, label, meta.types),
                    flag(element, "outside"),
                    flag(element, "keyframe", default=True),
                )
            )
        except Bad as error:
            raise Bad(f"<{element.tag}> {index}: {error}") from None
    return _ordered(states)


def _shape_track(
    track: ElementTree.Element, label: str, meta: Meta, frames: Frames, object_id: str
) -> None:
    span = _span(_shapes(track, label, meta, frames), frames.end)
    if span is None:
        return
    states, end = span
    if frames.video is not None:
        system = {"objectId": object_id}
        frames.video.annotations.append(_video_annotation(label, states, end, system))
        return
    for frame, state in _on_frames(states, end, sorted(frames.images)):
        frames.images[frame].annotations.append(
            _shape(label, state, metadata={"system": {"objectId": object_id}})
        )


def _skeleton_track(
    track: ElementTree.Element, label: str, meta: Meta, frames: Frames, object_id: str, key: str
) -> None:
    poses: list[_State] = []
    by_part: dict[str, list[_State]] = {name: [] for name in meta.sublabels.get(label, [])}
    for index, element in enumerate(track, start=1):
        try:
            if element.tag != "skeleton":
                raise Bad("a track of skeletons holds only <skeleton>s")
            frame = _frame(element, frames)
            found = parts(element, label, meta)
            keyframe = flag(element, "keyframe", default=True)
            outside = all(part.outside for part in found)
            own = attributes(element, label, meta.types)
        except Bad as error:
            raise Bad(f"<{element.tag}> {index}: {error}") from None
        poses.append(_State(frame, "pose", {}, own, outside, keyframe))
        for part in found:
            by_part.setdefault(part.label, []).append(
                _State(frame, "point", part.point, part.attributes, part.outside, part.keyframe)
            )
    # a pose holds no shape of its own: a frame that changes neither its attributes nor
    # whether it is seen is a keyframe of its parts only
    span = _span(_ordered(poses), frames.end, copies=True)
    if span is None:
        return
    pose_states, end = span
    part_spans = {
        name: _span(_ordered([s for s in states if s.frame <= end]), end)
        for name, states in by_part.items()
    }
    if frames.video is not None:
        video = frames.video.annotations
        system = {"objectId": object_id}
        video.append({**_video_annotation(label, pose_states, end, system), "id": key})
        for name, part_span in part_spans.items():
            if part_span is not None:
                states, part_end = part_span
                video.append(_video_annotation(name, states, part_end, {"parentId": key}))
        return
    for frame, pose in _on_frames(pose_states, end, sorted(frames.images)):
        image = frames.images[frame].annotations
        parent = f"{key}:{frame}"
        image.append(_shape(label, pose, id=parent, metadata={"system": {"objectId": object_id}}))
        for name, part_span in part_spans.items():
            if part_span is not None:
                for _, state in _on_frames(*part_span, [frame]):
                    image.append(_shape(name, state, metadata={"system": {"parentId": parent}}))


def read_track(track: ElementTree.Element, meta: Meta, frames: Frames, key: str) -> None:
    """Add the annotations of ``track`` to the video or images of ``frames``; ``key`` names
    the track within the file (a pose's ``id``). Raises :class:`Bad` for a track that cannot
    be read, adding nothing of it."""
    label = track.get("label")
    if not label:
        raise Bad("label is missing")
    object_id = track.get("id") or key
    if len(track) and all(element.tag == "skeleton" for element in track):
        _skeleton_track(track, label, meta, frames, object_id, key)
    else:
        _shape_track(track, label, meta, frames, object_id)
