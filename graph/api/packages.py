"""Packages: code a project deploys as services. Archives are uploaded over HTTP
(``POST /projects/{id}/packages``); plugins' packages are listed beside them."""

from __future__ import annotations

import strawberry

from graph.api.context import Info
from graph.api.scalars import JSON, iso
from graph.db.tables import Package as PackageRow
from graph.db.tables import PackageRevision as PackageRevisionRow
from graph.domain import packages
from plugins.functions import PackageSpec

__all__ = ["Package", "PackageMutations", "PackageQueries", "PackageRevision"]


@strawberry.type(description="One uploaded revision of a package with its checked manifest.")
class PackageRevision:
    revision: int
    spec: JSON = strawberry.field(description="The manifest (Dataloop's package JSON).")
    creator: str
    created_at: str | None

    @classmethod
    def of(cls, row: PackageRevisionRow) -> PackageRevision:
        return cls(
            revision=row.revision,
            spec=row.spec,
            creator=row.creator,
            created_at=iso(row.created_at),
        )


@strawberry.type(
    description="Modules of functions a project deploys as services: uploaded as an archive "
    "(revisioned), or shipped by a plugin (`plugin` true: no id, no revisions, deployed by name)."
)
class Package:
    id: strawberry.ID | None
    project_id: strawberry.ID | None
    name: str
    plugin: bool
    revision: int | None = strawberry.field(description="The latest revision of an upload.")
    description: str | None
    creator: str | None
    created_at: str | None
    updated_at: str | None
    _spec: strawberry.Private[JSON | None] = None

    @classmethod
    def of(cls, row: PackageRow) -> Package:
        return cls(
            id=strawberry.ID(row.id),
            project_id=strawberry.ID(row.project_id),
            name=row.name,
            plugin=False,
            revision=row.revision,
            description=row.description,
            creator=row.creator,
            created_at=iso(row.created_at),
            updated_at=iso(row.updated_at),
        )

    @classmethod
    def of_plugin(cls, spec: PackageSpec) -> Package:
        return cls(
            id=None,
            project_id=None,
            name=spec.name,
            plugin=True,
            revision=None,
            description=spec.description or None,
            creator=None,
            created_at=None,
            updated_at=None,
            _spec=spec.to_manifest(),
        )

    @strawberry.field(description="The manifest of the latest revision (or of the plugin's).")
    async def spec(self, info: Info) -> JSON:
        if self.id is None:
            return self._spec
        revisions = await info.context.loaders.revisions_of_package.load(self.id)
        return revisions[-1].spec if revisions else None

    @strawberry.field(description="Every revision, oldest first (none for a plugin's package).")
    async def revisions(self, info: Info) -> list[PackageRevision]:
        if self.id is None:
            return []
        rows = await info.context.loaders.revisions_of_package.load(self.id)
        return [PackageRevision.of(r) for r in rows]


@strawberry.type
class PackageQueries:
    @strawberry.field
    async def package(self, info: Info, id: strawberry.ID) -> Package:
        ctx = info.context
        return Package.of(await packages.get_package(ctx.platform, await ctx.actor(), id))

    @strawberry.field(
        description="The packages a project may deploy: its uploads and the plugins', by name."
    )
    async def packages(self, info: Info, project_id: strawberry.ID) -> list[Package]:
        ctx = info.context
        rows = await packages.list_packages(ctx.platform, await ctx.actor(), project_id)
        found = [Package.of(r) for r in rows]
        found += [Package.of_plugin(s) for s in ctx.platform.plugins.packages.values()]
        return sorted(found, key=lambda p: p.name)


@strawberry.type
class PackageMutations:
    @strawberry.mutation(
        description="Delete an uploaded package with its revisions; refused (`CONFLICT`) while "
        "a service deploys it."
    )
    async def delete_package(self, info: Info, id: strawberry.ID) -> bool:
        ctx = info.context
        await packages.delete_package(ctx.platform, await ctx.actor(), id)
        return True
