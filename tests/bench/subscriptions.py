"""Live-update fan-out: many websocket subscribers on one execution, beside two anchors.

Run: ``python -m tests.bench.subscriptions [--subscribers 500] [--updates 60] [--interval 0.5]
[--postgres URL] [--redis URL]``.

One API process (``loopline serve --workers 0``, a real uvicorn) and a real Redis. A client
process opens ``--subscribers`` graphql-transport-ws connections, each subscribed to
``executionUpdated(id)`` of one claimed execution. This process then reports progress
``--updates`` times (``runs.report_progress``: the UPDATE, its commit, the publish), one every
``--interval`` seconds. Latency is from just before each report to its receipt by each
subscriber (CLOCK_MONOTONIC is shared by the processes), so it includes the commit, Redis, the
API process's read of the row, GraphQL and the websocket, and the client process's own
scheduling of 500 connections on the same cores. The anchors, measured in the same run: raw
Redis pub/sub to one subscriber, and the same client process fed by a plain relay (one Redis
subscription sent as is to every websocket: no GraphQL, no database).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from graph.config import Settings, normalise_database_url
from graph.db.migrate import upgrade
from graph.domain import executions, projects, runs, services, users
from graph.domain.access import Actor
from graph.domain.platform import Platform
from graph.processes import Supervisor, private_redis, python_module
from tests.servers import postgres_server_url

FUNCTIONS = "tests.workers.functions"
RELAY = "bench:relay"
SUBSCRIPTION = """
subscription ($id: ID!) { executionUpdated(id: $id) { id status progress message } }
"""


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# --- the client process -------------------------------------------------------------------


async def _subscriber(url: str, token: str, execution_id: str, ready: asyncio.Event) -> list:
    """One subscriber's ``(message, receipt time)`` of each in-progress update; ``token``
    ``-``: the plain relay (no GraphQL, no handshake)."""
    from websockets.asyncio.client import connect

    received: list[tuple[str, float]] = []
    async with connect(url, subprotocols=["graphql-transport-ws"], max_queue=None) as ws:  # type: ignore[list-item]
        if token != "-":
            await ws.send(json.dumps({"type": "connection_init", "payload": {"token": token}}))
            assert json.loads(await ws.recv())["type"] == "connection_ack"
            payload = {"query": SUBSCRIPTION, "variables": {"id": execution_id}}
            await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
        json.loads(await ws.recv())  # the current state (the relay's hello): subscribed
        ready.set()
        async for raw in ws:
            at = time.monotonic()
            data = json.loads(raw)["payload"]["data"]["executionUpdated"]
            if data["status"] != "in-progress":
                break
            received.append((data["message"], at))
    return received


async def _clients(url: str, token: str, execution_id: str, count: int) -> None:
    events = [asyncio.Event() for _ in range(count)]
    tasks = []
    for n in range(count):  # open gradually: each opening is a few queries on the server
        tasks.append(asyncio.create_task(_subscriber(url, token, execution_id, events[n])))
        if n % 50 == 49:
            await asyncio.gather(*(e.wait() for e in events[: n + 1]))
    await asyncio.gather(*(e.wait() for e in events))
    # the client process stands for 500 browsers: its own collector's pauses (a full
    # collection over 500 connections took ~100 ms) are not the server's fan-out
    gc.collect()
    gc.freeze()
    gc.disable()
    print("ready", flush=True)
    results = await asyncio.gather(*tasks)
    print(json.dumps(results), flush=True)


# --- the anchor relay process: the same fan-out without GraphQL ---------------------------


def _relay(port: int, redis_url: str) -> None:
    """Websockets that receive each message of a Redis channel as it is, sent one after the
    other from one subscription: the fan-out of the API process minus GraphQL and the row."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket

    sockets: set[WebSocket] = set()

    async def endpoint(ws: WebSocket) -> None:
        await ws.accept(subprotocol="graphql-transport-ws")
        await ws.send_text(json.dumps({"hello": True}))
        sockets.add(ws)
        try:
            while True:
                await ws.receive_text()
        except Exception:
            sockets.discard(ws)

    async def relay() -> None:
        pubsub = Redis.from_url(redis_url).pubsub()
        await pubsub.subscribe(RELAY)
        async for message in pubsub.listen():
            if message["type"] == "message":
                for ws in list(sockets):
                    await ws.send_text(message["data"].decode())

    async def lifespan(app: Starlette) -> Any:
        task = asyncio.create_task(relay())
        yield
        task.cancel()

    app = Starlette(routes=[WebSocketRoute("/", endpoint)], lifespan=lifespan)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", ws_per_message_deflate=False)


# --- this process ---------------------------------------------------------------------------


async def raw_redis(redis_url: str, count: int, interval: float) -> list[float]:
    """The anchor: publish -> receive on one subscriber of plain Redis pub/sub."""
    redis = Redis.from_url(redis_url)
    pubsub = redis.pubsub()
    await pubsub.subscribe("bench:anchor")
    await pubsub.get_message(timeout=5)  # the subscribe confirmation
    latencies = []
    for n in range(count):
        start = time.monotonic()
        await redis.publish("bench:anchor", str(n))
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5)
        assert message is not None
        latencies.append(time.monotonic() - start)
        await asyncio.sleep(interval / 10)
    await pubsub.aclose()
    await redis.aclose()
    return latencies


async def _setup(settings: Settings) -> tuple[str, runs.Claim]:
    platform = Platform.from_settings(settings)
    await upgrade(platform.db)
    user = await users.create_user(platform, None, "fanout@bench.test")
    actor = Actor(user.id, user.email)
    token = await users.create_token(platform, None, user.id)
    project = await projects.create_project(platform, actor, "fanout")
    service = await services.deploy_service(platform, actor, project.id, "s", "test-functions")
    execution = await executions.create_execution(platform, actor, service.id, "noop")
    claim = await runs.claim(platform, execution.id, "bench")
    assert claim is not None
    await platform.close()
    return token, claim


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _fan_out(
    server: list[str],
    env: dict[str, str],
    url: str,
    token: str,
    execution_id: str,
    subscribers: int,
    publish: Any,
) -> tuple[int, list[float]]:
    """Start ``server``, connect the client process, run ``publish`` (which returns the send
    time of each message); returns the (subscriber, message) pairs received and the latencies."""
    process = subprocess.Popen(
        server, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    clients = None
    try:
        port = url.split(":")[2].split("/")[0]
        for _ in range(300):
            try:
                with socket.create_connection(("127.0.0.1", int(port)), timeout=1):
                    break
            except OSError:
                time.sleep(0.1)
        time.sleep(0.5)
        clients = subprocess.Popen(
            [sys.executable, "-m", "tests.bench.subscriptions", "--client", url, token]
            + [execution_id, "--subscribers", str(subscribers)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert clients.stdout is not None
        assert clients.stdout.readline().strip() == "ready"
        sent = asyncio.run(publish())
        results = json.loads(clients.stdout.readline())
        clients.wait(30)
    finally:
        for child in (clients, process):
            if child is not None and child.poll() is None:
                child.terminate()
                child.wait(10)
    delivered = sum(len({seq for seq, _ in received if seq in sent}) for received in results)
    return delivered, [
        at - sent[seq] for received in results for seq, at in received if seq in sent
    ]


def fan_out(
    settings: Settings, subscribers: int, updates: int, interval: float
) -> tuple[int, list[float]]:
    token, claim = asyncio.run(_setup(settings))
    port = _free_port()
    env = {
        **os.environ,
        "LOOPLINE_HOME": str(settings.home),
        "LOOPLINE_DATABASE_URL": settings.database_url,
        "LOOPLINE_REDIS_URL": settings.redis_url or "",
        "LOOPLINE_PORT": str(port),
    }
    return _fan_out(
        python_module("graph", "serve", "--workers", "0", "--no-scheduler"),
        env,
        f"ws://127.0.0.1:{port}/graphql",
        token,
        claim.id,
        subscribers,
        lambda: _report(settings, claim, updates, interval),
    )


def relay_fan_out(
    redis_url: str, subscribers: int, updates: int, interval: float
) -> tuple[int, list[float]]:
    port = _free_port()

    async def publish() -> dict[str, float]:
        redis = Redis.from_url(redis_url)
        sent: dict[str, float] = {}
        for n in range(1, updates + 2):
            status = "in-progress" if n <= updates else "success"
            data = {"executionUpdated": {"status": status, "progress": 0, "message": str(n)}}
            sent[str(n)] = time.monotonic()
            await redis.publish(RELAY, json.dumps({"payload": {"data": data}}))
            await asyncio.sleep(interval)
        await redis.aclose()
        return {k: v for k, v in sent.items() if int(k) <= updates}

    server = [sys.executable, "-m", "tests.bench.subscriptions", "--relay", str(port), redis_url]
    return _fan_out(
        server, dict(os.environ), f"ws://127.0.0.1:{port}/", "-", "-", subscribers, publish
    )


async def _report(
    settings: Settings, claim: runs.Claim, updates: int, interval: float
) -> dict[str, float]:
    platform = Platform.from_settings(settings)
    sent: dict[str, float] = {}
    for n in range(1, updates + 1):
        sent[str(n)] = time.monotonic()
        await runs.report_progress(
            platform, claim.id, claim.attempt, progress=n * 100 // updates, message=str(n)
        )
        await asyncio.sleep(interval)
    await runs.finish(platform, claim, "success")
    await platform.close()
    return sent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subscribers", type=int, default=500)
    parser.add_argument("--updates", type=int, default=60)
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("--postgres", default=os.environ.get("LOOPLINE_TEST_DATABASE_URL"))
    parser.add_argument("--redis", default=None, help="Redis URL (default: a private server)")
    parser.add_argument("--client", nargs=3, metavar=("URL", "TOKEN", "EXECUTION"))
    parser.add_argument("--relay", nargs=2, metavar=("PORT", "REDIS"))
    args = parser.parse_args()
    if args.client:
        asyncio.run(_clients(*args.client, args.subscribers))
        return
    if args.relay:
        _relay(int(args.relay[0]), args.relay[1])
        return
    supervisor = Supervisor(grace=2)
    folder = Path(tempfile.mkdtemp(prefix="bench-fanout-"))
    redis_url = args.redis or private_redis(supervisor, folder / "redis")
    postgres = postgres_server_url() if args.postgres else None
    try:
        if postgres is not None:
            os.environ.setdefault("LOOPLINE_TEST_DATABASE_URL", args.postgres)
            database, url = "PostgreSQL", normalise_database_url(postgres.__enter__())
        else:
            database, url = "SQLite", f"sqlite+aiosqlite:///{folder / 'bench.db'}"
        settings = Settings(
            home=folder / "home",
            database_url=url,
            redis_url=redis_url,
            plugin_modules=(FUNCTIONS,),
            plugins_enabled=False,
        )
        settings.home.mkdir(parents=True, exist_ok=True)
        anchor = asyncio.run(raw_redis(redis_url, args.updates, args.interval))
        relayed = relay_fan_out(redis_url, args.subscribers, args.updates, args.interval)
        result = fan_out(settings, args.subscribers, args.updates, args.interval)
    finally:
        if postgres is not None:
            postgres.__exit__(None, None, None)
        supervisor.stop()
    expected = args.subscribers * args.updates
    print(
        f"\nFan-out: {args.subscribers} subscribers on one execution, {args.updates} progress "
        f"updates every {args.interval * 1000:.0f} ms, {database}, {os.cpu_count()} cores\n"
    )
    print("| path | delivered | p50 ms | p99 ms | max ms |\n|---|---|---|---|---|")
    rows = [
        ("raw Redis pub/sub, 1 subscriber (anchor)", f"{len(anchor)}/{args.updates}", anchor),
        (
            "Redis -> plain websocket relay, no GraphQL (anchor)",
            f"{relayed[0]}/{expected}",
            relayed[1],
        ),
        ("report_progress -> executionUpdated (GraphQL)", f"{result[0]}/{expected}", result[1]),
    ]
    for name, delivered, lat in rows:
        print(
            f"| {name} | {delivered} | {statistics.median(lat) * 1000:.1f} | "
            f"{_quantile(lat, 0.99) * 1000:.1f} | {max(lat) * 1000:.1f} |"
        )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
