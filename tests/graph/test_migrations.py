"""Migrations: they build exactly the schema the tables describe, and go down and up again."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from graph.db.migrate import downgrade, upgrade
from graph.db.tables import Base
from graph.db.trigger_keys import include_object


async def test_migrated_database_matches_the_tables(platform) -> None:
    async with platform.db.engine.connect() as conn:
        diff = await conn.run_sync(
            lambda sync: compare_metadata(
                MigrationContext.configure(
                    sync, opts={"include_object": include_object(sync.dialect.name)}
                ),
                Base.metadata,
            )
        )
    assert diff == []


async def test_downgrade_to_base_and_upgrade_again(platform) -> None:
    await downgrade(platform.db, "base")
    async with platform.db.engine.connect() as conn:
        tables = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
    assert set(tables) <= {"alembic_version"}
    await upgrade(platform.db)
    async with platform.db.engine.connect() as conn:
        tables = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
    assert set(Base.metadata.tables) <= set(tables)
