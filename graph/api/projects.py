"""Users, projects and members."""

from __future__ import annotations

from typing import Annotated

import strawberry

from graph.api.context import Info
from graph.api.scalars import LIST_DQL, Connection, iso, to_connection
from graph.db.tables import Member as MemberRow
from graph.db.tables import Project as ProjectRow
from graph.db.tables import User as UserRow
from graph.domain import projects, users

__all__ = ["ProjectMutations", "ProjectQueries"]


@strawberry.type
class User:
    id: strawberry.ID
    email: str
    name: str
    is_admin: bool

    @classmethod
    def of(cls, row: UserRow) -> User:
        return cls(id=strawberry.ID(row.id), email=row.email, name=row.name, is_admin=row.is_admin)


@strawberry.type
class Member:
    user: User
    role: str
    created_at: str | None

    @classmethod
    def of(cls, member: MemberRow, user: UserRow) -> Member:
        return cls(user=User.of(user), role=member.role, created_at=iso(member.created_at))


@strawberry.type
class Project:
    id: strawberry.ID
    name: str
    creator: str
    created_at: str | None
    updated_at: str | None

    @classmethod
    def of(cls, row: ProjectRow) -> Project:
        return cls(
            id=strawberry.ID(row.id),
            name=row.name,
            creator=row.creator,
            created_at=iso(row.created_at),
            updated_at=iso(row.updated_at),
        )

    @strawberry.field(
        description="Members matching a DQL query over `email`, `name`, `role`, `userId`, "
        "`createdAt`, by its `order by`, else by email."
    )
    async def members(
        self,
        info: Info,
        dql: Annotated[str | None, LIST_DQL] = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[Member]:
        ctx = info.context
        actor = await ctx.actor()
        page = await projects.list_members(
            ctx.platform, actor, self.id, dql=dql, first=first, after=after
        )
        return to_connection(
            page,
            lambda row: Member.of(*row),
            lambda: projects.count_members(ctx.platform, actor, self.id, dql=dql),
        )


@strawberry.type
class NewToken:
    user: User
    token: str = strawberry.field(description="Shown once; only its hash is stored.")


@strawberry.type
class ProjectQueries:
    @strawberry.field(description="The caller.")
    async def me(self, info: Info) -> User:
        actor = await info.context.actor()
        return User(
            id=strawberry.ID(actor.user_id), email=actor.email, name="", is_admin=actor.is_admin
        )

    @strawberry.field(
        description="Projects the caller is a member of (all, for administrators) matching a "
        "DQL query, by its `order by`, else by name."
    )
    async def projects(
        self,
        info: Info,
        dql: Annotated[str | None, LIST_DQL] = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[Project]:
        ctx = info.context
        actor = await ctx.actor()
        page = await projects.list_projects(ctx.platform, actor, dql=dql, first=first, after=after)
        return to_connection(
            page, Project.of, lambda: projects.count_projects(ctx.platform, actor, dql=dql)
        )

    @strawberry.field
    async def project(self, info: Info, id: strawberry.ID) -> Project:
        ctx = info.context
        return Project.of(await projects.get_project(ctx.platform, await ctx.actor(), id))


@strawberry.type
class ProjectMutations:
    @strawberry.mutation(description="Create a project; the caller becomes its owner.")
    async def create_project(self, info: Info, name: str) -> Project:
        ctx = info.context
        return Project.of(await projects.create_project(ctx.platform, await ctx.actor(), name))

    @strawberry.mutation(
        description="Add a user to a project or change a member's role: owner, developer, "
        "annotationManager or annotator. Owners only."
    )
    async def set_member(
        self, info: Info, project_id: strawberry.ID, email: str, role: str
    ) -> bool:
        ctx = info.context
        await projects.add_member(ctx.platform, await ctx.actor(), project_id, email, role)
        return True

    @strawberry.mutation(description="Remove a member from a project. Owners only.")
    async def remove_member(self, info: Info, project_id: strawberry.ID, email: str) -> bool:
        ctx = info.context
        await projects.remove_member(ctx.platform, await ctx.actor(), project_id, email)
        return True

    @strawberry.mutation(description="Create a user with a first token. Administrators only.")
    async def create_user(
        self, info: Info, email: str, name: str = "", is_admin: bool = False
    ) -> NewToken:
        ctx = info.context
        actor = await ctx.actor()
        user = await users.create_user(ctx.platform, actor, email, name, is_admin)
        token = await users.create_token(ctx.platform, actor, user.id, name="first")
        return NewToken(user=User.of(user), token=token)

    @strawberry.mutation(description="Issue another token for yourself (administrators: anyone).")
    async def create_token(
        self, info: Info, name: str = "", user_id: strawberry.ID | None = None
    ) -> str:
        ctx = info.context
        actor = await ctx.actor()
        return await users.create_token(ctx.platform, actor, user_id or actor.user_id, name)

    @strawberry.mutation(description="Revoke a token; it stops working at once.")
    async def revoke_token(self, info: Info, token: str) -> bool:
        ctx = info.context
        await users.revoke_token(ctx.platform, await ctx.actor(), token)
        return True
