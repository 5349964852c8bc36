"""Python's cyclic garbage collector held back while a platform operation runs.

An import or export makes millions of objects that live for a chunk (its rows stay alive until
the chunk is written), and their number keeps triggering full collections, each of which walks
the whole heap again, the parsed document included: 40% of a 100,000-annotation import. The
operations run in a worker process one at a time; what they drop is still freed at once by
reference counting, and only cycles wait until the operation ends.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["collections_held"]

_held = 0  # how many holds are open (operations nest: an import inside a pipeline, later)
_resume = False  # whether collection was on when the first of them began


@contextmanager
def collections_held() -> Iterator[None]:
    """No cyclic garbage collection inside; as before once the outermost hold ends."""
    global _held, _resume
    if _held == 0:
        _resume = gc.isenabled()
        gc.disable()
    _held += 1
    try:
        yield
    finally:
        _held -= 1
        if _held == 0 and _resume:
            gc.enable()
