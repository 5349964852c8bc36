"""Assertion helpers shared by tests: counting the SQL statements a piece of work runs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import asyncpg
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["StatementLog", "count_statements"]

# transaction control is not work a query does; the SQLite engine also emits BEGIN itself; nor
# is the re-reading of the declared indexes a process does every few seconds (indexes.stored)
_IGNORED = (
    "BEGIN",
    "COMMIT",
    "ROLLBACK",
    "PRAGMA",
    "SAVEPOINT",
    "RELEASE",
    "SELECT METADATA_INDEXES.RESOURCE, METADATA_INDEXES.PATH, METADATA_INDEXES.SQL_INDEXES ",
)


class StatementLog:
    """The statements seen so far; ``len()`` is their number."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    def __len__(self) -> int:
        return len(self.statements)

    def __str__(self) -> str:
        return "\n".join(f"{n}. {s}" for n, s in enumerate(self.statements, 1))


@contextmanager
def count_statements(engine: AsyncEngine) -> Iterator[StatementLog]:
    """Record every SQL statement ``engine`` sends while the block runs (an executemany counts
    once, a ``COPY`` too), leaving out transaction control and the periodic read of the declared
    indexes."""
    log = StatementLog()

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not statement.lstrip().upper().startswith(_IGNORED):
            log.statements.append(" ".join(statement.split()))

    copy = asyncpg.Connection.copy_records_to_table

    async def copied(self: asyncpg.Connection, table_name: str, **given: Any) -> Any:
        # a bulk insert on PostgreSQL (graph/db/bulk.py) goes by COPY, past SQLAlchemy
        log.statements.append(f"COPY {table_name}")
        return await copy(self, table_name, **given)

    event.listen(engine.sync_engine, "before_cursor_execute", seen)
    asyncpg.Connection.copy_records_to_table = copied  # type: ignore[method-assign]
    try:
        yield log
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", seen)
        asyncpg.Connection.copy_records_to_table = copy  # type: ignore[method-assign]
