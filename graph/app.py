"""The ASGI application: GraphQL at /graphql, binary routes beside it, /healthz."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLHTTPResponse, process_result
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types import ExecutionResult
from strawberry.types.unset import UNSET, UnsetType

from graph.api.context import Context, bearer_token
from graph.api.errors import typed_errors
from graph.api.fanout import SharedFrames
from graph.api.schema import schema
from graph.db.migrate import upgrade
from graph.domain.errors import Unauthenticated
from graph.domain.platform import Platform
from graph.domain.users import bootstrap_admin
from graph.routes import binary_routes

__all__ = ["create_app", "settle"]

log = logging.getLogger(__name__)


class _GraphQL(GraphQL[Context, None]):
    def __init__(self, platform: Platform) -> None:
        super().__init__(
            schema,
            multipart_uploads_enabled=True,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            connection_init_wait_timeout=timedelta(seconds=10),
            max_subscriptions_per_connection=100,
        )
        self.platform = platform
        self._frames = SharedFrames()

    def encode_json(self, data: object) -> str:
        return self._frames(data)

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        return process_result(typed_errors(result))

    async def get_context(self, request: Request | WebSocket, response: Any) -> Context:
        return Context(
            platform=self.platform,
            token=bearer_token(request.headers.get("authorization")),
            request=request,
            response=response,
        )

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        """Accept a websocket connection only with a valid token in its connection_init
        payload (``{"authorization": "Bearer <token>"}`` or ``{"token": "<token>"}``); strawberry
        closes a refused one with 4403."""
        params = context.connection_params or {}
        token = params.get("token") or bearer_token(_text(params.get("authorization")))
        context.token = token if isinstance(token, str) else context.token
        try:
            await context.actor()
        except Unauthenticated:
            raise ConnectionRejectionError from None
        return UNSET


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes with 413, whether or not they declare a length."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise _TooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse(
            {
                "errors": [
                    {
                        "message": f"request body is larger than {self.limit} bytes",
                        "extensions": {"code": "PAYLOAD_TOO_LARGE", "limit": self.limit},
                    }
                ]
            },
            status_code=413,
        )
        await response(scope, receive, send)


class _TooLarge(Exception):
    pass


def settle() -> None:
    """Once started, move every object made so far out of the garbage collector's reach.

    Full collections then skip the schema, plugins and modules: a page of 100 items with their
    annotations makes enough objects to trigger them, and the slowest requests got twice as fast.
    """
    gc.collect()
    gc.freeze()


async def _healthz(request: Request) -> Response:
    platform: Platform = request.app.state.platform
    async with platform.db.read() as session:
        await session.connection()
    return JSONResponse({"status": "ok"})


def create_app(platform: Platform, *, migrate: bool = True) -> Starlette:
    """The application over ``platform``; ``migrate`` applies migrations and makes the first admin."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if migrate:
            platform.settings.home.mkdir(parents=True, exist_ok=True)
            await upgrade(platform.db)
            token = await bootstrap_admin(platform)
            if token is not None:
                print(
                    f"Created the administrator admin@localhost. Its API token (shown once, also "
                    f"saved to {platform.settings.admin_token_file}):\n\n    {token}\n",
                    flush=True,
                )
        await platform.warm()
        drivers = platform.plugins.storage_drivers  # load plugins now, so failures show at start
        log.info("storage drivers: %s", ", ".join(sorted(drivers)))
        for failure in platform.plugins.failures:
            log.error("plugin %s was not loaded: %s", failure.plugin, failure.error)
        settle()
        yield
        await platform.close()

    graphql = BodyLimit(_GraphQL(platform), platform.settings.max_body_bytes)
    app = Starlette(
        routes=[
            Route("/healthz", _healthz),
            *binary_routes(),
            Route("/graphql", graphql, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql),
        ],
        lifespan=lifespan,
    )
    app.state.platform = platform
    return app
