"""PostgreSQL: a pull is one call of a database function

Revision ID: 0010
Revises: 0009

A pull on PostgreSQL was two statements (the check of what the caller may pull, then the take
with its count), two round trips and the platform's work for each; with 20 annotators pulling
at once on 2 cores, that work was most of a pull's wait. ``loopline_pull`` does both in one
call, and locks the caller's assignment first, so that one annotator's pulls at the same
instant go one after another, each seeing what the one before it took (no more than
``maxBatchWorkload`` held). It returns the task's fields the caller's errors are told from,
the caller's role and assignment, what it held before, and the ids it took (none unless it
may pull). SQLite builds the same statements in the application.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PULL = """
CREATE OR REPLACE FUNCTION loopline_pull(p_task varchar, p_user varchar, p_now timestamptz)
RETURNS TABLE (project_id varchar, name varchar, distribution varchar, status varchar,
               batch_size integer, max_batch_workload integer, role varchar, mine varchar,
               holding bigint, items varchar[])
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    wanted integer;
BEGIN
    SELECT t.project_id, t.name, t.distribution, t.status, t.batch_size, t.max_batch_workload,
           (SELECT m.role FROM members m WHERE m.project_id = t.project_id AND m.user_id = p_user)
    INTO project_id, name, distribution, status, batch_size, max_batch_workload, role
    FROM tasks t WHERE t.id = p_task;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    -- one pull of an assignee at a time: the next one reads what this one took (a statement
    -- after the lock sees what the pull before it committed)
    SELECT a.id INTO mine FROM assignments a
    WHERE a.task_id = p_task AND a.assignee_id = p_user FOR NO KEY UPDATE;
    SELECT coalesce((SELECT c.n FROM task_counts c
                     WHERE c.task_id = p_task AND c.assignment_id = mine AND c.status = ''), 0)
    INTO holding;
    items := '{}';
    IF mine IS NOT NULL AND distribution = 'pulling' AND status = 'active' THEN
        wanted := least(coalesce(batch_size, 0), coalesce(max_batch_workload, 0) - holding);
        IF wanted > 0 THEN
            -- the free rows locked and limited once (materialized), skipping those another
            -- pull holds, then given by key, each checked free again on the row it locks
            WITH free AS MATERIALIZED (
                SELECT ti.item_id, ti.copy FROM task_items ti
                WHERE ti.task_id = p_task AND ti.assignment_id IS NULL AND ti.status IS NULL
                ORDER BY ti.item_id, ti.copy LIMIT wanted FOR UPDATE SKIP LOCKED
            ), taken AS (
                UPDATE task_items ti SET assignment_id = mine, assigned_at = p_now
                FROM free
                WHERE ti.task_id = p_task AND ti.assignment_id IS NULL
                  AND ti.item_id = free.item_id AND ti.copy = free.copy
                RETURNING ti.item_id
            )
            SELECT coalesce(array_agg(taken.item_id ORDER BY taken.item_id), '{}')
            INTO items FROM taken;
            IF cardinality(items) > 0 THEN
                INSERT INTO task_counts AS c (task_id, assignment_id, status, n)
                VALUES (p_task, mine, '', cardinality(items))
                ON CONFLICT (task_id, assignment_id, status) DO UPDATE SET n = c.n + excluded.n;
            END IF;
        END IF;
    END IF;
    RETURN NEXT;
END $$
"""


def upgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute(_PULL)


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute("DROP FUNCTION loopline_pull(varchar, varchar, timestamptz)")
