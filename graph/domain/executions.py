"""Executions as users see them: create (one, or one per item a DQL query selects), read, list
with DQL, rerun, terminate, logs.

An execution row is written ``created`` with the id of the RQ job that will carry it, and the job
is enqueued after the commit; if that enqueue is lost, the scheduler finds the row and enqueues it
again (graph/domain/runs.py). What a worker does with it is in graph/domain/runs.py.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    String,
    bindparam,
    cast,
    func,
    literal,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from graph.db.bulk import insert_many
from graph.db.engine import dialect_insert, json_dumps
from graph.db.ids import new_ids
from graph.db.tables import Execution, ExecutionLog, Item, Service, utcnow
from graph.domain import events, indexes, notify, queries
from graph.domain.access import Actor, Role, require_role
from graph.domain.datasets import dataset_for
from graph.domain.errors import Conflict, InvalidInput, NotFound
from graph.domain.inputs import check_inputs
from graph.domain.paging import Order, Page, page_size
from graph.domain.platform import Platform
from graph.domain.services import function_of, service_for
from graph.queue import Queued

__all__ = [
    "ACTIVE",
    "TERMINAL",
    "append_status",
    "status_json",
    "count_executions",
    "create_execution",
    "create_executions_by_query",
    "enqueue",
    "execution_event",
    "get_execution",
    "insert_executions",
    "list_executions",
    "list_logs",
    "rerun_execution",
    "status_entry",
    "status_entry_sql",
    "terminate_execution",
]

log = logging.getLogger(__name__)

ACTIVE = ("created", "in-progress")
TERMINAL = ("success", "failed", "terminated", "system-failure")
# running a function needs more than reading: it acts with the service's rights
_RUN_ROLE = Role.annotationManager
_BATCH_LIMIT = 100_000
_ROWS = 1000


def status_entry(status: str, message: str | None, attempt: int, at: datetime) -> dict[str, Any]:
    return {"status": status, "message": message, "attempt": attempt, "timestamp": at.isoformat()}


def status_json(dialect: str, entry: dict[str, Any]) -> str:
    """``entry`` as the text :func:`append_status` appends (one element; PostgreSQL appends an
    array of it)."""
    return json_dumps(entry if dialect == "sqlite" else [entry])


def status_entry_sql(
    dialect: str, status: str, message: BindParameter[Any], attempt: ColumnElement[Any]
) -> ColumnElement[Any]:
    """:func:`status_json` as SQL, for an entry whose attempt the statement computes (a claim's:
    the row's attempts + 1); its time is the parameter ``entry_at`` (ISO text)."""
    fields = [
        *(literal("status"), literal(status), literal("message"), message),
        *(literal("attempt"), attempt, literal("timestamp"), bindparam("entry_at", type_=String())),
    ]
    if dialect == "sqlite":
        return func.json_object(*fields)
    return func.jsonb_build_array(func.jsonb_build_object(*fields))


def append_status(
    dialect: str, entry: dict[str, Any] | BindParameter[Any] | ColumnElement[Any]
) -> ColumnElement[Any]:
    """``status_log`` with ``entry`` appended, as SQL: the UPDATE that changes the status records
    it, with no read before and no second statement. ``entry`` is the entry, or a parameter
    bound to its :func:`status_json` text (for statements built once), or :func:`status_entry_sql`."""
    text = literal(status_json(dialect, entry)) if isinstance(entry, dict) else entry
    log = Execution.__table__.c.status_log
    if dialect == "sqlite":
        return func.json_insert(func.coalesce(log, "[]"), "$[#]", func.json(text))
    return func.coalesce(log, cast(literal("[]"), JSONB)).op("||")(cast(text, JSONB))


def new_job_id() -> str:
    return uuid.uuid4().hex


def execution_event(execution: Execution | Mapping[str, Any]) -> dict[str, Any]:
    get = execution.get if isinstance(execution, Mapping) else execution.__getattribute__
    return {
        "status": get("status"),
        "serviceId": get("service_id"),
        "functionName": get("function_name"),
    }


async def insert_executions(
    session: AsyncSession,
    service: Service,
    function_name: str,
    inputs: Sequence[Mapping[str, Any]],
    *,
    creator: str,
    trigger_id: str | None = None,
    event_seqs: Sequence[int | None] | None = None,
    dedupe_keys: Sequence[str | None] | None = None,
) -> list[Queued]:
    """Insert ``created`` executions of a service function (inputs already checked), one per
    input, in one statement per 1,000; with ``dedupe_keys``, a key already used is skipped.
    Returns what to enqueue once the transaction commits."""
    now = utcnow()
    ids = new_ids(len(inputs))
    rows = [
        {
            "id": execution_id,
            "project_id": service.project_id,
            "service_id": service.id,
            "package_name": service.package_name,
            "module_name": service.module_name,
            "function_name": function_name,
            "queue": service.queue,
            "trigger_id": trigger_id,
            "event_seq": event_seqs[n] if event_seqs else None,
            "dedupe_key": dedupe_keys[n] if dedupe_keys else None,
            "input": dict(values),
            "output": None,
            "status": "created",
            "status_log": [status_entry("created", None, 0, now)],
            "max_attempts": service.max_attempts,
            "on_reset": service.on_reset,
            "execution_timeout": service.execution_timeout,
            "job_id": new_job_id(),
            "queued_at": now,
            "creator": creator,
            "created_at": now,
            "updated_at": now,
        }
        for n, (execution_id, values) in enumerate(zip(ids, inputs, strict=True))
    ]
    if dedupe_keys:
        inserted: list[dict[str, Any]] = []
        for start in range(0, len(rows), _ROWS):
            chunk = rows[start : start + _ROWS]
            result = await session.execute(
                dialect_insert(session)(Execution)
                .values(chunk)
                .on_conflict_do_nothing(index_elements=["dedupe_key"])
                .returning(Execution.id)
            )
            kept = {row[0] for row in result}
            inserted.extend(r for r in chunk if r["id"] in kept)
        rows = inserted
    else:
        await insert_many(session, Execution.__table__, rows)
    await events.record_many(
        session,
        project_id=service.project_id,
        resource="execution",
        action="created",
        actor=creator,
        changes=[(r["id"], execution_event(r)) for r in rows],
    )
    return [Queued(r["id"], r["queue"], r["job_id"]) for r in rows]


async def enqueue(platform: Platform, work: Sequence[Queued]) -> None:
    """Put committed executions on their queues. A failure here loses nothing: the scheduler
    enqueues executions whose job Redis does not know."""
    try:
        await platform.queue.enqueue_async(work)
    except Exception as exc:  # Redis down: the rows wait, the scheduler retries
        log.warning(
            "enqueue of %d executions failed (%s); the scheduler will retry", len(work), exc
        )


async def create_execution(
    platform: Platform,
    actor: Actor,
    service_id: str,
    function_name: str,
    input: Mapping[str, Any] | None = None,
    *,
    needed: Role = _RUN_ROLE,
) -> Execution:
    """Run a service function once; ``needed`` is the role it takes (a UI slot lets annotators
    run what its developer published for them)."""
    async with platform.db.write() as session:
        service = await service_for(session, actor, service_id, needed)
        _, function = await function_of(session, platform, service, function_name)
        (checked,) = await check_inputs(session, service.project_id, function.inputs, [input or {}])
        (queued,) = await insert_executions(
            session, service, function_name, [checked], creator=actor.email
        )
        execution = await session.get(Execution, queued.execution_id)
        runnable = service.active
    await notify.executions_changed(platform, [(queued.execution_id, service_id)], created=True)
    if runnable:  # a paused service's executions wait until it is resumed
        await enqueue(platform, [queued])
    assert execution is not None
    return execution


async def create_executions_by_query(
    platform: Platform,
    actor: Actor,
    service_id: str,
    function_name: str,
    dataset_id: str,
    *,
    dql: str | None = None,
    filter: Mapping[str, Any] | None = None,
    input: Mapping[str, Any] | None = None,
) -> int:
    """One execution per item of ``dataset_id`` the query selects, the item given as the
    function's one Item input, ``input`` as its other inputs. Returns how many were created."""
    query = queries.parse_query(dql, filter, resource="items")
    async with platform.db.write() as session:
        service = await service_for(session, actor, service_id, _RUN_ROLE)
        dataset = await dataset_for(session, actor, dataset_id, _RUN_ROLE)
        if dataset.project_id != service.project_id:
            raise InvalidInput("the dataset is not in the service's project", field="datasetId")
        _, function = await function_of(session, platform, service, function_name)
        item_inputs = [io for io in function.inputs if io.type == "Item"]
        if len(item_inputs) != 1:
            raise InvalidInput(
                f"function {function_name!r} must take exactly one Item input to run per item",
                field="functionName",
            )
        extra = dict(input or {})
        item_input = item_inputs[0].name
        if item_input in extra:
            raise InvalidInput(
                f"input.{item_input} is set by the query", field=f"input.{item_input}"
            )
        stored = await indexes.stored(session)
        compiled = queries.compile_for(
            query, "items", platform.db.dialect, dataset_id, stored=stored
        )
        selected = select(Item.id).where(Item.dataset_id == dataset_id, compiled.where)
        count = await session.scalar(
            select(func.count()).select_from(selected.subquery()), compiled.params
        )
        if count and count > _BATCH_LIMIT:
            raise InvalidInput(
                f"the query selects {count} items; a batch runs at most {_BATCH_LIMIT}", field="dql"
            )
        item_ids = list(await session.scalars(selected.order_by(Item.id), compiled.params))
        # the extra inputs are checked once; the items are known to be in the dataset
        (checked,) = await check_inputs(
            session,
            service.project_id,
            [io for io in function.inputs if io.name != item_input],
            [extra],
        )
        inputs = [
            {**checked, item_input: {"item_id": i, "dataset_id": dataset_id}} for i in item_ids
        ]
        queued = await insert_executions(
            session, service, function_name, inputs, creator=actor.email
        )
        runnable = service.active
    await notify.executions_changed(
        platform, [(q.execution_id, service_id) for q in queued], created=True
    )
    if runnable:
        await enqueue(platform, queued)
    return len(inputs)


async def _execution_for(
    session: AsyncSession, actor: Actor, execution_id: str, needed: Role
) -> Execution:
    execution = await session.get(Execution, execution_id)
    if execution is None or execution.project_id is None and not actor.is_admin:
        raise NotFound("execution", execution_id)
    if execution.project_id is not None:
        try:
            await require_role(session, actor, execution.project_id, needed)
        except NotFound:
            raise NotFound("execution", execution_id) from None
    return execution


async def get_execution(platform: Platform, actor: Actor, execution_id: str) -> Execution:
    async with platform.db.read() as session:
        return await _execution_for(session, actor, execution_id, Role.annotator)


async def list_executions(
    platform: Platform,
    actor: Actor,
    project_id: str,
    first: int | None = None,
    after: str | None = None,
    *,
    dql: str | None = None,
) -> Page[Execution]:
    """A project's executions matching a DQL query, newest first unless it says ``order by``."""
    compiled = queries.compile_for(
        queries.parse_query(dql, resource="executions"), "executions", platform.db.dialect
    )
    async with platform.db.read() as session:
        await require_role(session, actor, project_id, Role.annotator)
        statement, finish = queries.keyset_select(
            Execution,
            [Execution.project_id == project_id],
            compiled,
            [Order(Execution.created_at, True), Order(Execution.id, True)],
            lambda e: (e.created_at, e.id),
            page_size(first, platform.settings.max_page_size),
            after,
        )
        return finish((await session.execute(statement, compiled.params)).all())


async def count_executions(
    platform: Platform, actor: Actor, project_id: str, *, dql: str | None = None
) -> int:
    compiled = queries.compile_for(
        queries.parse_query(dql, resource="executions"), "executions", platform.db.dialect
    )
    async with platform.db.read() as session:
        await require_role(session, actor, project_id, Role.annotator)
        query = select(func.count()).where(Execution.project_id == project_id, compiled.where)
        return int(await session.scalar(query, compiled.params) or 0)


def _log_status(execution: Execution, status: str, message: str) -> None:
    entry = status_entry(status, message, execution.attempts, utcnow())
    execution.status_log = [*(execution.status_log or []), entry]


async def rerun_execution(platform: Platform, actor: Actor, execution_id: str) -> Execution:
    """Run a finished execution again with the same input (a fresh set of attempts)."""
    async with platform.db.write() as session:
        execution = await _execution_for(session, actor, execution_id, _RUN_ROLE)
        if execution.status not in TERMINAL:
            raise Conflict(
                f"execution {execution_id!r} is {execution.status}; only a finished one reruns"
            )
        service = await session.get(Service, execution.service_id) if execution.service_id else None
        execution.status = "created"
        execution.progress = 0
        execution.message = execution.error = execution.output = execution.action = None
        execution.attempts = 0
        execution.to_terminate = False
        execution.started_at = execution.ended_at = None
        execution.job_id = new_job_id()
        execution.queued_at = utcnow()
        _log_status(execution, "created", f"rerun by {actor.email}")
        await events.record(
            session,
            project_id=execution.project_id,
            resource="execution",
            action="updated",
            resource_id=execution.id,
            actor=actor.email,
            payload=execution_event(execution),
        )
        queued = Queued(execution.id, execution.queue, execution.job_id)
        runnable = service is None or service.active
    await notify.executions_changed(platform, [(execution.id, execution.service_id)])
    if runnable:
        await enqueue(platform, [queued])
    return execution


async def terminate_execution(platform: Platform, actor: Actor, execution_id: str) -> Execution:
    """Stop an execution: one still waiting ends at once; a running one is told to stop and is
    interrupted within seconds (its worker checks at each heartbeat)."""
    async with platform.db.write() as session:
        execution = await _execution_for(session, actor, execution_id, _RUN_ROLE)
        if execution.status in TERMINAL:
            raise Conflict(f"execution {execution_id!r} has already ended ({execution.status})")
        now, dialect = utcnow(), platform.db.dialect
        # both conditional: the execution may be claimed between the read above and these
        stopped = await session.execute(
            update(Execution)
            .where(Execution.id == execution.id, Execution.status == "created")
            .values(
                status="terminated",
                ended_at=now,
                to_terminate=True,
                status_log=append_status(
                    dialect,
                    status_entry("terminated", f"by {actor.email}", execution.attempts, now),
                ),
            )
            .execution_options(synchronize_session=False)
        )
        if not stopped.rowcount:
            await session.execute(
                update(Execution)
                .where(Execution.id == execution.id, Execution.status == "in-progress")
                .values(
                    to_terminate=True,
                    status_log=append_status(
                        dialect,
                        status_entry(
                            "in-progress",
                            f"termination asked by {actor.email}",
                            execution.attempts,
                            now,
                        ),
                    ),
                )
                .execution_options(synchronize_session=False)
            )
        await events.record(
            session,
            project_id=execution.project_id,
            resource="execution",
            action="updated",
            resource_id=execution.id,
            actor=actor.email,
            payload=execution_event(execution),
        )
        await session.refresh(execution)
    await notify.executions_changed(platform, [(execution.id, execution.service_id)])
    return execution


async def list_logs(
    platform: Platform,
    actor: Actor,
    execution_id: str,
    *,
    stream: str | None = None,
    after: int | None = None,
    first: int | None = None,
) -> list[ExecutionLog]:
    """An execution's log lines in order (``stream`` status for its status history), after the
    line ``after`` (a ``seq``), at most ``first``."""
    async with platform.db.read() as session:
        await _execution_for(session, actor, execution_id, Role.annotator)
        query = select(ExecutionLog).where(ExecutionLog.execution_id == execution_id)
        if stream is not None:
            query = query.where(ExecutionLog.stream == stream)
        if after is not None:
            query = query.where(ExecutionLog.seq > after)
        limit = page_size(first, platform.settings.max_page_size)
        return list(await session.scalars(query.order_by(ExecutionLog.seq).limit(limit)))
