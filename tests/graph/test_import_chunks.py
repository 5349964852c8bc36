"""An import writes a chunk of images at a time: a bounded number of statements per chunk,
whatever its size, and a chunk whose write fails loses only the images at fault."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import pytest
from sqlalchemy import delete

from graph.db.tables import Item
from graph.domain import annotations, datasets, imports, items, recipes
from graph.domain.import_matching import Matcher
from graph.domain.import_writing import Image, prepare, write_chunk
from graph.domain.work import Work
from plugins.converters import ItemAnnotations, Problem
from tests.asserts import count_statements

EXECUTION = "e" * 24  # an import's key prefix; the keys need no execution row


def _coco(images: int, boxes: int) -> bytes:
    data = {
        "images": [
            {"id": i, "file_name": f"img_{i:04d}.jpg", "width": 64, "height": 48}
            for i in range(images)
        ],
        "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}],
        "annotations": [
            {"id": n, "image_id": n // boxes, "category_id": 1 + n % 2, "bbox": [n % 9, 1, 5, 5]}
            for n in range(images * boxes)
        ],
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("annotations.json", json.dumps(data))
    return buffer.getvalue()


async def _dataset(platform, owner, project, count: int, name: str = "d") -> Any:
    dataset = await datasets.create_dataset(platform, owner[0], project.id, name)
    specs = [
        items.ItemSpec(path=f"/img_{i:04d}.jpg", url=f"https://x.test/{i}.jpg", width=64, height=48)
        for i in range(count)
    ]
    async with platform.db.write() as session:
        await items.insert_items(session, owner[0], dataset, specs)
    return dataset


def _work(execution_id: str) -> Work:
    return Work(execution_id, lambda *_: None, lambda _: None)


@pytest.mark.parametrize("recipe", [False, True])
async def test_statements_per_chunk_are_bounded(
    platform, owner, project, monkeypatch, recipe: bool
) -> None:
    if recipe:
        made = await recipes.create_recipe(
            platform, owner[0], project.id, "pets", labels=[{"tag": "cat"}, {"tag": "dog"}]
        )
    counted = {}
    for chunk in (120, 40):  # one chunk, then three, each into a dataset of its own
        dataset = await _dataset(platform, owner, project, 120, f"by {chunk}")
        if recipe:
            await recipes.set_dataset_recipe(platform, owner[0], dataset.id, made.id)
        blob_id = await imports.receive_archive(platform, owner[0], dataset.id, _coco(120, 3))
        input = {"datasetId": dataset.id, "format": "coco", "blobId": blob_id}
        monkeypatch.setattr(imports, "_CHUNK_IMAGES", chunk)
        with count_statements(platform.db.engine) as log:
            output = await imports.run_import(platform, owner[0], _work(f"{chunk:024d}"), input)
        assert (output["matched"], output["annotations"], output["problemCount"]) == (120, 360, 0)
        assert await annotations.count_annotations(platform, owner[0], dataset.id) == 360
        counted[chunk] = log
    once, thrice = len(counted[120]), len(counted[40])
    # a chunk: match the paths; dataset, recipe, done keys, insert, 2 counters, events; on
    # SQLite the label counts (read, then added to or inserted: graph/domain/label_counts.py)
    per_chunk = 7 + recipe + 2 * platform.db.is_sqlite
    assert thrice - once == 2 * per_chunk, f"{counted[120]}\n---\n{counted[40]}"
    assert once == per_chunk + 2, str(counted[120])  # + the dataset's check and the archive


async def test_a_failing_chunk_is_written_image_by_image(platform, owner, project) -> None:
    dataset = await _dataset(platform, owner, project, 3)
    matcher = Matcher(platform, dataset.id)
    box = {"type": "box", "label": "cat", "coordinates": [{"x": 1, "y": 1}, {"x": 9, "y": 9}]}
    chunk = []
    for index, name in enumerate(("/img_0000.jpg", "/img_0001.jpg", "/img_0002.jpg"), start=1):
        image = Image(index, ItemAnnotations(name, [box, box]), await matcher.item(name))
        prepare(image, dataset.id, owner[0], EXECUTION, "reject")
        chunk.append(image)
    # the second file goes after it was matched: the chunk's insert fails on its foreign key
    async with platform.db.write() as session:
        await session.execute(delete(Item).where(Item.id == chunk[1].target.id))
    problems: list[Problem] = []
    written = await write_chunk(platform, owner[0], dataset.id, chunk, problems.append)
    assert written == 4
    assert [p.where for p in problems] == ["/img_0001.jpg (/img_0001.jpg)"]
    listed = await annotations.list_annotations(platform, owner[0], dataset.id, first=10)
    assert sorted(r.item_id for r in listed.rows) == sorted(
        [chunk[0].target.id] * 2 + [chunk[2].target.id] * 2
    )
    # written again (a rerun): found by their keys, nothing doubled
    assert await write_chunk(platform, owner[0], dataset.id, [chunk[0]], problems.append) == 2
    assert await annotations.count_annotations(platform, owner[0], dataset.id) == 4
