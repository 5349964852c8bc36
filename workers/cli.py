"""The ``loopline`` command with the execution side added: ``worker`` and ``scheduler``
(graph's commands cannot import workers, so this module extends graph's group)."""

from __future__ import annotations

import signal
import threading

import click

from graph.cli import main
from graph.config import Settings
from graph.processes import Supervisor, python_module
from graph.queue import DEFAULT_QUEUE, PLATFORM_QUEUE

__all__ = ["main"]

_QUEUES = f"{PLATFORM_QUEUE},{DEFAULT_QUEUE}"


def _queues(value: str) -> list[str]:
    names = [q.strip() for q in value.split(",") if q.strip()]
    if not names:
        raise click.BadParameter("name at least one queue")
    return names


@main.command()
@click.option(
    "--queues", default=_QUEUES, show_default=True, help="Comma-separated queues to work on."
)
@click.option("--processes", default=1, type=click.IntRange(1, 256), show_default=True)
@click.option("--burst", is_flag=True, help="Run what is queued, then exit (one process).")
def worker(queues: str, processes: int, burst: bool) -> None:
    """Run worker processes on QUEUES (needs LOOPLINE_REDIS_URL and the platform's database).

    Each process runs one execution at a time; a process that dies, or that ends itself because
    a function would not stop, is started again."""
    names = _queues(queues)
    settings = Settings.from_env()
    if burst:
        from workers.worker import run_worker

        run_worker(settings, names, burst=True)
        return
    if settings.redis_url is None:
        raise click.UsageError("a worker needs Redis: set LOOPLINE_REDIS_URL")
    supervisor = Supervisor()
    for n in range(processes):
        supervisor.add(f"worker-{n}", python_module("workers", "work", "--queues", ",".join(names)))
    _until_signalled(supervisor)


@main.command(hidden=True)
@click.option("--queues", default=_QUEUES)
def work(queues: str) -> None:
    """One worker process (what ``worker`` and ``serve`` start)."""
    from workers.worker import run_worker

    run_worker(Settings.from_env(), _queues(queues))


@main.command()
def scheduler() -> None:
    """Run the scheduler: trigger dispatch, cron, lease reaping. Several may run; one works."""
    from workers.scheduler import run_scheduler

    run_scheduler(Settings.from_env())


def _until_signalled(supervisor: Supervisor) -> None:
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    supervisor.watch()
    stop.wait()
    supervisor.stop()
