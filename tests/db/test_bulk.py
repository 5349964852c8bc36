"""insert_many stores exactly what SQLAlchemy's own executemany would."""

from __future__ import annotations

from sqlalchemy import insert, select

from graph.db.bulk import insert_many
from graph.db.tables import Event, utcnow


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
