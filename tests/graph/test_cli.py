"""The `loopline` command: database upgrade, schema export, tokens."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from click.testing import CliRunner

from graph.api.schema import schema
from graph.cli import main
from graph.config import Settings
from graph.domain import users
from graph.domain.platform import Platform


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LOOPLINE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LOOPLINE_DATABASE_URL", raising=False)
    return tmp_path / "home"


def test_db_upgrade_creates_the_database(home: Path) -> None:
    result = CliRunner().invoke(main, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert (home / "loopline.db").is_file()


def test_export_schema_prints_and_writes_the_sdl(tmp_path: Path) -> None:
    printed = CliRunner().invoke(main, ["export-schema"])
    assert printed.exit_code == 0 and printed.output == schema.as_str() + "\n"
    target = tmp_path / "out.graphql"
    assert CliRunner().invoke(main, ["export-schema", "-o", str(target)]).exit_code == 0
    assert target.read_text() == printed.output


def test_token_create_for_new_and_unknown_users(home: Path) -> None:
    runner = CliRunner()
    unknown = runner.invoke(main, ["token", "create", "--email", "nobody@example.com"])
    assert unknown.exit_code == 1 and "does not exist" in unknown.output
    made = runner.invoke(main, ["token", "create", "--email", "ann@example.com", "--create-user"])
    assert made.exit_code == 0, made.output
    token = made.output.strip().splitlines()[-1]

    async def who() -> str:
        platform = Platform.from_settings(Settings.from_env())
        try:
            return (await users.authenticate(platform, token)).email
        finally:
            await platform.close()

    assert asyncio.run(who()) == "ann@example.com"
