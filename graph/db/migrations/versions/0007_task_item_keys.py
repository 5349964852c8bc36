"""PostgreSQL: task_items' foreign keys checked a statement at a time, by triggers

Revision ID: 0007
Revises: 0006

PostgreSQL checks a foreign key row by row, a query and a row lock each: creating a task over
100,000 items spent 6 of its 8 seconds on the 300,000 checks of ``task_items``' three keys.
Statement triggers take their place, with the same effect a set at a time:

- the rows a statement inserts are checked in one query per key: the rows they reference locked
  ``FOR KEY SHARE`` (as the key's own check locks them, so a concurrent delete waits for this
  transaction, and a row deleted meanwhile is missed and refused) and counted; a row updated to
  reference another row is checked on its own, as the key checked it; a reference to no row
  fails with the constraint's name and SQLSTATE 23503, as the key did;
- deleting items or tasks deletes their ``task_items`` rows (ON DELETE CASCADE), deleting
  assignments frees theirs (ON DELETE SET NULL), one statement per deleting statement.

The constraints keep their names (``graph.db.trigger_keys``). SQLite keeps its foreign keys,
checked inside its engine at a small cost.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (column, referenced table, on delete)
_KEYS = (
    ("task_id", "tasks", "CASCADE"),
    ("item_id", "items", "CASCADE"),
    ("assignment_id", "assignments", "SET NULL"),
)


def _name(column: str, parent: str) -> str:
    return f"fk_task_items_{column}_{parent}"


def _refuse(column: str, parent: str, value: str) -> str:
    """PL/pgSQL raising what the key raised for ``value`` (an expression) missing."""
    return f"""
            RAISE foreign_key_violation USING
                MESSAGE = 'insert or update on table "task_items" violates foreign key '
                    || 'constraint "{_name(column, parent)}"',
                DETAIL = format('Key ({column})=(%s) is not present in table "{parent}".', {value}),
                CONSTRAINT = '{_name(column, parent)}';"""


def _inserted_check(column: str, parent: str) -> str:
    """PL/pgSQL refusing the statement when a value of ``column`` among the rows it inserted has
    no row in ``parent``; the rows found stay locked until commit."""
    values = f"SELECT DISTINCT {column} FROM added WHERE {column} IS NOT NULL"
    refusal = _refuse(column, parent, "missing")
    return f"""
    SELECT count(*) INTO wanted FROM ({values}) AS v;
    IF wanted > 0 THEN
        SELECT count(*) INTO found
        FROM (SELECT 1 FROM {parent} WHERE id IN ({values}) FOR KEY SHARE) AS p;
        IF found < wanted THEN
            SELECT v.{column} INTO missing FROM ({values}) AS v
            WHERE NOT EXISTS (SELECT 1 FROM {parent} WHERE id = v.{column}) LIMIT 1;{refusal}
        END IF;
    END IF;"""


def _updated_check(column: str, parent: str) -> str:
    """PL/pgSQL refusing a row updated to reference a missing row (an unchanged value is not
    checked again, as a key does not)."""
    refusal = _refuse(column, parent, f"NEW.{column}")
    return f"""
    IF NEW.{column} IS DISTINCT FROM OLD.{column} AND NEW.{column} IS NOT NULL THEN
        PERFORM 1 FROM {parent} WHERE id = NEW.{column} FOR KEY SHARE;
        IF NOT FOUND THEN{refusal}
        END IF;
    END IF;"""


_INSERTED = f"""
CREATE FUNCTION task_items_keys_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    wanted bigint;
    found bigint;
    missing text;
BEGIN{"".join(_inserted_check(column, parent) for column, parent, _ in _KEYS)}
    RETURN NULL;
END $$"""

# an update is checked row by row, and only when it changes a key: most change a status, and a
# statement trigger would capture every updated row to check none
_UPDATED = f"""
CREATE FUNCTION task_items_keys_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN{"".join(_updated_check(column, parent) for column, parent, _ in _KEYS)}
    RETURN NULL;
END $$"""
_CHANGED = " OR ".join(f"OLD.{column} IS DISTINCT FROM NEW.{column}" for column, _, _ in _KEYS)


_DELETES = {
    "tasks": "DELETE FROM task_items WHERE task_id IN (SELECT id FROM removed)",
    "items": "DELETE FROM task_items WHERE item_id IN (SELECT id FROM removed)",
    "assignments": (
        "UPDATE task_items SET assignment_id = NULL WHERE assignment_id IN (SELECT id FROM removed)"
    ),
}


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    for column, parent, _ in _KEYS:
        op.drop_constraint(_name(column, parent), "task_items", type_="foreignkey")
    op.execute(_INSERTED)
    op.execute(_UPDATED)
    op.execute(
        "CREATE TRIGGER task_items_keys_inserted AFTER INSERT ON task_items "
        "REFERENCING NEW TABLE AS added "
        "FOR EACH STATEMENT EXECUTE FUNCTION task_items_keys_inserted()"
    )
    op.execute(
        "CREATE TRIGGER task_items_keys_updated "
        f"AFTER UPDATE OF {', '.join(column for column, _, _ in _KEYS)} ON task_items "
        f"FOR EACH ROW WHEN ({_CHANGED}) EXECUTE FUNCTION task_items_keys_updated()"
    )
    for parent, statement in _DELETES.items():
        op.execute(
            f"CREATE FUNCTION {parent}_deleted_task_items() RETURNS trigger LANGUAGE plpgsql "
            f"AS $$ BEGIN {statement}; RETURN NULL; END $$"
        )
        op.execute(
            f"CREATE TRIGGER {parent}_deleted_task_items AFTER DELETE ON {parent} "
            "REFERENCING OLD TABLE AS removed "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {parent}_deleted_task_items()"
        )


def downgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    for parent in _DELETES:
        op.execute(f"DROP TRIGGER {parent}_deleted_task_items ON {parent}")
        op.execute(f"DROP FUNCTION {parent}_deleted_task_items()")
    for name in ("task_items_keys_inserted", "task_items_keys_updated"):
        op.execute(f"DROP TRIGGER {name} ON task_items")
        op.execute(f"DROP FUNCTION {name}()")
    for column, parent, on_delete in _KEYS:
        op.create_foreign_key(
            _name(column, parent), "task_items", parent, [column], ["id"], ondelete=on_delete
        )
