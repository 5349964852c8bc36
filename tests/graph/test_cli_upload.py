"""``loopline upload`` against a real uvicorn server on a free local port."""

from __future__ import annotations

import asyncio
import shutil
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn
from click.testing import CliRunner, Result
from sqlalchemy import select

from graph.app import create_app
from graph.cli import main
from graph.config import Settings
from graph.db.engine import Database
from graph.db.tables import Item
from graph.domain import datasets
from graph.domain.platform import Platform
from plugins.manager import Plugins
from tests.graph.test_uploads import voc_images


@contextmanager
def running_server(settings: Settings, plugins: Plugins) -> Iterator[str]:
    """The app over its own platform (same database and blobs), served by uvicorn in a thread."""
    app = create_app(Platform(settings, Database(settings.database_url), plugins), migrate=False)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the server did not start")
            threading.Event().wait(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


async def run_cli(*args: str) -> Result:
    return await asyncio.to_thread(CliRunner().invoke, main, ["upload", *args])


async def test_upload_a_folder_tree(platform, settings, plugins, owner, project, tmp_path) -> None:
    actor, token = owner
    dataset = await datasets.create_dataset(platform, actor, project.id, "voc")
    images = voc_images(100)
    for index, image in enumerate(images):
        folder = tmp_path / "local" / ("a" if index < 50 else "b")
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(image, folder / image.name)
    (tmp_path / "local" / ".hidden").write_text("left out")

    with running_server(settings, plugins) as url:
        args = [str(tmp_path / "local"), "--dataset", dataset.id, "--server", url]
        args += ["--token", token, "--remote-dir", "/voc", "--batch", "16", "--workers", "3"]
        result = await run_cli(*args)
        assert result.exit_code == 0, result.output
        assert "created 100, skipped 0, overwritten 0, failed 0" in result.output
        again = await run_cli(*args)
        assert again.exit_code == 0, again.output
        assert "created 0, skipped 100, overwritten 0, failed 0" in again.output

    async with platform.db.read() as session:
        rows = (
            await session.scalars(
                select(Item).where(Item.dataset_id == dataset.id, Item.type == "file")
            )
        ).all()
    assert len(rows) == 100
    expected = {f"/voc/{'a' if i < 50 else 'b'}/{p.name}" for i, p in enumerate(images)}
    assert {r.filename for r in rows} == expected
    assert all(r.width and r.height and r.thumbnail_blob_id for r in rows)
    assert (await datasets.get_dataset(platform, actor, dataset.id)).items_count == 100


async def test_failures_are_counted_and_exit_1(
    platform, settings, plugins, owner, project, tmp_path
) -> None:
    actor, token = owner
    dataset = await datasets.create_dataset(platform, actor, project.id, "mixed")
    local = tmp_path / "local"
    local.mkdir()
    for name in ("one.txt", "back\\slash.txt", "two.txt"):
        (local / name).write_text(name)

    with running_server(settings, plugins) as url:
        result = await run_cli(
            str(local), "--dataset", dataset.id, "--server", url, "--token", token
        )
        assert result.exit_code == 1
        assert "created 2, skipped 0, overwritten 0, failed 1" in result.output
        assert "back\\slash.txt: " in result.output and "backslash" in result.output
        refused = await run_cli(
            str(local), "--dataset", dataset.id, "--server", url, "--token", "wrong"
        )
        assert refused.exit_code == 1
        assert "failed 3" in refused.output and "invalid or revoked token" in refused.output

    down = await run_cli(str(local), "--dataset", dataset.id, "--server", url, "--token", token)
    assert down.exit_code == 1 and "failed 3" in down.output


def test_missing_token_is_a_usage_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("LOOPLINE_TOKEN", raising=False)
    result = CliRunner().invoke(main, ["upload", str(tmp_path), "--dataset", "x"])
    assert result.exit_code == 2 and "--token" in result.output
