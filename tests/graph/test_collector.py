"""The collector hold around platform operations: a worker must never be left without cyclic
garbage collection, whatever the operation did."""

from __future__ import annotations

import gc

import pytest

from graph.domain.collector import collections_held


def test_collection_resumes_after_nested_holds_and_failures() -> None:
    assert gc.isenabled()
    with collections_held():
        assert not gc.isenabled()
        with pytest.raises(RuntimeError), collections_held():
            raise RuntimeError("an operation failed inside another")
        assert not gc.isenabled()  # the outer hold is still open
    assert gc.isenabled()


def test_a_hold_leaves_collection_off_when_it_was_off() -> None:
    gc.disable()
    try:
        with collections_held():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
