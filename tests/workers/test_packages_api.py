"""Packages through HTTP and GraphQL: uploading archives (good and bad), reading them with their
revisions, running an uploaded function on a real worker, and redeploying a newer revision."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import zipfile
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, select

from graph.app import create_app
from graph.cli import main
from graph.db.tables import Blob, Package
from graph.domain import datasets, items, packages, projects
from graph.domain.platform import Platform
from graph.package_client import zip_directory
from tests.conftest import make_user
from tests.graph.test_cli_upload import running_server
from tests.graphql import gql, gql_errors
from tests.workers.conftest import burst
from tests.workers.functions import PACKAGE

MANIFEST = {
    "name": "tagger",
    "description": "tags items",
    "modules": [
        {
            "name": "main",
            "entryPoint": "main.py",
            "className": "ServiceRunner",
            "initInputs": [{"name": "prefix", "type": "String", "mandatory": False}],
            "functions": [
                {
                    "name": "tag",
                    "input": [{"name": "item", "type": "Item"}],
                    "output": [{"name": "tag", "type": "String"}],
                }
            ],
        }
    ],
}


def runner_code(tag: str) -> str:
    return f'''
from . import helpers


class ServiceRunner:
    def __init__(self, prefix="p"):
        self.prefix = prefix

    def tag(self, item):
        value = helpers.join(self.prefix, "{tag}")
        item.update_metadata({{"tag": value}})
        return value
'''


HELPERS = "def join(a, b):\n    return a + '-' + b\n"


def archive(files: dict[str, Any]) -> bytes:
    """A zip of ``files`` (name -> text, bytes, or a JSON-able manifest)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, content in files.items():
            if isinstance(content, dict):
                content = json.dumps(content)
            zf.writestr(name, content)
    return buffer.getvalue()


def tagger(tag: str = "v1") -> bytes:
    return archive({"loopline.json": MANIFEST, "main.py": runner_code(tag), "helpers.py": HELPERS})


async def push(
    client: httpx.AsyncClient, project_id: str, body: bytes, **kw: Any
) -> httpx.Response:
    return await client.post(
        f"/projects/{project_id}/packages",
        content=body,
        headers={"content-type": "application/zip", **kw.pop("headers", {})},
        **kw,
    )


def error_of(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == code, error
    return error


async def package_rows(platform: Platform) -> int:
    async with platform.db.read() as session:
        return int(await session.scalar(select(func.count()).select_from(Package)) or 0)


PACKAGES = """
query ($projectId: ID!) {
  packages(projectId: $projectId) {
    id name plugin revision description spec
    revisions { revision spec createdAt creator }
  }
}
"""
DEPLOY = """
mutation ($projectId: ID!, $name: String!, $package: String!, $params: JSON) {
  deployService(projectId: $projectId, name: $name, packageName: $package, initParams: $params) {
    id packageName packageRevision moduleName initParams
    package { id name revision plugin }
  }
}
"""
RUN = """
mutation ($serviceId: ID!, $item: ID!) {
  createExecution(serviceId: $serviceId, functionName: "tag", input: {item: $item}) { id status }
}
"""
EXECUTION = "query ($id: ID!) { execution(id: $id) { status output error } }"


@pytest.fixture
async def item_id(platform, owner, project):
    dataset = await datasets.create_dataset(platform, owner[0], project.id, "ds")
    async with platform.db.write() as session:
        [row], _ = await items.insert_items(
            session, owner[0], dataset, [items.ItemSpec(path="/a.jpg")]
        )
    return row.item_id


async def run_tag(client, settings, platform, owner, service_id: str, item_id: str) -> str:
    created = await gql(client, RUN, {"serviceId": service_id, "item": item_id})
    burst(settings)
    done = await gql(client, EXECUTION, {"id": created["createExecution"]["id"]})
    assert done["execution"]["status"] == "success", done
    # a function with declared outputs answers them by name
    tag = done["execution"]["output"]["tag"]
    row = await items.get_item(platform, owner[0], item_id)
    assert row.metadata_["user"]["tag"] == tag
    return str(tag)


async def test_an_uploaded_package_runs_and_new_revisions_wait_for_update_service(
    client, platform, owner, project, item_id, settings
) -> None:
    pushed = await push(client, project.id, tagger("v1"))
    assert pushed.status_code == 200, pushed.text
    first = pushed.json()
    assert (first["name"], first["revision"], first["projectId"]) == ("tagger", 1, project.id)

    listed = (await gql(client, PACKAGES, {"projectId": project.id}))["packages"]
    by_name = {p["name"]: p for p in listed}
    assert by_name[PACKAGE]["plugin"] is True and by_name[PACKAGE]["id"] is None
    assert by_name[PACKAGE]["revisions"] == []
    uploaded = by_name["tagger"]
    assert (uploaded["id"], uploaded["plugin"], uploaded["revision"]) == (first["id"], False, 1)
    assert uploaded["spec"]["modules"][0]["functions"][0]["name"] == "tag"
    assert [r["revision"] for r in uploaded["revisions"]] == [1]
    assert uploaded["revisions"][0]["creator"] == "owner@example.com"

    deployed = await gql(
        client,
        DEPLOY,
        {"projectId": project.id, "name": "tags", "package": "tagger", "params": {"prefix": "x"}},
    )
    service = deployed["deployService"]
    assert (service["packageRevision"], service["moduleName"]) == (1, "main")
    assert service["package"] == {
        "id": first["id"],
        "name": "tagger",
        "revision": 1,
        "plugin": False,
    }
    assert await run_tag(client, settings, platform, owner, service["id"], item_id) == "x-v1"

    # a second upload of the name is revision 2; the service stays on revision 1
    second = await push(client, project.id, tagger("v2"))
    assert (second.json()["id"], second.json()["revision"]) == (first["id"], 2)
    listed = (await gql(client, PACKAGES, {"projectId": project.id}))["packages"]
    [uploaded] = [p for p in listed if p["name"] == "tagger"]
    assert [r["revision"] for r in uploaded["revisions"]] == [1, 2]
    assert await run_tag(client, settings, platform, owner, service["id"], item_id) == "x-v1"

    updated = await gql(
        client,
        "mutation ($id: ID!) { updateService(id: $id, latest: true) { packageRevision initParams } }",
        {"id": service["id"]},
    )
    assert updated["updateService"] == {"packageRevision": 2, "initParams": {"prefix": "x"}}
    assert await run_tag(client, settings, platform, owner, service["id"], item_id) == "x-v2"


async def test_an_archive_may_come_as_a_multipart_part(client, project) -> None:
    response = await client.post(
        f"/projects/{project.id}/packages",
        files={"archive": ("tagger.zip", tagger(), "application/zip")},
    )
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "tagger"
    missing = await client.post(
        f"/projects/{project.id}/packages", files={"file": ("x.zip", tagger(), "application/zip")}
    )
    assert error_of(missing, 400, "INVALID_INPUT")["extensions"]["field"] == "archive"


def _with(**changes: Any) -> dict[str, Any]:
    return {
        "loopline.json": MANIFEST,
        "main.py": runner_code("v1"),
        "helpers.py": HELPERS,
        **changes,
    }


async def test_bad_archives_are_refused_saying_what_and_where(client, platform, project) -> None:
    bad_module = {**MANIFEST, "modules": [{**MANIFEST["modules"][0], "functions": "tag"}]}
    cases = [
        (b"not a zip at all", "not a zip file", {}),
        (archive({"main.py": runner_code("v1")}), "no loopline.json", {}),
        (archive(_with(**{"loopline.json": "{nope"})), "loopline.json is not valid JSON", {}),
        (
            archive(_with(**{"loopline.json": bad_module})),
            "modules[0].functions",
            {"where": "modules[0].functions"},
        ),
        (
            archive(_with(**{"helpers.py": "def join(a, b):\n    return (a +\n"})),
            "helpers.py, line",
            {"file": "helpers.py"},
        ),
        (archive(_with(**{"../evil.py": "x = 1\n"})), "unsafe file name", {}),
        (archive(_with(**{"/etc/evil.py": "x = 1\n"})), "unsafe file name", {}),
        (
            archive(_with(**{"main.py": "class Other:\n    pass\n"})),
            "defines no class 'ServiceRunner'",
            {},
        ),
    ]
    for body, message, details in cases:
        error = error_of(await push(client, project.id, body), 400, "INVALID_INPUT")
        assert message in error["message"], (message, error)
        assert error["extensions"]["field"] == "archive"
        for key, value in details.items():
            assert error["extensions"][key] == value, error
    syntax = error_of(
        await push(client, project.id, archive(_with(**{"main.py": "def broken(:\n"}))),
        400,
        "INVALID_INPUT",
    )
    assert syntax["extensions"]["line"] == 1 and syntax["message"].startswith("main.py, line 1")
    assert await package_rows(platform) == 0
    # a plugin's name is taken
    taken = archive(_with(**{"loopline.json": {**MANIFEST, "name": PACKAGE}}))
    error_of(await push(client, project.id, taken), 409, "CONFLICT")
    assert await package_rows(platform) == 0


@pytest.fixture
async def small_client(platform, owner) -> AsyncIterator[httpx.AsyncClient]:
    """A client for an app whose package limit is 2,000 bytes."""
    small = Platform(
        dataclasses.replace(platform.settings, max_package_bytes=2000),
        platform.db,
        platform.plugins,
    )
    transport = httpx.ASGITransport(app=create_app(small, migrate=False))
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://loopline.test",
        headers={"Authorization": f"Bearer {owner[1]}"},
    ) as http:
        yield http


async def test_an_oversized_archive_is_413_with_nothing_stored(
    small_client, platform, project
) -> None:
    big = archive(_with(**{"data.bin": bytes(range(256)) * 40}))
    assert len(big) > 2000

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: caught while streaming
        for start in range(0, len(big), 500):
            yield big[start : start + 500]

    for body in (big, chunked()):
        error = error_of(await push(small_client, project.id, body), 413, "PAYLOAD_TOO_LARGE")
        assert "2000 bytes" in error["message"]
    multipart = await small_client.post(
        f"/projects/{project.id}/packages", files={"archive": ("a.zip", big, "application/zip")}
    )
    error_of(multipart, 413, "PAYLOAD_TOO_LARGE")
    assert await package_rows(platform) == 0
    async with platform.db.read() as session:
        assert await session.scalar(select(func.count()).select_from(Blob)) == 0


async def test_roles_for_packages(client, platform, owner, project) -> None:
    annotator, annotator_token = await make_user(platform, "ann@example.com")
    _, stranger_token = await make_user(platform, "who@example.com")
    await projects.add_member(platform, owner[0], project.id, annotator.email, "annotator")
    as_annotator = {"Authorization": f"Bearer {annotator_token}"}
    as_stranger = {"Authorization": f"Bearer {stranger_token}"}
    error_of(await push(client, project.id, tagger(), headers=as_annotator), 403, "FORBIDDEN")
    error_of(await push(client, project.id, tagger(), headers=as_stranger), 404, "NOT_FOUND")
    error_of(
        await push(client, project.id, tagger(), headers={"Authorization": ""}),
        401,
        "UNAUTHENTICATED",
    )
    pushed = (await push(client, project.id, tagger())).json()
    # an annotator reads packages; a stranger is told they do not exist
    query = "query ($id: ID!) { package(id: $id) { name revisions { revision } } }"
    seen = await gql(client, query, {"id": pushed["id"]}, headers=as_annotator)
    assert seen["package"] == {"name": "tagger", "revisions": [{"revision": 1}]}
    [hidden] = await gql_errors(client, query, {"id": pushed["id"]}, headers=as_stranger)
    assert hidden["extensions"]["code"] == "NOT_FOUND"
    delete = "mutation ($id: ID!) { deletePackage(id: $id) }"
    [refused] = await gql_errors(client, delete, {"id": pushed["id"]}, headers=as_annotator)
    assert refused["extensions"]["code"] == "FORBIDDEN"


async def test_a_deployed_package_is_deleted_only_after_its_services(
    client, platform, project
) -> None:
    pushed = (await push(client, project.id, tagger())).json()
    service = await gql(client, DEPLOY, {"projectId": project.id, "name": "s", "package": "tagger"})
    delete = "mutation ($id: ID!) { deletePackage(id: $id) }"
    [busy] = await gql_errors(client, delete, {"id": pushed["id"]})
    assert busy["extensions"]["code"] == "CONFLICT" and "1 service" in busy["message"]
    await gql(
        client,
        "mutation ($id: ID!) { deleteService(id: $id) }",
        {"id": service["deployService"]["id"]},
    )
    assert (await gql(client, delete, {"id": pushed["id"]}))["deletePackage"] is True
    assert await package_rows(platform) == 0


async def test_package_push_zips_a_folder_and_uploads_it(
    platform, settings, plugins, owner, project, tmp_path
) -> None:
    folder = tmp_path / "tagger"
    (folder / "__pycache__").mkdir(parents=True)
    (folder / ".git").mkdir()
    (folder / "loopline.json").write_text(json.dumps(MANIFEST))
    (folder / "main.py").write_text(runner_code("v1"))
    (folder / "helpers.py").write_text(HELPERS)
    (folder / "__pycache__" / "main.cpython-312.pyc").write_bytes(b"\0compiled")
    (folder / ".git" / "config").write_text("[core]\n")
    (folder / ".env").write_text("SECRET=1\n")
    with zipfile.ZipFile(io.BytesIO(zip_directory(folder))) as zipped:
        assert sorted(zipped.namelist()) == ["helpers.py", "loopline.json", "main.py"]

    async def push_cli(*args: str) -> Result:
        return await asyncio.to_thread(CliRunner().invoke, main, ["package", "push", *args])

    with running_server(settings, plugins) as url:
        args = [str(folder), "--project", project.id, "--server", url, "--token", owner[1]]
        first = await push_cli(*args)
        assert first.exit_code == 0, first.output
        assert first.output.startswith("pushed tagger revision 1 (id ")
        assert "pushed tagger revision 2" in (await push_cli(*args)).output
        (folder / "main.py").write_text("def broken(:\n")
        failed = await push_cli(*args)
        assert failed.exit_code == 1
        assert "error: main.py, line 1" in failed.output
        refused = await push_cli(*args[:-1], "not-a-token")
        assert refused.exit_code == 1 and "error: " in refused.output
    listed = await package_revisions(platform, owner, project.id)
    assert listed == {"tagger": 2}


async def package_revisions(
    platform: Platform, owner: Any, project_id: str
) -> dict[str, int | None]:
    rows = await packages.list_packages(platform, owner[0], project_id)
    return {r.name: r.revision for r in rows}
