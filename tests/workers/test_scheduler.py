"""Several schedulers may run: one holds the lease and works, another takes over when the holder
stops renewing it."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import func, select, update

from graph.db.tables import Execution, Lease, utcnow
from graph.domain import datasets, items, leases, services, triggers
from tests.workers.functions import PACKAGE
from workers.scheduler import LEASE, Scheduler


async def test_one_holder_at_a_time_and_a_lapsed_lease_is_taken_over(platform) -> None:
    assert await leases.hold(platform, "role", "a", 30)
    assert not await leases.hold(platform, "role", "b", 30)
    assert await leases.hold(platform, "role", "a", 30)  # renewing
    async with platform.db.write() as session:  # a stops renewing: its lease runs out
        await session.execute(update(Lease).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert await leases.hold(platform, "role", "b", 30)
    assert not await leases.hold(platform, "role", "a", 30)
    await leases.release(platform, "role", "b")
    assert await leases.hold(platform, "role", "a", 30)


async def test_two_schedulers_dispatch_each_event_once(platform, owner, project) -> None:
    service = await services.deploy_service(platform, owner[0], project.id, "fns", PACKAGE)
    trigger = await triggers.create_trigger(
        platform, owner[0], service.id, "every", "on_item", resource="Item", execution_mode="Always"
    )
    dataset = await datasets.create_dataset(platform, owner[0], project.id, "ds")
    first, second = Scheduler(platform, poll=0.01), Scheduler(platform, poll=0.01)
    running = [asyncio.create_task(s.run()) for s in (first, second)]
    try:
        for n in range(20):
            async with platform.db.write() as session:
                await items.insert_items(
                    session, owner[0], dataset, [items.ItemSpec(path=f"/{n}.jpg")]
                )
        for _ in range(200):
            async with platform.db.read() as session:
                made = await session.scalar(
                    select(func.count()).where(Execution.trigger_id == trigger.id)
                )
            if made == 20:
                break
            await asyncio.sleep(0.05)
        async with platform.db.read() as session:
            holder = await session.scalar(select(Lease.holder).where(Lease.name == LEASE))
    finally:
        for s in (first, second):
            s.stopping.set()
        await asyncio.gather(*running)
    assert made == 20
    assert holder in (first.name, second.name)
