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
_MAX_SEQUENCE = 0xFFFFFF


def _reseed_after_fork() -> None:
    global _process_bytes
    _process_bytes = os.urandom(3)


os.register_at_fork(after_in_child=_reseed_after_fork)


def new_ids(n: int) -> list[str]:
    """``n`` strictly increasing ids (bulk registration makes hundreds of thousands at once),
    all of the millisecond of the call unless it runs out of sequence numbers."""
    global _last_ms, _sequence
    out: list[str] = []
    with _lock:
        now = time.time_ns() // 1_000_000
        if now > _last_ms:
            _last_ms, _sequence = now, -1
        while len(out) < n:
            if _sequence >= _MAX_SEQUENCE:  # 16M ids in one millisecond: borrow the next
                _last_ms, _sequence = _last_ms + 1, -1
            take = min(n - len(out), _MAX_SEQUENCE - _sequence)
            prefix = f"{_last_ms:012x}{_process_bytes.hex()}"
            out.extend(f"{prefix}{s:06x}" for s in range(_sequence + 1, _sequence + 1 + take))
            _sequence += take
    return out


def new_id() -> str:
    return new_ids(1)[0]
