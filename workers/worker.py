"""A worker process: an RQ worker whose jobs run executions in the process, and the machinery
around one execution (claim, inputs, the function's call, logs, heartbeats, timeout, terminate).

RQ's ``SimpleWorker`` runs jobs in its own process (no fork per job: 2.4x RQ's forking throughput,
and a module is constructed once per process). The function runs on the main thread; the
database work runs on an event loop in a second thread, which also watches the execution: every
tick it renews the lease (and learns whether termination was asked), stores the log lines
written so far, and checks the deadline. To stop a function (terminate, timeout, lost lease) it
raises :class:`Interrupted` in the main thread with a signal; a function stuck where signals
cannot reach it is ended by ending the process after a grace period (its supervisor starts
another: ``loopline serve`` or ``loopline worker``), its execution finished first.

An execution's end (status, output, event) is written on the loop thread while RQ does its own
bookkeeping and takes the next job; that job's claim waits for it, and the worker waits for the
last one before it stops. Killed in between (``kill -9``), the execution keeps its lease and is
run again by the reaper's rules, as when killed a moment before its end was written. A retry's
end is waited for, so its job is back in Redis before RQ looks for the next one.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import inspect
import logging
import os
import shutil
import signal
import socket
import threading
import time
import traceback
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from redis import Redis
from rq import Queue, SimpleWorker
from rq.job import Job, JobStatus
from rq.worker import WorkerStatus
from sqlalchemy import select

from graph.config import Settings
from graph.db.tables import User
from graph.domain import operations, runs
from graph.domain.access import Actor
from graph.domain.errors import DomainError
from graph.domain.platform import Platform
from graph.queue import RUN_EXECUTION
from plugins.functions import ENTITY_TYPES, FunctionSpec, ModuleSpec
from workers import loader, runtime
from workers.capture import LineStream, LogBuffer, LogHandler

__all__ = ["Interrupted", "ProcessRuntime", "process_runtime", "run_worker"]

log = logging.getLogger(__name__)


class Interrupted(BaseException):
    """Raised in a function's thread to stop it (a BaseException: ``except Exception`` in user
    code does not swallow it)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Bridge:
    """An event loop in a daemon thread, for the domain's async calls from synchronous code."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="loopline-db", daemon=True
        )
        self._thread.start()

    def call(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()


@dataclass
class _Running:
    """The execution the process is running now, shared by the main and the loop thread."""

    claim: runs.Claim
    session: runtime.Session
    deadline: float
    log: LogBuffer = field(default_factory=LogBuffer)
    started: float = field(default_factory=time.monotonic)
    reason: str | None = None  # why it is being stopped
    stop_asked_at: float | None = None
    done: bool = False


class ProcessRuntime:
    """Per worker process: the platform (on the loop thread), module instances, the running
    execution. Created once per process (:func:`process_runtime`)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.bridge = _Bridge()
        self.platform: Platform = self.bridge.call(self._platform(settings))
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self.tick = max(0.2, min(1.0, settings.execution_lease_seconds / 3))
        self._instances: dict[tuple[Any, ...], Any] = {}
        self._actors: dict[str, Actor] = {}
        self._accepts: dict[Any, frozenset[str]] = {}
        # one logger per process (loggers are never freed), its handler each execution's
        self._logger = logging.getLogger("loopline.execution")
        self._logger.propagate = False
        self._logger.setLevel(logging.DEBUG)
        self._running: _Running | None = None
        # run_worker's SimpleWorker: an execution's end is written while RQ moves on to the next
        # job (whose claim waits for it); elsewhere (a forking worker) before the job returns
        self.end_in_background = False
        self._ending: concurrent.futures.Future[None] | None = None
        self._main = threading.main_thread().ident
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGUSR1, self._on_interrupt)
        self._watcher = asyncio.run_coroutine_threadsafe(self._watch(), self.bridge.loop)

    @staticmethod
    async def _platform(settings: Settings) -> Platform:
        return Platform.from_settings(settings)

    def close(self) -> None:
        self.settle()
        self._watcher.cancel()
        self.bridge.call(self.platform.close())
        self.bridge.loop.call_soon_threadsafe(self.bridge.loop.stop)

    def _on_interrupt(self, _signum: int, _frame: Any) -> None:
        running = self._running
        if running is not None and running.reason and not running.done:
            raise Interrupted(running.reason)

    # --- one execution ---------------------------------------------------------------------

    def run(self, execution_id: str) -> None:
        claim = self.bridge.call(self._claim(execution_id))
        if claim is None:
            return  # not waiting any more, or its service is paused or busy
        session = runtime.Session(
            self.platform, self._actor(claim), claim.id, claim.attempt, self.bridge.call
        )
        state = _Running(claim, session, time.monotonic() + claim.execution_timeout)
        self._running = state
        outcome: dict[str, Any]
        try:
            outcome = self._call(state)
        except Interrupted as stop:
            outcome = self._stopped(stop.reason, state)
        finally:
            state.done = True
            self._running = None
        if session._scratch is not None:
            shutil.rmtree(session._scratch, ignore_errors=True)
        ending = asyncio.run_coroutine_threadsafe(self._end(state, outcome), self.bridge.loop)
        if self.end_in_background and not outcome.get("retry"):
            self._ending = ending
        else:  # a retry's job is enqueued before RQ looks for the next (a burst sees it)
            ending.result()

    def settle(self) -> None:
        """Wait until the last execution's end is written (before the process stops)."""
        self.bridge.call(self._ended())

    async def _claim(self, execution_id: str) -> runs.Claim | None:
        await self._ended()  # the previous execution's running count and status come first
        return await runs.claim(self.platform, execution_id, self.name)

    async def _ended(self) -> None:
        ending, self._ending = self._ending, None
        if ending is None:
            return
        try:
            await asyncio.wrap_future(ending)
        except Exception:  # the database is away: the lease lapses, the reaper decides
            log.exception("ending an execution failed")

    def _stopped(self, reason: str, state: _Running) -> dict[str, Any]:
        claim = state.claim
        if reason == "terminated":
            return {"status": "terminated", "message": "terminated on request"}
        if reason == "timeout":
            return {
                "status": "failed",
                "error": f"timed out after {claim.execution_timeout} s",
                "retry": claim.on_reset == "rerun",
            }
        return {"status": "failed", "lost": True}

    def _call(self, state: _Running) -> dict[str, Any]:
        claim, session = state.claim, state.session
        if claim.service_id is None and claim.package_name == operations.PACKAGE:
            return self._operate(state)
        try:
            module, function, instance = self._function(claim)
            kwargs = self._inputs(session, function, claim.input)
        except _Unrunnable as exc:
            return {"status": "failed", "error": str(exc)}
        except Exception as exc:  # loading user code failed: its traceback is the log
            self._traceback(state, exc)
            return {"status": "failed", "error": f"{type(exc).__name__}: {exc}", "retry": True}
        action: list[str | None] = [None]

        def report(progress: int | None, message: str | None, action_name: str | None) -> None:
            if action_name is not None:
                allowed = {a for out in function.outputs for a in out.actions}
                if allowed and action_name not in allowed:
                    raise ValueError(f"action {action_name!r} is not one of {sorted(allowed)}")
                action[0] = action_name
            self.bridge.call(
                runs.report_progress(
                    self.platform,
                    claim.id,
                    claim.attempt,
                    progress=progress,
                    message=message,
                    action=action_name,
                )
            )

        method = getattr(instance, function.name)
        takes = self._takes(method)
        logger = self._logger
        handler = LogHandler(state.log)
        logger.addHandler(handler)
        if "progress" in takes:
            kwargs["progress"] = runtime.Progress(
                session, lambda **kw: report(kw["progress"], kw["message"], kw["action"])
            )
        if "context" in takes:
            kwargs["context"] = runtime.Context(
                session,
                project_id=claim.project_id,
                service_id=claim.service_id,
                trigger_id=claim.trigger_id,
                input=claim.input,
                logger=logger,
            )
        out, err = LineStream("stdout", state.log), LineStream("stderr", state.log)
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    result = method(**kwargs)
                finally:
                    out.flush()
                    err.flush()
        except Interrupted:
            raise
        except Exception as exc:
            self._traceback(state, exc)
            return {"status": "failed", "error": f"{type(exc).__name__}: {exc}", "retry": True}
        finally:
            logger.removeHandler(handler)
        try:
            output = _output(function, result)
        except ValueError as exc:
            return {"status": "failed", "error": str(exc)}
        return {"status": "success", "output": output, "action": action[0]}

    def _takes(self, method: Any) -> frozenset[str]:
        """Which of ``progress`` and ``context`` a function accepts (its signature read once)."""
        key = getattr(method, "__func__", method)  # a bound method is made anew each time
        takes = self._accepts.get(key)
        if takes is None:
            parameters = inspect.signature(method).parameters
            any_keyword = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
            takes = frozenset(
                name for name in ("progress", "context") if any_keyword or name in parameters
            )
            self._accepts[key] = takes
        return takes

    def _operate(self, state: _Running) -> dict[str, Any]:
        """One of the platform's own operations: the domain function runs on the loop thread;
        an interrupt cancels it there (its transaction rolls back)."""
        claim, actor = state.claim, state.session.actor
        pending: list[asyncio.Future[Any]] = []

        def progress(done: int, total: int | None, noun: str) -> None:  # on the loop thread
            percent = None if not total else 100 * done // total
            message = f"{done} {noun}" + (" so far" if total is None else f" of {total}")
            report = runs.report_progress(
                self.platform, claim.id, claim.attempt, progress=percent, message=message
            )
            pending.append(asyncio.ensure_future(report))

        work = operations.Work(claim.id, progress, lambda line: state.log.keep("log", line))

        async def operate() -> Any:
            try:
                return await operations.run(
                    self.platform, actor, claim.function_name, claim.input, work
                )
            finally:
                await asyncio.gather(*pending, return_exceptions=True)

        future = asyncio.run_coroutine_threadsafe(operate(), self.bridge.loop)
        try:
            output = future.result()
        except Interrupted:
            future.cancel()
            raise
        except DomainError as exc:
            return {"status": "failed", "error": exc.message}
        except Exception as exc:
            self._traceback(state, exc)
            return {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
        return {"status": "success", "output": output}

    def _traceback(self, state: _Running, exc: BaseException) -> None:
        for line in "".join(traceback.format_exception(exc)).rstrip("\n").split("\n"):
            state.log.keep("stderr", line)

    def _function(self, claim: runs.Claim) -> tuple[ModuleSpec, FunctionSpec, Any]:
        key = (claim.service_id, claim.package_name, claim.module_name, claim.service_version)
        spec = loader.package_spec(self.platform, self.bridge.call, claim)
        module = spec.module(claim.module_name)
        function = module.function(claim.function_name) if module else None
        if module is None or function is None:
            raise _Unrunnable(
                f"{claim.package_name}.{claim.module_name} has no function {claim.function_name!r}"
            )
        instance = self._instances.get(key)
        if instance is None:
            runner = loader.runner(self.platform, self.bridge.call, claim, module)
            instance = runner(**(claim.init_params or {}))
            # one instance per service version: an update of the service builds a new one
            self._instances = {k: v for k, v in self._instances.items() if k[0] != claim.service_id}
            self._instances[key] = instance
        return module, function, instance

    def _inputs(
        self, session: runtime.Session, function: FunctionSpec, given: dict[str, Any]
    ) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        for declared in function.inputs:
            if declared.name not in given:
                continue
            kind, many = declared.type.removesuffix("[]"), declared.type.endswith("[]")
            value = given[declared.name]
            if kind in ENTITY_TYPES and kind != "Execution":
                loaded = [
                    self.bridge.call(_load(session, kind, v)) for v in (value if many else [value])
                ]
                kwargs[declared.name] = loaded if many else loaded[0]
            else:
                kwargs[declared.name] = value
        return kwargs

    def _actor(self, claim: runs.Claim) -> Actor:
        email = claim.service_creator or claim.creator
        actor = self._actors.get(email)
        if actor is None:
            actor = self.bridge.call(_actor_of(self.platform, email))
            self._actors[email] = actor
        return actor

    # --- the watcher, on the loop thread ----------------------------------------------------

    async def _end(self, state: _Running, outcome: dict[str, Any]) -> None:
        """Store the last log lines, then finish the attempt (unless another one owns it)."""
        if state.log.dropped_bytes:
            state.log.note(f"log truncated: {state.log.dropped_bytes} more bytes were written")
        await self._store_lines(state)
        if not outcome.pop("lost", False):
            await runs.finish(self.platform, state.claim, **outcome)

    async def _watch(self) -> None:
        """For the whole process: each tick, the running execution (once it has run a tick) has
        its lease renewed, its log lines stored, its termination and deadline checked."""
        while True:
            await asyncio.sleep(self.tick)
            state = self._running
            if state is None or state.done or time.monotonic() - state.started < self.tick:
                continue
            try:
                await self._check(state)
            except Exception:  # the database is away: the lease may lapse, the reaper decides
                log.exception("heartbeat of execution %s failed", state.claim.id)

    async def _check(self, state: _Running) -> None:
        claim = state.claim
        await self._store_lines(state)
        asked = await runs.heartbeat(self.platform, claim.id, claim.attempt)
        if asked is None:
            self._stop(state, "lost")
        elif asked:
            state.session.terminate.set()
            self._stop(state, "terminated")
        elif time.monotonic() > state.deadline:
            self._stop(state, "timeout")
        grace = self.settings.execution_stop_grace
        if state.stop_asked_at is not None and time.monotonic() - state.stop_asked_at > grace:
            await self._abandon(state)

    def _stop(self, state: _Running, reason: str) -> None:
        if state.done:
            return
        if state.reason is None:
            state.reason, state.stop_asked_at = reason, time.monotonic()
            state.log.note(f"stopping: {reason}")
        if self._main is not None:
            signal.pthread_kill(self._main, signal.SIGUSR1)

    async def _abandon(self, state: _Running) -> None:
        """The function did not stop: finish its execution, then end this process."""
        await self._store_lines(state)
        outcome = self._stopped(state.reason or "lost", state)
        if not outcome.pop("lost", False):
            outcome["error"] = (
                outcome.get("error") or "terminated"
            ) + " (the function did not stop; its worker was restarted)"
            await runs.finish(self.platform, state.claim, **outcome)
        log.error(
            "execution %s did not stop within %d s; ending worker %s",
            state.claim.id,
            self.settings.execution_stop_grace,
            self.name,
        )
        os._exit(75)

    async def _store_lines(self, state: _Running) -> None:
        lines = state.log.take()
        if lines:
            await runs.append_logs(self.platform, state.claim.id, state.claim.attempt, lines)


class _Unrunnable(Exception):
    """The execution cannot run as created (its input is gone, its function no longer exists):
    failed at once, not retried."""


async def _actor_of(platform: Platform, email: str) -> Actor:
    async with platform.db.read() as session:
        user = await session.scalar(select(User).where(User.email == email))
    if user is None:
        raise _Unrunnable(f"the user {email!r} the function runs as no longer exists")
    return Actor(user.id, user.email, user.is_admin)


async def _load(session: runtime.Session, kind: str, value: dict[str, Any]) -> Any:
    from graph.domain import annotations, datasets, items
    from graph.domain.errors import DomainError

    try:
        if kind == "Item":
            return runtime.Item(
                session, await items.get_item(session.platform, session.actor, value["item_id"])
            )
        if kind == "Dataset":
            row = await datasets.get_dataset(session.platform, session.actor, value["dataset_id"])
            return runtime.Dataset(session, row)
        if kind == "Annotation":
            row = await annotations.get_annotation(
                session.platform, session.actor, value["annotation_id"]
            )
            return runtime.Annotation(session, row)
    except DomainError as exc:
        raise _Unrunnable(f"input {kind.lower()}: {exc.message}") from None
    raise _Unrunnable(f"{kind} inputs are not supported yet")


def _output(function: FunctionSpec, result: Any) -> Any:
    """The function's return value as stored: entities as their wire form, JSON otherwise."""

    def plain(value: Any) -> Any:
        if hasattr(value, "to_json") and isinstance(
            value, runtime.Item | runtime.Dataset | runtime.Annotation
        ):
            return value.to_json()
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {str(k): plain(v) for k, v in value.items()}
        return value

    value = plain(result)
    try:
        orjson.dumps(value)
    except TypeError as exc:
        raise ValueError(f"the function returned something that is not JSON: {exc}") from None
    if (
        len(function.outputs) == 1
        and value is not None
        and not (isinstance(value, dict) and set(value) == {function.outputs[0].name})
    ):
        return {function.outputs[0].name: value}
    return value


class _Worker(SimpleWorker):
    """RQ's ``SimpleWorker`` with less bookkeeping in Redis per job (RQ's costs as much as the
    execution: each round trip also waits for the GIL that the loop thread, writing the last
    execution's end, holds), and whose thread listening for RQ's commands (stop, kill the job)
    checks for its own stop every ``_PUBSUB_POLL`` seconds: RQ waits up to 60 s for a message,
    and since redis-py 8.2 stopping the thread waits for it, so each worker took a minute to
    end once its queues were empty."""

    _suspension_checked = float("-inf")

    def subscribe(self) -> None:
        self.pubsub = self.connection.pubsub()
        self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})
        self.pubsub_thread = self.pubsub.run_in_thread(
            sleep_time=_PUBSUB_POLL, daemon=True, exception_handler=self._pubsub_exception_handler
        )

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        """RQ renews the worker's key (a TTL of minutes) three times per job, three round trips
        each; once a second keeps it as alive. Heartbeats in a pipeline or with their own
        timeout (RQ's job monitoring) go out as RQ sends them."""
        last = self.last_heartbeat
        if (
            timeout is None
            and pipeline is None
            and last is not None
            and (datetime.now(UTC) - last).total_seconds() < _HEARTBEAT_EVERY
        ):
            return
        super().heartbeat(timeout, pipeline)

    def set_state(self, state: str, pipeline: Any = None) -> None:
        """RQ marks the worker idle after a job and again before taking the next; the second
        write changes nothing."""
        if pipeline is None and state == self._state:
            return
        super().set_state(state, pipeline)

    def check_for_suspension(self, burst: bool) -> None:
        """RQ asks Redis whether workers are suspended (``rq suspend``) before every job, a
        round trip each; asked once a second, a suspension is honoured as well."""
        if time.monotonic() - self._suspension_checked < _HEARTBEAT_EVERY:
            return
        self._suspension_checked = time.monotonic()
        super().check_for_suspension(burst)

    def handle_execution_ended(self, job: Job, queue: Queue, heartbeat_ttl: int) -> None:
        """RQ stamps the job's heartbeat once more when it returns, a round trip that the write
        of its outcome, next, makes moot."""
        job.ended_at = datetime.now(UTC)

    def handle_job_success(
        self, job: Job, queue: Queue, started_job_registry: Any, execution: Any
    ) -> None:
        """An execution's job has no dependents or repeats and keeps no result in Redis (the
        database holds the outcome): its end is one pipeline, with the worker's idle state,
        where RQ's watches the job's dependents, saves the job and stores its result."""
        if job.func_name != RUN_EXECUTION:
            super().handle_job_success(job, queue, started_job_registry, execution)
            return
        assert job.started_at is not None and job.ended_at is not None
        with self.connection.pipeline() as pipeline:
            self.increment_successful_job_count(pipeline=pipeline)
            self.increment_total_working_time(job.ended_at - job.started_at, pipeline)
            job.set_status(JobStatus.FINISHED, pipeline=pipeline)
            ttl = job.get_result_ttl(self.default_result_ttl)
            job.cleanup(ttl, pipeline=pipeline, remove_from_queue=False)
            self.cleanup_execution(job, pipeline=pipeline, execution=execution)
            self.set_state(WorkerStatus.IDLE, pipeline=pipeline)
            pipeline.execute()


_PUBSUB_POLL = 0.2
_HEARTBEAT_EVERY = 1.0
_runtime: ProcessRuntime | None = None


def process_runtime() -> ProcessRuntime:
    """This process's runtime, made on first use from the environment's settings (or the ones
    given to :func:`run_worker`)."""
    global _runtime
    if _runtime is None:
        _runtime = ProcessRuntime(Settings.from_env())
    return _runtime


def run_worker(
    settings: Settings, queues: list[str], *, burst: bool = False, name: str | None = None
) -> bool:
    """Work on ``queues`` until stopped (or, with ``burst``, until they are empty)."""
    global _runtime
    if settings.redis_url is None:
        raise SystemExit("a worker needs Redis: set LOOPLINE_REDIS_URL")
    if _runtime is None or _runtime.settings != settings:
        if _runtime is not None:
            _runtime.close()
        _runtime = ProcessRuntime(settings)
    connection = Redis.from_url(settings.redis_url)
    worker = _Worker(queues, connection=connection, name=name)
    _runtime.end_in_background = True
    try:
        return bool(worker.work(burst=burst, logging_level="WARNING"))
    finally:
        _runtime.end_in_background = False
        _runtime.settle()
