"""The label counts the database keeps (migration 0002's triggers), on SQLite and PostgreSQL:
they agree with counting the annotations after every kind of write, concurrent writers included,
and folding PostgreSQL's appended rows changes nothing but their number."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from sqlalchemy import delete, func, select, update

from graph.db.tables import Annotation, LabelCount
from graph.domain import annotations, datasets, facets, items, label_counts, versioning
from graph.domain.annotations import AnnotationSpec

LABELS = ("cat", "dog", "bird", None)


async def _counted(platform: Any, dataset_id: str) -> dict[str | None, int]:
    """The truth: a GROUP BY over the annotations themselves."""
    async with platform.db.read() as session:
        rows = await session.execute(
            select(Annotation.label, func.count())
            .where(Annotation.dataset_id == dataset_id)
            .group_by(Annotation.label)
        )
        return {label: n for label, n in rows}


async def _kept(platform: Any, dataset_id: str) -> dict[str | None, int]:
    async with platform.db.read() as session:
        return await label_counts.label_counts(session, dataset_id)


async def _rows(platform: Any) -> int:
    async with platform.db.read() as session:
        return (await session.execute(select(func.count()).select_from(LabelCount))).scalar_one()


def _spec(label: str | None) -> AnnotationSpec:
    if label is None:
        return AnnotationSpec(type="note", coordinates={})
    return AnnotationSpec(type="box", label=label, coordinates=[{"x": 1, "y": 1}, {"x": 5, "y": 5}])


@pytest.fixture
async def files(platform, owner, project) -> Any:
    dataset = await datasets.create_dataset(platform, owner[0], project.id, "labels")
    specs = [items.ItemSpec(path=f"/{i}.jpg", url=f"https://x.test/{i}.jpg") for i in range(8)]
    async with platform.db.write() as session:
        results, _ = await items.insert_items(session, owner[0], dataset, specs)
    return dataset, [r.item_id for r in results]


async def test_counts_follow_every_kind_of_write(platform, owner, files) -> None:
    actor, (dataset, item_ids) = owner[0], files
    rng = random.Random(3)
    made = []
    for item_id in item_ids:
        chosen = [rng.choice(LABELS) for _ in range(rng.randint(1, 6))]
        made += await annotations.create_annotations(
            platform, actor, item_id, [_spec(label) for label in chosen]
        )
    assert await _kept(platform, dataset.id) == await _counted(platform, dataset.id)
    # one call adding to labels counted already and to a label not seen before
    await annotations.create_annotations(
        platform, actor, item_ids[0], [_spec("cat"), _spec(None), _spec("heron"), _spec("cat")]
    )
    assert await _kept(platform, dataset.id) == await _counted(platform, dataset.id)

    clone = await versioning.clone_dataset(platform, actor, dataset.id, "clone")
    merged = await versioning.merge_datasets(platform, actor, [dataset.id, clone.id], "merged")
    for copy in (clone, merged):
        assert await _kept(platform, copy.id) == await _counted(platform, copy.id) != {}

    await annotations.update_annotation(platform, actor, made[0].id, {"label": "zebra"})
    await annotations.delete_annotations(platform, actor, [a.id for a in made[1:4]])
    await items.delete_items(platform, actor, [item_ids[-1]])  # its annotations cascade
    async with platform.db.write() as session:  # one statement relabelling many rows
        await session.execute(
            update(Annotation)
            .where(Annotation.dataset_id == dataset.id, Annotation.label == "dog")
            .values(label="canine")
        )
    expected = await _counted(platform, dataset.id)
    assert "canine" in expected and "dog" not in expected
    assert await _kept(platform, dataset.id) == expected

    facet = await facets.annotation_facet(platform, actor, dataset.id)
    assert {v.value: v.count for v in facet.values} == {
        k: v for k, v in expected.items() if k is not None
    }
    assert (facet.missing, facet.total) == (expected.get(None, 0), sum(expected.values()))

    await label_counts.fold(platform)
    assert await _kept(platform, dataset.id) == expected
    labels = [len(await _counted(platform, d)) for d in (dataset.id, clone.id, merged.id)]
    assert await _rows(platform) == sum(labels)  # one row per label once folded

    for gone in (dataset, clone, merged):
        await datasets.delete_dataset(platform, actor, gone.id)
        assert await _kept(platform, gone.id) == {}
    await label_counts.fold(platform)
    assert await _rows(platform) == 0  # a deleted dataset leaves no rows behind


async def test_concurrent_writers_in_opposite_label_orders(platform, owner, files) -> None:
    """Writers adding the same labels in opposite orders at once all succeed (no counter row is
    locked, so none waits on another or deadlocks) and nothing is miscounted."""
    actor, (dataset, item_ids) = owner[0], files
    forward = ["cat", "dog", "bird"]

    async def write(n: int) -> None:
        order = forward if n % 2 else forward[::-1]
        await annotations.create_annotations(
            platform, actor, item_ids[n % len(item_ids)], [_spec(label) for label in order * 3]
        )

    await asyncio.gather(*(write(n) for n in range(24)))
    assert await _kept(platform, dataset.id) == {"cat": 72, "dog": 72, "bird": 72}
    assert await _counted(platform, dataset.id) == {"cat": 72, "dog": 72, "bird": 72}


async def test_a_fold_keeps_counts_written_beside_it(platform, owner, files) -> None:
    actor, (dataset, item_ids) = owner[0], files

    async def write(n: int) -> None:
        await annotations.create_annotations(platform, actor, item_ids[n % 8], [_spec("cat")])

    await asyncio.gather(*(write(n) for n in range(10)), label_counts.fold(platform))
    await asyncio.gather(*(write(n) for n in range(10)), label_counts.fold(platform))
    async with platform.db.write() as session:  # removing every annotation counts down to none
        await session.execute(delete(Annotation).where(Annotation.item_id == item_ids[0]))
    expected = await _counted(platform, dataset.id)
    assert expected == {"cat": 16}  # 20 written, the 4 on the first file removed
    assert await _kept(platform, dataset.id) == expected
    await label_counts.fold(platform)
    assert await _kept(platform, dataset.id) == expected
