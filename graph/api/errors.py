"""Typed GraphQL errors: domain errors keep their code and details, anything else is masked."""

from __future__ import annotations

import logging

from graphql import GraphQLError
from strawberry.types import ExecutionResult

from graph.domain.errors import DomainError

__all__ = ["typed_errors"]

log = logging.getLogger(__name__)


def _typed(error: GraphQLError) -> GraphQLError:
    original = error.original_error
    if original is None:  # syntax, validation and limit errors from graphql-core or strawberry
        extensions = {"code": "GRAPHQL_VALIDATION", **(error.extensions or {})}
        message = error.message
    elif isinstance(original, DomainError):
        details = {k: v for k, v in original.details.items() if v is not None}
        extensions = {"code": original.code, **details}
        message = original.message
    elif isinstance(original, GraphQLError):  # e.g. a bad variable value, already user-facing
        extensions = {"code": "BAD_USER_INPUT", **(original.extensions or {})}
        message = original.message
    else:
        log.error("unexpected error in %s", error.path, exc_info=original)
        extensions = {"code": "INTERNAL"}
        message = "internal error; the server log has the details"
    return GraphQLError(
        message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        original_error=original if isinstance(original, DomainError) else None,
        extensions=extensions,
    )


def typed_errors(result: ExecutionResult) -> ExecutionResult:
    """The result with every error typed; used by the HTTP view for every response it sends."""
    if result.errors:
        result.errors = [_typed(error) for error in result.errors]
    return result
