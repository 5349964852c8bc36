"""Triggers: run a service function on events (``Event``) or on a schedule (``Cron``)."""

from __future__ import annotations

from typing import Annotated, Any

import strawberry

from graph.api.context import Info
from graph.api.scalars import JSON, LIST_DQL, Connection, instant, iso, to_connection
from graph.api.services import Service
from graph.db.tables import Trigger as TriggerRow
from graph.domain import triggers

__all__ = ["Trigger", "TriggerInput", "TriggerMutations", "TriggerQueries"]


@strawberry.type(
    description="Runs a service function: on events of a resource matching a filter (`type` "
    "Event), or at the instants of a cron expression, UTC (`type` Cron)."
)
class Trigger:
    id: strawberry.ID
    project_id: strawberry.ID
    name: str
    type: str = strawberry.field(description="`Event` or `Cron`.")
    active: bool
    service_id: strawberry.ID
    function_name: str
    input: JSON = strawberry.field(description="The function's other inputs.")
    resource: str | None = strawberry.field(
        description="`Item`, `Dataset`, `Annotation` (actions `Created`, `Updated`, `Deleted`) "
        "or `ItemStatus` (action `StatusChanged`: an item's status in a task changed)."
    )
    actions: list[str]
    execution_mode: str | None = strawberry.field(description="`Once` or `Always`.")
    dql: str | None
    filter: JSON | None
    cron: str | None
    start_at: str | None
    end_at: str | None
    next_at: str | None = strawberry.field(description="The next instant a cron trigger fires.")
    max_catch_up: int
    creator: str
    created_at: str | None
    updated_at: str | None

    @classmethod
    def of(cls, row: TriggerRow) -> Trigger:
        event = row.type == "event"
        return cls(
            id=strawberry.ID(row.id),
            project_id=strawberry.ID(row.project_id),
            name=row.name,
            type=row.type.capitalize(),
            active=row.active,
            service_id=strawberry.ID(row.service_id),
            function_name=row.function_name,
            input=row.input,
            resource=row.resource,
            actions=list(row.actions or []),
            execution_mode=row.execution_mode.capitalize() if event else None,
            dql=row.dql,
            filter=row.filter,
            cron=row.cron,
            start_at=iso(row.start_at),
            end_at=iso(row.end_at),
            next_at=iso(row.next_at),
            max_catch_up=row.max_catch_up,
            creator=row.creator,
            created_at=iso(row.created_at),
            updated_at=iso(row.updated_at),
        )

    @strawberry.field
    async def service(self, info: Info) -> Service | None:
        row = await info.context.loaders.service.load(self.service_id)
        return None if row is None else Service.of(row)


@strawberry.input(
    description="A trigger, as Dataloop declares one. Event: `resource`, `actions` (default "
    "[Created]), `executionMode` (default Once), an optional `dql` or `filter` on the entity. "
    "Cron: `cron` (five fields), optional `startAt`, `endAt` (ISO 8601) and `maxCatchUp`."
)
class TriggerInput:
    service_id: strawberry.ID
    name: str
    function_name: str
    type: str = strawberry.field(default="Event", description="`Event` or `Cron`.")
    resource: str | None = None
    actions: list[str] | None = None
    execution_mode: str | None = None
    dql: str | None = None
    filter: JSON | None = None
    cron: str | None = None
    start_at: str | None = None
    end_at: str | None = None
    max_catch_up: int | None = strawberry.field(
        default=None,
        description="Instants missed while no scheduler ran that still fire (default 1).",
    )
    input: JSON | None = strawberry.field(
        default=None, description="The function's inputs other than the triggering entity."
    )
    active: bool = True


def _options(spec: TriggerInput) -> dict[str, Any]:
    given = {
        "resource": spec.resource,
        "actions": spec.actions,
        "execution_mode": spec.execution_mode,
        "dql": spec.dql,
        "filter": spec.filter,
        "cron": spec.cron,
        "start_at": instant(spec.start_at, "startAt"),
        "end_at": instant(spec.end_at, "endAt"),
        "max_catch_up": spec.max_catch_up,
        "input": spec.input,
    }
    # the domain's defaults stand for what is not given
    return {k: v for k, v in given.items() if v is not None}


@strawberry.type
class TriggerQueries:
    @strawberry.field
    async def trigger(self, info: Info, id: strawberry.ID) -> Trigger:
        ctx = info.context
        return Trigger.of(await triggers.get_trigger(ctx.platform, await ctx.actor(), id))

    @strawberry.field(
        description="The triggers of a project matching a DQL query, by its `order by`, else by name."
    )
    async def triggers(
        self,
        info: Info,
        project_id: strawberry.ID,
        dql: Annotated[str | None, LIST_DQL] = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[Trigger]:
        ctx = info.context
        actor = await ctx.actor()
        page = await triggers.list_triggers(ctx.platform, actor, project_id, first, after, dql=dql)
        return to_connection(
            page,
            Trigger.of,
            lambda: triggers.count_triggers(ctx.platform, actor, project_id, dql=dql),
        )


@strawberry.type
class TriggerMutations:
    @strawberry.mutation(
        description="Create a trigger; a filter that does not compile, a bad cron expression, "
        "or a function without one input of the resource's type is refused (`INVALID_INPUT` "
        "naming the field)."
    )
    async def create_trigger(self, info: Info, trigger: TriggerInput) -> Trigger:
        ctx = info.context
        row = await triggers.create_trigger(
            ctx.platform,
            await ctx.actor(),
            trigger.service_id,
            trigger.name,
            trigger.function_name,
            type=trigger.type,
            active=trigger.active,
            **_options(trigger),
        )
        return Trigger.of(row)

    @strawberry.mutation(
        description="Pause (`active` false) or resume a trigger, or change its schedule, "
        "filter or input (checked as at creation)."
    )
    async def update_trigger(
        self,
        info: Info,
        id: strawberry.ID,
        active: bool | None = None,
        cron: str | None = None,
        dql: str | None = None,
        filter: JSON | None = None,
        input: JSON | None = None,
    ) -> Trigger:
        ctx = info.context
        row = await triggers.update_trigger(
            ctx.platform,
            await ctx.actor(),
            id,
            active=active,
            cron=cron,
            dql=dql,
            filter=filter,
            input=input,
        )
        return Trigger.of(row)

    @strawberry.mutation(description="Delete a trigger; its past executions stay.")
    async def delete_trigger(self, info: Info, id: strawberry.ID) -> bool:
        ctx = info.context
        await triggers.delete_trigger(ctx.platform, await ctx.actor(), id)
        return True
