"""Named roles held by one process at a time (the scheduler's dispatch, cron and reaping), so
any number of schedulers can run: one works, the others wait to take over."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import or_, update

from graph.db.engine import dialect_insert
from graph.db.tables import Lease, utcnow
from graph.domain.platform import Platform

__all__ = ["hold", "release"]


async def hold(platform: Platform, name: str, holder: str, seconds: float) -> bool:
    """Take or renew ``name`` for ``seconds``; False while another holder's lease runs."""
    now = utcnow()
    until = now + timedelta(seconds=seconds)
    async with platform.db.write() as session:
        renewed = await session.execute(
            update(Lease)
            .where(Lease.name == name, or_(Lease.holder == holder, Lease.expires_at < now))
            .values(holder=holder, expires_at=until)
        )
        if renewed.rowcount:
            return True
        taken = await session.execute(
            dialect_insert(session)(Lease)
            .values(name=name, holder=holder, expires_at=until)
            .on_conflict_do_nothing(index_elements=["name"])
        )
        return bool(taken.rowcount)


async def release(platform: Platform, name: str, holder: str) -> None:
    async with platform.db.write() as session:
        await session.execute(
            update(Lease)
            .where(Lease.name == name, Lease.holder == holder)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
