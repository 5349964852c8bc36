"""Typed GraphQL errors: domain errors keep their code and details, anything else is masked."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from graph.domain.errors import DomainError

__all__ = ["TypedErrors"]

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


class TypedErrors(SchemaExtension):
    """Give every error an ``extensions.code``; never let an internal message reach a client."""

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if result is not None and result.errors:
            result.errors = [_typed(error) for error in result.errors]
        elif self.execution_context.pre_execution_errors:
            self.execution_context.pre_execution_errors = [
                _typed(e) for e in self.execution_context.pre_execution_errors
            ]
