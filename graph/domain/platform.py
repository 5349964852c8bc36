"""The platform: settings, database, blob store and plugins that every domain operation uses."""

from __future__ import annotations

from dataclasses import dataclass, field

from graph.config import Settings
from graph.db.engine import Database
from plugins.builtin.local_storage import LocalBackend
from plugins.manager import Plugins

__all__ = ["Platform"]


@dataclass
class Platform:
    settings: Settings
    db: Database
    plugins: Plugins = field(default_factory=Plugins)

    def __post_init__(self) -> None:
        self.blobs = LocalBackend(self.settings.blob_root)

    @classmethod
    def from_settings(cls, settings: Settings, plugins: Plugins | None = None) -> Platform:
        return cls(settings, Database(settings.database_url), plugins or Plugins())

    async def close(self) -> None:
        await self.db.dispose()
