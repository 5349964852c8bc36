"""Entity ids: 24 hex digits that sort in creation order, like Dataloop's ObjectIds.

6 bytes of milliseconds since the epoch, 3 random bytes fixed per process and a 3-byte sequence
within the millisecond. Ids made by one process are strictly increasing; ids made by different
processes collide only if both the millisecond and the process bytes agree. Keyset paging and
``id > x`` filters rely on that order.
"""

from __future__ import annotations

import os
import threading
import time

__all__ = ["new_id", "new_ids"]

_lock = threading.Lock()
_process_bytes = os.urandom(3)
_last_ms = 0
_sequence = 0


def _reseed_after_fork() -> None:
    global _process_bytes
    _process_bytes = os.urandom(3)


os.register_at_fork(after_in_child=_reseed_after_fork)


def new_ids(n: int) -> list[str]:
    """``n`` strictly increasing ids (bulk registration makes hundreds of thousands at once)."""
    global _last_ms, _sequence
    out: list[str] = []
    with _lock:
        for _ in range(n):
            now = time.time_ns() // 1_000_000
            if now > _last_ms:
                _last_ms, _sequence = now, 0
            else:
                _sequence += 1
                if _sequence > 0xFFFFFF:  # more than 16M ids in one millisecond: borrow the next
                    _last_ms, _sequence = _last_ms + 1, 0
            out.append(
                (_last_ms.to_bytes(6, "big") + _process_bytes + _sequence.to_bytes(3, "big")).hex()
            )
    return out


def new_id() -> str:
    return new_ids(1)[0]
