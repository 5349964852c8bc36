"""Foreign keys that PostgreSQL keeps with triggers instead of constraints.

PostgreSQL checks a foreign key constraint row by row, a query and a row lock each: a task over
100,000 items spent three quarters of its time on its rows' checks, an import of 100,000
annotations a third of its inserts'. The keys named here are declared on the tables as any key
(SQLite keeps them as constraints: checked inside its engine, they cost it little); on
PostgreSQL migrations replace them with triggers (:func:`create_statements`) of the same effect:

- the rows a statement inserts are checked in one query per key: the rows they reference locked
  ``FOR KEY SHARE`` (as the constraint's check locks them: a concurrent delete waits for this
  transaction, and a row deleted meanwhile is missed by the lock and the insert refused) and
  counted; a few looked up by index, many (a task's items) through one hash join;
- a row updated to reference another row is checked on its own, as the constraint checked it
  (an update changing no key, most of them, is not checked);
- a reference to no row fails with SQLSTATE 23503 and the constraint's name, as it did;
- deleting referenced rows deletes the referencing rows (``CASCADE``) or clears their reference
  (``SET NULL``), one statement per deleting statement.

Alembic's comparison of the tables with a database leaves these keys out on PostgreSQL
(:func:`include_object`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "ANNOTATION_KEYS",
    "TASK_ITEM_KEYS",
    "TRIGGER_KEYS",
    "Key",
    "create_statements",
    "drop_statements",
    "include_object",
    "inserted_function",
]


@dataclass(frozen=True)
class Key:
    """``table.column`` references ``parent.id``; deleting the parent row does ``on_delete``."""

    table: str
    column: str
    parent: str
    on_delete: Literal["CASCADE", "SET NULL"]

    @property
    def name(self) -> str:
        return f"fk_{self.table}_{self.column}_{self.parent}"


TASK_ITEM_KEYS = (
    Key("task_items", "task_id", "tasks", "CASCADE"),
    Key("task_items", "item_id", "items", "CASCADE"),
    Key("task_items", "assignment_id", "assignments", "SET NULL"),
)
ANNOTATION_KEYS = (
    Key("annotations", "item_id", "items", "CASCADE"),
    Key("annotations", "dataset_id", "datasets", "CASCADE"),
    Key("annotations", "parent_id", "annotations", "CASCADE"),
)
TRIGGER_KEYS = frozenset(key.name for key in TASK_ITEM_KEYS + ANNOTATION_KEYS)


def include_object(dialect: str) -> Callable[[Any, str | None, str, bool, Any], bool]:
    """Alembic's ``include_object`` for a database of ``dialect``: every object but, on
    PostgreSQL, the keys triggers keep."""

    def include(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        return not (
            dialect == "postgresql" and type_ == "foreign_key_constraint" and name in TRIGGER_KEYS
        )

    return include


def _refuse(key: Key, value: str) -> str:
    """PL/pgSQL raising what the constraint raised for ``value`` (an expression) missing."""
    return f"""
            RAISE foreign_key_violation USING
                MESSAGE = 'insert or update on table "{key.table}" violates foreign key '
                    || 'constraint "{key.name}"',
                DETAIL = format('Key ({key.column})=(%s) is not present in table "{key.parent}".',
                    {value}),
                CONSTRAINT = '{key.name}';"""


_FEW = 1000  # distinct references an insert's check looks up one by one, by index


def _inserted_check(key: Key) -> str:
    # The rows referenced are locked through a join with the inserted rows when they are many:
    # knowing nothing of the values' distinct count (200, it assumes), the planner would look
    # 100,000 items up one by one by index where a hash join takes half the time. A few (a
    # task, its assignments) are locked once each.
    values = f"SELECT DISTINCT {key.column} FROM added WHERE {key.column} IS NOT NULL"
    refusal = _refuse(key, "missing")
    return f"""
    SELECT count(DISTINCT {key.column}) INTO wanted FROM added;
    IF wanted > 0 AND wanted < {_FEW} THEN
        SELECT count(*) INTO found FROM (
            SELECT 1 FROM {key.parent} WHERE id IN (SELECT {key.column} FROM added)
            FOR KEY SHARE
        ) AS p;
    ELSIF wanted > 0 THEN
        SELECT count(DISTINCT id) INTO found FROM (
            SELECT r.id FROM added JOIN {key.parent} AS r ON r.id = added.{key.column}
            FOR KEY SHARE OF r
        ) AS p;
    END IF;
    IF found < wanted THEN
        SELECT v.{key.column} INTO missing FROM ({values}) AS v
        WHERE NOT EXISTS (SELECT 1 FROM {key.parent} WHERE id = v.{key.column}) LIMIT 1;{refusal}
    END IF;"""


def _updated_check(key: Key) -> str:
    refusal = _refuse(key, f"NEW.{key.column}")
    return f"""
    IF NEW.{key.column} IS DISTINCT FROM OLD.{key.column} AND NEW.{key.column} IS NOT NULL THEN
        PERFORM 1 FROM {key.parent} WHERE id = NEW.{key.column} FOR KEY SHARE;
        IF NOT FOUND THEN{refusal}
        END IF;
    END IF;"""


def _on_delete(key: Key) -> str:
    if key.on_delete == "CASCADE":
        return f"DELETE FROM {key.table} WHERE {key.column} IN (SELECT id FROM removed)"
    return (
        f"UPDATE {key.table} SET {key.column} = NULL WHERE {key.column} IN (SELECT id FROM removed)"
    )


def inserted_function(keys: Sequence[Key]) -> str:
    """SQL (re)creating the function that checks the rows a statement inserts into the table
    of ``keys``."""
    (table,) = {key.table for key in keys}
    return f"""CREATE OR REPLACE FUNCTION {table}_keys_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    wanted bigint;
    found bigint;
    missing text;
BEGIN{"".join(_inserted_check(key) for key in keys)}
    RETURN NULL;
END $$"""


def create_statements(keys: Sequence[Key]) -> list[str]:
    """SQL turning ``keys``, all of one table, from constraints into triggers."""
    (table,) = {key.table for key in keys}
    columns = ", ".join(key.column for key in keys)
    changed = " OR ".join(f"OLD.{key.column} IS DISTINCT FROM NEW.{key.column}" for key in keys)
    statements = [f"ALTER TABLE {table} DROP CONSTRAINT {key.name}" for key in keys]
    statements += [
        inserted_function(keys),
        f"CREATE TRIGGER {table}_keys_inserted AFTER INSERT ON {table} "
        "REFERENCING NEW TABLE AS added "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {table}_keys_inserted()",
        # row by row, and only when a key changes: a statement trigger would capture every
        # updated row (a status, a label) to check none
        f"""CREATE FUNCTION {table}_keys_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN{"".join(_updated_check(key) for key in keys)}
    RETURN NULL;
END $$""",
        f"CREATE TRIGGER {table}_keys_updated AFTER UPDATE OF {columns} ON {table} "
        f"FOR EACH ROW WHEN ({changed}) EXECUTE FUNCTION {table}_keys_updated()",
    ]
    for key in keys:
        # a delete of no rows fires its statement trigger too: the guard ends a key's cascade
        # into its own table
        statements += [
            f"CREATE FUNCTION {key.parent}_deleted_{table}() RETURNS trigger LANGUAGE plpgsql "
            f"AS $$ BEGIN IF EXISTS (SELECT 1 FROM removed) THEN {_on_delete(key)}; END IF; "
            "RETURN NULL; END $$",
            f"CREATE TRIGGER {key.parent}_deleted_{table} AFTER DELETE ON {key.parent} "
            "REFERENCING OLD TABLE AS removed "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {key.parent}_deleted_{table}()",
        ]
    return statements


def drop_statements(keys: Sequence[Key]) -> list[str]:
    """SQL undoing :func:`create_statements`: the triggers dropped, the constraints back."""
    (table,) = {key.table for key in keys}
    statements = []
    for key in keys:
        statements += [
            f"DROP TRIGGER {key.parent}_deleted_{table} ON {key.parent}",
            f"DROP FUNCTION {key.parent}_deleted_{table}()",
        ]
    for name in (f"{table}_keys_inserted", f"{table}_keys_updated"):
        statements += [f"DROP TRIGGER {name} ON {table}", f"DROP FUNCTION {name}()"]
    statements += [
        f"ALTER TABLE {table} ADD CONSTRAINT {key.name} FOREIGN KEY ({key.column}) "
        f"REFERENCES {key.parent} (id) ON DELETE {key.on_delete}"
        for key in keys
    ]
    return statements
