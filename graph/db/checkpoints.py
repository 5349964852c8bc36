"""SQLite's WAL checkpoints on a thread of their own, not inside a writer's commit.

In WAL mode a commit appends pages to the ``-wal`` file; by default the commit that takes the
file past 1000 pages also copies them into the database file and syncs it (a checkpoint), 25-35
ms on this project's machines. Every writer queued behind that commit waits as long: with 20
annotators pulling back to back, one pull in twenty did. So the platform's connections turn the
automatic checkpoint off (``wal_autocheckpoint=0``) and a thread per database file, with its own
connection, runs a ``PASSIVE`` checkpoint every ``interval`` seconds: it copies what no reader
still needs and never blocks readers or writers. The WAL file is reused from its start once it
is all copied, as before.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import weakref
from pathlib import Path

__all__ = ["Checkpointer"]

log = logging.getLogger(__name__)


class Checkpointer:
    """A daemon thread checkpointing the SQLite file at ``path`` until :meth:`stop` (or until
    ``owner`` is garbage collected)."""

    def __init__(self, path: str, owner: object, *, interval: float = 0.5) -> None:
        self.path = path
        self.interval = interval
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="loopline-checkpoint", daemon=True)
        weakref.finalize(owner, self._stopped.set)  # a Database dropped without dispose()
        self._thread.start()

    def _run(self) -> None:
        # mode=rw: a file removed meanwhile is not made anew
        uri = f"{Path(self.path).absolute().as_uri()}?mode=rw"
        connection = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        try:
            connection.execute("PRAGMA busy_timeout=5000")
            while not self._stopped.wait(self.interval):
                try:
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error:  # the file went away, or is locked by another process
                    log.warning("checkpoint of %s failed", self.path, exc_info=True)
        finally:
            connection.close()

    def stop(self) -> None:
        """Stop the thread (the last connection to close checkpoints what is left)."""
        self._stopped.set()
        self._thread.join(timeout=10)
