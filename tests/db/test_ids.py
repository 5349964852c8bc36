"""Entity ids: 24 hex digits, strictly increasing within a process, whatever the batch."""

from __future__ import annotations

import re

import pytest

from graph.db import ids


def test_ids_increase_within_and_across_calls() -> None:
    made = ids.new_ids(1000) + ids.new_ids(1) + [ids.new_id()] + ids.new_ids(50_000)
    assert all(re.fullmatch("[0-9a-f]{24}", i) for i in made)
    assert made == sorted(made) and len(set(made)) == len(made)


def test_a_millisecond_out_of_sequence_numbers_borrows_the_next(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    far = 2**46  # a millisecond ahead of the clock: no new one comes during the test
    monkeypatch.setattr(ids, "_last_ms", far)
    monkeypatch.setattr(ids, "_sequence", ids._MAX_SEQUENCE - 2)
    made = ids.new_ids(5)
    assert made == sorted(made) and len(set(made)) == 5
    assert [int(i[:12], 16) for i in made] == [far, far, far + 1, far + 1, far + 1]
