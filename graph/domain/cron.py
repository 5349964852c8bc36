"""Cron triggers: each due instant fires once, however many schedulers run.

An instant is due when ``next_at`` has passed. It fires an execution keyed by trigger and
instant (``dedupe_key``), so two schedulers firing it make one execution, and ``next_at``
advances with a conditional UPDATE. After downtime, instants missed by more than
:data:`ON_TIME` are not all replayed: only the latest ``maxCatchUp`` of them fire (default 1,
0 for none), so a scheduler back after a weekend does not start a storm.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, update

from graph.db.tables import Service, Trigger, utcnow
from graph.domain.executions import enqueue, insert_executions
from graph.domain.platform import Platform
from graph.domain.triggers import as_utc, next_instant
from graph.queue import Queued

__all__ = ["ON_TIME", "due_instants", "fire_due"]

ON_TIME = timedelta(seconds=60)
_MAX_SCAN = 10_000  # instants looked at per trigger after a long downtime


def due_instants(cron: str, next_at: datetime, now: datetime, max_catch_up: int) -> list[datetime]:
    """The instants from ``next_at`` up to ``now`` that fire: the on-time ones and the latest
    ``max_catch_up`` of the missed ones."""
    due: list[datetime] = []
    instant = next_at
    while instant <= now and len(due) < _MAX_SCAN:
        due.append(instant)
        instant = next_instant(cron, instant)
    late = [i for i in due if now - i > ON_TIME]
    fresh = [i for i in due if now - i <= ON_TIME]
    return (late[-max_catch_up:] if max_catch_up else []) + fresh


async def fire_due(platform: Platform, now: datetime | None = None) -> int:
    """Fire every active cron trigger's due instants; returns how many executions were created."""
    now = now or utcnow()
    work: list[Queued] = []
    created = 0
    async with platform.db.write() as session:
        triggers = list(
            await session.scalars(
                select(Trigger)
                .where(Trigger.type == "cron", Trigger.active.is_(True), Trigger.next_at <= now)
                .order_by(Trigger.next_at)
            )
        )
        for trigger in triggers:
            assert trigger.cron is not None and trigger.next_at is not None
            old_next = trigger.next_at
            instants = [
                i
                for i in due_instants(trigger.cron, as_utc(old_next), now, trigger.max_catch_up)
                if trigger.end_at is None or i <= as_utc(trigger.end_at)
            ]
            following = next_instant(trigger.cron, now)
            ended = trigger.end_at is not None and following > as_utc(trigger.end_at)
            moved = await session.execute(
                update(Trigger)
                .where(Trigger.id == trigger.id, Trigger.next_at == old_next)
                .values(next_at=None if ended else following)
                .execution_options(synchronize_session=False)
            )
            if not moved.rowcount or not instants:
                continue  # another scheduler took these instants
            service = await session.get(Service, trigger.service_id)
            assert service is not None
            queued = await insert_executions(
                session,
                service,
                trigger.function_name,
                [dict(trigger.input)] * len(instants),
                creator=trigger.creator,
                trigger_id=trigger.id,
                dedupe_keys=[f"t:{trigger.id}:cron:{i.isoformat()}" for i in instants],
            )
            created += len(queued)
            if service.active:
                work.extend(queued)
    await enqueue(platform, work)
    return created
