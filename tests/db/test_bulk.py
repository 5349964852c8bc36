"""insert_many stores exactly what SQLAlchemy's own executemany would."""

from __future__ import annotations

from sqlalchemy import insert, select

from graph.db.bulk import _sqlite_variables, insert_many
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
