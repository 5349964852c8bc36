"""The worker's side of an execution: claim, heartbeat, progress, logs, finish; and the
scheduler's: reap expired leases, enqueue again what Redis lost.

Every step is a conditional UPDATE guarded by the attempt number, so a worker that lost its lease
(and whose execution now runs elsewhere) can no longer change it. A claim takes a lease that the
worker's heartbeats extend; when they stop (``kill -9``, a lost machine) the reaper finds the
lease expired and, per the service's ``onReset``, queues the execution again (until
``maxAttempts``) or ends it as ``system-failure``. A function that raises is retried the same way
until ``maxAttempts``, then ``failed``.

These writes are not waited on to reach the disk (PostgreSQL ``synchronous_commit = off``): one
lost with a database crash is redone by the same rules (a lost claim or end leaves a lease that
expires, and the execution runs again; its effects are keyed by execution), and the flush cost
more than everything else an execution does. The claim, heartbeat and progress are one statement
each, and so is the end with its outbox event on PostgreSQL (a CTE); single statements run
outside an explicit transaction (``Database.statements``), atomic by themselves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    Integer,
    Text,
    and_,
    bindparam,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from graph.db.bulk import insert_many
from graph.db.tables import Event, Execution, ExecutionLog, Service, utcnow
from graph.domain import events, notify
from graph.domain.executions import (
    append_status,
    enqueue,
    execution_event,
    new_job_id,
    status_entry,
    status_entry_sql,
    status_json,
)
from graph.domain.platform import Platform
from graph.queue import Queued

__all__ = [
    "Claim",
    "append_logs",
    "claim",
    "finish",
    "heartbeat",
    "reap",
    "report_progress",
    "requeue_lost",
]

_MAX_LINE = 10_000  # characters kept of one log line


@dataclass(frozen=True)
class Claim:
    """What a worker needs to run a claimed execution (plain values: it outlives the session)."""

    id: str
    project_id: str | None
    service_id: str | None
    package_name: str
    module_name: str
    function_name: str
    input: dict[str, Any]
    attempt: int
    max_attempts: int
    execution_timeout: int
    on_reset: str
    trigger_id: str | None
    creator: str
    # the service as of the claim (None for the platform's own functions)
    package_id: str | None = None
    package_revision: int | None = None
    init_params: dict[str, Any] | None = None
    service_creator: str | None = None
    service_version: datetime | None = None


async def _changed(
    session: AsyncSession,
    project_id: str | None,
    execution_id: str,
    actor: str,
    row: dict[str, Any],
) -> None:
    await events.record(
        session,
        project_id=project_id,
        resource="execution",
        action="updated",
        resource_id=execution_id,
        actor=actor,
        payload=execution_event(row),
    )


_E, _S, _EV = Execution.__table__, Service.__table__, Event.__table__


@lru_cache(maxsize=4)
def _claim_statement(dialect: str) -> Any:
    """The claim, one conditional UPDATE built once per dialect (building it cost more than
    running it): the execution is waiting, and its service (if any) is active and runs fewer
    than ``concurrency`` executions (its row locked on PostgreSQL, so concurrent claims count in
    turn); it returns what the worker needs, the service's columns too."""
    others = _E.alias("others")
    running = (
        select(func.count())
        .select_from(others)
        .where(others.c.service_id == _S.c.id, others.c.status == "in-progress")
        .scalar_subquery()
    )
    open_service = select(_S.c.id).where(
        _S.c.id == _E.c.service_id, _S.c.active.is_(True), _S.c.concurrency > running
    )
    if dialect == "postgresql":
        open_service = open_service.with_for_update(of=_S)

    def service(column: Any) -> Any:
        return select(column).where(_S.c.id == _E.c.service_id).scalar_subquery()

    return (
        update(_E)
        .where(
            _E.c.id == bindparam("execution"),
            _E.c.status == "created",
            _E.c.to_terminate.is_(False),
            or_(_E.c.service_id.is_(None), exists(open_service)),
        )
        .values(
            status="in-progress",
            attempts=_E.c.attempts + 1,
            lease_until=bindparam("lease"),
            worker=bindparam("claimer"),
            started_at=bindparam("now"),
            updated_at=bindparam("now"),
            status_log=append_status(
                dialect,
                status_entry_sql(
                    dialect,
                    "in-progress",
                    bindparam("entry_message", type_=Text()),
                    _E.c.attempts + 1,
                ),
            ),
        )
        .returning(
            _E.c.project_id,
            _E.c.service_id,
            _E.c.package_name,
            _E.c.module_name,
            _E.c.function_name,
            _E.c.input,
            _E.c.attempts,
            _E.c.max_attempts,
            _E.c.execution_timeout,
            _E.c.on_reset,
            _E.c.trigger_id,
            _E.c.creator,
            service(_S.c.package_id).label("package_id"),
            service(_S.c.package_revision).label("package_revision"),
            service(_S.c.init_params).label("init_params"),
            service(_S.c.creator).label("service_creator"),
            service(_S.c.updated_at).label("service_version"),
        )
    )


async def claim(platform: Platform, execution_id: str, worker: str) -> Claim | None:
    """Take an execution to run, or ``None``: it is not waiting (already claimed, terminated,
    deleted), its service is paused, or the service already runs ``concurrency`` executions."""
    now = utcnow()
    lease = now + timedelta(seconds=platform.settings.execution_lease_seconds)
    parameters = {
        "execution": execution_id,
        "lease": lease,
        "claimer": worker,
        "now": now,
        "entry_message": f"on {worker}",
        "entry_at": now.isoformat(),
    }
    async with platform.db.statements() as connection:
        row = (await connection.execute(_claim_statement(platform.db.dialect), parameters)).first()
    if row is None:
        return None
    await notify.executions_changed(platform, [(execution_id, row.service_id)])
    has_service = row.service_id is not None
    return Claim(
        id=execution_id,
        project_id=row.project_id,
        service_id=row.service_id,
        package_name=row.package_name,
        module_name=row.module_name,
        function_name=row.function_name,
        input=dict(row.input or {}),
        attempt=row.attempts,
        max_attempts=row.max_attempts,
        execution_timeout=row.execution_timeout,
        on_reset=row.on_reset,
        trigger_id=row.trigger_id,
        creator=row.creator,
        package_id=row.package_id,
        package_revision=row.package_revision,
        init_params=dict(row.init_params or {}) if has_service else None,
        service_creator=row.service_creator,
        service_version=row.service_version,
    )


def _mine(execution_id: str, attempt: int) -> Any:
    # Core columns: the ORM's bulk UPDATE path costs more than these statements run
    return and_(_E.c.id == execution_id, _E.c.attempts == attempt, _E.c.status == "in-progress")


async def heartbeat(platform: Platform, execution_id: str, attempt: int) -> bool | None:
    """Extend the lease. Returns whether termination was asked, or ``None`` when the execution is
    no longer this attempt's (reaped, deleted): the worker must stop without writing results."""
    lease = utcnow() + timedelta(seconds=platform.settings.execution_lease_seconds)
    async with platform.db.statements() as connection:
        asked = await connection.scalar(
            update(_E)
            .where(_mine(execution_id, attempt))
            .values(lease_until=lease)
            .returning(_E.c.to_terminate)
        )
    return asked


async def report_progress(
    platform: Platform,
    execution_id: str,
    attempt: int,
    *,
    progress: int | None = None,
    message: str | None = None,
    action: str | None = None,
) -> bool:
    values: dict[str, Any] = {"updated_at": utcnow()}
    if progress is not None:
        values["progress"] = max(0, min(100, int(progress)))
    if message is not None:
        values["message"] = message[:_MAX_LINE]
    if action is not None:
        values["action"] = action[:200]
    async with platform.db.statements() as connection:
        changed = (
            await connection.execute(
                update(_E)
                .where(_mine(execution_id, attempt))
                .values(**values)
                .returning(_E.c.service_id)
            )
        ).first()
    if changed is None:
        return False
    await notify.executions_changed(platform, [(execution_id, changed.service_id)])
    return True


async def append_logs(
    platform: Platform, execution_id: str, attempt: int, lines: Sequence[tuple[str, str]]
) -> None:
    """Store ``(stream, line)`` pairs written by the execution's code."""
    if not lines:
        return
    now = utcnow()
    async with platform.db.write(durable=False) as session:
        if not await session.scalar(select(exists().where(_mine(execution_id, attempt)))):
            return
        await insert_many(
            session,
            ExecutionLog.__table__,
            [
                {
                    "execution_id": execution_id,
                    "attempt": attempt,
                    "stream": stream,
                    "line": line[:_MAX_LINE],
                    "created_at": now,
                }
                for stream, line in lines
            ],
        )


@lru_cache(maxsize=4)
def _finish_statements(dialect: str) -> tuple[Any, Any]:
    """The end of an attempt, built once per dialect: final (a status, its output or error),
    and again (queued for the next attempt); both only while the attempt is the worker's."""
    mine = and_(
        _E.c.id == bindparam("execution"),
        _E.c.attempts == bindparam("attempt"),
        _E.c.status == "in-progress",
    )
    final = (
        update(_E)
        .where(mine)
        .values(
            status=bindparam("status"),
            ended_at=bindparam("now"),
            updated_at=bindparam("now"),
            lease_until=None,
            output=bindparam("output", type_=_E.c.output.type),
            error=bindparam("error"),
            action=bindparam("action"),
            progress=func.coalesce(bindparam("progress", type_=Integer()), _E.c.progress),
            message=func.coalesce(bindparam("message", type_=Text()), _E.c.message),
            status_log=append_status(dialect, bindparam("entry")),
        )
        .returning(_E.c.queue, _E.c.job_id)
    )
    again = (
        update(_E)
        .where(mine)
        .values(
            status="created",
            job_id=bindparam("job"),
            queued_at=bindparam("now"),
            updated_at=bindparam("now"),
            lease_until=None,
            error=bindparam("error"),
            status_log=append_status(dialect, bindparam("entry")),
        )
        .returning(_E.c.queue, _E.c.job_id)
    )
    if dialect == "postgresql":  # the event in the same statement (a round trip less)
        return _with_event(final), _with_event(again)
    return final, again


def _event_of(changed: Any, *where: Any) -> Any:
    """The outbox event of the execution that ``changed`` (a table or CTE with its ``id`` and
    ``project_id``) holds: an INSERT ... SELECT."""
    return insert(_EV).from_select(
        ["project_id", "resource", "action", "resource_id", "actor", "payload"]
        + ["created_at", "dispatched"],
        select(
            changed.c.project_id,
            literal("execution"),
            literal("updated"),
            changed.c.id,
            bindparam("actor", type_=_EV.c.actor.type),
            bindparam("payload", type_=_EV.c.payload.type),
            bindparam("now", type_=_EV.c.created_at.type),
            literal(False),
        ).where(*where),
    )


def _with_event(changed: Any) -> Any:
    """``changed`` (an UPDATE returning the queue and job id) with its event inserted by the
    same statement (PostgreSQL); returns what ``changed`` returns."""
    done = changed.returning(_E.c.id, _E.c.project_id).cte("done")
    return select(done.c.queue, done.c.job_id).add_cte(_event_of(done).cte("event"))


@lru_cache(maxsize=1)
def _event_after_update() -> Any:
    """The event of the execution ``execution``, inserted after the UPDATE that ended its
    attempt, in its transaction (SQLite)."""
    return _event_of(_E, _E.c.id == bindparam("execution"))


async def finish(
    platform: Platform,
    claimed: Claim,
    status: str,
    *,
    output: Any = None,
    error: str | None = None,
    action: str | None = None,
    message: str | None = None,
    retry: bool = False,
) -> bool:
    """End this attempt: ``success``, ``terminated``, or ``failed`` (``retry``: queue again while
    attempts remain). Returns False when the attempt was no longer this worker's."""
    now = utcnow()
    again = retry and claimed.attempt < claimed.max_attempts
    dialect = platform.db.dialect
    parameters: dict[str, Any] = {"execution": claimed.id, "attempt": claimed.attempt, "now": now}
    if again:
        status = "created"
        why = f"failed: {error}; retrying (attempt {claimed.attempt + 1} of {claimed.max_attempts})"
        statement = _finish_statements(dialect)[1]
        parameters.update(job=new_job_id(), error=error)
    else:
        why = error or message
        statement = _finish_statements(dialect)[0]
        parameters.update(
            status=status,
            output=output,
            error=error,
            action=action,
            progress=100 if status == "success" else None,
            message=message,
        )
    entry = status_entry(status, why, claimed.attempt, now)
    parameters["entry"] = status_json(dialect, entry)
    event = {
        "status": status,
        "service_id": claimed.service_id,
        "function_name": claimed.function_name,
    }
    parameters.update(actor=claimed.creator, payload=execution_event(event))
    if dialect == "postgresql":  # one statement, its event included
        async with platform.db.statements() as connection:
            row = (await connection.execute(statement, parameters)).first()
    else:
        async with platform.db.transaction(durable=False) as connection:
            row = (await connection.execute(statement, parameters)).first()
            if row is not None:
                await connection.execute(_event_after_update(), parameters)
    if row is None:
        return False
    await notify.executions_changed(platform, [(claimed.id, claimed.service_id)])
    if again:
        await enqueue(platform, [Queued(claimed.id, row.queue, row.job_id)])
    return True


async def reap(platform: Platform, limit: int = 500) -> int:
    """Handle executions whose lease expired (their worker died or hangs): queue them again when
    their service says ``onReset: rerun`` and attempts remain, else end them ``system-failure``.
    Returns how many were handled."""
    now = utcnow()
    again: list[Queued] = []
    changed: list[tuple[str, str | None]] = []
    async with platform.db.write(durable=False) as session:
        expired = (
            await session.execute(
                select(
                    Execution.id,
                    Execution.project_id,
                    Execution.service_id,
                    Execution.function_name,
                    Execution.attempts,
                    Execution.max_attempts,
                    Execution.on_reset,
                    Execution.queue,
                    Execution.worker,
                )
                .where(Execution.status == "in-progress", Execution.lease_until < now)
                .limit(limit)
            )
        ).all()
        for e in expired:
            rerun = e.on_reset == "rerun" and e.attempts < e.max_attempts
            lost = f"the worker {e.worker} stopped renewing its lease"
            if rerun:
                job_id = new_job_id()
                values: dict[str, Any] = {"status": "created", "job_id": job_id, "queued_at": now}
                line = f"{lost}; queued again (attempt {e.attempts + 1} of {e.max_attempts})"
            else:
                values = {"status": "system-failure", "ended_at": now, "error": lost}
                line = lost
            values["status_log"] = append_status(
                platform.db.dialect, status_entry(values["status"], line, e.attempts, now)
            )
            done = await session.execute(
                update(Execution)
                .where(
                    Execution.id == e.id,
                    Execution.attempts == e.attempts,
                    Execution.status == "in-progress",
                    Execution.lease_until < now,
                )
                .values(lease_until=None, updated_at=now, **values)
            )
            if not done.rowcount:
                continue
            changed.append((e.id, e.service_id))
            await _changed(
                session,
                e.project_id,
                e.id,
                "reaper",
                {
                    "status": values["status"],
                    "service_id": e.service_id,
                    "function_name": e.function_name,
                },
            )
            if rerun:
                again.append(Queued(e.id, e.queue, job_id))
    await notify.executions_changed(platform, changed)
    await enqueue(platform, again)
    return len(expired)


async def requeue_lost(platform: Platform, grace: float = 5.0, limit: int = 1000) -> int:
    """Enqueue again the waiting executions whose job no longer waits in Redis (lost with a
    Redis restart, never enqueued, dropped while their service was paused or busy, or taken by a
    worker that died before claiming it). ``grace`` seconds after an enqueue, so a job on its way
    is not doubled. Returns how many."""
    if platform.queue.url is None:
        return 0
    now = utcnow()
    async with platform.db.read() as session:
        waiting = (
            await session.execute(
                select(Execution.id, Execution.queue, Execution.job_id)
                .outerjoin(Service, Service.id == Execution.service_id)
                .where(
                    Execution.status == "created",
                    Execution.to_terminate.is_(False),
                    or_(Execution.service_id.is_(None), Service.active.is_(True)),
                    or_(
                        Execution.queued_at.is_(None),
                        Execution.queued_at < now - timedelta(seconds=grace),
                    ),
                )
                .order_by(Execution.created_at, Execution.id)
                .limit(limit)
            )
        ).all()
    if not waiting:
        return 0
    gone = await asyncio.to_thread(
        platform.queue.lost, [(w.job_id, w.queue) for w in waiting if w.job_id]
    )
    lost = [w for w in waiting if not w.job_id or w.job_id in gone]
    again: list[Queued] = []
    async with platform.db.write(durable=False) as session:
        for w in lost:
            job_id = new_job_id()
            moved = await session.execute(
                update(Execution)
                .where(
                    Execution.id == w.id,
                    Execution.status == "created",
                    Execution.job_id.is_(None)
                    if w.job_id is None
                    else Execution.job_id == w.job_id,
                )
                .values(job_id=job_id, queued_at=now)
            )
            if moved.rowcount:
                again.append(Queued(w.id, w.queue, job_id))
    await enqueue(platform, again)
    return len(again)
