"""What an execution writes, kept for its log: stdout and stderr line by line, the records of its
logger, the worker's own notes; up to a byte budget per attempt, the rest counted."""

from __future__ import annotations

import io
import logging
import threading

__all__ = ["MAX_LOG_BYTES", "LineStream", "LogBuffer", "LogHandler"]

MAX_LOG_BYTES = 1 << 20  # per attempt; the rest is counted, not kept


class LogBuffer:
    """Lines waiting to be stored, shared by the function's thread and the worker's loop."""

    def __init__(self, budget: int = MAX_LOG_BYTES) -> None:
        self._budget = budget
        self._lock = threading.Lock()
        self._lines: list[tuple[str, str]] = []
        self.kept_bytes = 0
        self.dropped_bytes = 0

    def keep(self, stream: str, line: str) -> None:
        size = len(line) + 1
        with self._lock:
            if self.kept_bytes + size > self._budget:
                self.dropped_bytes += size
                return
            self.kept_bytes += size
            self._lines.append((stream, line))

    def note(self, line: str) -> None:
        """A line of the worker's own (``system``), kept whatever the budget."""
        with self._lock:
            self._lines.append(("system", line))

    def take(self) -> list[tuple[str, str]]:
        with self._lock:
            lines, self._lines = self._lines, []
        return lines


class LineStream(io.TextIOBase):
    """A text stream (stdout, stderr) whose complete lines go to a :class:`LogBuffer`."""

    def __init__(self, stream: str, buffer: LogBuffer) -> None:
        self._stream, self._buffer, self._partial = stream, buffer, ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._partial += text
        *lines, self._partial = self._partial.split("\n")
        for line in lines:
            self._buffer.keep(self._stream, line)
        return len(text)

    def flush(self) -> None:
        if self._partial:
            self._buffer.keep(self._stream, self._partial)
            self._partial = ""


class LogHandler(logging.Handler):
    """The records of a function's ``context.logger``, as ``log`` lines."""

    def __init__(self, buffer: LogBuffer) -> None:
        super().__init__()
        self._buffer = buffer
        self.setFormatter(logging.Formatter("%(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        for line in self.format(record).split("\n"):
            self._buffer.keep("log", line)
