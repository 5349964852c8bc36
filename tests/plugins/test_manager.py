"""Third-party plugins found through ``loopline`` entry points, as if pip had installed them."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from graph.cli import main
from graph.domain import datasets, items, storage, sync
from plugins.builtin.local_storage import LocalBackend
from plugins.manager import BUILTIN_PLUGINS, Plugins
from tests.graphql import gql
from tests.plugins import example_plugin
from workers.worker import run_worker

Install = Callable[[dict[str, str]], None]


@pytest.fixture
def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Install:
    """Make entry points (name -> module) visible the way an installed distribution's are: a
    ``*.dist-info`` folder with ``entry_points.txt`` on ``sys.path``."""

    def install(entry_points: dict[str, str]) -> None:
        site = tmp_path / "site-packages"
        info = site / "loopline_example_plugin-1.0.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(
            "Metadata-Version: 2.1\nName: loopline-example-plugin\nVersion: 1.0\n"
        )
        lines = "".join(f"{name} = {module}\n" for name, module in entry_points.items())
        (info / "entry_points.txt").write_text(f"[loopline]\n{lines}")
        monkeypatch.syspath_prepend(str(site))

    return install


@pytest.fixture
def plugins(install: Install) -> Plugins:
    """Overrides the built-ins-only registry of conftest: this module tests the entry points."""
    install({"example": "tests.plugins.example_plugin"})
    return Plugins()


@pytest.fixture
def store() -> Iterator[tuple[str, dict[str, bytes]]]:
    """A fresh store of the example ``memory`` driver."""
    name = f"store-{uuid.uuid4().hex[:8]}"
    example_plugin.STORES[name] = objects = {}
    yield name, objects
    del example_plugin.STORES[name]


async def test_an_installed_plugin_is_loaded_and_its_driver_works_end_to_end(
    platform, owner, project, client, store, settings
) -> None:
    actor = owner[0]
    name, objects = store
    assert sorted(platform.plugins.storage_drivers) == ["local", "memory", "s3"]
    assert platform.plugins.failures == []
    [row] = [r for r in platform.plugins.describe() if r["name"] == "example"]
    assert row == {
        "name": "example",
        "builtin": False,
        "hooks": ["register_storage_drivers"],
        "version": "1.0",
        "module": "tests.plugins.example_plugin",
    }
    types = await gql(client, "query { storageDriverTypes { name configFields } }")
    assert {"name": "memory", "configFields": ["store"]} in types["storageDriverTypes"]

    objects.update({"cats/tom.jpg": b"meow meow", "dogs/rex.png": b"woof"})
    created = await gql(
        client,
        'mutation($p: ID!, $c: JSON!) { createDriver(projectId: $p, name: "mem", type: "memory",'
        " config: $c) { id type config } }",
        {"p": project.id, "c": {"store": name}},
    )
    driver = created["createDriver"]
    assert driver["type"] == "memory" and driver["config"] == {"store": name}
    dataset = await datasets.create_dataset(platform, actor, project.id, "mem", driver["id"])
    started = await gql(
        client, "mutation($d: ID!) { syncDataset(datasetId: $d) { id } }", {"d": dataset.id}
    )
    # the sync runs on a worker, which finds the installed plugin through its entry point too
    run_worker(settings, ["platform"], burst=True)
    report = await gql(
        client,
        "query($e: ID!) { execution(id: $e) { status output } }",
        {"e": started["syncDataset"]["id"]},
    )
    assert report["execution"] == {
        "status": "success",
        "output": {"created": 2, "updated": 0, "deleted": 0, "unchanged": 0, "skipped": 0},
    }

    page = await items.list_items(platform, actor, dataset.id, folders=False)
    tom = next(i for i in page.rows if i.filename == "/cats/tom.jpg")
    async with platform.db.read() as session:
        blob, row, integration = await storage.load_blob_source(session, tom.blob_id)
    assert b"".join(storage.read_blob(platform, blob, row, integration)) == b"meow meow"
    assert b"".join(storage.read_blob(platform, blob, row, integration, 5, 8)) == b"meow"

    objects["cats/tom.jpg"] = b"purr"
    del objects["dogs/rex.png"]
    report = await sync.sync_dataset(platform, actor, dataset.id)
    assert report == sync.SyncReport(updated=1, deleted=1)


def test_a_plugin_that_fails_to_import_is_reported_and_the_rest_runs(install: Install) -> None:
    install({"broken": "tests.plugins.example_plugin.broken"})
    registry = Plugins()
    assert sorted(registry.storage_drivers) == ["local", "s3"]
    [failure] = registry.failures
    assert failure.plugin == "broken"
    assert failure.error == "RuntimeError: example plugin is broken on purpose"


def test_a_clashing_driver_name_is_reported_and_the_builtin_wins(
    install: Install, tmp_path: Path
) -> None:
    install({"impostor": "tests.plugins.example_plugin.clash"})
    registry = Plugins()
    local = registry.storage_drivers["local"]
    assert isinstance(local.open({"path": str(tmp_path)}, None), LocalBackend)
    [failure] = registry.failures
    assert failure.plugin == "impostor"
    assert "'local' is already provided by 'plugins.builtin.local_storage'" in failure.error


def test_entry_points_are_ignored_when_disabled(install: Install) -> None:
    install({"example": "tests.plugins.example_plugin"})
    assert sorted(Plugins(entry_points=False).storage_drivers) == ["local", "s3"]


def test_cli_lists_builtins_plugins_and_failures_as_json(install: Install) -> None:
    install(
        {
            "example": "tests.plugins.example_plugin",
            "broken": "tests.plugins.example_plugin.broken",
            "impostor": "tests.plugins.example_plugin.clash",
        }
    )
    result = CliRunner().invoke(main, ["plugins", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    rows = {row["name"]: row for row in report["plugins"]}
    for builtin in ("plugins.builtin.local_storage", "plugins.builtin.s3_storage"):
        assert rows[builtin]["builtin"] is True
        assert rows[builtin]["hooks"] == ["register_storage_drivers"]
    assert [r["name"] for r in report["plugins"]][: len(BUILTIN_PLUGINS)] == sorted(BUILTIN_PLUGINS)
    assert report["converters"] == ["coco", "cvat", "dataloop", "ultralytics", "voc", "yolo"]
    assert rows["example"]["builtin"] is False and rows["example"]["version"] == "1.0"
    assert report["storageDrivers"] == ["local", "memory", "s3"]
    assert {f["name"] for f in report["failures"]} == {"broken", "impostor"}
