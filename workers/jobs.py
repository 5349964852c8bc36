"""The job functions RQ runs, by dotted path (graph/queue.py names them). They take ids: the
database holds everything else."""

from __future__ import annotations

from workers.worker import process_runtime

__all__ = ["run_execution"]


def run_execution(execution_id: str) -> None:
    """Claim and run one execution; a no-op when it is not waiting (claimed elsewhere, ended)."""
    process_runtime().run(execution_id)
