"""Who may do what: the acting user and project roles, checked by every domain operation."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from graph.db.tables import Member
from graph.domain.errors import Forbidden, NotFound

__all__ = [
    "Actor",
    "Role",
    "check_role",
    "member_role",
    "project_role",
    "require_admin",
    "require_role",
]


class Role(IntEnum):
    """Project roles, ordered: each may do everything the ones below it may."""

    annotator = 1
    annotationManager = 2
    developer = 3
    owner = 4

    @classmethod
    def parse(cls, name: str) -> Role:
        try:
            return cls[name]
        except KeyError:
            raise ValueError(
                f"unknown role {name!r}; roles are {', '.join(cls.__members__)}"
            ) from None


@dataclass(frozen=True)
class Actor:
    """The authenticated user an operation runs for."""

    user_id: str
    email: str
    is_admin: bool = False


async def project_role(session: AsyncSession, actor: Actor, project_id: str) -> Role | None:
    if actor.is_admin:
        return Role.owner
    role = await session.scalar(
        select(Member.role).where(Member.project_id == project_id, Member.user_id == actor.user_id)
    )
    return None if role is None else Role[role]


def check_role(
    actor: Actor, role: Role | None, needed: Role, resource: str, resource_id: str
) -> None:
    """Raise unless ``role`` (the actor's role in the project) is at least ``needed``.

    A non-member is told the resource does not exist, so ids of other projects leak nothing.
    """
    if actor.is_admin:
        return
    if role is None:
        raise NotFound(resource, resource_id)
    if role < needed:
        raise Forbidden(
            f"this needs the {needed.name} role in the project; you are {role.name}",
            needed=needed.name,
        )


async def require_role(session: AsyncSession, actor: Actor, project_id: str, needed: Role) -> Role:
    role = await project_role(session, actor, project_id)
    check_role(actor, role, needed, "project", project_id)
    return role or Role.owner


def require_admin(actor: Actor) -> None:
    if not actor.is_admin:
        raise Forbidden("only a platform administrator may do this")


def member_role(actor: Actor, project_id_column: Any) -> Any:
    """A scalar subquery with the actor's role in the row's project, to fetch it in the same query."""
    return (
        select(Member.role)
        .where(Member.project_id == project_id_column, Member.user_id == actor.user_id)
        .scalar_subquery()
    )
