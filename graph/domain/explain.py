"""``explain``: the SQL a DQL list query runs, the database's plan for it, and a verdict in words.

The statement explained is built the way the list functions build theirs
(``planning.page_select`` with the list's scope and default order, probes included), so what is
explained is what runs. The database plans it (``EXPLAIN QUERY PLAN`` on SQLite,
``EXPLAIN`` on PostgreSQL) but never executes it. The verdict names the declared metadata index
the plan uses, or says the query reads the whole dataset and which ``loopline index add`` would
help.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ClauseElement, ColumnElement, Executable, Select, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler

from dql import ast
from graph.db.tables import MetadataIndex
from graph.domain import annotations, indexes, items, planning, queries
from graph.domain.access import Actor, Role
from graph.domain.datasets import dataset_and_scope
from graph.domain.errors import InvalidInput
from graph.domain.paging import page_size
from graph.domain.platform import Platform

__all__ = ["Explanation", "explain"]


@dataclass(frozen=True)
class Explanation:
    sql: str
    plan: list[str]
    verdict: str
    uses_index: bool


@dataclass(frozen=True)
class _Listing:
    """How a resource's list query selects (that of ``items.list_items`` and
    ``annotations.list_annotations``): its entity and default order, its dataset scope, the
    dataset's counter of its rows, and its relations' resources."""

    listing: planning.Listing
    scope: Callable[[str], list[ColumnElement[bool]]]
    rows: str
    relations: Mapping[str, str]


_LISTINGS = {
    "items": _Listing(items.LISTING, items.listing, "items_count", {"annotations": "annotations"}),
    "annotations": _Listing(
        annotations.LISTING, annotations.listing, "annotations_count", {"item": "items"}
    ),
}


class _Explain(Executable, ClauseElement):
    """``EXPLAIN`` of a statement, compiled with it so its parameters bind as they do when it runs."""

    inherit_cache = False

    def __init__(self, statement: Select[Any]) -> None:
        self.statement = statement


@compiles(_Explain)
def _compile_explain(element: _Explain, compiler: SQLCompiler, **kw: Any) -> str:
    prefix = "EXPLAIN QUERY PLAN" if compiler.dialect.name == "sqlite" else "EXPLAIN"
    return f"{prefix} {compiler.process(element.statement, **kw)}"


async def explain(
    platform: Platform,
    actor: Actor,
    resource: str,
    dataset_id: str,
    dql: str | None = None,
    dataloop: Mapping[str, Any] | None = None,
) -> Explanation:
    """How the first page of ``resource`` in the dataset matching the query would be read."""
    listing = _LISTINGS.get(resource)
    if listing is None:
        raise InvalidInput(
            f"explain covers {' and '.join(_LISTINGS)}, not {resource!r}", field="resource"
        )
    query = queries.parse_query(dql, dataloop, resource=resource)
    async with platform.db.read() as session:
        # an annotator's list: the rows it reaches, planned without the dataset's counts
        dataset, scope = await dataset_and_scope(session, actor, dataset_id, Role.annotator)
        statement, params, _ = await planning.page_select(
            session,
            query,
            resource,
            dataset_id,
            [*listing.scope(dataset_id), *scope.rows(resource)],
            None if scope.limited else getattr(dataset, listing.rows),
            listing.listing,
            page_size(None, platform.settings.max_page_size),
            None,
            scope.viewer,
        )
        plan = await _plan(session, statement, params)
        declared = list(await session.scalars(select(MetadataIndex)))
    # the values are needed to spell out `in` lists (one placeholder per value); they stay bound
    shown = statement.params(params)
    sql = str(
        shown.compile(dialect=session.bind.dialect, compile_kwargs={"render_postcompile": True})
    )
    rows = {"items": dataset.items_count, "annotations": dataset.annotations_count}
    verdict, uses = _verdict(resource, query, plan, declared, rows, platform.db.dialect)
    return Explanation(sql, plan, verdict, uses)


async def _plan(
    session: AsyncSession, statement: Select[Any], params: Mapping[str, Any]
) -> list[str]:
    rows = (await session.execute(_Explain(statement), params)).all()
    if session.bind.dialect.name != "sqlite":
        return [row[0] for row in rows]
    # (id, parent, notused, detail): indent each step below its parent, as the sqlite3 shell does
    depth: dict[int, int] = {0: -1}
    lines = []
    for step, parent, _, detail in rows:
        depth[step] = depth.get(parent, -1) + 1
        lines.append("  " * depth[step] + detail)
    return lines


@dataclass(frozen=True)
class _Access:
    """How the plan reads one table: through an index or not, narrowed by more than the
    dataset (a filter or a probe the index serves) or not (the dataset's rows, all of them)."""

    table: str
    index: str | None
    narrows: bool


_SQLITE_ACCESS = re.compile(
    r"^\s*(?P<how>SCAN|SEARCH) (?P<table>\w+)"
    r"(?: USING (?:COVERING INDEX (?P<covering>\w+)|INDEX (?P<index>\w+)|\w+ PRIMARY KEY))?"
    r"(?: \((?P<condition>.*)\))?"
)
_POSTGRES_ACCESS = re.compile(
    r"(?:Seq Scan on (?P<seq>\w+)"
    r"|Index (?:Only )?Scan (?:Backward )?using (?P<index>\w+) on (?P<table>\w+)"
    r"|Bitmap Index Scan on (?P<bitmap>\w+)"
    r"|Bitmap Heap Scan on (?P<heap>\w+))"
)


# a sort step: SQLite's temporary B-tree for ORDER BY, PostgreSQL's Sort node
_SORTS = re.compile(
    r"TEMP B-TREE FOR (?:RIGHT PART OF )?ORDER BY|(?:^|->)\s*(?:Incremental )?Sort\b"
)


def _narrows(condition: str) -> bool:
    return bool(condition) and (" AND " in condition or "dataset_id" not in condition)


def _accesses(plan: Sequence[str], tables: Collection[str]) -> Iterator[_Access]:
    """Each read of one of ``tables`` in the plan. SQLite shows what a SEARCH constrains after
    the index (a SCAN reads everything); PostgreSQL on the node's ``Index Cond`` line."""
    heap = ""
    for at, line in enumerate(plan):
        if (found := _SQLITE_ACCESS.match(line)) is not None:
            if found["table"] in tables:
                index = found["index"] or found["covering"]
                narrows = found["how"] == "SEARCH" and _narrows(found["condition"] or "")
                yield _Access(found["table"], index, narrows)
            continue
        if (found := _POSTGRES_ACCESS.search(line)) is None:
            continue
        if found["heap"]:  # its Bitmap Index Scan below says how it is narrowed
            heap = found["heap"]
            continue
        table = found["seq"] or found["table"] or heap
        if table not in tables:
            continue
        condition = ""
        if not found["seq"]:
            for detail in plan[at + 1 :]:
                if "->" in detail:
                    break
                if "Index Cond:" in detail:
                    condition = detail
                    break
        yield _Access(table, found["index"] or found["bitmap"], _narrows(condition))


def _json_paths(resource: str, node: ast.Expr | None, dialect: str) -> Iterator[tuple[str, str]]:
    """``(resource, path)`` of each indexable JSON path the filter compares, relations followed."""
    if node is None:
        return
    if isinstance(node, ast.And | ast.Or):
        for item in node.items:
            yield from _json_paths(resource, item, dialect)
    elif isinstance(node, ast.Not):
        yield from _json_paths(resource, node.item, dialect)
    elif isinstance(node, ast.Quantified | ast.Count):
        related = _LISTINGS[resource].relations.get(node.relation)
        if related is not None:
            yield from _json_paths(related, node.where, dialect)
    elif isinstance(node, ast.Compare | ast.In | ast.Like | ast.Exists):
        path = node.field.path
        related = _LISTINGS[resource].relations.get(path[0])
        if related is not None and len(path) > 1:
            resource, path = related, path[1:]
        name = ".".join(path)
        try:
            indexes.expressions(resource, name, dialect)
        except InvalidInput:  # a column, or a path no index can serve
            return
        yield resource, name


def _verdict(
    resource: str,
    query: ast.Query,
    plan: Sequence[str],
    declared: Sequence[MetadataIndex],
    rows: Mapping[str, int],
    dialect: str,
) -> tuple[str, bool]:
    """In words: the declared indexes the plan narrows with, the tables it reads whole (the
    dataset's rows) and the indexes to declare for them; ``True`` when nothing is read whole."""

    def named(on: str, path: str) -> str:
        return path if on == resource else f"{on} {path}"

    by_name = {name: d for d in declared for name in d.sql_indexes.values()}
    accesses = list(_accesses(plan, rows))
    narrowing = list(dict.fromkeys(a.index for a in accesses if a.narrows and a.index))
    declared_uses = [
        f"uses index {n} on {named(by_name[n].resource, by_name[n].path)}"
        for n in narrowing
        if n in by_name
    ]
    whole = list(dict.fromkeys(a.table for a in accesses if not a.narrows))
    if not whole:
        other_uses = [f"uses index {n}" for n in narrowing if n not in by_name]
        return "; ".join(declared_uses + other_uses) or "reads no table", bool(narrowing)
    parts = declared_uses  # beside a scan, other indexes are by the way
    for table in whole:
        if table == resource and not query.order and not any(_SORTS.search(s) for s in plan):
            # read in list order, the page is full after as many rows as it takes to find it
            parts.append(
                f"reads the dataset's {rows[table]:,} rows in list order until a page is full"
            )
        else:
            noun = "rows" if table == resource else table
            parts.append(f"scans the dataset's {rows[table]:,} {noun}")
    have = {(d.resource, d.path) for d in declared}
    paths = list(dict.fromkeys(_json_paths(resource, query.where, dialect)))
    missing = [p for p in paths if p not in have]
    if missing:
        advice = ", ".join(
            f"{named(on, path)} (`{indexes.cli_hint(on, path)}`)" for on, path in missing
        )
        parts.append(f"add an index on {advice}")
    unused = [named(*p) for p in paths if p in have and p[0] in whole]
    if unused:
        parts.append(
            f"the index on {', '.join(unused)} is not used: the filter asks what it cannot "
            "answer (`!=`, `not`, `or` with an unindexed field, `like` without a prefix), or "
            "the database judged reading the list in order faster"
        )
    return "; ".join(parts), False
