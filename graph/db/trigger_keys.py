"""Foreign keys that PostgreSQL keeps with statement triggers instead of constraints.

Declared on the tables as any key (SQLite has them as constraints); on PostgreSQL migration
0007 replaces them with triggers checking a statement's rows at once, a row-by-row key check
costing more than the insert itself for a task over many items. Alembic's comparison of the
tables with a database leaves them out there (:func:`include_object`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["TRIGGER_KEYS", "include_object"]

TRIGGER_KEYS = frozenset(
    {
        "fk_task_items_task_id_tasks",
        "fk_task_items_item_id_items",
        "fk_task_items_assignment_id_assignments",
    }
)


def include_object(dialect: str) -> Callable[[Any, str | None, str, bool, Any], bool]:
    """Alembic's ``include_object`` for a database of ``dialect``: every object but, on
    PostgreSQL, the keys triggers keep."""

    def include(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        return not (
            dialect == "postgresql" and type_ == "foreign_key_constraint" and name in TRIGGER_KEYS
        )

    return include
