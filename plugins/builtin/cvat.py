"""CVAT for images 1.1 and CVAT for video 1.1: XML files of ``<image>``s and ``<track>``s, of a
task export or of a project's.

Read: every ``*.xml`` whose root is ``<annotations>``. An ``<image>``'s shapes
(:mod:`cvat_shapes`: boxes, polygons, polylines, points, ellipses, masks, cuboids) and ``<tag>``s
(a ``class``); a ``<skeleton>`` is a ``pose`` with a child ``point`` per part that is not
``outside`` (``metadata.system.parentId``), a part whose label is not one of the skeleton's
sublabels in ``<meta>`` refusing the skeleton. ``<track>``s (:mod:`cvat_tracks`) go to their
task's video (``<source>``), else to the file's ``<image>``s of the task by id, else to the
task's images in the archive (``images/``) in lexical order, CVAT's frame order of an image
task. A task's frames are numbered as CVAT numbers them: from ``start_frame`` every ``step``
(``frame_filter`` ``step=N``) frames of its video, the video's frame numbers. A video task's
frames written as ``<image>``s (CVAT for images of a video) go to its video, each shape a video
annotation of that frame alone.

A project export (``<meta><project>`` with its ``<tasks>``) is read task by task: images and
tracks carry ``task_id``; an image is the item below its subset (``images/<subset>/``, where
CVAT keeps it); the frames of a subset's tasks are numbered one task after the other (as CVAT
2.x numbers them; an older CVAT's numbering from each task's own start is read too).

Write: ``annotations.xml`` with the images (CVAT for images), labels and attribute types in
``<meta>``, poses as skeletons with their points (a point the pose lacks written ``outside``);
each video (:mod:`cvat_video`) as CVAT for video in ``videos/<path>.xml``.
"""

from __future__ import annotations

import posixpath
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from typing import Any
from xml.etree import ElementTree
from xml.sax.saxutils import quoteattr

from plugins.builtin.cvat_meta import Meta, Task, meta_xml
from plugins.builtin.cvat_shapes import (
    Bad,
    attributes,
    attributes_xml,
    geometry,
    geometry_xml,
    part_xml,
    parts,
    rings,
)
from plugins.builtin.cvat_tracks import Frames, read_track
from plugins.builtin.cvat_video import input_type, is_video, video_path, video_xml
from plugins.converters import (
    ConverterType,
    Files,
    ItemAnnotations,
    Output,
    Problem,
    Sizes,
    attributes_of,
    images_below,
    with_attributes,
    xml_files,
)
from plugins.hookspecs import hookimpl

__all__ = ["read", "register_converters", "write"]

_IMAGES = images_below("images")


def _shapes(
    element: ElementTree.Element, item: ItemAnnotations, meta: Meta, key: str
) -> list[dict[str, Any]]:
    label = element.get("label")
    if not label:
        raise Bad("label is missing")
    base: dict[str, Any] = with_attributes({"label": label}, attributes(element, label, meta.types))
    if element.tag == "tag":
        return [{**base, "type": "class", "coordinates": []}]
    if element.tag == "skeleton":
        points = [
            with_attributes(
                {
                    "type": "point",
                    "label": part.label,
                    "coordinates": part.point,
                    "metadata": {"system": {"parentId": key}},
                },
                part.attributes,
            )
            for part in parts(element, label, meta)
            if not part.outside
        ]
        return [{**base, "type": "pose", "coordinates": {}, "id": key}, *points]
    kind, coordinates = geometry(element, item.width, item.height)
    if kind == "point":
        return [{**base, "type": kind, "coordinates": p} for p in coordinates]
    return [{**base, "type": kind, "coordinates": coordinates}]


class _Videos:
    """The video items of a file's video tasks, made when first needed."""

    def __init__(self, sizes: Sizes) -> None:
        self.sizes = sizes
        self.items: dict[Task, ItemAnnotations] = {}

    def of(self, task: Task) -> ItemAnnotations:
        if task not in self.items:
            filename = posixpath.join("/", task.source or "")
            width, height = task.width, task.height
            if not (width and height):
                width, height = self.sizes(filename) or (None, None)
            self.items[task] = ItemAnnotations(filename, [], width, height)
        return self.items[task]


def _on_video(
    image: ElementTree.Element, meta: Meta, task: Task, videos: _Videos
) -> Iterator[Problem | tuple[int, list[dict[str, Any]]]]:
    """The shapes of a video task's frame written as an ``<image>`` (CVAT for images of a video
    task): on its video, each on that frame alone."""
    frames = Frames(video=videos.of(task), task=task)
    frame = frames.at(int(image.get("id", "")))
    for index, element in enumerate(image, start=1):
        try:
            shapes = _shapes(element, frames.video, meta, f"{frame}:{element.tag}:{index}")
        except Bad as error:
            yield Problem(f"<{element.tag}> {index}", str(error))
            continue
        for shape in shapes:
            system = {**(shape.get("metadata") or {}).get("system", {})}
            system.update(frame=frame, endFrame=frame)
            shape["metadata"] = {**(shape.get("metadata") or {}), "system": system}
        yield index, shapes


def _images(
    name: str,
    root: ElementTree.Element,
    meta: Meta,
    sizes: Sizes,
    by_frame: dict[Task, dict[int, ItemAnnotations]],
    videos: _Videos,
) -> Iterator[ItemAnnotations | Problem]:
    """The file's ``<image>``s, noting in ``by_frame`` those whose id is a frame number, by
    their task; a video task's go to its video."""
    for image in root.iter("image"):
        where = f"{name}: image {image.get('id')}"
        if not image.get("name"):
            yield Problem(where, "the image has no name")
            continue
        task = meta.task(image.get("task_id"))
        numbered = (image.get("id") or "").isdigit() and task is not None
        if numbered and task is not None and task.source:
            try:
                for found in _on_video(image, meta, task, videos):
                    if isinstance(found, Problem):
                        yield Problem(f"{where}: {found.where}", found.message)
                    else:
                        videos.of(task).annotations += found[1]
            except Bad as error:
                yield Problem(where, str(error))
            continue
        # a project's images are kept below images/<subset>/, whose path the item is
        subset = (image.get("subset") or (task.subset if task else None)) if meta.project else None
        filename = posixpath.join("/", subset or "", image.get("name", ""))
        try:
            width, height = int(image.get("width", "")), int(image.get("height", ""))
        except ValueError:
            width, height = sizes(filename) or (None, None)
        item = ItemAnnotations(filename, [], width, height)
        if numbered and task is not None:
            by_frame.setdefault(task, {})[int(image.get("id", ""))] = item
        for index, element in enumerate(image, start=1):
            try:
                item.annotations += _shapes(element, item, meta, f"{element.tag}:{index}")
            except Bad as error:
                yield Problem(f"{where}: <{element.tag}> {index}", str(error))
        yield item


def _frames(
    meta: Meta,
    task: Task,
    images: dict[int, ItemAnnotations],
    files: Files,
    sizes: Sizes,
    videos: _Videos,
) -> tuple[Frames, list[ItemAnnotations]] | None:
    """Where a task's tracks are, with the items that are not among the file's ``<image>``s:
    its video, else its images by frame, else the archive's images in lexical order (a
    project's task's below ``images/<subset>/``, when no other image task has that subset),
    the task's ``i``-th image its frame ``start + i * step``."""
    if task.source:
        return Frames(video=videos.of(task), task=task), []
    if images:
        return Frames(images=images), []
    found = sorted(path for path in map(_IMAGES, files.names()) if path)
    if meta.project:  # a project's images are below images/<subset>/
        below = f"/{task.subset}/"
        found = [path for path in found if path.startswith(below)]
        found = found if meta.alone_in_subset(task) else []
    if not found:
        return None
    items = [ItemAnnotations(path, [], *(sizes(path) or (None, None))) for path in found]
    return Frames(images={task.frame(i): item for i, item in enumerate(items)}), items


def _read_tracks(
    name: str,
    meta: Meta,
    task: Task,
    tracks: list[tuple[int, ElementTree.Element]],
    found: tuple[Frames, list[ItemAnnotations]] | None,
) -> Iterator[Problem]:
    if found is None:
        of = f"task {task.id}'s tracks'" if meta.project else "the tracks'"
        yield Problem(
            name,
            f"{of} frames are nowhere: a video task names its video in <source>, "
            "an image task lists its <image>s or keeps them in images/",
        )
        return
    frames, _ = found
    for index, track in tracks:
        try:
            read_track(track, meta, frames, f"track:{index}")
        except Bad as error:
            yield Problem(f"{name}: track {track.get('id', index)}", str(error))


def _numbers(elements: Iterable[ElementTree.Element], name: str) -> set[int]:
    return {int(n) for e in elements if (n := e.get(name, "")).isdigit()}


def _read_file(
    name: str, root: ElementTree.Element, files: Files, sizes: Sizes
) -> Iterator[ItemAnnotations | Problem]:
    meta = Meta.of(root)
    by_task: dict[Task, list[tuple[int, ElementTree.Element]]] = {}
    for index, track in enumerate(root.findall("track")):
        task = meta.task(track.get("task_id"))
        if task is None:
            named = track.get("task_id")
            yield Problem(
                f"{name}: track {track.get('id', index)}",
                f"task_id {named!r} is not one of the project's <tasks>"
                if named
                else "the track names no task_id, and the project has several tasks",
            )
            continue
        by_task.setdefault(task, []).append((index, track))
    for task in {meta.task(i.get("task_id")) for i in root.iter("image")} | set(by_task):
        if task is not None:
            images = [i for i in root.iter("image") if meta.task(i.get("task_id")) is task]
            tracks = [e for _, t in by_task.get(task, []) for e in t]
            task.settle(_numbers(images, "id") | _numbers(tracks, "frame"))
    listed: list[ItemAnnotations] = []
    by_frame: dict[Task, dict[int, ItemAnnotations]] = {}
    videos = _Videos(sizes)
    for record in _images(name, root, meta, sizes, by_frame, videos):
        if isinstance(record, Problem) or not by_task:
            yield record
        else:  # kept until the tracks are read: they add to the images
            listed.append(record)
    more: list[ItemAnnotations] = []
    for task, tracks in by_task.items():
        found = _frames(meta, task, by_frame.get(task, {}), files, sizes, videos)
        yield from _read_tracks(name, meta, task, tracks, found)
        more += [] if found is None else found[1]
    yield from listed
    yield from videos.items.values()
    yield from more


def read(files: Files, sizes: Sizes) -> Iterator[ItemAnnotations | Problem]:
    for found in xml_files(files):
        if isinstance(found, Problem):
            yield found
            continue
        name, root = found
        if root.tag != "annotations":
            yield Problem(name, f"not CVAT for images or video (root <{root.tag}>)")
            continue
        yield from _read_file(name, root, files, sizes)


# --- write ----------------------------------------------------------------------------------------


class _ImageWriter:
    """The ``<image>``s of an export, and what ``<meta>`` must declare for them."""

    def __init__(self) -> None:
        self.kinds: dict[str, dict[str, str]] = {}
        self.skeletons: dict[str, list[str]] = {}
        self.left_out = 0
        self.next_id = 0
        self.groups = 0

    def _declare(self, label: str, attributes: dict[str, Any]) -> None:
        for key, value in attributes.items():
            if key != "occluded":
                self.kinds.setdefault(label, {}).setdefault(key, input_type(value))

    def _element(self, annotation: dict[str, Any]) -> str | None:
        label, kind = annotation.get("label"), annotation.get("type")
        if not label:
            return None
        attributes = attributes_of(annotation)
        if kind == "class":
            self._declare(label, attributes)
            return f"    <tag label={quoteattr(label)}>{attributes_xml(attributes)}</tag>\n"
        given = [geometry_xml(kind, ring) for ring in rings(kind, annotation.get("coordinates"))]
        found = [shape for shape in given if shape is not None]
        if len(found) < len(given):
            return None
        self._declare(label, attributes)
        occluded = int(bool(attributes.get("occluded")))
        # a ring each, grouped as one object
        group = f' group_id="{self._group()}"' if len(found) > 1 else ""
        return "".join(
            f'    <{tag} label={quoteattr(label)} occluded="{occluded}" {geometry_text} '
            f'z_order="0"{group}>{attributes_xml(attributes)}</{tag}>\n'
            for tag, geometry_text in found
        )

    def _group(self) -> int:
        self.groups += 1
        return self.groups

    def _skeleton(self, pose: dict[str, Any], children: list[dict[str, Any]]) -> str | None:
        label = pose.get("label")
        points: dict[str, dict[str, Any]] = {}
        for child in children:
            if isinstance(child.get("coordinates"), dict) and child.get("label") not in points:
                points[child["label"]] = child
            else:
                self.left_out += 1
        if not label or not points:
            return None
        names = self.skeletons.setdefault(label, [])
        names += [name for name in points if name not in names]
        written = []
        for name in names:
            point = points.get(name)
            if point is None:  # a part this pose lacks (another pose of the label has it)
                written.append(part_xml(name, {"x": 0, "y": 0}, {}, True, None))
                continue
            self._declare(name, attributes_of(point))
            written.append(part_xml(name, point["coordinates"], attributes_of(point), False, None))
        self._declare(label, attributes_of(pose))
        return (
            f'    <skeleton label={quoteattr(label)} z_order="0">{"".join(written)}'
            f"{attributes_xml(attributes_of(pose))}</skeleton>\n"
        )

    def image(self, item: ItemAnnotations) -> bytes:
        poses = {
            a["id"] for a in item.annotations if a.get("type") == "pose" and a.get("id") is not None
        }
        children: dict[Any, list[dict[str, Any]]] = {}
        tops = []
        for annotation in item.annotations:
            parent = ((annotation.get("metadata") or {}).get("system") or {}).get("parentId")
            if annotation.get("type") == "point" and parent in poses:
                children.setdefault(parent, []).append(annotation)
            else:
                tops.append(annotation)
        name = quoteattr(item.filename.lstrip("/"))
        lines = [
            f'  <image id="{self.next_id}" name={name} width="{item.width or 0}" '
            f'height="{item.height or 0}">\n'
        ]
        self.next_id += 1
        for annotation in tops:
            if annotation.get("type") == "pose":
                line = self._skeleton(annotation, children.get(annotation.get("id"), []))
            else:
                line = self._element(annotation)
            if line is None:
                self.left_out += 1
            else:
                lines.append(line)
        lines.append("  </image>\n")
        return "".join(lines).encode()


def write(items: Iterable[ItemAnnotations], labels: Sequence[str], output: Output) -> int:
    """The images go through a temporary file while the attributes' types and the skeletons
    are gathered for ``<meta>``, which comes first (flat memory at any size); a video is
    written whole, as it comes."""
    writer = _ImageWriter()
    with tempfile.TemporaryFile() as images:
        for item in items:
            if is_video(item):
                text, left_out = video_xml(item, labels)
                writer.left_out += left_out
                with output.open(video_path(item.filename)) as handle:
                    handle.write(text)
            else:
                images.write(writer.image(item))
        with output.open("annotations.xml") as handle:
            handle.write(
                b'<?xml version="1.0" encoding="utf-8"?>\n<annotations>\n  <version>1.1</version>\n'
                + meta_xml(labels, writer.kinds, writer.skeletons).encode()
            )
            images.seek(0)
            while chunk := images.read(1 << 20):
                handle.write(chunk)
            handle.write(b"</annotations>\n")
    return writer.left_out


@hookimpl
def register_converters() -> list[ConverterType]:
    return [
        ConverterType(
            name="cvat",
            description="CVAT for images 1.1 and CVAT for video 1.1 XML (boxes, polygons, "
            "polylines, points, ellipses, masks, cuboids, skeletons, tags, tracks)",
            types=frozenset(
                {
                    "box",
                    "segment",
                    "polyline",
                    "point",
                    "ellipse",
                    "binary",
                    "cube",
                    "pose",
                    "class",
                }
            ),
            read=read,
            write=write,
            images=images_below("images"),
        )
    ]
