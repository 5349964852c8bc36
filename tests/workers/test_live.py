"""Live updates: GraphQL subscriptions over graphql-transport-ws on a real uvicorn, fed through
a real Redis by a real worker and the dispatcher; auth, roles, and slow subscribers."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import pytest
import uvicorn
from sqlalchemy import select
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from graph.app import create_app
from graph.config import Settings
from graph.db.tables import Execution
from graph.domain import (
    assignments,
    datasets,
    executions,
    item_statuses,
    items,
    live,
    notify,
    projects,
    runs,
    services,
    tasks,
)
from graph.domain.dispatch import dispatch
from graph.domain.platform import Platform
from graph.domain.users import authenticate
from graph.pubsub import (
    Mailbox,
    assignments_channel,
    execution_channel,
    items_channel,
    service_channel,
    task_channel,
)
from plugins.manager import Plugins
from tests.conftest import make_user
from tests.workers.conftest import burst
from tests.workers.functions import PACKAGE

EXECUTION = """
subscription ($id: ID, $serviceId: ID) {
  executionUpdated(id: $id, serviceId: $serviceId) { id status progress message serviceId }
}
"""
ITEMS = """
subscription ($datasetId: ID!, $dql: String) {
  itemEvents(datasetId: $datasetId, dql: $dql) { action itemId item { id filename } }
}
"""


class Api:
    """The app on a real uvicorn in a thread with its own event loop and platform: to Redis,
    another API process."""

    def __init__(self, settings: Settings, plugins: Plugins) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"ws://127.0.0.1:{self.port}/graphql"
        self._settings, self._plugins = settings, plugins
        self._started = threading.Event()
        self._thread = threading.Thread(target=asyncio.run, args=(self._serve(),), daemon=True)

    async def _serve(self) -> None:
        self.platform = Platform.from_settings(self._settings, self._plugins)
        config = uvicorn.Config(
            create_app(self.platform, migrate=False),
            host="127.0.0.1",
            port=self.port,
            lifespan="off",
            log_level="warning",
        )
        self.server = uvicorn.Server(config)
        self.loop = asyncio.get_running_loop()
        serving = asyncio.create_task(self.server.serve())
        while not self.server.started and not serving.done():
            await asyncio.sleep(0.01)
        self._started.set()
        try:
            await serving
        finally:
            await self.platform.close()

    def start(self) -> Api:
        self._thread.start()
        assert self._started.wait(10) and self.server.started
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(10)

    def waiting(self, channel: str) -> list[tuple[int, int]]:
        """How many messages each of this process's subscribers of ``channel`` has waiting, and
        how many it dropped."""

        async def count() -> list[tuple[int, int]]:
            entry = self.platform.hub._channels.get(channel)
            boxes = [] if entry is None else [_mailbox(s) for s in entry.subscribers]
            return [(len(box), box.dropped) for box in boxes]

        return asyncio.run_coroutine_threadsafe(count(), self.loop).result(5)


def _mailbox(subscriber: Any) -> Any:
    return getattr(subscriber, "mailbox", subscriber)


@pytest.fixture
def api(platform: Platform, settings: Settings, plugins: Plugins) -> Iterator[Api]:
    server = Api(settings, plugins).start()
    yield server
    server.stop()


@asynccontextmanager
async def session(api: Api, payload: Any, slow: bool = False) -> AsyncIterator[ClientConnection]:
    """A graphql-transport-ws connection, initialised with ``payload``; ``slow``: with small
    buffers, so a reader that does not read soon holds the server up."""
    sock = None
    if slow:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", api.port))
        sock.setblocking(False)
    options: dict[str, Any] = {"sock": sock, "max_queue": 4, "close_timeout": 0.1} if slow else {}
    async with connect(api.url, subprotocols=["graphql-transport-ws"], **options) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
        yield ws


@asynccontextmanager
async def subscribed(
    api: Api, token: str, query: str, variables: dict[str, Any], slow: bool = False
) -> AsyncIterator[ClientConnection]:
    async with session(api, {"authorization": f"Bearer {token}"}, slow) as ws:
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        payload = {"query": query, "variables": variables}
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
        yield ws


async def receive(ws: ClientConnection, timeout: float = 10.0) -> dict[str, Any]:
    message = json.loads(await asyncio.wait_for(ws.recv(), timeout))
    assert message["type"] == "next", message
    assert "errors" not in message["payload"], message
    return message["payload"]["data"]


async def until_subscribed(api: Api, channel: str, count: int = 1) -> None:
    """The server confirmed ``count`` subscriptions to ``channel`` with Redis."""
    for _ in range(200):
        entry = api.platform.hub._channels.get(channel)
        if entry is not None and entry.ready.is_set() and len(entry.subscribers) >= count:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"no subscription to {channel}")


@pytest.fixture
async def service(platform, owner, project):
    return await services.deploy_service(
        platform, owner[0], project.id, "live", PACKAGE, max_attempts=1
    )


async def test_execution_updates_from_a_worker(platform, settings, owner, service, api) -> None:
    actor, token = owner
    execution = await executions.create_execution(
        platform, actor, service.id, "sleep", {"seconds": 0.3}
    )
    async with subscribed(api, token, EXECUTION, {"id": execution.id}) as ws:
        first = (await receive(ws))["executionUpdated"]
        assert first == {
            "id": execution.id,
            "status": "created",
            "progress": 0,
            "message": None,
            "serviceId": service.id,
        }
        # the worker blocks this loop; the API thread receives and sends meanwhile
        burst(settings)
        seen = [(await receive(ws))["executionUpdated"]]
        while seen[-1]["status"] != "success":
            seen.append((await receive(ws))["executionUpdated"])
        assert [s["status"] for s in seen] == ["in-progress", "success"]
        assert seen[-1]["progress"] == 100


async def test_every_execution_of_a_service(platform, settings, owner, service, api) -> None:
    actor, token = owner
    async with subscribed(api, token, EXECUTION, {"serviceId": service.id}) as ws:
        await until_subscribed(api, service_channel(service.id))
        one = await executions.create_execution(platform, actor, service.id, "noop")
        two = await executions.create_execution(platform, actor, service.id, "fail")
        other = await services.deploy_service(platform, actor, service.project_id, "x", PACKAGE)
        await executions.create_execution(platform, actor, other.id, "noop")  # not this service
        burst(settings)
        final: dict[str, str] = {}
        while final != {one.id: "success", two.id: "failed"}:
            update = (await receive(ws))["executionUpdated"]
            assert update["serviceId"] == service.id
            final[update["id"]] = update["status"]


async def test_subscribers_of_one_event_share_one_execution_each_query(
    platform, owner, service, api, monkeypatch
) -> None:
    """Hundreds of subscribers of one execution cost one execution of each distinct query, and
    each still receives its own frame (its own operation id), byte for byte what it would be."""
    actor, token = owner
    execution = await executions.create_execution(platform, actor, service.id, "noop")
    claim = await runs.claim(platform, execution.id, "test")
    assert claim is not None
    executed: list[Any] = []
    real = StrawberryGraphQLCoreExecutionContext.execute_operation

    def counted(self: Any, serially: bool | None = None) -> Any:
        executed.append(self.root_value)
        return real(self, serially)

    monkeypatch.setattr(StrawberryGraphQLCoreExecutionContext, "execute_operation", counted)
    narrow = "subscription ($id: ID) { executionUpdated(id: $id) { id progress } }"
    queries = [EXECUTION, EXECUTION, EXECUTION, narrow]
    async with AsyncExitStack() as stack:
        sockets = [
            await stack.enter_async_context(subscribed(api, token, q, {"id": execution.id}))
            for q in queries
        ]
        for ws in sockets:
            assert (await receive(ws))["executionUpdated"]["id"] == execution.id
        await until_subscribed(api, execution_channel(execution.id), len(sockets))
        executed.clear()
        await runs.report_progress(platform, claim.id, claim.attempt, progress=40, message="m")
        frames = [await asyncio.wait_for(ws.recv(), 10) for ws in sockets]
    assert len(executed) == 2  # the full query once for three subscribers, the narrow once
    for raw, query in zip(frames, queries, strict=True):
        frame = json.loads(raw)
        assert raw == json.dumps(frame, separators=(",", ":"))
        assert frame["id"] == "1" and frame["type"] == "next"
        update = frame["payload"]["data"]["executionUpdated"]
        assert update["progress"] == 40
        assert ("message" in update) == (query is EXECUTION)


async def add(platform: Platform, actor: Any, dataset: Any, paths: list[str]) -> list[str]:
    async with platform.db.write() as s:
        inserted, _ = await items.insert_items(
            s, actor, dataset, [items.ItemSpec(path=p) for p in paths]
        )
    return [i.item_id for i in inserted]


async def test_item_events_with_and_without_a_filter(platform, owner, project, api) -> None:
    actor, token = owner
    dataset = await datasets.create_dataset(platform, actor, project.id, "live")
    other = await datasets.create_dataset(platform, actor, project.id, "other")
    await dispatch(platform)  # what happened before the subscriptions
    everything = subscribed(api, token, ITEMS, {"datasetId": dataset.id})
    cats = subscribed(api, token, ITEMS, {"datasetId": dataset.id, "dql": 'name like "cat*"'})
    async with everything as all_ws, cats as cat_ws:
        await until_subscribed(api, items_channel(dataset.id), 2)
        cat, dog = await add(platform, actor, dataset, ["/cat.jpg", "/dog.jpg"])
        await add(platform, actor, other, ["/cat2.jpg"])
        await dispatch(platform)
        await items.delete_items(platform, actor, [cat])
        await dispatch(platform)
        got_all = [(await receive(all_ws))["itemEvents"] for _ in range(3)]
        assert got_all == [
            {"action": "created", "itemId": cat, "item": {"id": cat, "filename": "/cat.jpg"}},
            {"action": "created", "itemId": dog, "item": {"id": dog, "filename": "/dog.jpg"}},
            {"action": "deleted", "itemId": cat, "item": None},
        ]
        got_cats = [(await receive(cat_ws))["itemEvents"] for _ in range(2)]
        assert got_cats == [got_all[0], got_all[2]]
        with pytest.raises(TimeoutError):  # nothing more: the other dataset's item is not here
            await receive(all_ws, timeout=0.5)


async def test_bad_tokens_get_nothing(platform, owner, service, api) -> None:
    execution = await executions.create_execution(platform, owner[0], service.id, "noop")
    for payload in ({}, {"authorization": "Bearer nope"}, {"token": "nope"}, {"token": 3}):
        async with session(api, payload) as ws:
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403
    # subscribing without connection_init: the connection is closed before anything runs
    async with connect(api.url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        payload = {"query": EXECUTION, "variables": {"id": execution.id}}
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
    # the other protocol (graphql-ws) is not spoken
    async with connect(api.url, subprotocols=["graphql-ws"]) as ws:  # type: ignore[list-item]
        with pytest.raises(ConnectionClosed):
            await ws.recv()
    # the token form of the payload works
    async with session(api, {"token": owner[1]}) as ws:
        assert json.loads(await ws.recv())["type"] == "connection_ack"


async def test_non_members_and_bad_arguments_get_typed_errors(
    platform, owner, project, service, api
) -> None:
    execution = await executions.create_execution(platform, owner[0], service.id, "noop")
    dataset = await datasets.create_dataset(platform, owner[0], project.id, "mine")
    _, stranger = await make_user(platform, "stranger@example.com")
    cases = [
        (stranger, EXECUTION, {"id": execution.id}, "NOT_FOUND"),
        (stranger, EXECUTION, {"serviceId": service.id}, "NOT_FOUND"),
        (stranger, ITEMS, {"datasetId": dataset.id}, "NOT_FOUND"),
        (owner[1], EXECUTION, {}, "INVALID_INPUT"),
        (owner[1], EXECUTION, {"id": execution.id, "serviceId": service.id}, "INVALID_INPUT"),
        (owner[1], ITEMS, {"datasetId": dataset.id, "dql": "filename ~~ ("}, "INVALID_INPUT"),
    ]
    for token, query, variables, code in cases:
        async with subscribed(api, token, query, variables) as ws:
            message = json.loads(await asyncio.wait_for(ws.recv(), 10))
            errors = message["payload"].get("errors", message["payload"])
            assert errors[0]["extensions"]["code"] == code, message
            assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "complete"
    # and the stranger's own project's events do not include ours
    them = await authenticate(platform, stranger)
    theirs = await datasets.create_dataset(
        platform, them, (await projects.create_project(platform, them, "theirs")).id, "t"
    )
    await dispatch(platform)
    async with subscribed(api, stranger, ITEMS, {"datasetId": theirs.id}) as ws:
        await until_subscribed(api, items_channel(theirs.id))
        await add(platform, owner[0], dataset, ["/a.jpg"])
        await dispatch(platform)
        with pytest.raises(TimeoutError):
            await receive(ws, timeout=0.5)


async def test_a_slow_subscriber_keeps_a_bounded_queue(
    platform, owner, project, service, api
) -> None:
    """Subscribers that do not read while 10,000 messages are published to each: each keeps at
    most ``live.LIMIT`` waiting (for executions, one per execution: its latest state); the
    execution's reader then soon has its latest state."""
    actor, token = owner
    dataset = await datasets.create_dataset(platform, actor, project.id, "slow")
    made = await add(platform, actor, dataset, [f"/{n}.jpg" for n in range(1200)])
    assert await executions.create_executions_by_query(
        platform, actor, service.id, "label", dataset.id
    ) == len(made)
    async with platform.db.read() as s:
        ids = list(await s.scalars(select(Execution.id)))
    one = await executions.create_execution(platform, actor, service.id, "noop")
    claim = await runs.claim(platform, one.id, "test-worker")
    assert claim is not None
    by_id = subscribed(api, token, EXECUTION, {"id": one.id}, slow=True)
    by_service = subscribed(api, token, EXECUTION, {"serviceId": service.id}, slow=True)
    by_items = subscribed(api, token, ITEMS, {"datasetId": dataset.id}, slow=True)
    async with by_id as ws, by_service, by_items:
        assert (await receive(ws))["executionUpdated"]["status"] == "in-progress"
        await until_subscribed(api, service_channel(service.id))
        await until_subscribed(api, items_channel(dataset.id))
        for start in range(0, 10_000, 100):  # what workers and the dispatcher would publish
            if start == 9_000:
                await runs.report_progress(platform, one.id, claim.attempt, progress=90)
            await platform.hub.publish(
                [
                    message
                    for n in range(start, start + 100)
                    for message in (
                        (execution_channel(one.id), {"ids": [one.id]}),
                        (service_channel(service.id), {"ids": [ids[n % len(ids)]]}),
                        (items_channel(dataset.id), {"events": [["updated", made[n % 1200]]]}),
                    )
                ]
            )
            for channel, bound in (
                (execution_channel(one.id), 1),
                (service_channel(service.id), live.LIMIT),
                (items_channel(dataset.id), live.LIMIT),
            ):
                (waiting, _) = api.waiting(channel)[0]
                assert waiting <= bound
        # reading now, the execution's subscriber soon has its latest state
        progress = 0
        while progress != 90:
            progress = (await receive(ws))["executionUpdated"]["progress"]


async def test_publishing_without_redis_changes_nothing(tmp_path, database_url, plugins) -> None:
    """Without Redis nothing is published, and the change itself is unaffected."""
    platform = Platform.from_settings(Settings(home=tmp_path, database_url=database_url), plugins)
    await notify.executions_changed(platform, [("x", "y")])
    with pytest.raises(RuntimeError, match="need Redis"):
        async with platform.hub.subscribe("c", lambda: None, object()):  # type: ignore[arg-type, return-value]
            pass
    await platform.close()


async def test_messages_published_soon_go_out_together_each_once(platform, settings) -> None:
    """What a worker publishes in quick succession (an execution's claim, then its end) reaches
    Redis once per distinct message; a message published after the first went out is sent
    again."""
    from redis.asyncio import Redis

    redis = Redis.from_url(settings.redis_url)
    listener = redis.pubsub()
    await listener.subscribe(execution_channel("e1"), service_channel("s1"))
    for _ in range(2):
        await listener.get_message(timeout=1)  # the two subscribe confirmations

    def changed(execution_id: str) -> None:
        platform.hub.publish_soon(
            [
                (execution_channel(execution_id), {"ids": [execution_id]}),
                (service_channel("s1"), {"ids": [execution_id]}),
            ]
        )

    async def heard() -> list[tuple[str, dict[str, Any]]]:
        got = []
        while (message := await listener.get_message(timeout=0.3)) is not None:
            got.append((message["channel"].decode(), json.loads(message["data"])))
        return got

    changed("e1")
    changed("e1")  # its end, before the claim went out
    changed("e2")
    assert await heard() == [
        (execution_channel("e1"), {"ids": ["e1"]}),
        (service_channel("s1"), {"ids": ["e1"]}),
        (service_channel("s1"), {"ids": ["e2"]}),
    ]
    changed("e1")
    assert await heard() == [
        (execution_channel("e1"), {"ids": ["e1"]}),
        (service_channel("s1"), {"ids": ["e1"]}),
    ]
    await listener.aclose()
    await redis.aclose()


def test_mailbox_drops_the_oldest_and_keeps_the_latest_state() -> None:
    events: Mailbox[int] = Mailbox(100)
    states: Mailbox[tuple[str, int]] = Mailbox(100, key=lambda state: state[0])
    for n in range(10_000):
        events.put(n)
        states.put((f"execution-{n % 150}", n))
        states.put(("watched", n))
        assert len(events) <= 100 and len(states) <= 100
    assert events.dropped == 9_900
    assert asyncio.run(events.take()) == list(range(9_900, 10_000))
    latest = dict(asyncio.run(states.take()))
    assert latest["watched"] == 9_999 and len(latest) == 100
    assert all(n >= 10_000 - 150 for n in latest.values())  # each one's latest, none older


async def test_a_removed_member_stops_receiving(platform, owner, project, api, monkeypatch) -> None:
    """Access is checked again while a subscription lasts (here before each delivery)."""
    monkeypatch.setattr(live, "_RECHECK_SECONDS", 0.0)
    dataset = await datasets.create_dataset(platform, owner[0], project.id, "shared")
    member, token = await make_user(platform, "member@example.com")
    await projects.add_member(platform, owner[0], project.id, member.email, "developer")
    await dispatch(platform)
    async with subscribed(api, token, ITEMS, {"datasetId": dataset.id}) as ws:
        await until_subscribed(api, items_channel(dataset.id))
        (first,) = await add(platform, owner[0], dataset, ["/1.jpg"])
        await dispatch(platform)
        assert (await receive(ws))["itemEvents"]["itemId"] == first
        await projects.remove_member(platform, owner[0], project.id, member.email)
        await add(platform, owner[0], dataset, ["/2.jpg"])
        await dispatch(platform)
        message = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert message["payload"]["errors"][0]["extensions"]["code"] == "NOT_FOUND", message
        assert message["payload"].get("data") is None


PROGRESS = """
subscription ($taskId: ID!) {
  taskProgress(taskId: $taskId) { taskId total done byStatus { status count } }
}
"""


async def test_task_progress_as_annotators_work(platform, owner, project, api) -> None:
    actor, token = owner
    annotator, annotator_token = await make_user(platform, "ann@example.com")
    await projects.add_member(platform, actor, project.id, annotator.email, "annotator")
    outsider, outsider_token = await make_user(platform, "out@example.com")
    await projects.add_member(platform, actor, project.id, outsider.email, "annotator")
    dataset = await datasets.create_dataset(platform, actor, project.id, "work")
    ids = await add(platform, actor, dataset, ["/a.jpg", "/b.jpg", "/c.jpg"])
    task = await tasks.create_task(
        platform, actor, dataset.id, "t", dql="", workload=[(annotator.email, 100)]
    )
    async with subscribed(api, token, PROGRESS, {"taskId": task.id}) as ws:
        first = (await receive(ws))["taskProgress"]
        assert first == {
            "taskId": task.id,
            "total": 3,
            "done": 0,
            "byStatus": [{"status": None, "count": 3}],
        }
        await until_subscribed(api, task_channel(task.id))
        await item_statuses.set_status(platform, annotator, task.id, ids[:2], "completed")
        update = (await receive(ws))["taskProgress"]
        assert update["done"] == 2
        assert update["byStatus"] == [
            {"status": None, "count": 1},
            {"status": "completed", "count": 2},
        ]
    # an annotator not assigned to the task is told it does not exist
    async with subscribed(api, outsider_token, PROGRESS, {"taskId": task.id}) as ws:
        message = json.loads(await asyncio.wait_for(ws.recv(), 10))
        errors = message["payload"].get("errors", message["payload"])
        assert errors[0]["extensions"]["code"] == "NOT_FOUND", message
    async with subscribed(api, annotator_token, PROGRESS, {"taskId": task.id}) as ws:
        assert (await receive(ws))["taskProgress"]["done"] == 2


async def test_an_annotator_hears_only_of_the_items_given_to_it(
    platform, owner, project, api
) -> None:
    actor, _ = owner
    annotator, token = await make_user(platform, "given@example.com")
    await projects.add_member(platform, actor, project.id, annotator.email, "annotator")
    dataset = await datasets.create_dataset(platform, actor, project.id, "scoped")
    mine, other = await add(platform, actor, dataset, ["/mine.jpg", "/other.jpg"])
    await tasks.create_task(
        platform, actor, dataset.id, "t", dql=f'id = "{mine}"', workload=[(annotator.email, 100)]
    )
    await dispatch(platform)
    async with subscribed(api, token, ITEMS, {"datasetId": dataset.id}) as ws:
        await until_subscribed(api, items_channel(dataset.id))
        await items.update_item(platform, actor, other, description="not yours")
        await items.update_item(platform, actor, mine, description="yours")
        await dispatch(platform)
        event = (await receive(ws))["itemEvents"]
        assert (event["action"], event["itemId"]) == ("updated", mine)
        with pytest.raises(TimeoutError):
            await receive(ws, timeout=0.5)


MY_WORK = """
subscription ($projectId: ID!) {
  myAssignmentsUpdated(projectId: $projectId) {
    assignmentId held done task { id name status progress { done } }
  }
}
"""


async def _until(ws: ClientConnection, wanted: Any) -> list[dict[str, Any]]:
    """The caller's work as next received in the state ``wanted`` (a function of the list)
    accepts; a state in between (a change not yet read when the next came) may be passed."""
    while True:
        work = (await receive(ws))["myAssignmentsUpdated"]
        if wanted(work):
            return work


def _held(work: list[dict[str, Any]]) -> dict[str, tuple[int, int, str]]:
    return {w["task"]["name"]: (w["held"], w["done"], w["task"]["status"]) for w in work}


async def test_my_assignments_as_work_is_given_done_and_taken(
    platform, owner, project, api
) -> None:
    actor, _ = owner
    ann, token = await make_user(platform, "mine@example.com")
    other, other_token = await make_user(platform, "other@example.com")
    for person in (ann, other):
        await projects.add_member(platform, actor, project.id, person.email, "annotator")
    dataset = await datasets.create_dataset(platform, actor, project.id, "work")
    ids = await add(platform, actor, dataset, [f"/{n}.jpg" for n in range(4)])
    async with (
        subscribed(api, token, MY_WORK, {"projectId": project.id}) as ws,
        subscribed(api, other_token, MY_WORK, {"projectId": project.id}) as other_ws,
    ):
        assert (await receive(ws))["myAssignmentsUpdated"] == []
        assert (await receive(other_ws))["myAssignmentsUpdated"] == []
        await until_subscribed(api, assignments_channel(project.id), 2)
        # given: a workload task
        labelling = await tasks.create_task(
            platform, actor, dataset.id, "label", dql="", workload=[(ann.email, 100)]
        )
        (work,) = (await receive(ws))["myAssignmentsUpdated"]
        assert work["held"] == 4 and work["done"] == 0
        assert work["task"] == {
            "id": labelling.id,
            "name": "label",
            "status": "active",
            "progress": {"done": 0},
        }
        # statuses set and cleared
        await item_statuses.set_status(platform, ann, labelling.id, ids[:3], "completed")
        work = await _until(ws, lambda w: _held(w) == {"label": (4, 3, "active")})
        assert work[0]["task"]["progress"] == {"done": 3}  # read anew, not from a stale loader
        await item_statuses.clear_status(platform, ann, labelling.id, ids[2:3])
        await _until(ws, lambda w: _held(w) == {"label": (4, 2, "active")})
        # pulled: a pulling task for both
        pulling = await tasks.create_task(
            platform,
            actor,
            dataset.id,
            "pull",
            dql="",
            pulling=assignments.Pulling([ann.email, other.email], 2, 2),
        )
        await _until(ws, lambda w: _held(w).get("pull") == (0, 0, "active"))
        await _until(other_ws, lambda w: _held(w) == {"pull": (0, 0, "active")})
        assert len(await assignments.pull(platform, ann, pulling.id)) == 2
        await _until(ws, lambda w: _held(w).get("pull") == (2, 0, "active"))
        # the other's work moves on without a word to this one
        assert len(await assignments.pull(platform, other, pulling.id)) == 2
        await _until(other_ws, lambda w: _held(w) == {"pull": (2, 0, "active")})
        with pytest.raises(TimeoutError):
            await receive(ws, timeout=0.5)
        # reassigned and redistributed: the items not done move, the done ones stay
        assert await assignments.reassign(platform, actor, labelling.id, ann.email, other.email)
        await _until(ws, lambda w: _held(w)["label"] == (2, 2, "active"))
        await _until(other_ws, lambda w: _held(w).get("label") == (2, 0, "active"))
        await assignments.redistribute(platform, actor, labelling.id, [(ann.email, 100)])
        await _until(ws, lambda w: _held(w)["label"] == (4, 2, "active"))
        await _until(other_ws, lambda w: _held(w).get("label") == (0, 0, "active"))
        # paused, completed (out of the list), deleted
        await tasks.update_task(platform, actor, labelling.id, {"status": "paused"})
        await _until(ws, lambda w: _held(w)["label"] == (4, 2, "paused"))
        await tasks.update_task(platform, actor, labelling.id, {"status": "completed"})
        await _until(ws, lambda w: set(_held(w)) == {"pull"})
        await _until(other_ws, lambda w: set(_held(w)) == {"pull"})
        await tasks.delete_task(platform, actor, pulling.id, force=True)
        assert await _until(ws, lambda w: w == []) == []
        assert await _until(other_ws, lambda w: w == []) == []
    # the query agrees with what was last sent
    assert await assignments.my_assignments(platform, ann, project.id) == []
    # a stranger is told the project does not exist
    _, stranger = await make_user(platform, "nobody@example.com")
    async with subscribed(api, stranger, MY_WORK, {"projectId": project.id}) as ws:
        message = json.loads(await asyncio.wait_for(ws.recv(), 10))
        errors = message["payload"].get("errors", message["payload"])
        assert errors[0]["extensions"]["code"] == "NOT_FOUND", message


async def test_an_annotators_filter_sees_only_its_own_work_on_a_consensus_copy(
    platform, owner, project, api
) -> None:
    from graph.domain import annotations
    from graph.domain.annotations import AnnotationSpec

    actor, _ = owner
    people = []
    for email in ("one@example.com", "two@example.com"):
        person, token = await make_user(platform, email)
        await projects.add_member(platform, actor, project.id, email, "annotator")
        people.append((person, token))
    (one, _), (two, two_token) = people
    dataset = await datasets.create_dataset(platform, actor, project.id, "copies")
    (shared,) = await add(platform, actor, dataset, ["/shared.jpg"])
    await tasks.create_task(
        platform,
        actor,
        dataset.id,
        "agree",
        dql="",
        workload=[(one.email, 50), (two.email, 50)],
        consensus=assignments.Consensus(percentage=100, copies=2),
    )
    corners = [{"x": 1, "y": 1}, {"x": 5, "y": 5}]
    for person, label in ((one, "dog"), (two, "cat")):
        spec = AnnotationSpec(type="box", label=label, coordinates=corners)
        await annotations.create_annotations(platform, person, shared, [spec])
    await dispatch(platform)
    dogs = subscribed(
        api, two_token, ITEMS, {"datasetId": dataset.id, "dql": 'annotations.any(label = "dog")'}
    )
    cats = subscribed(
        api, two_token, ITEMS, {"datasetId": dataset.id, "dql": 'annotations.any(label = "cat")'}
    )
    async with dogs as dog_ws, cats as cat_ws:
        await until_subscribed(api, items_channel(dataset.id), 2)
        await items.update_item(platform, actor, shared, description="changed")
        await dispatch(platform)
        event = (await receive(cat_ws))["itemEvents"]
        assert (event["action"], event["itemId"]) == ("updated", shared)
        with pytest.raises(TimeoutError):  # the other copy's dog is none of its business
            await receive(dog_ws, timeout=0.5)


async def test_deleted_items_leave_their_tasks_live(platform, owner, project, api) -> None:
    """Deleting items (by id, by query, a folder) updates the progress of the tasks that held
    them and their assignees' lists of work, in step with the counts."""
    from graph.domain import bulk

    actor, token = owner
    ann, ann_token = await make_user(platform, "gone@example.com")
    await projects.add_member(platform, actor, project.id, ann.email, "annotator")
    dataset = await datasets.create_dataset(platform, actor, project.id, "work")
    ids = await add(platform, actor, dataset, [f"/dir/{n}.jpg" for n in range(4)] + ["/x.jpg"])
    task = await tasks.create_task(
        platform, actor, dataset.id, "label", dql="", workload=[(ann.email, 100)]
    )
    await item_statuses.set_status(platform, ann, task.id, ids[:1], "completed")
    async with (
        subscribed(api, token, PROGRESS, {"taskId": task.id}) as progress_ws,
        subscribed(api, ann_token, MY_WORK, {"projectId": project.id}) as work_ws,
    ):
        first = (await receive(progress_ws))["taskProgress"]
        assert (first["total"], first["done"]) == (5, 1)
        assert _held((await receive(work_ws))["myAssignmentsUpdated"]) == {
            "label": (5, 1, "active")
        }
        await until_subscribed(api, task_channel(task.id))
        await until_subscribed(api, assignments_channel(project.id))

        async def heard(total: int, done: int) -> None:
            while True:
                update = (await receive(progress_ws))["taskProgress"]
                if (update["total"], update["done"]) == (total, done):
                    break
            await _until(work_ws, lambda w: _held(w) == {"label": (total, done, "active")})
            got = await tasks.get_task(platform, actor, task.id)
            assert got.items_count == total

        await items.delete_items(platform, actor, [ids[0]])
        await heard(4, 0)
        await bulk.delete_items_by_query(platform, actor, dataset.id, dql='name = "1.jpg"')
        await heard(3, 0)
        folder = (await items.list_items(platform, actor, dataset.id, dql='type = "dir"')).rows
        await items.delete_items(platform, actor, [f.id for f in folder])
        await heard(1, 0)
        # the dataset, and its tasks with it
        await datasets.delete_dataset(platform, actor, dataset.id)
        assert await _until(work_ws, lambda w: w == []) == []


COUNTED = """
subscription ($datasetId: ID!) {
  itemEvents(datasetId: $datasetId) { itemId item { annotated annotationsCount } }
}
"""


async def test_annotators_hear_their_own_counts_of_a_consensus_copy(
    platform, owner, project, api
) -> None:
    """Two annotators sending the same subscription get each its own view of a copy (the
    result is not shared between them as it is between subscribers who see the same)."""
    from graph.domain import annotations
    from graph.domain.annotations import AnnotationSpec

    actor, token = owner
    people = []
    for email in ("one@example.com", "two@example.com"):
        person, person_token = await make_user(platform, email)
        await projects.add_member(platform, actor, project.id, email, "annotator")
        people.append((person, person_token))
    (one, one_token), (two, two_token) = people
    dataset = await datasets.create_dataset(platform, actor, project.id, "copies")
    (shared,) = await add(platform, actor, dataset, ["/shared.jpg"])
    await tasks.create_task(
        platform,
        actor,
        dataset.id,
        "agree",
        dql="",
        workload=[(one.email, 50), (two.email, 50)],
        consensus=assignments.Consensus(percentage=100, copies=2),
    )
    box = AnnotationSpec(type="box", label="cat", coordinates=[{"x": 1, "y": 1}, {"x": 5, "y": 5}])
    await annotations.create_annotations(platform, one, shared, [box, box])
    await dispatch(platform)
    variables = {"datasetId": dataset.id}
    async with (
        subscribed(api, token, COUNTED, variables) as owner_ws,
        subscribed(api, one_token, COUNTED, variables) as one_ws,
        subscribed(api, two_token, COUNTED, variables) as two_ws,
    ):
        await until_subscribed(api, items_channel(dataset.id), 3)
        await items.update_item(platform, actor, shared, description="changed")
        await dispatch(platform)
        seen = [(await receive(ws))["itemEvents"]["item"] for ws in (owner_ws, one_ws, two_ws)]
        assert seen == [
            {"annotated": True, "annotationsCount": 2},
            {"annotated": True, "annotationsCount": 2},
            {"annotated": False, "annotationsCount": 0},
        ]
