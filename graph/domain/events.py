"""The outbox: every change writes Event rows in the transaction that makes it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from graph.db.bulk import insert_many
from graph.db.tables import Event, utcnow

__all__ = ["record", "record_many"]


async def record(
    session: AsyncSession,
    *,
    project_id: str | None,
    resource: str,
    action: str,
    resource_id: str,
    actor: str,
    payload: dict[str, Any] | None = None,
) -> None:
    await record_many(
        session,
        project_id=project_id,
        resource=resource,
        action=action,
        actor=actor,
        changes=[(resource_id, payload or {})],
    )


async def record_many(
    session: AsyncSession,
    *,
    project_id: str | None,
    resource: str,
    action: str,
    actor: str,
    changes: Iterable[tuple[str, dict[str, Any]]],
) -> None:
    """One event per ``(resource_id, payload)``, in order, with one executemany."""
    now = utcnow()
    rows = [
        {
            "project_id": project_id,
            "resource": resource,
            "action": action,
            "resource_id": resource_id,
            "actor": actor,
            "payload": payload,
            "created_at": now,
            "dispatched": False,  # every column with a default given: insert_many's fast path
        }
        for resource_id, payload in changes
    ]
    if rows:
        await insert_many(session, Event.__table__, rows)
