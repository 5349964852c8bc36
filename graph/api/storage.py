"""Storage: driver types, integrations (credentials, never readable) and drivers; dataset sync."""

from __future__ import annotations

from typing import Annotated

import strawberry

from graph.api.context import Info
from graph.api.scalars import JSON, LIST_DQL, Connection, iso, to_connection
from graph.db.tables import Driver as DriverRow
from graph.domain import storage
from graph.domain.storage import IntegrationInfo
from plugins.types import StorageDriverType as DriverTypeInfo

__all__ = ["StorageMutations", "StorageQueries"]


@strawberry.type(description="A kind of storage datasets can be bound to, from a plugin.")
class StorageDriverType:
    name: str
    description: str
    config_fields: list[str]
    secret_fields: list[str]

    @classmethod
    def of(cls, value: DriverTypeInfo) -> StorageDriverType:
        return cls(
            name=value.name,
            description=value.description,
            config_fields=list(value.config_fields),
            secret_fields=list(value.secret_fields),
        )


@strawberry.type(description="Credentials for external storage. The secret is write-only.")
class Integration:
    id: strawberry.ID
    project_id: strawberry.ID
    name: str
    type: str
    creator: str
    created_at: str | None

    @classmethod
    def of(cls, value: IntegrationInfo) -> Integration:
        return cls(
            id=strawberry.ID(value.id),
            project_id=strawberry.ID(value.project_id),
            name=value.name,
            type=value.type,
            creator=value.creator,
            created_at=iso(value.created_at),
        )


@strawberry.type(description="A storage location (a bucket and prefix, a folder) for datasets.")
class Driver:
    id: strawberry.ID
    project_id: strawberry.ID
    name: str
    type: str
    integration_id: strawberry.ID | None
    config: JSON
    creator: str
    created_at: str | None

    @classmethod
    def of(cls, row: DriverRow) -> Driver:
        return cls(
            id=strawberry.ID(row.id),
            project_id=strawberry.ID(row.project_id),
            name=row.name,
            type=row.type,
            integration_id=row.integration_id,
            config=row.config,
            creator=row.creator,
            created_at=iso(row.created_at),
        )


@strawberry.type
class StorageQueries:
    @strawberry.field(description="The kinds of storage the installed plugins provide.")
    async def storage_driver_types(self, info: Info) -> list[StorageDriverType]:
        ctx = info.context
        await ctx.actor()
        return [StorageDriverType.of(t) for t in storage.driver_types(ctx.platform)]

    @strawberry.field(
        description="Integrations of a project matching a DQL query (the secret is no field), "
        "by its `order by`, else by name."
    )
    async def integrations(
        self,
        info: Info,
        project_id: strawberry.ID,
        dql: Annotated[str | None, LIST_DQL] = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[Integration]:
        ctx = info.context
        actor = await ctx.actor()
        page = await storage.list_integrations(
            ctx.platform, actor, project_id, first, after, dql=dql
        )
        return to_connection(
            page,
            Integration.of,
            lambda: storage.count_integrations(ctx.platform, actor, project_id, dql=dql),
        )

    @strawberry.field(
        description="Storage drivers of a project matching a DQL query (`config.*` reaches the "
        "config), by its `order by`, else by name."
    )
    async def drivers(
        self,
        info: Info,
        project_id: strawberry.ID,
        dql: Annotated[str | None, LIST_DQL] = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[Driver]:
        ctx = info.context
        actor = await ctx.actor()
        page = await storage.list_drivers(ctx.platform, actor, project_id, first, after, dql=dql)
        return to_connection(
            page,
            Driver.of,
            lambda: storage.count_drivers(ctx.platform, actor, project_id, dql=dql),
        )


@strawberry.type
class StorageMutations:
    @strawberry.mutation(
        description="Store credentials for a kind of storage (keys: the type's secretFields). "
        "The secret can never be read back."
    )
    async def create_integration(
        self, info: Info, project_id: strawberry.ID, name: str, type: str, secret: JSON
    ) -> Integration:
        ctx = info.context
        value = await storage.create_integration(
            ctx.platform, await ctx.actor(), project_id, name, type, secret
        )
        return Integration.of(value)

    @strawberry.mutation(description="Delete an integration no driver uses.")
    async def delete_integration(self, info: Info, id: strawberry.ID) -> bool:
        ctx = info.context
        await storage.delete_integration(ctx.platform, await ctx.actor(), id)
        return True

    @strawberry.mutation(
        description="Create a storage driver (config keys: the type's configFields), "
        "optionally with an integration holding its credentials."
    )
    async def create_driver(
        self,
        info: Info,
        project_id: strawberry.ID,
        name: str,
        type: str,
        config: JSON,
        integration_id: strawberry.ID | None = None,
    ) -> Driver:
        ctx = info.context
        row = await storage.create_driver(
            ctx.platform, await ctx.actor(), project_id, name, type, config, integration_id
        )
        return Driver.of(row)

    @strawberry.mutation(description="Delete a driver no dataset uses; its store is left as is.")
    async def delete_driver(self, info: Info, id: strawberry.ID) -> bool:
        ctx = info.context
        await storage.delete_driver(ctx.platform, await ctx.actor(), id)
        return True
