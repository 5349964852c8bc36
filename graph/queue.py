"""The only place graph puts work on Redis: queue names, the job's dotted path, execution ids.

Redis carries ids only; the database holds every execution's state. A job lost with Redis (a
restart without persistence, an enqueue after a commit that failed) is found by the scheduler,
which enqueues again the executions still ``created`` whose job no longer exists in Redis. A job
enqueued twice is harmless: a worker runs an execution only after claiming its row.

graph never imports ``workers``; the job is named by its dotted path.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
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
                            result_ttl=0,
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

    def missing(self, job_ids: Iterable[str]) -> set[str]:
        """The job ids Redis no longer knows (finished, lost with a restart, never enqueued)."""
        ids = list(job_ids)
        if not ids:
            return set()
        with self.redis.pipeline() as pipe:
            for job_id in ids:
                pipe.exists(Job.key_for(job_id))
            found = pipe.execute()
        return {job_id for job_id, exists in zip(ids, found, strict=True) if not exists}

    def close(self) -> None:
        if self._redis is not None:
            self._redis.close()
            self._redis = None
