"""Users and their API tokens (stored as hashes; a token is shown once, when it is made)."""

from __future__ import annotations

import hashlib
import os
import secrets

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from graph.db.tables import ApiToken, User
from graph.domain.access import Actor, require_admin
from graph.domain.errors import Conflict, InvalidInput, NotFound, Unauthenticated
from graph.domain.platform import Platform

__all__ = [
    "authenticate",
    "bootstrap_admin",
    "create_token",
    "create_user",
    "get_user",
    "revoke_token",
]

TOKEN_PREFIX = "ll_"


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _check_email(email: str) -> str:
    email = email.strip().lower()
    local, _, domain = email.partition("@")
    if not local or not domain or len(email) > 320:
        raise InvalidInput(f"{email!r} is not an email address", field="email")
    return email


async def authenticate(platform: Platform, token: str | None) -> Actor:
    """The user a bearer token belongs to; one SQL statement."""
    if not token:
        raise Unauthenticated("missing bearer token: send 'Authorization: Bearer <token>'")
    async with platform.db.read() as session:
        row = (
            await session.execute(
                select(User.id, User.email, User.is_admin)
                .join(ApiToken, ApiToken.user_id == User.id)
                .where(ApiToken.token_hash == _hash(token), ApiToken.revoked.is_(False))
            )
        ).first()
    if row is None:
        raise Unauthenticated("invalid or revoked token")
    return Actor(user_id=row.id, email=row.email, is_admin=row.is_admin)


async def create_user(
    platform: Platform, actor: Actor | None, email: str, name: str = "", is_admin: bool = False
) -> User:
    """Create a user. ``actor`` None means the operator at the machine (CLI), who may do anything."""
    if actor is not None:
        require_admin(actor)
    email = _check_email(email)
    try:
        async with platform.db.write() as session:
            user = User(email=email, name=name, is_admin=is_admin)
            session.add(user)
            await session.flush()
    except IntegrityError:
        raise Conflict(f"a user with email {email!r} already exists", field="email") from None
    return user


async def get_user(platform: Platform, email: str) -> User:
    async with platform.db.read() as session:
        user = await session.scalar(select(User).where(User.email == _check_email(email)))
    if user is None:
        raise NotFound("user", email)
    return user


async def create_token(
    platform: Platform, actor: Actor | None, user_id: str, name: str = ""
) -> str:
    """Issue a new token for ``user_id`` and return it; only its hash is kept."""
    if actor is not None and actor.user_id != user_id:
        require_admin(actor)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    async with platform.db.write() as session:
        if await session.get(User, user_id) is None:
            raise NotFound("user", user_id)
        session.add(ApiToken(user_id=user_id, name=name, token_hash=_hash(token)))
    return token


async def revoke_token(platform: Platform, actor: Actor, token: str) -> None:
    async with platform.db.write() as session:
        row = await session.scalar(select(ApiToken).where(ApiToken.token_hash == _hash(token)))
        if row is None or (row.user_id != actor.user_id and not actor.is_admin):
            raise NotFound("token", token[:8] + "...")
        row.revoked = True


async def bootstrap_admin(platform: Platform, email: str = "admin@localhost") -> str | None:
    """On the first start, create an administrator and return its token (else None).

    The token is also written, readable by the owner only, to ``LOOPLINE_HOME/admin-token``.
    """
    async with platform.db.read() as session:
        if await session.scalar(select(func.count()).select_from(User)):
            return None
    admin = await create_user(platform, None, email, name="Administrator", is_admin=True)
    token = await create_token(platform, None, admin.id, name="bootstrap")
    path = platform.settings.admin_token_file
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(token + "\n")
    os.chmod(path, 0o600)
    return token
