"""Loopline: the platform core (database, domain layer, GraphQL API, ASGI app, CLI)."""

__version__ = "0.1.0"
