"""The platform's own long operations, run as executions of built-in functions (package
``loopline``, module ``platform``) so they share progress, logs, listing and subscriptions with
user functions, and never run inside a request: clone, merge, storage sync, the changes by
query of graph/domain/bulk.py, imports and exports (graph/domain/imports.py, exports.py).

Starting one checks at once what can be checked cheaply (the caller's role on each dataset, the
query, a free name), so a mistake is an error of the request, not a failed execution; then it
writes the execution (on the ``platform`` queue, one attempt) and enqueues it. A worker runs the
same domain function the request would have run, as the user who started it, and stores what
it returned as the execution's output (``{"datasetId": ...}``, ``{"changed": n}``, a sync
report).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from graph.db.tables import Dataset, Execution, utcnow
from graph.domain import bulk, events, exports, imports, queries, sync, versioning
from graph.domain.access import Actor, Role
from graph.domain.collector import collections_held
from graph.domain.datasets import check_name, dataset_for
from graph.domain.errors import Conflict, InvalidInput
from graph.domain.executions import enqueue, execution_event, new_job_id, status_entry
from graph.domain.platform import Platform
from graph.domain.work import Work
from graph.queue import PLATFORM_QUEUE, Queued

__all__ = ["MODULE", "OPERATIONS", "PACKAGE", "Operation", "Work", "run", "start"]

PACKAGE = "loopline"
MODULE = "platform"
_TIMEOUT = 24 * 3600


# checks the rest of an operation's input: (session, platform, actor, project id, input)
Check = Callable[[AsyncSession, Platform, Actor, str, Mapping[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class Operation:
    """``run(platform, actor, work, input)`` does the work and returns its output; the
    datasets named by ``datasets`` (input keys) need ``role``; ``resource`` is what a query in
    the input selects (None: no query); ``new_name`` the input key of a dataset it creates.
    ``attempts`` > 1 and ``on_reset`` "rerun" for an operation that resumes where a lost worker
    left it; ``check`` checks the rest of the input when the operation is started."""

    run: Callable[[Platform, Actor, Work, dict[str, Any]], Awaitable[Any]]
    role: Role
    datasets: tuple[str, ...] = ("datasetId",)
    resource: str | None = "items"
    new_name: str | None = None
    query_required: bool = False
    attempts: int = 1
    on_reset: str = "failed"
    check: Check | None = None


def _dataset(result: Dataset) -> dict[str, str]:
    return {"datasetId": result.id, "name": result.name}


def _changed(result: int) -> dict[str, int]:
    return {"changed": result}


async def _clone(platform: Platform, actor: Actor, work: Work, input: dict[str, Any]) -> Any:
    return _dataset(
        await versioning.clone_dataset(
            platform,
            actor,
            input["datasetId"],
            input["name"],
            item_ids=input.get("itemIds"),
            dql=input.get("dql"),
            dataloop=input.get("filter"),
            with_metadata=input.get("withMetadata", True),
            with_annotations=input.get("withAnnotations", True),
            target_dir=input.get("targetDir"),
        )
    )


async def _merge(platform: Platform, actor: Actor, work: Work, input: dict[str, Any]) -> Any:
    return _dataset(
        await versioning.merge_datasets(
            platform,
            actor,
            input["datasetIds"],
            input["name"],
            with_metadata=input.get("withMetadata", True),
            with_annotations=input.get("withAnnotations", True),
        )
    )


async def _sync(platform: Platform, actor: Actor, work: Work, input: dict[str, Any]) -> Any:
    return dataclasses.asdict(await sync.sync_dataset(platform, actor, input["datasetId"]))


def _by_query(
    function: Callable[..., Awaitable[int]], **names: str
) -> Callable[..., Awaitable[Any]]:
    """A change by query of graph/domain/bulk.py; ``names`` maps its keyword arguments to the
    input keys that carry them."""

    async def run(platform: Platform, actor: Actor, work: Work, input: dict[str, Any]) -> Any:
        options = {arg: input[key] for arg, key in names.items() if key in input}
        return _changed(
            await function(
                platform,
                actor,
                input["datasetId"],
                dql=input.get("dql"),
                dataloop=input.get("filter"),
                progress=lambda done: work.progress(done, None, "changed"),
                **options,
            )
        )

    return run


OPERATIONS: dict[str, Operation] = {
    "clone_dataset": Operation(_clone, Role.developer, new_name="name"),
    "merge_datasets": Operation(
        _merge, Role.developer, datasets=("datasetIds",), resource=None, new_name="name"
    ),
    "sync_dataset": Operation(_sync, Role.developer, resource=None),
    "update_items_by_query": Operation(
        _by_query(
            bulk.update_items_by_query,
            set_user_metadata="set",
            replace_user_metadata="replace",
            description="description",
        ),
        Role.annotationManager,
        query_required=True,
    ),
    "delete_items_by_query": Operation(
        _by_query(bulk.delete_items_by_query), Role.annotationManager, query_required=True
    ),
    "move_items_by_query": Operation(
        _by_query(bulk.move_items_by_query, to_dir="toDir"),
        Role.annotationManager,
        query_required=True,
    ),
    "update_annotations_by_query": Operation(
        _by_query(
            bulk.update_annotations_by_query,
            changes="changes",
            set_user_metadata="set",
            replace_user_metadata="replace",
        ),
        Role.annotationManager,
        resource="annotations",
        query_required=True,
    ),
    "delete_annotations_by_query": Operation(
        _by_query(bulk.delete_annotations_by_query),
        Role.annotationManager,
        resource="annotations",
        query_required=True,
    ),
    imports.FUNCTION: Operation(
        imports.run_import,
        Role.annotationManager,
        resource=None,
        attempts=3,
        on_reset="rerun",
        check=imports.check_start,
    ),
    exports.FUNCTION: Operation(
        exports.run_export,
        Role.annotationManager,
        attempts=3,
        on_reset="rerun",
        check=exports.check_start,
    ),
}


async def _preflight(
    session: AsyncSession,
    platform: Platform,
    actor: Actor,
    operation: Operation,
    input: Mapping[str, Any],
) -> str:
    """Check what can be checked now; returns the project the operation runs in."""
    ids: list[str] = []
    for key in operation.datasets:
        value = input.get(key)
        ids.extend(value if isinstance(value, list) else [value] if value else [])
    if not ids:
        raise InvalidInput(f"{operation.datasets[0]} is required", field=operation.datasets[0])
    found = [await dataset_for(session, actor, i, operation.role) for i in ids]
    projects = {d.project_id for d in found}
    if len(projects) != 1:
        raise InvalidInput("the datasets must be of one project", field=operation.datasets[0])
    (project_id,) = projects
    given = input.get("dql") is not None or input.get("filter") is not None
    if operation.query_required and not given:
        raise InvalidInput('give a query: dql, filter or saved (dql "" selects all)', field="dql")
    if operation.resource and given:
        query = queries.parse_query(
            input.get("dql"), input.get("filter"), resource=operation.resource
        )
        queries.compile_for(query, operation.resource, platform.db.dialect, ids[0])
    if operation.check is not None:
        await operation.check(session, platform, actor, project_id, input)
    if operation.new_name:
        name = check_name(input.get(operation.new_name) or "")
        taken = await session.scalar(
            select(Dataset.id).where(Dataset.project_id == project_id, Dataset.name == name)
        )
        if taken is not None:
            raise Conflict(f"the project already has a dataset named {name!r}", field="name")
    return project_id


async def start(
    platform: Platform, actor: Actor, function: str, input: Mapping[str, Any]
) -> Execution:
    """Check and queue an operation; the execution's output will hold its result."""
    operation = OPERATIONS[function]
    values = {key: value for key, value in input.items() if value is not None}
    now = utcnow()
    async with platform.db.write() as session:
        project_id = await _preflight(session, platform, actor, operation, values)
        execution = Execution(
            project_id=project_id,
            package_name=PACKAGE,
            module_name=MODULE,
            function_name=function,
            queue=PLATFORM_QUEUE,
            input=values,
            status="created",
            status_log=[status_entry("created", None, 0, now)],
            max_attempts=operation.attempts,
            on_reset=operation.on_reset,
            execution_timeout=_TIMEOUT,
            job_id=new_job_id(),
            queued_at=now,
            creator=actor.email,
        )
        session.add(execution)
        await session.flush()
        await events.record(
            session,
            project_id=project_id,
            resource="execution",
            action="created",
            resource_id=execution.id,
            actor=actor.email,
            payload=execution_event(execution),
        )
    await enqueue(platform, [Queued(execution.id, execution.queue, execution.job_id or "")])
    return execution


async def run(
    platform: Platform, actor: Actor, function: str, input: Mapping[str, Any], work: Work
) -> Any:
    """Do an operation (in a worker); domain errors propagate as they would in a request."""
    operation = OPERATIONS.get(function)
    if operation is None:
        raise InvalidInput(f"the platform has no function {function!r}", field="functionName")
    with collections_held():  # bulk work: see graph/domain/collector.py
        return await operation.run(platform, actor, work, dict(input))
