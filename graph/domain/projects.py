"""Projects and their members."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from graph.db.tables import Member, Project, User
from graph.domain.access import Actor, Role, require_role
from graph.domain.errors import Conflict, InvalidInput, NotFound
from graph.domain.platform import Platform

__all__ = [
    "add_member",
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


async def list_projects(platform: Platform, actor: Actor) -> list[Project]:
    query = select(Project).order_by(Project.name)
    if not actor.is_admin:
        query = query.join(Member, Member.project_id == Project.id).where(
            Member.user_id == actor.user_id
        )
    async with platform.db.read() as session:
        return list((await session.scalars(query)).all())


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


async def list_members(
    platform: Platform, actor: Actor, project_id: str
) -> list[tuple[Member, User]]:
    async with platform.db.read() as session:
        await require_role(session, actor, project_id, Role.annotator)
        rows = await session.execute(
            select(Member, User)
            .join(User, User.id == Member.user_id)
            .where(Member.project_id == project_id)
            .order_by(User.email)
        )
        return [(m, u) for m, u in rows.all()]
