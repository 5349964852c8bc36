"""The HTTP surface: health, GraphiQL, request limits, typed errors, and `loopline serve`."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from strawberry.extensions import ParserCache, SchemaExtension

from graph.api.schema import LIMITS, schema
from graph.config import Settings
from tests.graphql import gql_errors


async def test_healthz_and_graphiql(client) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    page = await client.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200 and "graphiql" in page.text.lower()


async def test_depth_limit(client) -> None:
    nested = "srcDataset { " * (LIMITS["depth"] + 1) + "id" + " }" * (LIMITS["depth"] + 1)
    errors = await gql_errors(client, f'query {{ dataset(id: "x") {{ {nested} }} }}')
    assert "exceeds maximum operation depth" in errors[0]["message"]
    assert errors[0]["extensions"]["code"] == "GRAPHQL_VALIDATION"


async def test_alias_limit_counts_fragments_too(client) -> None:
    aliases = " ".join(f"a{i}: id" for i in range(LIMITS["aliases"] + 1))
    errors = await gql_errors(
        client, f"query {{ ...F }} fragment F on Query {{ me {{ {aliases} }} }}"
    )
    assert "aliases" in errors[0]["message"].lower()


async def test_token_limit(client) -> None:
    fields = " ".join(["id"] * LIMITS["tokens"])
    errors = await gql_errors(client, f"query {{ me {{ {fields} }} }}")
    assert "token" in errors[0]["message"].lower()


async def test_extensions_that_report_per_result_are_still_asked() -> None:
    """Per-result hooks skip the extensions without them (graph/api/fanout.py), not the others."""
    seen: list[object] = []

    class Reporting(SchemaExtension):
        def get_results(self) -> dict[str, object]:
            return {"reported": True}

        def on_stream_result(self, result: object) -> None:
            seen.append(result)

    runner = schema.create_extensions_runner(None, [ParserCache(), Reporting()])  # type: ignore[arg-type]
    assert await runner.get_extensions_results(SimpleNamespace(extensions_results={"own": 1})) == {
        "reported": True,
        "own": 1,
    }
    async with runner.on_stream_result("a result"):  # type: ignore[arg-type]
        pass
    assert seen == ["a result"]


async def test_oversized_body_is_refused_with_413(client, platform) -> None:
    big = "x" * (platform.settings.max_body_bytes + 1)
    response = await client.post(
        "/graphql", json={"query": "{ me { id } }", "variables": {"x": big}}
    )
    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"


async def test_syntax_error_is_typed_and_located(client) -> None:
    errors = await gql_errors(client, "query { me { id ")
    assert errors[0]["extensions"]["code"] == "GRAPHQL_VALIDATION"
    assert errors[0]["locations"][0]["line"] == 1


async def test_wrong_variable_type_is_a_user_error(client) -> None:
    errors = await gql_errors(
        client, "query($id: ID!) { dataset(id: $id) { id } }", {"id": {"a": 1}}
    )
    assert errors[0]["extensions"]["code"] in {"GRAPHQL_VALIDATION", "BAD_USER_INPUT"}


def test_settings_defaults_work_with_nothing_set(tmp_path: Path) -> None:
    settings = Settings.from_env({})
    assert settings.host == "127.0.0.1"
    assert settings.database_url.startswith("sqlite+threaded:///")
    assert settings.database_url.endswith("loopline-data/loopline.db")
    env = {"LOOPLINE_HOME": str(tmp_path), "LOOPLINE_DATABASE_URL": "postgresql://u@h/db"}
    configured = Settings.from_env(env)
    assert configured.database_url == "postgresql+asyncpg://u@h/db"
    assert configured.blob_root == tmp_path / "blobs"
    with pytest.raises(ValueError, match="LOOPLINE_PORT"):
        Settings.from_env({"LOOPLINE_PORT": "eighty"})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_starts_on_loopback_and_prints_the_admin_token(tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "LOOPLINE_HOME": str(tmp_path / "home"), "LOOPLINE_PORT": str(port)}
    env.pop("LOOPLINE_DATABASE_URL", None)
    cli = Path(sys.executable).with_name("loopline")
    server = subprocess.Popen(
        [str(cli), "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, server.stdout.read() if server.stdout else ""
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.2)
        token = (tmp_path / "home" / "admin-token").read_text().strip()
        me = httpx.post(
            f"http://127.0.0.1:{port}/graphql",
            json={"query": "{ me { email isAdmin } }"},
            headers={"Authorization": f"Bearer {token}"},
        ).json()
        assert me == {"data": {"me": {"email": "admin@localhost", "isAdmin": True}}}
        listening = subprocess.run(["ss", "-ltn"], capture_output=True, text=True).stdout
        assert f"127.0.0.1:{port}" in listening and f"0.0.0.0:{port}" not in listening
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=30)
    assert token in output  # printed once, on the first start


async def test_internal_failures_are_masked(client, platform, project) -> None:
    # a real fault on our side: the table behind the field is gone (put back afterwards)
    from sqlalchemy import text

    async with platform.db.engine.begin() as conn:
        await conn.execute(text("ALTER TABLE members RENAME TO members_gone"))
    try:
        response = await client.post("/graphql", json={"query": "{ projects { nodes { id } } }"})
    finally:
        async with platform.db.engine.begin() as conn:
            await conn.execute(text("ALTER TABLE members_gone RENAME TO members"))
    body = response.json()
    assert response.status_code == 200
    assert body["errors"][0]["extensions"] == {"code": "INTERNAL"}
    assert "members" not in response.text and "SELECT" not in response.text
