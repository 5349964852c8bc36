"""task counts: a task's progress without reading its items

Revision ID: 0006
Revises: 0005

``task_counts`` holds each task's ``task_items`` rows per (assignment, status), ``""`` for none;
the key with neither holds all of the task's rows (graph/domain/task_counts.py keeps them).
Filled here from the items of the tasks there are.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "task_counts",
        sa.Column("task_id", sa.String(length=24), nullable=False),
        sa.Column("assignment_id", sa.String(length=24), nullable=False),
        sa.Column("status", sa.String(length=100), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["task_id"],
            ["tasks.id"],
            name=op.f("fk_task_counts_task_id_tasks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("task_id", "assignment_id", "status", name=op.f("pk_task_counts")),
    )
    op.execute(
        "INSERT INTO task_counts (task_id, assignment_id, status, n) "
        "SELECT task_id, coalesce(assignment_id, ''), coalesce(status, ''), count(*) "
        "FROM task_items WHERE assignment_id IS NOT NULL OR status IS NOT NULL "
        "GROUP BY task_id, assignment_id, status"
    )
    op.execute(
        "INSERT INTO task_counts (task_id, assignment_id, status, n) "
        "SELECT id, '', '', (SELECT count(*) FROM task_items WHERE task_id = tasks.id) "
        "FROM tasks"
    )


def downgrade() -> None:
    op.drop_table("task_counts")
