"""Checks on the repository itself: generated schema, lint, format, architecture, documented hooks."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

from graph.api.schema import schema
from plugins import hookspecs

ROOT = Path(__file__).resolve().parents[2]


def test_schema_graphql_is_current() -> None:
    on_disk = (ROOT / "schema.graphql").read_text()
    assert on_disk == schema.as_str() + "\n", (
        "schema.graphql is stale: run `loopline export-schema -o schema.graphql`"
    )


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, check=False)


def test_ruff_lint_passes() -> None:
    result = _run(sys.executable, "-m", "ruff", "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_applied() -> None:
    result = _run(sys.executable, "-m", "ruff", "format", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_import_contracts_hold() -> None:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = _run(str(lint_imports))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_hook_is_documented() -> None:
    hooks = [
        (name, fn)
        for name, fn in vars(hookspecs).items()
        if inspect.isfunction(fn) and hasattr(fn, "loopline_spec")
    ]
    assert hooks, "no hookspecs found"
    for name, fn in hooks:
        doc = inspect.getdoc(fn) or ""
        assert ":return:" in doc, f"hook {name} does not document what it returns"
        assert "Called" in doc, f"hook {name} does not say when it is called"
        params = [p for p in inspect.signature(fn).parameters if p != "self"]
        for param in params:
            assert f":param {param}:" in doc, f"hook {name} does not document {param}"
