"""Executions: runs of service functions; create (one, or one per item a query selects), read,
list with DQL, rerun, terminate, and their status history and log lines."""

from __future__ import annotations

from typing import Annotated, Any

import strawberry

from graph.api.context import Info
from graph.api.scalars import JSON, Connection, iso, to_connection
from graph.api.services import Service
from graph.db.tables import Execution as ExecutionRow
from graph.db.tables import ExecutionLog
from graph.domain import executions
from graph.domain.errors import InvalidInput

__all__ = ["Execution", "ExecutionMutations", "ExecutionQueries", "LogLine", "StatusLine"]

_INPUT = strawberry.argument(
    description="The function's inputs by name; an entity input (Item, Dataset, Annotation) is "
    "given by its id."
)
_STREAM = strawberry.argument(
    description="Only this stream: `stdout`, `stderr`, `log` (the context's logger), or `system` "
    "(the worker's notes: stopping, truncation)."
)
_AFTER_SEQ = strawberry.argument(description="The `seq` of the last line already read.")


@strawberry.type(description="A change of an execution's status, as its history records it.")
class StatusLine:
    status: str
    message: str | None = strawberry.field(
        description="Why, e.g. `on host:123`, `failed: ValueError: ...; retrying (attempt 2 of 3)`."
    )
    attempt: int = strawberry.field(description="The attempt it belongs to (0 before the first).")
    at: str | None

    @classmethod
    def of(cls, entry: dict[str, Any]) -> StatusLine:
        return cls(
            status=entry["status"],
            message=entry.get("message"),
            attempt=entry.get("attempt", 0),
            at=entry.get("timestamp"),
        )


@strawberry.type(description="A line an execution wrote (or a status change).")
class LogLine:
    seq: str = strawberry.field(description="Its position in the log; pass it as `after`.")
    attempt: int
    stream: str
    line: str
    at: str | None

    @classmethod
    def of(cls, row: ExecutionLog) -> LogLine:
        return cls(
            seq=str(row.seq),
            attempt=row.attempt,
            stream=row.stream,
            line=row.line,
            at=iso(row.created_at),
        )


def _seq(after: str | None) -> int | None:
    if after is None:
        return None
    if not after.isdigit():
        raise InvalidInput("after must be the seq of a log line", field="after")
    return int(after)


@strawberry.type(
    description="One run of a function: `status` created, in-progress, success, failed, "
    "terminated or system-failure."
)
class Execution:
    id: strawberry.ID
    project_id: strawberry.ID | None
    service_id: strawberry.ID | None
    trigger_id: strawberry.ID | None
    package_name: str
    module_name: str
    function_name: str
    input: JSON
    output: JSON | None
    status: str
    progress: int
    message: str | None
    action: str | None = strawberry.field(description="The output action the function chose.")
    error: str | None
    attempts: int
    max_attempts: int
    execution_timeout: int
    on_reset: str
    to_terminate: bool = strawberry.field(description="Termination was asked for.")
    creator: str
    created_at: str | None
    updated_at: str | None
    started_at: str | None
    ended_at: str | None
    duration: float | None = strawberry.field(description="Seconds from start to end.")
    status_log: list[StatusLine] = strawberry.field(description="Its status history, oldest first.")

    @classmethod
    def of(cls, row: ExecutionRow) -> Execution:
        duration = None
        if row.started_at is not None and row.ended_at is not None:
            duration = (row.ended_at - row.started_at).total_seconds()
        return cls(
            id=strawberry.ID(row.id),
            project_id=row.project_id,
            service_id=row.service_id,
            trigger_id=row.trigger_id,
            package_name=row.package_name,
            module_name=row.module_name,
            function_name=row.function_name,
            input=row.input,
            output=row.output,
            status=row.status,
            progress=row.progress,
            message=row.message,
            action=row.action,
            error=row.error,
            attempts=row.attempts,
            max_attempts=row.max_attempts,
            execution_timeout=row.execution_timeout,
            on_reset=row.on_reset,
            to_terminate=row.to_terminate,
            creator=row.creator,
            created_at=iso(row.created_at),
            updated_at=iso(row.updated_at),
            started_at=iso(row.started_at),
            ended_at=iso(row.ended_at),
            duration=duration,
            status_log=[StatusLine.of(entry) for entry in row.status_log or ()],
        )

    @strawberry.field(description="The service it ran on (null for the platform's own).")
    async def service(self, info: Info) -> Service | None:
        if self.service_id is None:
            return None
        row = await info.context.loaders.service.load(self.service_id)
        return None if row is None else Service.of(row)

    @strawberry.field(description="Its log lines in order (one query per execution asked).")
    async def logs(
        self,
        info: Info,
        first: int | None = None,
        after: Annotated[str | None, _AFTER_SEQ] = None,
        stream: Annotated[str | None, _STREAM] = None,
    ) -> list[LogLine]:
        ctx = info.context
        rows = await executions.list_logs(
            ctx.platform, await ctx.actor(), self.id, stream=stream, after=_seq(after), first=first
        )
        return [LogLine.of(r) for r in rows]


@strawberry.type
class ExecutionQueries:
    @strawberry.field
    async def execution(self, info: Info, id: strawberry.ID) -> Execution:
        ctx = info.context
        return Execution.of(await executions.get_execution(ctx.platform, await ctx.actor(), id))

    @strawberry.field(
        description="Executions of a project matching a DQL query (fields such as `status`, "
        "`functionName`, `serviceId`, `input.name`), newest first unless it says `order by`."
    )
    async def executions(
        self,
        info: Info,
        project_id: strawberry.ID,
        dql: str | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[Execution]:
        ctx = info.context
        actor = await ctx.actor()
        page = await executions.list_executions(
            ctx.platform, actor, project_id, first, after, dql=dql
        )
        return to_connection(
            page,
            Execution.of,
            lambda: executions.count_executions(ctx.platform, actor, project_id, dql=dql),
        )


@strawberry.type
class ExecutionMutations:
    @strawberry.mutation(description="Run a function of a service with an input (checked).")
    async def create_execution(
        self,
        info: Info,
        service_id: strawberry.ID,
        function_name: str,
        input: Annotated[JSON | None, _INPUT] = None,
    ) -> Execution:
        ctx = info.context
        row = await executions.create_execution(
            ctx.platform, await ctx.actor(), service_id, function_name, input
        )
        return Execution.of(row)

    @strawberry.mutation(
        description="Run a function once per item of a dataset that a query selects (the item "
        "is the function's one Item input, `input` its other inputs); returns how many."
    )
    async def create_executions(
        self,
        info: Info,
        service_id: strawberry.ID,
        function_name: str,
        dataset_id: strawberry.ID,
        dql: str | None = None,
        filter: Annotated[
            JSON | None, strawberry.argument(description="A Dataloop JSON query.")
        ] = None,
        input: Annotated[JSON | None, _INPUT] = None,
    ) -> int:
        ctx = info.context
        return await executions.create_executions_by_query(
            ctx.platform,
            await ctx.actor(),
            service_id,
            function_name,
            dataset_id,
            dql=dql,
            filter=filter,
            input=input,
        )

    @strawberry.mutation(description="Run a finished execution again with the same input.")
    async def rerun_execution(self, info: Info, id: strawberry.ID) -> Execution:
        ctx = info.context
        return Execution.of(await executions.rerun_execution(ctx.platform, await ctx.actor(), id))

    @strawberry.mutation(
        description="Stop an execution: a waiting one ends at once, a running one within seconds."
    )
    async def terminate_execution(self, info: Info, id: strawberry.ID) -> Execution:
        ctx = info.context
        row = await executions.terminate_execution(ctx.platform, await ctx.actor(), id)
        return Execution.of(row)
