"""PostgreSQL: task_items' foreign keys kept by triggers

Revision ID: 0007
Revises: 0006

Creating a task over 100,000 items spent 6 of its 8 seconds on the 300,000 row-by-row checks of
``task_items``' three keys. They become triggers of the same effect that check an insert's rows
a set at a time (graph/db/trigger_keys.py). SQLite keeps its constraints.
"""

from collections.abc import Sequence

from alembic import op

from graph.db.trigger_keys import Key, create_statements, drop_statements

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_KEYS = (
    Key("task_items", "task_id", "tasks", "CASCADE"),
    Key("task_items", "item_id", "items", "CASCADE"),
    Key("task_items", "assignment_id", "assignments", "SET NULL"),
)


def upgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        for statement in create_statements(_KEYS):
            op.execute(statement)


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        for statement in drop_statements(_KEYS):
            op.execute(statement)
