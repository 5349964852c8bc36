"""The platform: settings, database, blob store and plugins that every domain operation uses."""

from __future__ import annotations

from dataclasses import dataclass, field

from graph.config import Settings
from graph.db.engine import Database
from graph.pubsub import Hub
from graph.queue import JobQueue
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
        self.queue = JobQueue(self.settings.redis_url)
        self.hub = Hub(self.settings.redis_url)

    @classmethod
    def from_settings(cls, settings: Settings, plugins: Plugins | None = None) -> Platform:
        plugins = plugins or Plugins(
            entry_points=settings.plugins_enabled, modules=settings.plugin_modules
        )
        return cls(settings, Database(settings.database_url), plugins)

    async def warm(self) -> None:
        """Ready the database for the first burst of requests, as the API starts: the pool's
        connections opened, the hot statements (a pull's) prepared on each."""
        from graph.domain import assignments  # (which imports this module)

        await self.db.warm(assignments.statements_to_prepare(self.db.dialect))

    async def close(self) -> None:
        self.queue.close()
        await self.hub.close()
        await self.db.dispose()
