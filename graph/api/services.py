"""Services: a package module deployed in a project with its run settings."""

from __future__ import annotations

from typing import Annotated, Any

import strawberry

from graph.api.context import Info
from graph.api.packages import Package
from graph.api.scalars import JSON, LIST_DQL, Connection, iso, to_connection
from graph.db.tables import Service as ServiceRow
from graph.domain import services

__all__ = ["Service", "ServiceMutations", "ServiceQueries"]

_INIT_PARAMS = strawberry.argument(
    description="Arguments of the module class constructor (its `initInputs`), checked."
)
_TIMEOUT = strawberry.argument(description="Seconds an attempt may run before it is killed.")
_ON_RESET = strawberry.argument(
    description="What an execution whose worker was lost becomes: `failed` or `rerun`."
)


@strawberry.type(description="A deployed package module; its executions run on `queue`.")
class Service:
    id: strawberry.ID
    project_id: strawberry.ID
    name: str
    package_name: str
    package_id: strawberry.ID | None
    package_revision: int | None = strawberry.field(
        description="The revision deployed (null for a plugin's package)."
    )
    module_name: str
    init_params: JSON
    concurrency: int
    execution_timeout: int
    max_attempts: int
    on_reset: str
    queue: str
    active: bool = strawberry.field(description="False while paused.")
    creator: str
    created_at: str | None
    updated_at: str | None

    @classmethod
    def of(cls, row: ServiceRow) -> Service:
        return cls(
            id=strawberry.ID(row.id),
            project_id=strawberry.ID(row.project_id),
            name=row.name,
            package_name=row.package_name,
            package_id=row.package_id,
            package_revision=row.package_revision,
            module_name=row.module_name,
            init_params=row.init_params,
            concurrency=row.concurrency,
            execution_timeout=row.execution_timeout,
            max_attempts=row.max_attempts,
            on_reset=row.on_reset,
            queue=row.queue,
            active=row.active,
            creator=row.creator,
            created_at=iso(row.created_at),
            updated_at=iso(row.updated_at),
        )

    @strawberry.field(description="The package (null if a plugin providing it is gone).")
    async def package(self, info: Info) -> Package | None:
        if self.package_id is None:
            spec = info.context.platform.plugins.packages.get(self.package_name)
            return None if spec is None else Package.of_plugin(spec)
        row = await info.context.loaders.package.load(self.package_id)
        return None if row is None else Package.of(row)


def _given(**values: Any) -> dict[str, Any]:
    """The arguments the caller gave: the domain's defaults stand for the others."""
    return {k: v for k, v in values.items() if v is not None}


@strawberry.type
class ServiceQueries:
    @strawberry.field
    async def service(self, info: Info, id: strawberry.ID) -> Service:
        ctx = info.context
        return Service.of(await services.get_service(ctx.platform, await ctx.actor(), id))

    @strawberry.field(
        description="The services of a project matching a DQL query, by its `order by`, else by name."
    )
    async def services(
        self,
        info: Info,
        project_id: strawberry.ID,
        dql: Annotated[str | None, LIST_DQL] = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[Service]:
        ctx = info.context
        actor = await ctx.actor()
        page = await services.list_services(ctx.platform, actor, project_id, first, after, dql=dql)
        return to_connection(
            page,
            Service.of,
            lambda: services.count_services(ctx.platform, actor, project_id, dql=dql),
        )


@strawberry.type
class ServiceMutations:
    @strawberry.mutation(
        description="Deploy a module of a package (the plugin's, or the latest revision of an "
        "upload unless `revision` is given). Defaults: concurrency 10, executionTimeout 3600, "
        "maxAttempts 3, onReset `failed`, queue `default`."
    )
    async def deploy_service(
        self,
        info: Info,
        project_id: strawberry.ID,
        name: str,
        package_name: str,
        module_name: str | None = None,
        revision: int | None = None,
        init_params: Annotated[JSON | None, _INIT_PARAMS] = None,
        concurrency: int | None = None,
        execution_timeout: Annotated[int | None, _TIMEOUT] = None,
        max_attempts: int | None = None,
        on_reset: Annotated[str | None, _ON_RESET] = None,
        queue: str | None = None,
    ) -> Service:
        ctx = info.context
        row = await services.deploy_service(
            ctx.platform,
            await ctx.actor(),
            project_id,
            name,
            package_name,
            **_given(
                module=module_name,
                revision=revision,
                init_params=init_params,
                concurrency=concurrency,
                execution_timeout=execution_timeout,
                max_attempts=max_attempts,
                on_reset=on_reset,
                queue=queue,
            ),
        )
        return Service.of(row)

    @strawberry.mutation(
        description="Change a service's settings; `revision` or `latest` redeploys its package "
        "(workers pick the change up at their next execution of it)."
    )
    async def update_service(
        self,
        info: Info,
        id: strawberry.ID,
        revision: int | None = None,
        latest: bool = False,
        init_params: Annotated[JSON | None, _INIT_PARAMS] = None,
        concurrency: int | None = None,
        execution_timeout: Annotated[int | None, _TIMEOUT] = None,
        max_attempts: int | None = None,
        on_reset: Annotated[str | None, _ON_RESET] = None,
        queue: str | None = None,
    ) -> Service:
        ctx = info.context
        row = await services.update_service(
            ctx.platform,
            await ctx.actor(),
            id,
            revision=revision,
            latest=latest,
            init_params=init_params,
            concurrency=concurrency,
            execution_timeout=execution_timeout,
            max_attempts=max_attempts,
            on_reset=on_reset,
            queue=queue,
        )
        return Service.of(row)

    @strawberry.mutation(description="Pause a service: its new executions wait until resumed.")
    async def pause_service(self, info: Info, id: strawberry.ID) -> Service:
        ctx = info.context
        return Service.of(await services.set_active(ctx.platform, await ctx.actor(), id, False))

    @strawberry.mutation(description="Resume a paused service: its waiting executions run.")
    async def resume_service(self, info: Info, id: strawberry.ID) -> Service:
        ctx = info.context
        return Service.of(await services.set_active(ctx.platform, await ctx.actor(), id, True))

    @strawberry.mutation(description="Delete a service with its triggers and executions.")
    async def delete_service(self, info: Info, id: strawberry.ID) -> bool:
        ctx = info.context
        await services.delete_service(ctx.platform, await ctx.actor(), id)
        return True
