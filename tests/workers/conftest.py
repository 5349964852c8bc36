"""Fixtures for the execution side: a real Redis (private unless LOOPLINE_TEST_REDIS_URL is set),
settings that name it, the test functions plugin, and real RQ workers."""

from __future__ import annotations

from pathlib import Path

import pytest
from redis import Redis

from graph.config import Settings
from plugins.manager import Plugins
from tests.conftest import burst

__all__ = ["FUNCTIONS", "burst"]

FUNCTIONS = "tests.workers.functions"


@pytest.fixture
def settings(tmp_path: Path, database_url: str, redis_url: str) -> Settings:
    Redis.from_url(redis_url).flushdb()
    return Settings(
        home=tmp_path / "home",
        database_url=database_url,
        redis_url=redis_url,
        plugin_modules=(FUNCTIONS,),
        execution_lease_seconds=3,
    )


@pytest.fixture
def plugins(settings: Settings) -> Plugins:
    return Plugins(entry_points=False, modules=settings.plugin_modules)
