"""Binary content beside GraphQL: upload, stream and thumbnail routes."""

from __future__ import annotations

from starlette.routing import BaseRoute

__all__ = ["binary_routes"]


def binary_routes() -> list[BaseRoute]:
    return []
