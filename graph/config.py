"""Settings read from the environment, with defaults that work on a fresh machine."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from graph.db.sqlite_driver import on_this_driver

__all__ = ["Settings"]


def _int(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None


@dataclass(frozen=True)
class Settings:
    """Everything the platform reads from its environment.

    ``LOOPLINE_HOME`` (default ``./loopline-data``) holds the SQLite database, the blob store and the
    admin token file unless ``LOOPLINE_DATABASE_URL`` points elsewhere.
    """

    home: Path
    database_url: str
    redis_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = 1 << 20
    max_upload_bytes: int = 5 << 30
    max_page_size: int = 1000
    max_package_bytes: int = 100 << 20
    # an annotation archive to import (what it unpacks to may be 4 times this)
    max_import_bytes: int = 256 << 20
    plugins_enabled: bool = True
    # modules registered as plugins besides the entry points (LOOPLINE_PLUGINS, comma-separated):
    # a plugin under development, without packaging it
    plugin_modules: tuple[str, ...] = ()
    # a worker renews its claim on an execution every third of this; a claim not renewed in time
    # is reaped (the execution runs again or fails, per its service's onReset and maxAttempts)
    execution_lease_seconds: int = 30
    # seconds a function has to stop once interrupted (terminate, timeout) before its worker
    # process is ended and started again
    execution_stop_grace: int = 10
    # worker processes `loopline serve` starts (0: none, run `loopline worker` elsewhere)
    workers: int = 2

    @property
    def blob_root(self) -> Path:
        return self.home / "blobs"

    @property
    def admin_token_file(self) -> Path:
        return self.home / "admin-token"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)
        home = Path(env.get("LOOPLINE_HOME") or "loopline-data").absolute()
        database_url = env.get("LOOPLINE_DATABASE_URL") or f"sqlite:///{home / 'loopline.db'}"
        return cls(
            home=home,
            database_url=normalise_database_url(database_url),
            redis_url=env.get("LOOPLINE_REDIS_URL") or None,
            host=env.get("LOOPLINE_HOST") or "127.0.0.1",
            port=_int(env, "LOOPLINE_PORT", 8080),
            max_body_bytes=_int(env, "LOOPLINE_MAX_BODY_BYTES", 1 << 20),
            max_upload_bytes=_int(env, "LOOPLINE_MAX_UPLOAD_BYTES", 5 << 30),
            max_package_bytes=_int(env, "LOOPLINE_MAX_PACKAGE_BYTES", 100 << 20),
            max_import_bytes=_int(env, "LOOPLINE_MAX_IMPORT_BYTES", 256 << 20),
            execution_lease_seconds=_int(env, "LOOPLINE_EXECUTION_LEASE", 30),
            execution_stop_grace=_int(env, "LOOPLINE_EXECUTION_STOP_GRACE", 10),
            workers=_int(env, "LOOPLINE_WORKERS", 2),
            plugins_enabled=env.get("LOOPLINE_DISABLE_PLUGINS", "") in ("", "0", "false"),
            plugin_modules=tuple(
                m.strip() for m in env.get("LOOPLINE_PLUGINS", "").split(",") if m.strip()
            ),
        )


def normalise_database_url(url: str) -> str:
    """Accept the URLs people write (``postgresql://``, ``sqlite:///``) and pick the async driver."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        return "postgresql+asyncpg://" + url[len("postgresql://") :]
    if url.startswith("sqlite"):
        return on_this_driver(url)
    return url
