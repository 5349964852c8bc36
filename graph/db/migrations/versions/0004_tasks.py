"""tasks, assignments, task items and their status history

Revision ID: 0004
Revises: 0003

``tasks`` (annotation and QA work on a dataset's items), ``assignments`` (an assignee's share of
a task), ``task_items`` (an item in a task: its assignment and its status there) and
``task_item_statuses`` (who set or cleared each status, when, from what) and
``task_item_scores`` (the agreement of a consensus item's annotators).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _stamps() -> list[sa.Column]:
    return [
        sa.Column("id", sa.String(length=24), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    ]


def _key(table: str, column: str, target: str, ondelete: str | None) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=op.f(f"fk_{table}_{column}_{target}"), ondelete=ondelete
    )


def upgrade() -> None:
    op.create_table(
        "tasks",
        sa.Column("project_id", sa.String(length=24), nullable=False),
        sa.Column("dataset_id", sa.String(length=24), nullable=False),
        sa.Column("recipe_id", sa.String(length=24), nullable=True),
        sa.Column("parent_task_id", sa.String(length=24), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("owner", sa.String(length=320), nullable=False),
        sa.Column("due_date", sa.DateTime(timezone=True), nullable=True),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("statuses", _json(), nullable=False),
        sa.Column("dql", sa.Text(), nullable=True),
        sa.Column("filter", _json(), nullable=False),
        sa.Column("distribution", sa.String(length=16), nullable=False),
        sa.Column("batch_size", sa.Integer(), nullable=True),
        sa.Column("max_batch_workload", sa.Integer(), nullable=True),
        sa.Column("consensus_percentage", sa.Integer(), nullable=True),
        sa.Column("consensus_copies", sa.Integer(), nullable=True),
        sa.Column("items_count", sa.Integer(), nullable=False),
        sa.Column("creator", sa.String(length=320), nullable=False),
        *_stamps(),
        _key("tasks", "dataset_id", "datasets", "CASCADE"),
        _key("tasks", "parent_task_id", "tasks", "CASCADE"),
        _key("tasks", "project_id", "projects", "CASCADE"),
        _key("tasks", "recipe_id", "recipes", None),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tasks")),
        sa.UniqueConstraint("project_id", "name", name=op.f("uq_tasks_project_id_name")),
    )
    for column in ("dataset_id", "parent_task_id", "recipe_id"):
        op.create_index(op.f(f"ix_tasks_{column}"), "tasks", [column])
    op.create_table(
        "assignments",
        sa.Column("task_id", sa.String(length=24), nullable=False),
        sa.Column("assignee_id", sa.String(length=24), nullable=False),
        sa.Column("load", sa.Float(), nullable=True),
        *_stamps(),
        _key("assignments", "assignee_id", "users", "CASCADE"),
        _key("assignments", "task_id", "tasks", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assignments")),
        sa.UniqueConstraint(
            "task_id", "assignee_id", name=op.f("uq_assignments_task_id_assignee_id")
        ),
    )
    op.create_index(op.f("ix_assignments_assignee_id"), "assignments", ["assignee_id"])
    op.create_table(
        "task_items",
        sa.Column("task_id", sa.String(length=24), nullable=False),
        sa.Column("item_id", sa.String(length=24), nullable=False),
        sa.Column("copy", sa.Integer(), nullable=False),
        sa.Column("assignment_id", sa.String(length=24), nullable=True),
        sa.Column("status", sa.String(length=100), nullable=True),
        sa.Column("status_by", sa.String(length=320), nullable=True),
        sa.Column("status_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("issue", sa.Text(), nullable=True),
        _key("task_items", "assignment_id", "assignments", "SET NULL"),
        _key("task_items", "item_id", "items", "CASCADE"),
        _key("task_items", "task_id", "tasks", "CASCADE"),
        sa.PrimaryKeyConstraint("task_id", "item_id", "copy", name=op.f("pk_task_items")),
    )
    op.create_index(op.f("ix_task_items_item_id"), "task_items", ["item_id"])
    op.create_index(
        "ix_task_items_task_id_assignment_id_status",
        "task_items",
        ["task_id", "assignment_id", "status"],
    )
    op.create_index("ix_task_items_task_id_status", "task_items", ["task_id", "status"])
    free = sa.text("assignment_id IS NULL AND status IS NULL")
    op.create_index(
        "ix_task_items_free",
        "task_items",
        ["task_id", "item_id", "copy"],
        sqlite_where=free,
        postgresql_where=free,
    )
    op.create_table(
        "task_item_scores",
        sa.Column("task_id", sa.String(length=24), nullable=False),
        sa.Column("item_id", sa.String(length=24), nullable=False),
        sa.Column("overall", sa.Float(), nullable=False),
        sa.Column("scores", _json(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        _key("task_item_scores", "item_id", "items", "CASCADE"),
        _key("task_item_scores", "task_id", "tasks", "CASCADE"),
        sa.PrimaryKeyConstraint("task_id", "item_id", name=op.f("pk_task_item_scores")),
    )
    op.create_table(
        "task_item_statuses",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("task_id", sa.String(length=24), nullable=False),
        sa.Column("item_id", sa.String(length=24), nullable=False),
        sa.Column("copy", sa.Integer(), nullable=False),
        sa.Column("assignment_id", sa.String(length=24), nullable=True),
        sa.Column("status", sa.String(length=100), nullable=True),
        sa.Column("previous", sa.String(length=100), nullable=True),
        sa.Column("actor", sa.String(length=320), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        _key("task_item_statuses", "item_id", "items", "CASCADE"),
        _key("task_item_statuses", "task_id", "tasks", "CASCADE"),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_task_item_statuses")),
    )
    op.create_index(
        "ix_task_item_statuses_task_id_item_id", "task_item_statuses", ["task_id", "item_id"]
    )


def downgrade() -> None:
    op.drop_table("task_item_statuses")
    op.drop_table("task_item_scores")
    op.drop_table("task_items")
    op.drop_table("assignments")
    op.drop_table("tasks")
