"""Errors the domain raises for users' mistakes; the API turns them into typed GraphQL errors."""

from __future__ import annotations

from typing import Any

__all__ = [
    "Conflict",
    "DomainError",
    "Forbidden",
    "InvalidInput",
    "NotFound",
    "StorageUnavailable",
    "Unauthenticated",
]


class DomainError(Exception):
    """A request that cannot be carried out as asked. ``code`` is stable; ``message`` is for people."""

    code = "BAD_REQUEST"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class Unauthenticated(DomainError):
    code = "UNAUTHENTICATED"


class Forbidden(DomainError):
    code = "FORBIDDEN"


class NotFound(DomainError):
    code = "NOT_FOUND"

    def __init__(self, resource: str, id: str) -> None:
        super().__init__(f"{resource} {id!r} does not exist", resource=resource, id=id)


class InvalidInput(DomainError):
    code = "INVALID_INPUT"

    def __init__(self, message: str, field: str | None = None, **details: Any) -> None:
        super().__init__(message, field=field, **details)


class Conflict(DomainError):
    code = "CONFLICT"


class StorageUnavailable(DomainError):
    code = "STORAGE_UNAVAILABLE"
