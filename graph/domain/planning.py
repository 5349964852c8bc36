"""Plan choices SQLite cannot make itself, settled by a probe that counts instead of guessing.

A first page in list order can be read two ways: walk the list in order (an index on the sort
keys) testing each row until the page is full, which is quick when the filter matches many rows;
or find the matches (an index on the filter) and sort them, which is quick when it matches few.
SQLite's planner picks by how many rows it expects to match, and it cannot tell: the common builds
have no STAT4, and ``ANALYZE`` records rows per index key prefix, not how values spread. So it
takes a range on an indexed metadata path (``score > 0.999``) to match a quarter of the rows and a
quantifier (``annotations.any(label = "cat")``) to need its related rows gathered first, and
walks or gathers whatever the data: 228 ms and 224 ms at 1M items where the other way takes
1-10 ms.

The probe counts, through the index that serves it, the rows the deciding condition matches, up
to :func:`enough` of them (a fraction of a millisecond to a few). A range or ``in`` on a metadata
path is first judged by a sample of the path's values (graph/domain/samples.py), which spares
the count when it is clearly on one side. Fewer than that, and the
matches are found and sorted; that many or more, and the list is walked. With ``R`` rows in the
dataset, walking finds a page of ``P`` among ``M`` matches after ``P * R / M`` rows, while sorting
reads ``M``: the break-even is ``M = sqrt(P * R * c)``, ``c`` the cost of testing a walked row
over that of reading a match through an index (about 4, measured at 1M items).

Only lists in their default order are planned (an ``order by`` is sorted whichever way the rows
are found), only on SQLite (PostgreSQL keeps value histograms and plans these well), and only
conditions that are a conjunct of the whole filter: a range or ``in`` on a metadata path with a
declared index (through no index a probe would scan), and an ``any`` quantifier, which otherwise
gathers every related match before the first row is returned.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from dql import ast
from graph.db.tables import MetadataIndex
from graph.domain import indexes, queries, samples
from graph.domain.paging import Order, Page
from graph.domain.reach import Viewer

__all__ = ["Listing", "Plan", "enough", "page_select", "plan"]

WALK_COST = 4
"""Cost of testing a row walked in list order over that of reading a match through an index."""

_RANGE = ("<", "<=", ">", ">=")
# the resource a relation of each resource leads to
_RELATED = {"items": {"annotations": "annotations"}, "annotations": {"item": "items"}}


@dataclass(frozen=True)
class Listing:
    """A list's entity and its default order: the order's columns and a function giving an
    entity's values of them."""

    entity: Any
    order: Sequence[Order]
    key: Callable[[Any], Sequence[Any]]


@dataclass(frozen=True)
class Plan:
    """How a first page is read: ``sort_matches`` finds the matches through the filter's index
    and sorts them (see ``queries.keyset_select``); ``correlated`` tests quantifiers row by row
    as the list is walked (see ``dql.compiler.compile_query``). Neither: the database's choice."""

    sort_matches: bool = False
    correlated: bool = False


async def page_select(
    session: AsyncSession,
    query: ast.Query,
    resource: str,
    dataset_id: str,
    scope: Sequence[ColumnElement[bool]],
    rows: int | None,
    listing: Listing,
    page: int,
    after: str | None,
    viewer: Viewer | None = None,
) -> tuple[Select[Any], Mapping[str, Any], Callable[[Sequence[Any]], Page[Any]]]:
    """``queries.keyset_select`` of a page of ``resource`` in the dataset (``rows`` of them,
    ``scope`` the list's conditions) matching ``query``, compiled and ordered as planned, and the
    values of the query's parameters (run it as ``session.execute(statement, params)``).

    ``rows`` None: the list is narrowed further than the dataset (to a folder), which neither
    the probes' dataset-wide counts nor a walk's rate of finding matches describe, so the
    database plans alone. ``viewer``: an annotator, as ``queries.compile_for`` has it."""
    chosen = await plan(session, query, resource, dataset_id, scope, rows, page, viewer)
    dialect = session.bind.dialect.name
    compiled = queries.compile_for(
        query,
        resource,
        dialect,
        dataset_id,
        correlated=chosen.correlated,
        stored=await indexes.stored(session),
        viewer=viewer,
    )
    statement, finish = queries.keyset_select(
        listing.entity,
        scope,
        compiled,
        listing.order,
        listing.key,
        page,
        after,
        sort_matches=chosen.sort_matches,
    )
    return statement, compiled.params, finish


def enough(page: int, rows: int) -> int:
    """Matches from which walking the list in order beats finding and sorting the matches."""
    return max(page, math.isqrt(WALK_COST * page * rows))


async def plan(
    session: AsyncSession,
    query: ast.Query,
    resource: str,
    dataset_id: str,
    scope: Sequence[ColumnElement[bool]],
    rows: int | None,
    page: int,
    viewer: Viewer | None = None,
) -> Plan:
    """The plan for a page of ``page`` rows of ``resource`` in the dataset (``rows`` of them,
    ``scope`` the listing's conditions) matching ``query``; see :func:`page_select`."""
    dialect = session.bind.dialect.name
    if dialect != "sqlite" or rows is None or query.order or query.where is None:
        return Plan()
    where = query.where
    conjuncts = where.items if isinstance(where, ast.And) else (where,)
    bound = enough(page, rows)
    key = queries.fields_for(resource, dataset_id).fields["id"].column
    for conjunct in conjuncts:
        path = _range_path(conjunct)
        if path is None:
            continue
        kept = samples.kept(session, resource, dataset_id, path, rows)
        verdict = "unsure" if kept is None else kept.verdict(conjunct, rows, bound)
        if verdict == "few":
            return Plan(sort_matches=True)
        if verdict == "many":
            continue
        compiled = queries.compile_for(ast.Query(conjunct), resource, "sqlite", dataset_id)
        declared = (
            select(MetadataIndex.id)
            .where(MetadataIndex.resource == resource, MetadataIndex.path == path)
            .exists()
        )
        found = await _count(
            session, [*scope, compiled.where], compiled.params, bound, key, only_if=declared
        )
        if found is not None and kept is None:  # declared: judge the next ones by a sample
            await samples.draw(session, resource, dataset_id, path, scope, rows)
        if found is not None and found < bound:
            return Plan(sort_matches=True)
    for conjunct in conjuncts:
        if isinstance(conjunct, ast.Quantified) and conjunct.quantifier == "any":
            if await _related(session, conjunct, resource, dataset_id, bound, viewer) >= bound:
                return Plan(correlated=True)
    return Plan()


def _range_path(node: ast.Expr) -> str | None:
    """The metadata path of a condition an index on it serves as ranges of exactly the matching
    entries (so a probe reads no more than it counts), but not in list order."""
    if isinstance(node, ast.Compare):
        ranged = node.op in _RANGE
    elif isinstance(node, ast.In):
        ranged = not node.negated and len(node.values) > 1
    else:  # `=` comes out of the index in list order; `like` is tested entry by entry
        return None
    return str(node.field) if ranged and node.field.path[0] == "metadata" else None


async def _related(
    session: AsyncSession,
    node: ast.Quantified,
    resource: str,
    dataset_id: str,
    bound: int,
    viewer: Viewer | None,
) -> int:
    """Rows with a related row matching the quantifier's filter (among those ``viewer`` sees),
    counted up to ``bound``."""
    relation = queries.fields_for(resource, dataset_id, viewer).relations.get(node.relation)
    target = _RELATED.get(resource, {}).get(node.relation)
    if relation is None or target is None:
        return 0  # an unknown relation: compiling the query says so
    where: list[ColumnElement[bool]] = [] if relation.where is None else [relation.where]
    params: Mapping[str, Any] = {} if viewer is None else viewer.params
    if node.where is not None:
        inner = queries.compile_for(
            ast.Query(node.where), target, "sqlite", dataset_id, viewer=viewer
        )
        where.append(inner.where)
        params = inner.params
    return await _count(session, where, params, bound, relation.remote, distinct=True) or 0


async def _count(
    session: AsyncSession,
    where: Sequence[ColumnElement[bool]],
    params: Mapping[str, Any],
    bound: int,
    what: Any,
    *,
    distinct: bool = False,
    only_if: ColumnElement[bool] | None = None,
) -> int | None:
    """Rows (``distinct`` values) of ``what`` matching ``where`` (its parameters' values in
    ``params``), counted up to ``bound`` (where
    the database stops reading); None, without counting, unless ``only_if`` holds."""
    rows = select(what).where(*where).limit(bound)
    if distinct:
        rows = rows.distinct()
    counted = select(func.count()).select_from(rows.subquery())
    if only_if is None:
        return await session.scalar(counted, params)
    # one statement: SQLite tests the condition before it computes the count
    return await session.scalar(select(counted.scalar_subquery()).where(only_if), params)
