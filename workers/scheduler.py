"""The scheduler: dispatches the outbox to event triggers, fires cron triggers, reaps expired
leases, enqueues again what Redis lost and folds the label counts, while it holds the ``scheduler`` lease (so several
can run; one works). Each step is a domain function (graph/domain/dispatch.py, cron.py, runs.py, label_counts.py)
that tests call directly; this module only loops."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import time

from graph.config import Settings
from graph.domain import cron, dispatch, label_counts, leases, runs
from graph.domain.platform import Platform

__all__ = ["Scheduler", "run_scheduler"]

log = logging.getLogger(__name__)

LEASE = "scheduler"


class Scheduler:
    """``poll`` seconds between looks at the outbox when it is empty (the trigger latency);
    reaping, cron and lost-job checks run every ``housekeeping`` seconds."""

    def __init__(
        self, platform: Platform, *, poll: float = 0.05, housekeeping: float = 1.0
    ) -> None:
        self.platform = platform
        self.poll = poll
        self.housekeeping = housekeeping
        self.name = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.stopping = asyncio.Event()

    async def run(self) -> None:
        ttl = max(5.0, self.housekeeping * 5)
        held_until = 0.0
        last_housekeeping = 0.0
        while not self.stopping.is_set():
            try:
                now = time.monotonic()
                if now > held_until - ttl / 2:
                    held = await leases.hold(self.platform, LEASE, self.name, ttl)
                    held_until = now + ttl if held else 0.0
                if not held_until:
                    await self._sleep(ttl / 4)
                    continue
                taken = await dispatch.dispatch(self.platform)
                if time.monotonic() - last_housekeeping >= self.housekeeping:
                    last_housekeeping = time.monotonic()
                    await cron.fire_due(self.platform)
                    await runs.reap(self.platform)
                    await runs.requeue_lost(self.platform)
                    await label_counts.fold(self.platform)
                if not taken:
                    await self._sleep(self.poll)
            except Exception:  # the database or Redis is away: say so, wait, go on
                log.exception("scheduler step failed; retrying")
                await self._sleep(1.0)
        await leases.release(self.platform, LEASE, self.name)

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self.stopping.wait(), seconds)
        except TimeoutError:
            pass


def run_scheduler(settings: Settings) -> None:
    """Run a scheduler until SIGTERM or SIGINT."""

    async def main() -> None:
        platform = Platform.from_settings(settings)
        scheduler = Scheduler(platform)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, scheduler.stopping.set)
        try:
            await scheduler.run()
        finally:
            await platform.close()

    asyncio.run(main())
