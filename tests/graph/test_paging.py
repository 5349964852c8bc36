"""Keyset paging in both directions, with cursors that survive a round trip."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from graph.db.tables import Item
from graph.domain import datasets, items
from graph.domain.errors import InvalidInput
from graph.domain.paging import Order, decode_cursor, encode_cursor, keyset_page


async def _walk(platform, order, first):
    seen, after = [], None
    while True:
        async with platform.db.read() as session:
            query, finish = keyset_page(
                select(Item).where(Item.type == "file"),
                order,
                first,
                after,
                lambda i: tuple(getattr(i, o.column.key) for o in order),
            )
            page = finish((await session.scalars(query)).all())
        seen += [i.name for i in page.rows]
        if not page.has_next:
            return seen
        after = page.end_cursor


async def test_mixed_directions_and_ties(platform, owner, project) -> None:
    dataset = await datasets.create_dataset(platform, owner[0], project.id, "ds")
    specs = [items.ItemSpec(path=f"/{i:02}.jpg", size=i % 3) for i in range(20)]
    async with platform.db.write() as session:
        await items.insert_items(session, owner[0], dataset, specs)
    order = [Order(Item.size, descending=True), Order(Item.created_at), Order(Item.id)]
    walked = await _walk(platform, order, first=3)
    expected = [
        s.path[1:] for s in sorted(specs, key=lambda s: (-(s.size or 0), s.path))
    ]  # ids follow insertion order, which is path order here
    assert walked == expected


def test_cursors_round_trip_and_reject_foreign_ones() -> None:
    cursor = encode_cursor(["a", 3, None])
    assert decode_cursor(cursor, 3) == ["a", 3, None]
    for bad in ["!!!", encode_cursor(["a"]), "eyJ9"]:
        with pytest.raises(InvalidInput):
            decode_cursor(bad, 3)
