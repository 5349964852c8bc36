"""Facets: counts per value of a field over a dataset's items or annotations (``Dataset.facet``,
``Dataset.annotationFacet``), and per range of a number field (``Dataset.histogram``,
``Dataset.annotationHistogram``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry

from graph.api.scalars import JSON, iso
from graph.domain import facets

__all__ = [
    "BINS_ARGUMENT",
    "FIELD_ARGUMENT",
    "LIMIT_ARGUMENT",
    "MAX_ARGUMENT",
    "MIN_ARGUMENT",
    "Facet",
    "FacetValue",
    "Histogram",
]

FIELD_ARGUMENT = strawberry.argument(
    description="A field or JSON path, as DQL names it: `metadata.user.camera`, `dir`, `label`."
)
LIMIT_ARGUMENT = strawberry.argument(
    description=f"How many values to return, the most frequent first (1 to {facets.MAX_LIMIT})."
)

BINS_ARGUMENT = strawberry.argument(description=f"Equal bins, 1 to {facets.MAX_BINS}.")
MIN_ARGUMENT = strawberry.argument(description="The low edge; by default the smallest number.")
MAX_ARGUMENT = strawberry.argument(description="The high edge; by default the largest number.")


def _plain(value: Any) -> Any:
    return iso(value) if isinstance(value, datetime) else value


@strawberry.type
class FacetValue:
    value: JSON
    count: int


@strawberry.type(
    description="The most frequent values of a field among the rows a query matched, most "
    "frequent first; values beyond the limit hold `total - missing - sum(count)` rows."
)
class Facet:
    field: str
    values: list[FacetValue]
    missing: int = strawberry.field(description="Rows without a value (absent, null).")
    total: int = strawberry.field(description="Rows the query matched.")
    distinct: int = strawberry.field(description="Distinct values among them.")

    @classmethod
    def of(cls, found: facets.Facet) -> Facet:
        return cls(
            field=found.field,
            values=[FacetValue(value=_plain(v.value), count=v.count) for v in found.values],
            missing=found.missing,
            total=found.total,
            distinct=found.distinct,
        )


@strawberry.type(
    description="How many rows have a number in each of equal bins between `edges[0]` and "
    "`edges[-1]` (a bin holds its low edge; the last one its high edge too)."
)
class Histogram:
    field: str
    edges: list[float]
    counts: list[int]
    missing: int = strawberry.field(description="Rows without a number there.")
    outside: int = strawberry.field(description="Rows with a number beyond the edges.")
    total: int = strawberry.field(description="Rows the query matched.")

    @classmethod
    def of(cls, found: facets.Histogram) -> Histogram:
        return cls(
            field=found.field,
            edges=found.edges,
            counts=found.counts,
            missing=found.missing,
            outside=found.outside,
            total=found.total,
        )
