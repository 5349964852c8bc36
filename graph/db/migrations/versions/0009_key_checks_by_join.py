"""PostgreSQL: the key triggers lock many referenced rows through one join

Revision ID: 0009
Revises: 0008

The triggers that keep ``task_items``' and ``annotations``' keys (0007, 0008) looked each
referenced row up by index, one by one: knowing nothing of how many distinct values an insert
holds, the planner took 200. An insert referencing a thousand rows or more now locks them
through a hash join with the inserted rows (a task over 100,000 items: its trigger 570-750 ms,
now about 450). The functions are replaced; the triggers stay. SQLite keeps its constraints.
"""

from collections.abc import Sequence

from alembic import op

from graph.db.trigger_keys import ANNOTATION_KEYS, TASK_ITEM_KEYS, inserted_function

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        for keys in (TASK_ITEM_KEYS, ANNOTATION_KEYS):
            op.execute(inserted_function(keys))


def downgrade() -> None:
    # nothing to undo: the functions check and lock what 0008's did, a faster way
    pass
