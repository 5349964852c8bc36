"""Projects and their members."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from graph.db.tables import Member, Project, User
from graph.domain import queries
from graph.domain.access import Actor, Role, require_role
from graph.domain.errors import Conflict, InvalidInput, NotFound
from graph.domain.paging import Order, Page, page_size
from graph.domain.platform import Platform

__all__ = [
    "add_member",
    "count_members",
    "count_projects",
    "create_project",
    "get_project",
    "list_members",
    "list_projects",
    "remove_member",
]


def _check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > 200:
        raise InvalidInput("a project name must have 1 to 200 characters", field="name")
    return name


def _parse_role(role: str) -> Role:
    try:
        return Role.parse(role)
    except ValueError as exc:
        raise InvalidInput(str(exc), field="role") from None


async def create_project(platform: Platform, actor: Actor, name: str) -> Project:
    """Any user may create a project; the creator becomes its owner."""
    name = _check_name(name)
    try:
        async with platform.db.write() as session:
            project = Project(name=name, creator=actor.email)
            session.add(project)
            await session.flush()
            session.add(Member(project_id=project.id, user_id=actor.user_id, role=Role.owner.name))
    except IntegrityError:
        raise Conflict(f"a project named {name!r} already exists", field="name") from None
    return project


async def get_project(platform: Platform, actor: Actor, project_id: str) -> Project:
    async with platform.db.read() as session:
        await require_role(session, actor, project_id, Role.annotator)
        project = await session.get(Project, project_id)
    if project is None:
        raise NotFound("project", project_id)
    return project


def _visible(actor: Actor) -> list[Any]:
    """Projects the actor is a member of (all, for administrators)."""
    if actor.is_admin:
        return []
    return [Project.id.in_(select(Member.project_id).where(Member.user_id == actor.user_id))]


async def list_projects(
    platform: Platform,
    actor: Actor,
    *,
    dql: str | None = None,
    first: int | None = None,
    after: str | None = None,
) -> Page[Project]:
    """Projects the actor is a member of (all, for administrators) matching a DQL query, by its
    ``order by``, else by name."""
    compiled = queries.compile_text(dql, "projects", platform.db.dialect)
    statement, finish = queries.keyset_select(
        Project,
        _visible(actor),
        compiled,
        [Order(Project.name), Order(Project.id)],
        lambda p: (p.name, p.id),
        page_size(first, platform.settings.max_page_size),
        after,
    )
    async with platform.db.read() as session:
        return finish((await session.execute(statement, compiled.params)).all())


async def count_projects(platform: Platform, actor: Actor, *, dql: str | None = None) -> int:
    compiled = queries.compile_text(dql, "projects", platform.db.dialect)
    async with platform.db.read() as session:
        query = select(func.count()).select_from(Project).where(*_visible(actor), compiled.where)
        return int(await session.scalar(query, compiled.params) or 0)


async def add_member(
    platform: Platform, actor: Actor, project_id: str, email: str, role: str
) -> Member:
    """Add a user to a project, or change the role of a member. Owners only."""
    parsed = _parse_role(role)
    async with platform.db.write() as session:
        await require_role(session, actor, project_id, Role.owner)
        user = await session.scalar(select(User).where(User.email == email.strip().lower()))
        if user is None:
            raise NotFound("user", email)
        member = await session.get(Member, (project_id, user.id))
        if member is None:
            member = Member(project_id=project_id, user_id=user.id, role=parsed.name)
            session.add(member)
        else:
            member.role = parsed.name
    return member


async def remove_member(platform: Platform, actor: Actor, project_id: str, email: str) -> None:
    async with platform.db.write() as session:
        await require_role(session, actor, project_id, Role.owner)
        user = await session.scalar(select(User).where(User.email == email.strip().lower()))
        member = None if user is None else await session.get(Member, (project_id, user.id))
        if member is None:
            raise NotFound("member", email)
        owners = await session.scalars(
            select(Member.user_id).where(
                Member.project_id == project_id, Member.role == Role.owner.name
            )
        )
        if member.role == Role.owner.name and len(owners.all()) == 1:
            raise Conflict("a project must keep at least one owner")
        await session.delete(member)


def _members(project_id: str) -> list[Any]:
    return [Member.project_id == project_id, Member.user_id == User.id]


async def list_members(
    platform: Platform,
    actor: Actor,
    project_id: str,
    *,
    dql: str | None = None,
    first: int | None = None,
    after: str | None = None,
) -> Page[tuple[Member, User]]:
    """Members of a project (``email``, ``name``, ``role``, ...) matching a DQL query, by its
    ``order by``, else by email; three statements (the role check, the page, their roles)."""
    compiled = queries.compile_text(dql, "members", platform.db.dialect)
    statement, finish = queries.keyset_select(
        User,
        _members(project_id),
        compiled,
        [Order(User.email), Order(User.id)],
        lambda u: (u.email, u.id),
        page_size(first, platform.settings.max_page_size),
        after,
    )
    async with platform.db.read() as session:
        await require_role(session, actor, project_id, Role.annotator)
        page = finish((await session.execute(statement, compiled.params)).all())
        ids = [user.id for user in page.rows]
        roles = {
            m.user_id: m
            for m in await session.scalars(
                select(Member).where(Member.project_id == project_id, Member.user_id.in_(ids))
            )
        }
    return Page([(roles[u.id], u) for u in page.rows], page.has_next, page.cursors)


async def count_members(
    platform: Platform, actor: Actor, project_id: str, *, dql: str | None = None
) -> int:
    compiled = queries.compile_text(dql, "members", platform.db.dialect)
    async with platform.db.read() as session:
        await require_role(session, actor, project_id, Role.annotator)
        query = (
            select(func.count()).select_from(Member).where(*_members(project_id), compiled.where)
        )
        return int(await session.scalar(query, compiled.params) or 0)
