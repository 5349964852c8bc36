"""PostgreSQL: annotations' foreign keys kept by triggers; a partial index of parents

Revision ID: 0008
Revises: 0007

An import of 100,000 annotations spent a third of its inserts' time on the row-by-row checks of
``annotations``' three keys (item, dataset, parent); they become triggers of the same effect
that check an insert's rows a set at a time (graph/db/trigger_keys.py). SQLite keeps its
constraints. On both databases ``ix_annotations_parent_id`` keeps only the annotations that have
a parent (a pose's points): every other row added an entry of NULL to it, and nothing looks
annotations up by a NULL parent.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from graph.db.trigger_keys import Key, create_statements, drop_statements

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_KEYS = (
    Key("annotations", "item_id", "items", "CASCADE"),
    Key("annotations", "dataset_id", "datasets", "CASCADE"),
    Key("annotations", "parent_id", "annotations", "CASCADE"),
)
_WITH_PARENT = sa.text("parent_id IS NOT NULL")


def upgrade() -> None:
    op.drop_index("ix_annotations_parent_id", table_name="annotations")
    op.create_index(
        "ix_annotations_parent_id",
        "annotations",
        ["parent_id"],
        postgresql_where=_WITH_PARENT,
        sqlite_where=_WITH_PARENT,
    )
    if op.get_context().dialect.name == "postgresql":
        for statement in create_statements(_KEYS):
            op.execute(statement)


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        for statement in drop_statements(_KEYS):
            op.execute(statement)
    op.drop_index("ix_annotations_parent_id", table_name="annotations")
    op.create_index("ix_annotations_parent_id", "annotations", ["parent_id"])
