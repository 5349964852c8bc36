"""The only place graph puts work on Redis: queue names, the job's dotted path, execution ids.

Redis carries ids only; the database holds every execution's state. A job lost with Redis (a
restart without persistence, an enqueue after a commit that failed) is found by the scheduler,
which enqueues again the executions still ``created`` whose job no longer exists in Redis. A job
enqueued twice is harmless: a worker runs an execution only after claiming its row.

graph never imports ``workers``; the job is named by its dotted path.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from redis import Redis
from rq import Queue
from rq.job import Job

__all__ = ["DEFAULT_QUEUE", "PLATFORM_QUEUE", "RUN_EXECUTION", "JobQueue", "Queued"]

RUN_EXECUTION = "workers.jobs.run_execution"
DEFAULT_QUEUE = "default"
# the platform's own long operations (clone, merge, sync, bulk updates, exports)
PLATFORM_QUEUE = "platform"


@dataclass(frozen=True)
class Queued:
    """An execution to enqueue; ``job_id`` is chosen before the commit and stored on its row, so
    the scheduler can tell whether Redis still holds the job."""

    execution_id: str
    queue: str
    job_id: str


@dataclass
class JobQueue:
    """RQ queues on one Redis (``url``); ``None`` means no Redis is configured: nothing is
    enqueued and executions wait, ``created``, until a scheduler with a Redis picks them up."""

    url: str | None
    _redis: Redis | None = field(default=None, repr=False)

    @property
    def redis(self) -> Redis:
        if self.url is None:
            raise RuntimeError("no Redis is configured (LOOPLINE_REDIS_URL)")
        if self._redis is None:
            self._redis = Redis.from_url(self.url)
        return self._redis

    def enqueue(self, work: Sequence[Queued]) -> None:
        """Enqueue each execution on its queue in one round trip."""
        if self.url is None or not work:
            return
        by_queue: dict[str, list[Queued]] = {}
        for queued in work:
            by_queue.setdefault(queued.queue, []).append(queued)
        with self.redis.pipeline() as pipe:
            for name, batch in by_queue.items():
                Queue(name, connection=self.redis).enqueue_many(
                    [
                        # the worker enforces the execution's own timeout; results live in the DB
                        Queue.prepare_data(
                            RUN_EXECUTION,
                            args=(q.execution_id,),
                            job_id=q.job_id,
                            timeout=-1,
                            result_ttl=1,
                            failure_ttl=3600,
                        )
                        for q in batch
                    ],
                    pipeline=pipe,
                )
            pipe.execute()

    async def enqueue_async(self, work: Sequence[Queued]) -> None:
        if self.url is not None and work:
            await asyncio.to_thread(self.enqueue, work)

    def lost(self, jobs: Sequence[tuple[str, str]]) -> set[str]:
        """Which of ``(job id, queue)`` no longer wait in their queue: gone from Redis (done,
        or lost with a restart), or taken by a worker that died before claiming the execution
        (the job is then in the queue's intermediate list or marked started)."""
        if not jobs:
            return set()
        queues = sorted({queue for _, queue in jobs})
        with self.redis.pipeline() as pipe:
            for job_id, _ in jobs:
                pipe.hget(Job.key_for(job_id), "status")
            for queue in queues:
                # a few entries at most: workers move jobs out of it as they start them
                pipe.lrange(Queue(queue, connection=self.redis).intermediate_queue_key, 0, -1)
            replies = pipe.execute()
        statuses, taken = replies[: len(jobs)], replies[len(jobs) :]
        in_hand = {job_id.decode() for ids in taken for job_id in ids}
        return {
            job_id
            for (job_id, _), status in zip(jobs, statuses, strict=True)
            if status is None or status != b"queued" or job_id in in_hand
        }

    def close(self) -> None:
        if self._redis is not None:
            self._redis.close()
            self._redis = None
