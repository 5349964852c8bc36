"""Dataloop JSON: one JSON per item, the item's own fields with its ``annotations`` array.

Read: every ``*.json`` holding a ``filename`` and an ``annotations`` list (as Dataloop's export
writes under ``json/``, mirroring the dataset's folders). Annotations are kept as Dataloop wrote
them (type, label, coordinates, attributes v1 and v2, description, ``metadata.system`` with
frame, endFrame, startTime, endTime, objectId, keyframe ``snapshots_``, parentId, model,
status) without the server's own fields (urls, hash, ids of the item and dataset); the item's
``metadata`` and ``description`` travel in :attr:`ItemAnnotations.item`.

Write: ``json/<folder>/<name>.json`` per item, the same shape.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from plugins.converters import (
    ConverterType,
    Files,
    ItemAnnotations,
    Output,
    Problem,
    Sizes,
    images_below,
    json_files,
)
from plugins.hookspecs import hookimpl

__all__ = ["read", "register_converters", "write"]

# the server's own fields: where the annotation lived, not what it says
_SERVER_FIELDS = frozenset({"url", "item", "dataset", "datasetId", "itemId", "hash"})
_ITEM_FIELDS = ("metadata", "description")


def _size(item: dict[str, Any]) -> tuple[int | None, int | None]:
    system = (item.get("metadata") or {}).get("system") or {}
    width, height = system.get("width"), system.get("height")
    if isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0:
        return width, height
    return None, None


def read(files: Files, sizes: Sizes) -> Iterator[ItemAnnotations | Problem]:
    for found in json_files(files):
        if isinstance(found, Problem):
            yield found
            continue
        name, data = found
        if not isinstance(data, dict) or not isinstance(data.get("annotations"), list):
            yield Problem(name, "not a Dataloop item JSON: expected an annotations list")
            continue
        filename = data.get("filename")
        if not isinstance(filename, str) or not filename.startswith("/"):
            yield Problem(name, "filename must be the item's path, starting with /")
            continue
        width, height = _size(data)
        if width is None:
            width, height = sizes(filename) or (None, None)
        item = ItemAnnotations(
            filename, [], width, height, {k: data[k] for k in _ITEM_FIELDS if k in data}
        )
        for index, annotation in enumerate(data["annotations"]):
            if not isinstance(annotation, dict) or not isinstance(annotation.get("type"), str):
                yield Problem(
                    f"{name}: annotations[{index}]", "an annotation is an object with a type"
                )
                continue
            item.annotations.append(
                {k: v for k, v in annotation.items() if k not in _SERVER_FIELDS}
            )
        yield item


def write(items: Iterable[ItemAnnotations], labels: Sequence[str], output: Output) -> int:
    for item in items:
        document = {
            "filename": item.filename,
            "dir": posixpath.dirname(item.filename),
            "name": posixpath.basename(item.filename),
            **item.item,
            "annotations": item.annotations,
        }
        stem = posixpath.splitext(item.filename.lstrip("/"))[0]
        with output.open(f"json/{stem}.json") as handle:
            handle.write(json.dumps(document, ensure_ascii=False).encode())
    return 0


@hookimpl
def register_converters() -> list[ConverterType]:
    return [
        ConverterType(
            name="dataloop",
            description="Dataloop JSON: one file per item with its annotations (every type)",
            types=None,
            read=read,
            write=write,
            images=images_below("items"),
        )
    ]
