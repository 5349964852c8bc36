"""What a platform operation running in a worker is handed besides its input."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Work"]


@dataclass(frozen=True)
class Work:
    """The execution's id, a progress report (``done`` of ``total`` things, named by ``noun``)
    and a line for the execution's log."""

    execution_id: str
    progress: Callable[[int, int | None, str], None]
    log: Callable[[str], None]
