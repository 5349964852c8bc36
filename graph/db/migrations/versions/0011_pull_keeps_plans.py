"""PostgreSQL: the pull function may keep its statements' plans

Revision ID: 0011
Revises: 0010

The platform's connections re-plan every statement (``plan_cache_mode = force_custom_plan``,
for DQL's ranges). ``loopline_pull``'s statements may keep a plan (``auto``): PostgreSQL goes on
re-planning one whose kept plan would cost more, as the take's with its LIMIT. 200 pulls one
after another, alternating the two in one process: 1.71-2.71 ms a pull (mean 2.11) against
1.83-3.52 (mean 2.60).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PULL = "loopline_pull(varchar, varchar, timestamptz)"


def upgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute(f"ALTER FUNCTION {_PULL} SET plan_cache_mode = auto")


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute(f"ALTER FUNCTION {_PULL} RESET plan_cache_mode")
