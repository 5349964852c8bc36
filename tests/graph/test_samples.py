"""A sample of a path's values judges how many rows a range or `in` matches (graph/domain/samples.py):
clearly few, clearly many, or unsure (then the planner counts)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from dql import parse
from graph.domain.samples import LIFETIME, Sample

ROWS, BOUND = 1_000_000, 20_000  # the line between few and many: 2% of the rows


def _sample(numbers=(), texts=(), found=1000, rows=ROWS, drawn=None) -> Sample:
    return Sample(
        found, tuple(sorted(numbers)), tuple(sorted(texts)), rows, drawn or time.monotonic()
    )


@pytest.mark.parametrize(
    ("dql", "verdict"),
    [
        ("metadata.user.score >= 995", "few"),  # 5 of 1000: 5,000 rows give or take
        ("metadata.user.score >= 990", "unsure"),  # 10: 10,000, could be 20,000
        ("metadata.user.score > 900", "many"),  # 99: 99,000, surely above 60,000
        ("metadata.user.score < 30", "unsure"),  # 30: 30,000, maybe not 3 x 20,000
        ("metadata.user.score <= 0", "few"),
        ("metadata.user.score in (1, 2, 3)", "few"),
        ('metadata.user.score > "z"', "few"),  # text: compared with the texts only
        ('metadata.user.camera in ("front", "back")', "many"),
        ('metadata.user.camera = "side"', "few"),
        ('metadata.user.taken > "2024-06-01"', "many"),
        ("metadata.user.score != 3", "unsure"),  # not judged
        ("metadata.user.flag = true", "unsure"),
        ("metadata.user.score > null", "unsure"),
    ],
)
def test_a_sample_judges_clear_cases(dql: str, verdict: str) -> None:
    texts = ["front"] * 300 + ["back"] * 200 + ["2024-07-01T00:00:00+00:00"] * 100
    sample = _sample(numbers=range(1000), texts=texts, found=1000)
    condition = parse(dql.replace("> null", "= null")).where
    assert sample.verdict(condition, ROWS, BOUND) == verdict


def test_dates_compare_as_their_iso_text() -> None:
    sample = _sample(
        texts=["2024-01-01T00:00:00+00:00"] * 500 + ["2025-01-01T00:00:00+00:00"] * 500
    )
    later = parse('metadata.user.taken > "2024-06-01T00:00:00+00:00"').where
    assert sample.verdict(later, ROWS, BOUND) == "many"
    from dql import ast

    as_date = ast.Compare(later.field, ">", datetime(2026, 1, 1, tzinfo=UTC))
    assert sample.verdict(as_date, ROWS, BOUND) == "few"


def test_a_small_or_stale_sample_says_nothing() -> None:
    condition = parse("metadata.user.score > 900").where
    assert _sample(numbers=range(100), found=100).verdict(condition, ROWS, BOUND) == "unsure"
    sample = _sample(numbers=range(1000))
    assert sample.fresh(ROWS) and sample.fresh(int(ROWS * 1.09))
    assert not sample.fresh(int(ROWS * 1.2)) and not sample.fresh(int(ROWS * 0.8))
    old = _sample(numbers=range(1000), drawn=time.monotonic() - LIFETIME - 1)
    assert not old.fresh(ROWS)
