"""The outbox: every change writes Event rows in the transaction that makes it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson
from sqlalchemy import bindparam, text
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
    of the ids). The database builds the payloads from the columns (PostgreSQL from arrays,
    SQLite from one JSON list): an import of 100,000 annotations no longer encodes, sends and
    parses 100,000 JSON documents."""
    if not resource_ids:
        return
    postgresql = (await session.connection()).dialect.name == "postgresql"
    params: dict[str, Any] = {
        "project_id": project_id,
        "resource": resource,
        "action": action,
        "actor": actor,
        "now": utcnow(),
    }
    columns: list[Sequence[str]] = [resource_ids]
    pairs = []
    for n, (key, value) in enumerate(payload.items()):
        params[f"k{n}"] = key
        if isinstance(value, str):
            params[f"v{n}"] = value
            pairs.append(f"CAST(:k{n} AS text), CAST(:v{n} AS text)")
        else:
            columns.append(value)
            pairs.append(f"CAST(:k{n} AS text), {_column(len(columns) - 1, postgresql)}")
    if postgresql:
        arrays = ", ".join(f"CAST(:c{n} AS varchar[])" for n in range(len(columns)))
        params.update({f"c{n}": list(column) for n, column in enumerate(columns)})
        names = ", ".join(f"c{n}" for n in range(len(columns)))
        source = f"unnest({arrays}) WITH ORDINALITY AS t({names}, n) ORDER BY t.n"
        built = f"jsonb_build_object({', '.join(pairs)})"
    else:
        params["rows"] = orjson.dumps(list(zip(*columns, strict=True))).decode()
        source = "json_each(:rows) ORDER BY key"
        built = f"json_object({', '.join(pairs)})"
    statement = text(
        "INSERT INTO events (project_id, resource, action, resource_id, actor, payload, "
        "created_at, dispatched) SELECT CAST(:project_id AS varchar), "
        f"CAST(:resource AS varchar), CAST(:action AS varchar), {_column(0, postgresql)}, "
        f"CAST(:actor AS varchar), {built}, :now, {'false' if postgresql else '0'} "
        f"FROM {source}"
    ).bindparams(bindparam("now", type_=Event.__table__.c.created_at.type))
    await session.execute(statement, params)


def _column(n: int, postgresql: bool) -> str:
    """The value of column ``n`` in :func:`record_columns`'s source of rows."""
    return f"t.c{n}" if postgresql else f"json_extract(value, '$[{n}]')"
