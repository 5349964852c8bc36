"""The per-request context: the platform, the caller's token, and this request's DataLoaders."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from strawberry.types import Info as _Info

from graph.api.loaders import Loaders
from graph.domain.access import Actor
from graph.domain.platform import Platform
from graph.domain.users import authenticate

__all__ = ["Context", "Info", "bearer_token"]


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


@dataclass
class Context:
    platform: Platform
    token: str | None
    request: Any = None
    response: Any = None
    # the graphql-transport-ws connection_init payload (strawberry sets it)
    connection_params: dict[str, Any] | None = None
    _actor: Actor | None = field(default=None, repr=False)

    async def actor(self) -> Actor:
        """The authenticated caller, looked up once per request (raises ``Unauthenticated``)."""
        if self._actor is None:
            self._actor = await authenticate(self.platform, self.token)
        return self._actor

    @cached_property
    def loaders(self) -> Loaders:
        return Loaders(self.platform, self.actor)

    def forget_loaders(self) -> None:
        """Start loading afresh (a websocket connection's context outlives many results)."""
        self.__dict__.pop("loaders", None)


Info = _Info[Context, None]
