"""Live updates over Redis pub/sub: channel names, publishing, and the per-process hub.

Publishers (the API, workers, the dispatcher) publish small messages (ids, statuses, actions)
right after the commits that make the changes. Each API process holds one Redis pub/sub
connection, subscribed to a channel while at least one of its websocket subscribers needs it,
and hands each channel's messages to a shared feed that does the reading once for all of them.
Nothing here is a system of record: a message lost (Redis restarting) is a missed notification,
never a lost change.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections import Counter, OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Collection, Hashable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

__all__ = [
    "Feed",
    "Hub",
    "Mailbox",
    "assignments_channel",
    "execution_channel",
    "items_channel",
    "service_channel",
    "task_channel",
]

log = logging.getLogger(__name__)

T = TypeVar("T")
S = TypeVar("S")
S_contra = TypeVar("S_contra", contravariant=True)

_PREFIX = "loopline:live:"
# messages a channel keeps while its feed is busy; past it the oldest are dropped
_PENDING = 10_000
_CONFIRM_SECONDS = 10.0
# how long publish_soon gathers messages before sending them together
_GATHER_SECONDS = 0.005


def execution_channel(execution_id: str) -> str:
    return f"{_PREFIX}execution:{execution_id}"


def service_channel(service_id: str) -> str:
    """Every execution of a service."""
    return f"{_PREFIX}service:{service_id}"


def items_channel(dataset_id: str) -> str:
    return f"{_PREFIX}items:{dataset_id}"


def task_channel(task_id: str) -> str:
    """A task's progress: its items' statuses and assignments."""
    return f"{_PREFIX}task:{task_id}"


def assignments_channel(project_id: str) -> str:
    """The project's tasks whose work changed for their assignees (items given or taken,
    statuses, the tasks themselves)."""
    return f"{_PREFIX}assignments:{project_id}"


class Mailbox(Generic[T]):
    """One subscriber's queue, bounded: past ``limit`` waiting messages the oldest is dropped.

    With ``key``, a message replaces the waiting one with the same key (for an execution the
    latest state is what matters), so a slow reader gets fewer, newer messages.
    """

    def __init__(self, limit: int, key: Callable[[T], Hashable] | None = None) -> None:
        self._waiting: OrderedDict[Hashable, T] = OrderedDict()
        self._limit = limit
        self._key = key
        self._serial = itertools.count()
        self._ready = asyncio.Event()
        self.dropped = 0
        self.ended = False

    def __len__(self) -> int:
        return len(self._waiting)

    def put(self, message: T) -> None:
        if self.ended:
            return
        key = next(self._serial) if self._key is None else self._key(message)
        self._waiting.pop(key, None)
        self._waiting[key] = message
        if len(self._waiting) > self._limit:
            self._waiting.popitem(last=False)
            self.dropped += 1
        self._ready.set()

    def end(self) -> None:
        """No more messages: wake the reader, whose ``take`` now returns nothing."""
        self.ended = True
        self._waiting.clear()
        self._ready.set()

    async def take(self) -> list[T]:
        """Wait for messages, then take all those waiting, oldest first (none once ended)."""
        await self._ready.wait()
        self._ready.clear()
        taken = list(self._waiting.values())
        self._waiting.clear()
        return taken


class Feed(Protocol[S_contra]):
    """What a channel's messages become for its subscribers, computed once per process."""

    async def deliver(self, messages: list[Any], subscribers: Collection[S_contra]) -> None: ...


@dataclass(eq=False)
class _Channel(Generic[S]):
    feed: Feed[S]
    subscribers: set[S] = field(default_factory=set)
    pending: deque[Any] = field(default_factory=lambda: deque(maxlen=_PENDING))
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            messages = list(self.pending)
            self.pending.clear()
            try:
                await self.feed.deliver(messages, tuple(self.subscribers))
            except Exception:  # one bad batch must not end the channel for everyone
                log.exception("live updates: a feed failed on %d messages", len(messages))


class Hub:
    """Publishing, and this process's one Redis pub/sub connection fanned out to its
    subscribers. ``url`` ``None`` (no Redis configured): nothing is published, and subscribing
    fails with a clear error."""

    def __init__(self, url: str | None) -> None:
        self.url = url
        self._redis: Redis | None = None
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._channels: dict[str, _Channel[Any]] = {}
        # per channel, how many SUBSCRIBE replies are still to come: only the last one of a
        # subscribe after unsubscribe means the new subscription is in place
        self._acks: Counter[str] = Counter()
        self._lock: asyncio.Lock | None = None
        self._outbox: list[tuple[str, Any]] = []
        self._sending: asyncio.Task[None] | None = None

    def _client(self) -> Redis:
        if self.url is None:
            raise RuntimeError("live updates need Redis (LOOPLINE_REDIS_URL)")
        if self._redis is None:
            self._redis = Redis.from_url(self.url, socket_connect_timeout=2, socket_timeout=5)
        return self._redis

    async def publish(self, messages: Sequence[tuple[str, Any]]) -> None:
        """Publish ``(channel, JSON-able message)`` pairs in one round trip. Without Redis, or
        with Redis down, nothing is published (a warning is logged): the change is committed."""
        if self.url is None or not messages:
            return
        await self._publish_encoded(
            [(channel, json.dumps(message, separators=(",", ":"))) for channel, message in messages]
        )

    async def _publish_encoded(self, messages: Sequence[tuple[str, str]]) -> None:
        try:
            async with self._client().pipeline(transaction=False) as pipe:
                for channel, encoded in messages:
                    pipe.publish(channel, encoded)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("live updates: publishing %d messages failed (%s)", len(messages), exc)

    def publish_soon(self, messages: Sequence[tuple[str, Any]]) -> None:
        """Publish without waiting: the messages go out together with whatever else is
        published in the next 5 ms (a worker does not wait on Redis between executions).
        Messages name what changed; readers read the rows, so their order does not matter,
        and a message published twice in one round trip goes out once."""
        if self.url is None or not messages:
            return
        self._outbox.extend(messages)
        if self._sending is None or self._sending.done():
            self._sending = asyncio.ensure_future(self._send())

    async def _send(self) -> None:
        # gather what the next moments publish: a worker's claim and end of a short execution
        # go out in one round trip, its execution's message once
        await asyncio.sleep(_GATHER_SECONDS)
        while self._outbox:
            batch, self._outbox = self._outbox, []
            encoded = ((c, json.dumps(m, separators=(",", ":"))) for c, m in batch)
            await self._publish_encoded(list(dict.fromkeys(encoded)))

    @asynccontextmanager
    async def subscribe(
        self, channel: str, feed: Callable[[], Feed[S]], subscriber: S
    ) -> AsyncIterator[None]:
        """Give ``subscriber`` what ``channel``'s feed makes of its messages, while inside. The
        feed is made by the process's first subscriber of the channel and shared. Entered once
        Redis has confirmed the subscription: nothing published after that is missed."""
        lock = self._lock = self._lock or asyncio.Lock()
        entry: _Channel[S] | None = None
        try:
            async with lock:
                entry = self._channels.get(channel)
                if entry is None:
                    entry = self._channels[channel] = _Channel(feed())
                    entry.task = asyncio.create_task(entry.run())
                    entry.subscribers.add(subscriber)
                    if self._pubsub is None:
                        self._pubsub = self._client().pubsub()
                    self._acks[channel] += 1
                    await self._pubsub.subscribe(channel)
                    if self._reader is None or self._reader.done():
                        self._reader = asyncio.create_task(self._read(self._pubsub))
                else:
                    entry.subscribers.add(subscriber)
            await asyncio.wait_for(entry.ready.wait(), _CONFIRM_SECONDS)
            yield
        finally:
            if entry is not None:
                async with lock:
                    self._leave(channel, entry, subscriber)
                    if channel not in self._channels and self._pubsub is not None:
                        with suppress(RedisError, OSError):
                            await self._pubsub.unsubscribe(channel)

    def _leave(self, channel: str, entry: _Channel[S], subscriber: S) -> None:
        entry.subscribers.discard(subscriber)
        if not entry.subscribers and self._channels.get(channel) is entry:
            del self._channels[channel]
            if entry.task is not None:
                entry.task.cancel()

    def _confirmed(self, channel: str) -> None:
        if self._acks[channel] > 0:
            self._acks[channel] -= 1
        if self._acks[channel] <= 0:
            del self._acks[channel]
            entry = self._channels.get(channel)
            if entry is not None:
                entry.ready.set()

    async def _read(self, pubsub: PubSub) -> None:
        while True:
            try:
                message = await pubsub.get_message(timeout=None)
            except (RedisError, OSError) as exc:
                # redis-py reconnects and subscribes again on the next read
                log.warning("live updates: Redis pub/sub connection lost (%s)", exc)
                await asyncio.sleep(1.0)
                continue
            if message is None:
                continue
            channel = message["channel"].decode()
            if message["type"] == "subscribe":
                self._confirmed(channel)
            elif message["type"] == "message":
                entry = self._channels.get(channel)
                if entry is not None:
                    entry.pending.append(json.loads(message["data"]))
                    entry.wake.set()

    async def close(self) -> None:
        if self._sending is not None:
            with suppress(asyncio.CancelledError):
                await self._sending
            self._sending = None
        if self._reader is not None:
            self._reader.cancel()
            with suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        for entry in self._channels.values():
            if entry.task is not None:
                entry.task.cancel()
        self._channels.clear()
        if self._pubsub is not None:
            with suppress(RedisError, OSError):
                await self._pubsub.aclose()
            self._pubsub = None
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None
