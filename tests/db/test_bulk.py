"""insert_many stores exactly what SQLAlchemy's own executemany would."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError

from graph.db.bulk import _sqlite_variables, insert_many
from graph.db.ids import new_ids
from graph.db.tables import Annotation, Event, utcnow


async def test_rows_read_back_equal_to_the_orm_path(platform) -> None:
    now = utcnow()
    payloads = [{"n": 1, "nested": {"a": [1, 2.5, None, True]}}, {}, {"big": 2**70}, {"é": "ü"}]
    rows = [
        {
            "project_id": None if i % 2 else "p",
            "resource": "item",
            "action": "created",
            "resource_id": f"{i:024d}",
            "actor": "a@b.c",
            "payload": payload,
            "created_at": now,
        }
        for i, payload in enumerate(payloads)
    ]
    async with platform.db.write() as session:
        await insert_many(session, Event.__table__, rows)
        await session.execute(insert(Event.__table__), [dict(r, action="orm") for r in rows])
    async with platform.db.read() as session:
        fast = (
            (
                await session.execute(
                    select(Event).where(Event.action == "created").order_by(Event.seq)
                )
            )
            .scalars()
            .all()
        )
        orm = (
            (await session.execute(select(Event).where(Event.action == "orm").order_by(Event.seq)))
            .scalars()
            .all()
        )
    assert [e.payload for e in fast] == payloads == [e.payload for e in orm]
    assert [(e.project_id, e.resource_id, e.created_at) for e in fast] == [
        (e.project_id, e.resource_id, e.created_at) for e in orm
    ]
    assert fast[0].seq < fast[-1].seq < orm[0].seq  # ordered as given


async def test_more_rows_than_one_statement_binds_are_all_written_in_order(platform) -> None:
    """SQLite binds a bounded number of values a statement (32,766 by default, 250,000 in some
    builds); the rows beyond go in the next statements, in order, in the same transaction."""
    rows = [
        {
            "project_id": "p",
            "resource": "item",
            "action": "created",
            "resource_id": f"{i:024d}",
            "actor": "a@b.c",
            "payload": {"i": i},
            "created_at": utcnow(),
            "dispatched": False,  # every column given: insert_many's own path
        }
        for i in range(2 * _sqlite_variables() // 8 + 10)  # 8 columns: three statements
    ]
    async with platform.db.write() as session:
        await insert_many(session, Event.__table__, rows)
    async with platform.db.read() as session:
        found = (await session.execute(select(Event).order_by(Event.seq))).scalars().all()
    assert [e.resource_id for e in found] == [r["resource_id"] for r in rows]
    assert [e.payload for e in found] == [r["payload"] for r in rows]


@pytest.mark.parametrize("fault", ["unknown item", "key taken"])
async def test_rows_a_key_refuses_raise_integrity_error_and_write_nothing(
    platform, team, fault: str
) -> None:
    """As an INSERT would, whichever way the rows travel (PostgreSQL: ``COPY``)."""
    now = utcnow()
    taken = {"effect_key": "run:0:0"}

    def annotation(**given: Any) -> dict[str, Any]:
        return {
            "id": new_ids(1)[0],
            "item_id": team.ids["/day/00.jpg"],
            "dataset_id": team.dataset.id,
            "type": "point",
            "label": "cat",
            "coordinates": {"x": 1, "y": 2},
            "attributes": {},
            "metadata": {},
            "source": "api",
            "creator": "test",
            "effect_key": None,
            "created_at": now,
            "updated_at": now,
        } | given

    async with platform.db.write() as session:
        await insert_many(session, Annotation.__table__, [annotation(**taken)])
    bad = annotation(item_id="0" * 24) if fault == "unknown item" else annotation(**taken)
    with pytest.raises(IntegrityError):
        async with platform.db.write() as session:
            await insert_many(session, Annotation.__table__, [annotation(), bad])
    async with platform.db.read() as session:
        assert await session.scalar(select(func.count()).select_from(Annotation)) == 1


async def test_rows_inserted_first_in_a_transaction_roll_back_with_it(platform) -> None:
    row = {
        "project_id": "p",
        "resource": "item",
        "action": "created",
        "resource_id": "0" * 24,
        "actor": "a@b.c",
        "payload": {},
        "created_at": utcnow(),
        "dispatched": False,
    }
    with pytest.raises(RuntimeError):
        async with platform.db.write() as session:
            await insert_many(session, Event.__table__, [row, row])  # the first statement
            raise RuntimeError("after the insert")
    async with platform.db.read() as session:
        assert await session.scalar(select(func.count()).select_from(Event)) == 0
