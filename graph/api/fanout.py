"""Subscription events executed once and the result shared by every subscriber of the same
query (text and variables) that receives the same event object.

Hundreds of websockets watching one execution would otherwise each run the same selection over
the same row, and each encode the same JSON. graph/api/live.py makes one event object per row
and per subscriber role in the project, so subscribers share a result only when the domain would
show them the same thing; ``SharedFrames`` then encodes that result once for all of them.
"""

from __future__ import annotations

import asyncio
import json
import weakref
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, TypeVar

from graphql.pyutils import is_awaitable
from strawberry.extensions import SchemaExtension
from strawberry.extensions.context import StreamResultContextManager
from strawberry.extensions.runner import SchemaExtensionsRunner
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.types import ExecutionContext
from strawberry.utils.await_maybe import await_maybe

__all__ = ["PerResultHooks", "SharedEvents", "SharedFrames", "shared"]

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


class _Executed:
    """What a subscriber's per-event executor is once the event's result is known."""

    def __init__(self, result: Any) -> None:
        self.result = result

    def execute_operation(self, serially: bool | None = None) -> Any:
        result = self.result
        return _awaited(result) if isinstance(result, asyncio.Future) else result


class SharedEvents(StrawberryGraphQLCoreExecutionContext):
    def _shared_key(self) -> tuple[int, str]:
        # a subscription's operation and variables stay the same from event to event
        key: tuple[int, str] | None = self.__dict__.get("_key")
        if key is None:
            variables = json.dumps(self.variable_values.coerced, sort_keys=True, default=str)
            key = self.__dict__["_key"] = (id(self.operation), variables)
        return key

    def build_per_event_executor(self, payload: Any) -> Any:
        # a later subscriber of an event skips making an executor of its own
        results = _results.get(id(payload))
        if results is not None:
            found = results.get(self._shared_key())
            if found is not None and found[0] is self.operation:
                return _Executed(found[1])
        return super().build_per_event_executor(payload)

    def execute_operation(self, serially: bool | None = None) -> Any:
        results = _results.get(id(self.root_value))
        if results is None:  # any other operation, or a subscriber's own first state
            return super().execute_operation(serially)
        key = self._shared_key()
        found = results.get(key)
        if found is None or found[0] is not self.operation:
            result = super().execute_operation(serially)
            if is_awaitable(result):
                result = asyncio.ensure_future(result)
            found = results[key] = (self.operation, result)
        return _Executed(found[1]).execute_operation()


def _compact(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


class SharedFrames:
    """JSON for the GraphQL view (compact, as strawberry's own), with the payload of a shared
    subscription result encoded once: the subscribers of one event receive the same ``data``
    object (``SharedEvents``), and only the operation id differs from frame to frame."""

    def __init__(self, size: int = 16) -> None:
        self._size = size
        # by id of the data; the data is held, so its id is not reused while it is here
        self._encoded: OrderedDict[int, tuple[object, str]] = OrderedDict()

    def __call__(self, message: object) -> str:
        if not isinstance(message, Mapping) or message.get("type") != "next":
            return _compact(message)
        payload = message["payload"]
        if len(payload) != 1 or not isinstance(payload.get("data"), dict):
            return _compact(message)  # errors or extensions belong to one subscriber
        data = payload["data"]
        found = self._encoded.get(id(data))
        if found is None or found[0] is not data:
            found = (data, _compact(payload))
            self._encoded[id(data)] = found
            if len(self._encoded) > self._size:
                self._encoded.popitem(last=False)
        return f'{{"id":{json.dumps(message["id"])},"type":"next","payload":{found[1]}}}'


def _overrides(extension: SchemaExtension, hook: str) -> bool:
    return getattr(type(extension), hook) is not getattr(SchemaExtension, hook)


class PerResultHooks(SchemaExtensionsRunner):
    """strawberry's runner, asking for results and stream hooks only the extensions that
    have them: ours limit and cache parsing and validation, and a subscription would
    otherwise go through all of them again for every event of every subscriber."""

    def __init__(
        self, execution_context: ExecutionContext, extensions: list[SchemaExtension] | None = None
    ) -> None:
        super().__init__(execution_context, extensions)
        self._results = [e for e in self.extensions if _overrides(e, "get_results")]
        self._streamed = [e for e in self.extensions if _overrides(e, "on_stream_result")]

    async def get_extensions_results(self, ctx: ExecutionContext) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for extension in self._results:
            data.update(await await_maybe(extension.get_results()))
        data.update(ctx.extensions_results)
        return data

    def on_stream_result(self, result: Any) -> StreamResultContextManager:
        return StreamResultContextManager(self._streamed, result)
