"""label counts kept by triggers

Revision ID: 0002
Revises: 0001

``label_counts`` holds how many annotations of each dataset carry each label (the sum of a
label's rows), written by triggers on ``annotations`` so that no write path (the API, workers,
bulk imports, clones, cascading deletes of items and datasets) can forget it. SQLite: row
triggers keep one row per label. PostgreSQL: statement triggers append one row per label a
statement changed, read from the statement's transition tables; nothing is updated in place, so
concurrent writers neither wait nor deadlock; the scheduler folds the rows.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SQLITE_ADD = """
    UPDATE label_counts SET n = n + 1 WHERE dataset_id = NEW.dataset_id AND label IS NEW.label;
    INSERT INTO label_counts (dataset_id, label, n)
    SELECT NEW.dataset_id, NEW.label, 1 WHERE changes() = 0;
"""
_SQLITE_REMOVE = """
    UPDATE label_counts SET n = n - 1 WHERE dataset_id = OLD.dataset_id AND label IS OLD.label;
    DELETE FROM label_counts WHERE dataset_id = OLD.dataset_id AND label IS OLD.label AND n <= 0;
"""
_SQLITE = (
    f"CREATE TRIGGER label_counts_insert AFTER INSERT ON annotations BEGIN {_SQLITE_ADD} END",
    f"CREATE TRIGGER label_counts_delete AFTER DELETE ON annotations BEGIN {_SQLITE_REMOVE} END",
    "CREATE TRIGGER label_counts_update AFTER UPDATE OF label, dataset_id ON annotations "
    "WHEN OLD.label IS NOT NEW.label OR OLD.dataset_id IS NOT NEW.dataset_id "
    f"BEGIN {_SQLITE_REMOVE} {_SQLITE_ADD} END",
)

# (trigger, event, transition tables, the signed rows the statement changed)
_POSTGRESQL = (
    (
        "label_counts_insert",
        "INSERT",
        "NEW TABLE AS added",
        "SELECT dataset_id, label, 1 AS n FROM added",
    ),
    (
        "label_counts_delete",
        "DELETE",
        "OLD TABLE AS removed",
        "SELECT dataset_id, label, -1 AS n FROM removed",
    ),
    (
        "label_counts_update",
        "UPDATE",
        "OLD TABLE AS removed NEW TABLE AS added",
        "SELECT dataset_id, label, -1 AS n FROM removed "
        "UNION ALL SELECT dataset_id, label, 1 AS n FROM added",
    ),
)


def upgrade() -> None:
    op.create_table(
        "label_counts",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("dataset_id", sa.String(length=24), nullable=False),
        sa.Column("label", sa.String(length=512), nullable=True),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_label_counts")),
    )
    op.create_index("ix_label_counts_dataset_id_label", "label_counts", ["dataset_id", "label"])
    op.execute(
        "INSERT INTO label_counts (dataset_id, label, n) "
        "SELECT dataset_id, label, count(*) FROM annotations GROUP BY dataset_id, label"
    )
    if op.get_context().dialect.name == "sqlite":
        for statement in _SQLITE:
            op.execute(statement)
        return
    for name, event, tables, changed in _POSTGRESQL:
        op.execute(
            f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "INSERT INTO label_counts (dataset_id, label, n) "
            f"SELECT dataset_id, label, sum(n) FROM ({changed}) AS changed "
            "GROUP BY dataset_id, label HAVING sum(n) <> 0; "
            "RETURN NULL; END $$"
        )
        op.execute(
            f"CREATE TRIGGER {name} AFTER {event} ON annotations REFERENCING {tables} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {name}()"
        )


def downgrade() -> None:
    postgresql = op.get_context().dialect.name == "postgresql"
    for name in ("label_counts_insert", "label_counts_delete", "label_counts_update"):
        op.execute(f"DROP TRIGGER IF EXISTS {name}" + (" ON annotations" if postgresql else ""))
        if postgresql:
            op.execute(f"DROP FUNCTION IF EXISTS {name}()")
    op.drop_index("ix_label_counts_dataset_id_label", table_name="label_counts")
    op.drop_table("label_counts")
