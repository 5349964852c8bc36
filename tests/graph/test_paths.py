"""Remote paths: whatever a client sends, an accepted path stays inside its dataset."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from graph.domain import paths
from graph.domain.errors import InvalidInput

segment = st.text(st.characters(blacklist_categories=("Cs",)), min_size=0, max_size=12)


@given(st.lists(st.one_of(segment, st.sampled_from([".", "..", "", "\\", "a\x00"])), max_size=6))
def test_accepted_paths_are_clean_and_stable(parts: list[str]) -> None:
    raw = "/".join(parts)
    try:
        directory, name = paths.split(raw)
    except InvalidInput as refused:
        assert refused.details["field"] == "path"
        return
    full = paths.join(directory, name)
    segments = full.split("/")[1:]
    assert full.startswith("/") and "" not in segments
    assert not {".", ".."} & set(segments)
    assert not any(ch == "\\" or ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F for ch in full)
    assert paths.split(full) == (directory, name)  # normal form is a fixed point
    assert paths.ancestors(directory) == [
        "/" + "/".join(segments[: i + 1]) for i in range(len(segments) - 1)
    ]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("a/b.jpg", ("/a", "b.jpg")), ("//a//b.jpg", ("/a", "b.jpg")), ("/x", ("/", "x"))],
)
def test_paths_are_normalised(raw: str, expected: tuple[str, str]) -> None:
    assert paths.split(raw) == expected


@pytest.mark.parametrize("raw", ["", "/", "../x", "a/../../x", "a\\b", "a/\x7fb", "a/./b"])
def test_paths_that_could_escape_or_confuse_are_refused(raw: str) -> None:
    with pytest.raises(InvalidInput):
        paths.split(raw)
