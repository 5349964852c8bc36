"""The outbox: every change writes ordered Event rows in its own transaction."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from graph.db.tables import Event
from graph.domain import annotations, datasets, events, items
from graph.domain.errors import InvalidInput


async def _events(platform) -> list[tuple[str, str, str]]:
    async with platform.db.read() as session:
        rows = await session.execute(
            select(Event.resource, Event.action, Event.resource_id).order_by(Event.seq)
        )
        return [tuple(r) for r in rows]


async def test_changes_write_events_in_order(platform, owner, project) -> None:
    actor = owner[0]
    dataset = await datasets.create_dataset(platform, actor, project.id, "ds")
    async with platform.db.write() as session:
        results, _ = await items.insert_items(
            session, actor, dataset, [items.ItemSpec(path="/a/x.jpg")]
        )
    item_id = results[0].item_id
    [annotation] = await annotations.create_annotations(
        platform, actor, item_id, [annotations.AnnotationSpec(type="class", label="cat")]
    )
    await annotations.update_annotation(platform, actor, annotation.id, {"label": "dog"})
    await items.update_item(platform, actor, item_id, description="d")
    await annotations.delete_annotations(platform, actor, [annotation.id])
    await items.delete_items(platform, actor, [item_id])
    await datasets.update_dataset(platform, actor, dataset.id, name="renamed")
    await datasets.delete_dataset(platform, actor, dataset.id)

    folder = [e for e in await _events(platform) if e[0] == "item"][0][2]
    assert await _events(platform) == [
        ("dataset", "created", dataset.id),
        ("item", "created", folder),  # the folder /a, made for the file
        ("item", "created", item_id),
        ("annotation", "created", annotation.id),
        ("annotation", "updated", annotation.id),
        ("item", "updated", item_id),
        ("annotation", "deleted", annotation.id),
        ("item", "deleted", item_id),
        ("dataset", "updated", dataset.id),
        ("dataset", "deleted", dataset.id),
    ]
    async with platform.db.read() as session:
        event = await session.scalar(select(Event).where(Event.resource == "item").limit(1))
    assert event.actor == "owner@example.com" and event.project_id == project.id
    assert event.payload == {"datasetId": dataset.id, "filename": "/a"}


async def test_events_from_columns_are_those_of_rows(platform) -> None:
    """``record_columns`` (payloads built by the database) writes what ``record_many`` writes."""
    ids = [f"r{n:03d}" for n in range(300)]
    items_of = [f"i{n % 7}" for n in range(300)]
    common = {"project_id": None, "resource": "annotation", "action": "created", "actor": "a@b"}
    async with platform.db.write() as session:
        await events.record_columns(
            session, **common, resource_ids=ids, payload={"itemId": items_of, "datasetId": "d"}
        )
        await events.record_many(
            session,
            **common,
            changes=[
                (i, {"itemId": k, "datasetId": "d"}) for i, k in zip(ids, items_of, strict=True)
            ],
        )
        await events.record_columns(session, **common, resource_ids=[], payload={"x": "y"})
    async with platform.db.read() as session:
        found = (await session.scalars(select(Event).order_by(Event.seq))).all()
    assert len(found) == 600
    made = [(e.project_id, e.resource, e.action, e.resource_id, e.actor, e.payload) for e in found]
    assert made[:300] == made[300:]
    assert made[299] == (
        None,
        "annotation",
        "created",
        "r299",
        "a@b",
        {"itemId": "i5", "datasetId": "d"},
    )
    assert all(not e.dispatched and e.created_at is not None for e in found)


async def test_a_failed_change_writes_no_event(platform, owner, project) -> None:
    dataset = await datasets.create_dataset(platform, owner[0], project.id, "ds")
    before = await _events(platform)
    with pytest.raises(InvalidInput):
        async with platform.db.write() as session:
            await items.insert_items(
                session,
                owner[0],
                dataset,
                [items.ItemSpec(path="/fine.jpg"), items.ItemSpec(path="/fine.jpg")],
            )
    assert await _events(platform) == before
