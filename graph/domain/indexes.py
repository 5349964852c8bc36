"""Declared metadata indexes: an index on a JSON path of items or annotations that DQL queries use.

A database uses an expression index only when the query repeats the indexed expression exactly, so
the SQL indexes are built on the expressions the DQL compiler emits for the path
(:func:`dql.compiler.index_expressions`, the same code that compiles queries), composite with
``dataset_id`` first: every list is scoped to one dataset, and the composite index turns a
dataset-scoped filter into a range search (49 ms -> 0.41 ms at 1M items on SQLite).

- SQLite: one index on the JSON type name and the value (``json_extract``, typed, so strings,
  numbers and booleans alike), then the columns a listing or count also reads (items: ``hidden``
  and the listing order ``type, filename, id``; annotations: ``item_id``): a count never reads a
  table row and an equality filter's first page comes out of the index in list order.
- PostgreSQL: the expressions are stored in generated columns (``GENERATED ALWAYS AS (...)
  STORED``, named by a hash of their definition) and the indexes built on those: one on the
  JSON type name and the text ``(col #>> '{a,b}')`` (string and boolean equality, ``in``, the
  text ``COLLATE "C"`` so ranges and ``like`` prefixes use it too) then the listing order, one
  on the type name and the number (a float cast guarded by ``jsonb_typeof``); both include
  ``hidden``, which an item count also reads. PostgreSQL cannot answer from an index on an
  expression over the JSON column (the expression names a column the index lacks), so a count
  read every matching row (a bitmap heap scan: 230-800 ms for 100k of 1M items); on columns it
  is an index-only scan (about 10 ms), once vacuum (autovacuum, in a live database) has marked
  the table's pages all-visible. The compiler reads the columns instead of the JSON for the
  declared paths: :func:`stored` says which columns a database has, and
  ``graph.domain.queries`` puts them in the field maps.

Indexes are platform-wide (an SQL index covers the whole table), so declaring one is open to
platform administrators and to anyone who is a developer or owner of some project; dropping one to
administrators and to its declarer. Declarations are no secret: every user may list them.
``actor`` None is the operator at the machine (the CLI).

The index is built inside the declaring transaction with a plain ``CREATE INDEX`` (PostgreSQL's
``CONCURRENTLY`` cannot run in a transaction): the declaration and the index appear together or
not at all, and writes to the table wait while it builds (seconds at 1M rows). On PostgreSQL,
adding the generated columns rewrites the whole table (and rebuilds its indexes) under an
exclusive lock, so reads of the table wait too: about a minute for 1M items on a small server,
then a ``VACUUM (ANALYZE)`` of it outside the transaction (see :func:`_vacuum`). When the
execution engine lands this becomes an execution that builds concurrently. An index and a column are named by a hash of their definition:
no user text reaches an SQL identifier (paths are plain segments, written as a literal SQLAlchemy
quotes), and declaring a path again after a release changed the definition replaces the index.

Other processes (API processes, workers) learn of a declaration when they next re-read them, at
most :data:`REFRESH_SECONDS` later (until then they compile the path to the JSON expression: the
same rows, more slowly). So a dropped declaration's columns are dropped only after that long (the
call waits): no process still compiles a query to them.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Table, select, text
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from dql import DQLError
from dql.compiler import FieldMap, IndexExpression, index_expressions
from graph.db.tables import Annotation, Item, Member, MetadataIndex
from graph.domain import events, queries, samples
from graph.domain.access import Actor, Role, require_admin
from graph.domain.errors import Forbidden, InvalidInput, NotFound
from graph.domain.platform import Platform

__all__ = [
    "REFRESH_SECONDS",
    "RESOURCES",
    "Indexable",
    "cli_hint",
    "create_index",
    "drop_index",
    "expressions",
    "list_indexes",
    "resource_of",
    "stored",
]

_MAX_PATH = 512
REFRESH_SECONDS = 2.0
"""How long a process compiles with the declarations it read last (see :func:`stored`)."""


@dataclass(frozen=True)
class Indexable:
    """A resource whose JSON paths may be indexed: its table, its DQL field map, the columns
    that follow the path in its value index (per dialect) and those a PostgreSQL index includes.

    On SQLite the tail is what a listing or count reads besides the path, so neither reads a
    table row per match; on PostgreSQL it is the listing order, so a first page needs no sort,
    and ``include`` what a count reads besides (items: ``hidden``), so it never reads a row."""

    table: Table
    fields: Callable[[], FieldMap]
    tail: Mapping[str, tuple[str, ...]]
    include: tuple[str, ...] = ()


RESOURCES: dict[str, Indexable] = {
    "items": Indexable(
        Item.__table__,
        lambda: queries.item_fields(None),
        {"sqlite": ("hidden", "type", "filename", "id"), "postgresql": ("type", "filename", "id")},
        ("hidden",),
    ),
    "annotations": Indexable(
        Annotation.__table__,
        lambda: queries.annotation_fields(None),
        {"sqlite": ("item_id",), "postgresql": ()},
    ),
}


def resource_of(resource: str) -> Indexable:
    found = RESOURCES.get(resource)
    if found is None:
        raise InvalidInput(
            f"indexes are declared on {' or '.join(RESOURCES)}, not {resource!r}",
            field="resource",
        )
    return found


def cli_hint(resource: str, path: str) -> str:
    """The command that declares the index, as advice in messages."""
    return f"loopline index add {resource} {path}"


def expressions(resource: str, path: str, dialect: str) -> tuple[IndexExpression, ...]:
    """What to index for ``path``; a path that is not an indexable JSON path is invalid input."""
    indexable = resource_of(resource)
    segments = tuple(path.split("."))
    if not path or len(path) > _MAX_PATH or not all(segments):
        raise InvalidInput(
            f"a path is dot-separated names of at most {_MAX_PATH} characters, e.g. "
            "metadata.user.camera",
            field="path",
        )
    try:
        return index_expressions(indexable.fields(), segments, dialect)
    except DQLError as exc:
        raise InvalidInput(exc.message, field="path") from None


# the SQL type of each stored expression; the text in code point order, as DQL compares it
_COLUMN_TYPES = {"text": 'text COLLATE "C"', "type-name": "text", "number": "double precision"}


@dataclass(frozen=True)
class _Build:
    """What declaring a path builds: on PostgreSQL generated columns (expression name, column
    name, column definition), and indexes (what each serves, its name, ``ON table (...)``)."""

    columns: tuple[tuple[str, str, str], ...]
    indexes: tuple[tuple[str, str, str], ...]

    def names(self) -> dict[str, str]:
        return {serves: name for serves, name, _ in self.indexes}


@lru_cache(maxsize=256)
def _build(dialect: Dialect, resource: str, path: str) -> _Build:
    """The columns and indexes for ``path``: the dataset, the path's expressions as the compiler
    renders them (the path a literal, which SQLAlchemy quotes) or, on PostgreSQL, the columns
    holding them, then the resource's tail (and included) columns."""
    indexable = resource_of(resource)
    wanted = expressions(resource, path, dialect.name)
    quote = dialect.identifier_preparer.quote
    table = indexable.table.name
    columns: dict[str, tuple[str, str, str]] = {}
    built = []
    for index in wanted:
        keys = [quote(indexable.table.c.dataset_id.name)]
        for name, expression in zip(index.names, index.expressions, strict=True):
            rendered = _render(dialect, expression)
            if dialect.name == "sqlite":
                keys.append(rendered)
                continue
            definition = f"{_COLUMN_TYPES[name]} GENERATED ALWAYS AS ({rendered}) STORED"
            column = f"meta_{_digest(f'{table} {definition}')}"
            columns[name] = (name, column, definition)
            keys.append(quote(column))
        if index.serves == "values":
            keys.extend(quote(indexable.table.c[c].name) for c in indexable.tail[dialect.name])
        definition = f"ON {quote(table)} ({', '.join(keys)})"
        if dialect.name == "postgresql" and indexable.include:
            definition += f" INCLUDE ({', '.join(quote(c) for c in indexable.include)})"
        built.append((index.serves, _index_name(resource, definition), definition))
    return _Build(tuple(columns.values()), tuple(built))


def _render(dialect: Dialect, expression: Any) -> str:
    return str(
        expression.compile(
            dialect=dialect, compile_kwargs={"literal_binds": True, "include_table": False}
        )
    )


def _digest(definition: str) -> str:
    return hashlib.sha256(definition.encode()).hexdigest()[:16]


def _index_name(resource: str, definition: str) -> str:
    """Named by a hash of what it indexes: no user text in identifiers, and a definition that
    changes (a new release) gets a new index when the path is declared again."""
    return f"ix_meta_{resource}_{_digest(definition)}"


# per engine: when the declarations were read, and the columns they say the database has
_STORED: WeakKeyDictionary[Any, tuple[float, queries.Stored]] = WeakKeyDictionary()


async def stored(session: AsyncSession) -> queries.Stored:
    """The declared paths the database holds in generated columns, as
    :func:`graph.domain.queries.compile_for` takes them (nothing on SQLite).

    Read from the declarations at most every :data:`REFRESH_SECONDS` per engine (a declaration
    made or dropped in this process is seen at once): a declaration's columns are used when its
    indexes are those of the current definition, i.e. it was declared by this release.
    """
    dialect = session.bind.dialect
    if dialect.name != "postgresql":
        return frozenset()
    known = _STORED.get(session.bind)
    now = time.monotonic()
    if known is not None and now < known[0]:
        return known[1]
    found = []
    for resource, path, names in (
        await session.execute(
            select(MetadataIndex.resource, MetadataIndex.path, MetadataIndex.sql_indexes)
        )
    ).all():
        try:
            build = _build(dialect, resource, path)
        except InvalidInput:  # declared by a release that indexed paths this one does not
            continue
        if build.columns and names == build.names():
            found.append((resource, path, tuple((n, c) for n, c, _ in build.columns)))
    result = frozenset(found)
    _STORED[session.bind] = (now + REFRESH_SECONDS, result)
    return result


async def _may_declare(session: AsyncSession, actor: Actor | None) -> None:
    if actor is None or actor.is_admin:
        return
    developer = await session.scalar(
        select(Member.project_id)
        .where(
            Member.user_id == actor.user_id,
            Member.role.in_([Role.developer.name, Role.owner.name]),
        )
        .limit(1)
    )
    if developer is None:
        raise Forbidden(
            "declaring an index needs the developer role in a project, or an administrator",
            needed=Role.developer.name,
        )


async def create_index(
    platform: Platform, actor: Actor | None, resource: str, path: str
) -> MetadataIndex:
    """Declare an index on a JSON ``path`` of ``resource`` and build it; declaring it again
    returns the declaration (and rebuilds an SQL index or column that went missing)."""
    build = _build(platform.db.engine.dialect, resource, path)
    table = resource_of(resource).table.name
    try:
        async with platform.db.write() as session:
            await _may_declare(session, actor)
            declared = await _declared(session, resource, path)
            quote = session.bind.dialect.identifier_preparer.quote
            if build.columns:  # in one statement: the table is rewritten once
                added = ", ".join(
                    f"ADD COLUMN IF NOT EXISTS {quote(column)} {definition}"
                    for _, column, definition in build.columns
                )
                await session.execute(text(f"ALTER TABLE {quote(table)} {added}"))
            for _, name, definition in build.indexes:
                await session.execute(
                    text(f"CREATE INDEX IF NOT EXISTS {quote(name)} {definition}")
                )
            names = build.names()
            if declared is not None and declared.sql_indexes != names:
                for stale in set(declared.sql_indexes.values()) - set(names.values()):
                    await session.execute(text(f"DROP INDEX IF EXISTS {quote(stale)}"))
                declared.sql_indexes = names
            if declared is None:
                declared = MetadataIndex(
                    resource=resource,
                    path=path,
                    sql_indexes=names,
                    creator="" if actor is None else actor.email,
                )
                session.add(declared)
                await session.flush()
                await events.record(
                    session,
                    project_id=None,
                    resource="metadataIndex",
                    action="created",
                    resource_id=declared.id,
                    actor=declared.creator,
                    payload={"resource": resource, "path": path},
                )
    except IntegrityError:  # declared at the same moment by someone else: theirs stands
        async with platform.db.read() as session:
            found = await _declared(session, resource, path)
            if found is None:
                raise
            return found
    finally:
        _STORED.pop(platform.db.engine, None)
    if build.columns:
        await _vacuum(platform, table)
    return declared


async def _vacuum(platform: Platform, table: str) -> None:
    """Mark the rewritten table's pages all-visible (index-only scans read no row only on such
    pages) and gather statistics on the new columns. Autovacuum would, but it counts rows
    changed and a rewrite changes none, so it may not come for a long time."""
    quote = platform.db.engine.dialect.identifier_preparer.quote
    async with platform.db.engine.connect() as connection:
        autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
        await autocommit.exec_driver_sql(f"VACUUM (ANALYZE) {quote(table)}")


async def drop_index(platform: Platform, actor: Actor | None, resource: str, path: str) -> None:
    """Drop a declared index: its SQL indexes and the declaration at once, then (PostgreSQL)
    the generated columns no declaration uses, once every process has stopped compiling to
    them (:data:`REFRESH_SECONDS`)."""
    indexable = resource_of(resource)
    try:
        async with platform.db.write() as session:
            declared = await _declared(session, resource, path)
            if declared is None:
                raise NotFound("index", f"{resource} {path}")
            if actor is not None and actor.email != declared.creator:
                require_admin(actor)
            quote = session.bind.dialect.identifier_preparer.quote
            for name in declared.sql_indexes.values():
                await session.execute(text(f"DROP INDEX IF EXISTS {quote(name)}"))
            await session.delete(declared)
            await events.record(
                session,
                project_id=None,
                resource="metadataIndex",
                action="deleted",
                resource_id=declared.id,
                actor="" if actor is None else actor.email,
                payload={"resource": resource, "path": path},
            )
    finally:
        _STORED.pop(platform.db.engine, None)
        samples.forget(platform.db.engine, resource, path)  # (other processes': LIFETIME)
    if platform.db.dialect == "postgresql":
        await asyncio.sleep(2 * REFRESH_SECONDS)
        await _drop_unused_columns(platform, indexable.table)


async def _drop_unused_columns(platform: Platform, table: Table) -> None:
    """Drop the generated columns of ``table`` that no declaration's definition names."""
    async with platform.db.write() as session:
        dialect = session.bind.dialect
        used = set()
        for resource, path in (
            await session.execute(select(MetadataIndex.resource, MetadataIndex.path))
        ).all():
            try:
                used.update(c for _, c, _ in _build(dialect, resource, path).columns)
            except InvalidInput:
                continue
        present = await session.scalars(
            text(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = "
                "current_schema() AND table_name = :table AND is_generated = 'ALWAYS' "
                "AND column_name LIKE 'meta\\_%'"
            ),
            {"table": table.name},
        )
        quote = dialect.identifier_preparer.quote
        for column in set(present) - used:
            await session.execute(
                text(f"ALTER TABLE {quote(table.name)} DROP COLUMN IF EXISTS {quote(column)}")
            )


async def list_indexes(
    platform: Platform, actor: Actor | None, resource: str | None = None
) -> list[MetadataIndex]:
    """Declared indexes (of one resource, if given), by resource and path; open to every user."""
    statement = select(MetadataIndex).order_by(MetadataIndex.resource, MetadataIndex.path)
    if resource is not None:
        resource_of(resource)
        statement = statement.where(MetadataIndex.resource == resource)
    async with platform.db.read() as session:
        return list(await session.scalars(statement))


async def _declared(session: AsyncSession, resource: str, path: str) -> MetadataIndex | None:
    return await session.scalar(
        select(MetadataIndex).where(MetadataIndex.resource == resource, MetadataIndex.path == path)
    )
