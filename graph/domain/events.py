"""The outbox: every change writes Event rows in the transaction that makes it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from graph.db.bulk import insert_many
from graph.db.tables import Event, utcnow

__all__ = ["record", "record_columns", "record_many"]


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


async def record_columns(
    session: AsyncSession,
    *,
    project_id: str | None,
    resource: str,
    action: str,
    actor: str,
    resource_ids: Sequence[str],
    payload: Mapping[str, str | Sequence[str]],
) -> None:
    """What :func:`record_many` writes for ``resource_ids``, each event's payload made of
    ``payload``: a key's value is one string for every event, or one per event (in the order
    of the ids). PostgreSQL builds the payloads from the columns: an import of 100,000
    annotations no longer encodes, sends and parses 100,000 JSON documents."""
    if not resource_ids:
        return
    if (await session.connection()).dialect.name != "postgresql":
        await record_many(
            session,
            project_id=project_id,
            resource=resource,
            action=action,
            actor=actor,
            changes=[
                (
                    resource_id,
                    {k: v if isinstance(v, str) else v[n] for k, v in payload.items()},
                )
                for n, resource_id in enumerate(resource_ids)
            ],
        )
        return
    params: dict[str, Any] = {
        "project_id": project_id,
        "resource": resource,
        "action": action,
        "actor": actor,
        "now": utcnow(),
        "ids": list(resource_ids),
    }
    arrays, names, pairs = ["CAST(:ids AS varchar[])"], ["id"], []
    for n, (key, value) in enumerate(payload.items()):
        params[f"k{n}"] = key
        if isinstance(value, str):
            params[f"v{n}"] = value
            pairs.append(f"CAST(:k{n} AS text), CAST(:v{n} AS text)")
        else:
            params[f"v{n}"] = list(value)
            arrays.append(f"CAST(:v{n} AS varchar[])")
            names.append(f"v{n}")
            pairs.append(f"CAST(:k{n} AS text), t.v{n}")
    await session.execute(
        text(
            "INSERT INTO events (project_id, resource, action, resource_id, actor, payload, "
            "created_at, dispatched) "
            "SELECT CAST(:project_id AS varchar), CAST(:resource AS varchar), CAST(:action AS varchar), "
            "t.id, CAST(:actor AS varchar), "
            f"jsonb_build_object({', '.join(pairs)}), CAST(:now AS timestamptz), false "
            f"FROM unnest({', '.join(arrays)}) WITH ORDINALITY AS t({', '.join(names)}, n) ORDER BY t.n"
        ),
        params,
    )
