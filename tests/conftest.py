"""Fixtures: a migrated database on SQLite and on PostgreSQL, a platform over it, users, clients."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from graph.app import create_app
from graph.config import Settings, normalise_database_url
from graph.db.engine import Database
from graph.db.migrate import upgrade
from graph.db.tables import Base
from graph.domain import datasets, items, projects, users
from graph.domain.access import Actor
from graph.domain.platform import Platform
from plugins.manager import Plugins
from tests.servers import postgres_server_url, redis_server_url

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def shared_data() -> Path:
    import os

    return Path(os.environ.get("LOOPLINE_SHARED_DATA") or SHARED_DATA)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (faster than migrating each time)."""
    path = tmp_path_factory.mktemp("template") / "template.db"

    async def migrate() -> None:
        db = Database(f"sqlite:///{path}")
        await upgrade(db)
        await db.dispose()

    asyncio.run(migrate())
    return path


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with postgres_server_url() as url:
        async_url = normalise_database_url(url)

        async def migrate() -> None:
            db = Database(async_url)
            await upgrade(db)
            await db.dispose()

        asyncio.run(migrate())
        yield async_url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        path = tmp_path / "loopline.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    return str(request.getfixturevalue("postgres_url"))


async def _empty_postgres(db: Database) -> None:
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    async with db.engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    with redis_server_url() as url:
        yield url


@pytest.fixture
def settings(tmp_path: Path, database_url: str, redis_url: str) -> Settings:
    from redis import Redis

    Redis.from_url(redis_url).flushdb()
    return Settings(home=tmp_path / "home", database_url=database_url, redis_url=redis_url)


def burst(settings: Settings, queues: tuple[str, ...] = ("platform", "default")) -> None:
    """Run a real RQ worker in this process until the queues are empty."""
    import dataclasses

    from workers.worker import run_worker

    run_worker(dataclasses.replace(settings, plugins_enabled=False), list(queues), burst=True)


@pytest.fixture
def plugins() -> Plugins:
    """Built-in plugins only: entry points installed on the machine must not change test results."""
    return Plugins(entry_points=False)


@pytest.fixture
async def platform(settings: Settings, plugins: Plugins) -> AsyncIterator[Platform]:
    platform = Platform(settings, Database(settings.database_url), plugins)
    if not platform.db.is_sqlite:
        await _empty_postgres(platform.db)
    yield platform
    await platform.close()


async def make_user(platform: Platform, email: str, *, admin: bool = False) -> tuple[Actor, str]:
    user = await users.create_user(platform, None, email, is_admin=admin)
    token = await users.create_token(platform, None, user.id)
    return Actor(user_id=user.id, email=user.email, is_admin=admin), token


@pytest.fixture
async def owner(platform: Platform) -> tuple[Actor, str]:
    """A plain user (not an administrator) with a token."""
    return await make_user(platform, "owner@example.com")


@pytest.fixture
async def project(platform: Platform, owner: tuple[Actor, str]) -> Any:
    return await projects.create_project(platform, owner[0], "demo")


@pytest.fixture
async def client(platform: Platform, owner: tuple[Actor, str]) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for the app, authenticated as ``owner``."""
    app = create_app(platform, migrate=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://loopline.test",
        headers={"Authorization": f"Bearer {owner[1]}"},
    ) as http:
        yield http


@pytest.fixture
async def team(platform, owner, project) -> SimpleNamespace:
    """A project with a manager, three annotators, and a dataset of 20 files in two folders."""
    actor = owner[0]
    people = {}
    for name, role in (
        ("manager", "annotationManager"),
        ("ann1", "annotator"),
        ("ann2", "annotator"),
        ("ann3", "annotator"),
    ):
        person, token = await make_user(platform, f"{name}@example.com")
        await projects.add_member(platform, actor, project.id, person.email, role)
        people[name] = person
        people[f"{name}_token"] = token
    dataset = await datasets.create_dataset(platform, actor, project.id, "photos")
    specs = [
        items.ItemSpec(
            path=f"/{'day' if i < 10 else 'night'}/{i:02d}.jpg",
            url=f"https://x.test/{i}",
            user={"n": i},
        )
        for i in range(20)
    ]
    async with platform.db.write() as session:
        results, _ = await items.insert_items(session, actor, dataset, specs)
    ids = {spec.path: r.item_id for spec, r in zip(specs, results, strict=True)}
    return SimpleNamespace(owner=actor, project=project, dataset=dataset, ids=ids, **people)
