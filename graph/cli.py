"""The ``loopline`` command."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from graph.config import Settings
from graph.domain.platform import Platform

__all__ = ["main"]

T = TypeVar("T")


def _run(work: Callable[[Platform], Awaitable[T]], *, migrate: bool = True) -> T:
    """Run ``work`` on a platform built from the environment, migrated first; a domain error
    ends the command with its message and exit code 1."""
    from graph.db.migrate import upgrade

    async def runner() -> T:
        settings = Settings.from_env()
        settings.home.mkdir(parents=True, exist_ok=True)
        platform = Platform.from_settings(settings)
        try:
            if migrate:
                await upgrade(platform.db)
            return await work(platform)
        finally:
            await platform.close()

    from graph.domain.errors import DomainError

    try:
        return asyncio.run(runner())
    except DomainError as exc:  # the user's mistake: say what it was, no traceback
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(1)


@click.group()
@click.version_option(package_name="loopline")
def main() -> None:
    """Loopline: the data loop of machine learning, self-hosted."""


@main.command()
@click.option("--host", default=None, help="Interface to bind (default 127.0.0.1, LOOPLINE_HOST).")
@click.option("--port", default=None, type=int, help="Port (default 8080, LOOPLINE_PORT).")
@click.option(
    "--workers",
    default=None,
    type=click.IntRange(0, 256),
    help="Worker processes to start (default 2, LOOPLINE_WORKERS; 0: run `loopline worker` elsewhere).",
)
@click.option("--no-scheduler", is_flag=True, help="Do not start a scheduler (run one elsewhere).")
def serve(host: str | None, port: int | None, workers: int | None, no_scheduler: bool) -> None:
    """Run the platform: migrate the database, create the first admin, serve the API, and run
    the execution side (a private Redis unless LOOPLINE_REDIS_URL is set, workers, a scheduler)."""
    import dataclasses

    import uvicorn

    from graph.app import create_app
    from graph.db.migrate import upgrade
    from graph.processes import Supervisor, private_redis, python_module

    settings = Settings.from_env()
    settings.home.mkdir(parents=True, exist_ok=True)
    supervisor = Supervisor()
    try:
        if settings.redis_url is None:
            redis_url = private_redis(supervisor, settings.home / "redis")
            settings = dataclasses.replace(settings, redis_url=redis_url)
        platform = Platform.from_settings(settings)
        asyncio.run(upgrade(Platform.from_settings(settings).db))  # before any child connects
        env = {
            "LOOPLINE_HOME": str(settings.home),
            "LOOPLINE_DATABASE_URL": settings.database_url,
            "LOOPLINE_REDIS_URL": settings.redis_url or "",
        }
        for n in range(settings.workers if workers is None else workers):
            supervisor.add(f"worker-{n}", python_module("workers", "work"), env)
        if not no_scheduler:
            supervisor.add("scheduler", python_module("workers", "scheduler"), env)
        supervisor.watch()
        app = create_app(platform)
        host, port = host or settings.host, port or settings.port
        click.echo(f"Loopline on http://{host}:{port}/graphql (data in {settings.home})")
        # uvicorn re-raises the signal that stopped it once it has shut down, to the handler
        # installed before it: exit through ``finally`` so the children are stopped too
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: sys.exit(0))
        # no per-message compression: live updates are small, and deflating each one for
        # each of hundreds of subscribers costs more CPU than the fan-out itself
        uvicorn.run(app, host=host, port=port, log_level="info", ws_per_message_deflate=False)
    finally:
        supervisor.stop()


@main.group()
def db() -> None:
    """Database maintenance."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply migrations up to REVISION."""
    from graph.db.migrate import upgrade

    async def work(platform: Platform) -> None:
        await upgrade(platform.db, revision)

    _run(work, migrate=False)
    click.echo(f"database at {revision}")


@main.command("export-schema")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None)
def export_schema(output: Path | None) -> None:
    """Print the GraphQL schema (SDL), or write it to OUTPUT."""
    from graph.api.schema import schema

    text = schema.as_str() + "\n"
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def plugins(as_json: bool) -> None:
    """List installed plugins and the hooks each implements; report plugins that failed."""
    from plugins.manager import Plugins

    registry = Plugins()
    drivers, converters = registry.storage_drivers, registry.converters
    rows: list[dict[str, Any]] = registry.describe()
    failures = [{"name": f.plugin, "error": f.error} for f in registry.failures]
    if as_json:
        click.echo(
            json.dumps(
                {
                    "plugins": rows,
                    "storageDrivers": sorted(drivers),
                    "converters": sorted(converters),
                    "failures": failures,
                }
            )
        )
        return
    for row in rows:
        kind = "builtin" if row["builtin"] else "plugin"
        click.echo(f"{row['name']}  ({kind})  hooks: {', '.join(row['hooks']) or '-'}")
    click.echo(f"storage drivers: {', '.join(sorted(drivers))}")
    click.echo(f"annotation formats: {', '.join(sorted(converters))}")
    for failure in failures:
        click.echo(f"FAILED {failure['name']}: {failure['error']}", err=True)


@main.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--dataset", "dataset_id", required=True, help="The id of the dataset to fill.")
@click.option("--server", default="http://127.0.0.1:8080", show_default=True)
@click.option("--token", envvar="LOOPLINE_TOKEN", required=True, help="API token (LOOPLINE_TOKEN).")
@click.option("--remote-dir", default="/", show_default=True, help="Dataset folder to upload into.")
@click.option("--mode", type=click.Choice(["skip", "overwrite"]), default="skip", show_default=True)
@click.option("--batch", default=50, type=click.IntRange(1, 1000), show_default=True)
@click.option("--workers", default=4, type=click.IntRange(1, 32), show_default=True)
def upload(
    directory: Path,
    dataset_id: str,
    server: str,
    token: str,
    remote_dir: str,
    mode: str,
    batch: int,
    workers: int,
) -> None:
    """Upload the files below DIRECTORY into a dataset, keeping their sub-folders."""
    from graph.upload_client import local_files, upload_dir

    files = local_files(directory)
    with click.progressbar(length=len(files), label="uploading") as bar:
        summary = upload_dir(
            directory,
            files,
            server=server,
            token=token,
            dataset_id=dataset_id,
            remote_dir=remote_dir,
            mode=mode,
            batch=batch,
            workers=workers,
            progress=bar.update,
        )
    click.echo(
        f"created {summary.created}, skipped {summary.skipped}, "
        f"overwritten {summary.overwritten}, failed {summary.failed}"
    )
    for error in summary.errors:
        click.echo(f"failed: {error}", err=True)
    sys.exit(1 if summary.failed else 0)


@main.group()
def package() -> None:
    """Packages of functions."""


@package.command("push")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--project", "project_id", required=True, help="The id of the project.")
@click.option("--server", default="http://127.0.0.1:8080", show_default=True)
@click.option("--token", envvar="LOOPLINE_TOKEN", required=True, help="API token (LOOPLINE_TOKEN).")
def package_push(directory: Path, project_id: str, server: str, token: str) -> None:
    """Upload DIRECTORY (with loopline.json at its root) as a package of a project; pushing a
    name again makes a new revision."""
    from graph.package_client import PushFailed, push_package

    try:
        pushed = push_package(directory, server=server, token=token, project_id=project_id)
    except PushFailed as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    click.echo(f"pushed {pushed['name']} revision {pushed['revision']} (id {pushed['id']})")


@main.group()
def index() -> None:
    """Metadata indexes that DQL filters use (run on the server machine: it needs no token)."""


@index.command("add")
@click.argument("resource", type=click.Choice(["items", "annotations"]))
@click.argument("path")
def index_add(resource: str, path: str) -> None:
    """Declare and build an index on PATH of RESOURCE, e.g. `items metadata.user.camera`."""
    from graph.domain import indexes

    async def work(platform: Platform) -> list[str]:
        row = await indexes.create_index(platform, None, resource, path)
        return sorted(row.sql_indexes.values())

    names = _run(work)
    click.echo(f"{resource} {path}: {', '.join(names)}")


@index.command("list")
@click.argument("resource", required=False, type=click.Choice(["items", "annotations"]))
def index_list(resource: str | None) -> None:
    """List declared indexes, of RESOURCE if given."""
    from graph.domain import indexes

    async def work(platform: Platform) -> list[tuple[str, str, list[str]]]:
        rows = await indexes.list_indexes(platform, None, resource)
        return [(r.resource, r.path, sorted(r.sql_indexes.values())) for r in rows]

    for on, path, names in _run(work):
        click.echo(f"{on} {path}: {', '.join(names)}")


@index.command("drop")
@click.argument("resource", type=click.Choice(["items", "annotations"]))
@click.argument("path")
def index_drop(resource: str, path: str) -> None:
    """Drop the declared index on PATH of RESOURCE."""
    from graph.domain import indexes

    async def work(platform: Platform) -> None:
        await indexes.drop_index(platform, None, resource, path)

    _run(work)
    click.echo(f"dropped {resource} {path}")


@main.group()
def token() -> None:
    """API tokens."""


@token.command("create")
@click.option("--email", required=True, help="The user the token is for.")
@click.option("--name", default="cli", show_default=True)
@click.option("--create-user", is_flag=True, help="Create the user first if it does not exist.")
@click.option("--admin", is_flag=True, help="With --create-user: make the user an administrator.")
def token_create(email: str, name: str, create_user: bool, admin: bool) -> None:
    """Print a new token for a user (run on the server machine: it needs no token itself)."""
    from graph.domain import users
    from graph.domain.errors import NotFound

    async def work(platform: Platform) -> str:
        try:
            user = await users.get_user(platform, email)
        except NotFound:
            if not create_user:
                raise
            user = await users.create_user(platform, None, email, is_admin=admin)
        return await users.create_token(platform, None, user.id, name)

    click.echo(_run(work))
