"""SQLite: annotation inserts counted by the statement that writes them, not a row trigger

Revision ID: 0005
Revises: 0004

On SQLite the row trigger that counted each inserted annotation in ``label_counts`` cost about
10 microseconds a row whatever its body did (an import of 100,000 boxes spent more time in it
than in the inserts themselves). Its work moves to ``label_counts.insert_annotations``, the one
way annotation rows are inserted, which adds each label's count once per statement. Deletes and
relabels stay with their triggers: cascades from items and datasets reach rows no code path lists.
PostgreSQL keeps its statement trigger, which already counts once per statement.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INSERT_TRIGGER = """
CREATE TRIGGER label_counts_insert AFTER INSERT ON annotations BEGIN
    UPDATE label_counts SET n = n + 1 WHERE dataset_id = NEW.dataset_id AND label IS NEW.label;
    INSERT INTO label_counts (dataset_id, label, n)
    SELECT NEW.dataset_id, NEW.label, 1 WHERE changes() = 0;
END
"""


def upgrade() -> None:
    if op.get_context().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS label_counts_insert")


def downgrade() -> None:
    if op.get_context().dialect.name == "sqlite":
        op.execute(_INSERT_TRIGGER)
