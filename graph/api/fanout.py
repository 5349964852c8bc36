"""Subscription events executed once and the result shared by every subscriber of the same
query (text and variables) that receives the same event object.

Hundreds of websockets watching one execution would otherwise each run the same selection over
the same row. graph/api/live.py makes one event object per row and per subscriber role in the
project, so subscribers share a result only when the domain would show them the same thing.
"""

from __future__ import annotations

import asyncio
import json
import weakref
from typing import Any, TypeVar

from graphql.pyutils import is_awaitable
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

__all__ = ["SharedEvents", "shared"]

T = TypeVar("T")

# per shared event object (by id, dropped when it is collected): results by query
_results: dict[int, dict[tuple[int, str], tuple[Any, Any]]] = {}


def shared(event: T) -> T:
    """Let subscribers that receive ``event`` share the result of executing it."""
    if id(event) not in _results:
        _results[id(event)] = {}
        weakref.finalize(event, _results.pop, id(event), None)
    return event


async def _awaited(result: asyncio.Future[Any]) -> Any:
    # shielded: one subscriber leaving must not cancel the others' result
    return await asyncio.shield(result)


class SharedEvents(StrawberryGraphQLCoreExecutionContext):
    def execute_operation(self, serially: bool | None = None) -> Any:
        results = _results.get(id(self.root_value))
        if results is None:  # any other operation, or a subscriber's own first state
            return super().execute_operation(serially)
        variables = json.dumps(self.variable_values.coerced, sort_keys=True, default=str)
        key = (id(self.operation), variables)
        found = results.get(key)
        if found is None or found[0] is not self.operation:
            result = super().execute_operation(serially)
            if is_awaitable(result):
                result = asyncio.ensure_future(result)
            found = results[key] = (self.operation, result)
        result = found[1]
        return _awaited(result) if isinstance(result, asyncio.Future) else result
