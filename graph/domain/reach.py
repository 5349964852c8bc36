"""What an annotator reaches: the items given to it in tasks, and their annotations, except that
on an item it annotates as one of several consensus copies it sees only its own (the copies
stay independent until they are scored).

The conditions take the user as values, or as bound parameters (:func:`own_work_of_viewer`,
whose values :attr:`Viewer.params` gives), so that DQL relations compiled once serve every
annotator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, String, bindparam, or_, select

from graph.db.tables import Annotation, Assignment, Task, TaskItem

__all__ = ["Viewer", "consensus_copies_of", "given_to", "own_work", "own_work_of_viewer"]

_USER, _EMAIL = "viewer_user_id", "viewer_email"


@dataclass(frozen=True)
class Viewer:
    """An annotator, whose reach narrows what it reads."""

    user_id: str
    email: str

    @property
    def params(self) -> dict[str, str]:
        """The values of :func:`own_work_of_viewer`'s parameters."""
        return {_USER: self.user_id, _EMAIL: self.email}


def given_to(user_id: Any) -> Select[Any]:
    """The ids of the items given to a user in tasks."""
    return (
        select(TaskItem.item_id)
        .join(
            Assignment,
            (Assignment.id == TaskItem.assignment_id) & (Assignment.task_id == TaskItem.task_id),
        )
        .where(Assignment.assignee_id == user_id)
    )


def consensus_copies_of(user_id: Any) -> Select[Any]:
    """The ids of the items a user annotates as one of several copies in a consensus task."""
    return (
        given_to(user_id)
        .join(Task, Task.id == TaskItem.task_id)
        .where(Task.consensus_copies.is_not(None))
    )


def own_work(user_id: Any, email: Any) -> ColumnElement[bool]:
    """The annotations a user sees on the items it reaches: all of an item's, but on its
    consensus copies only those it created."""
    return or_(Annotation.creator == email, Annotation.item_id.not_in(consensus_copies_of(user_id)))


def own_work_of_viewer() -> ColumnElement[bool]:
    """:func:`own_work` of the viewer whose :attr:`Viewer.params` the statement runs with."""
    return own_work(
        bindparam(_USER, type_=String(), required=True),
        bindparam(_EMAIL, type_=String(), required=True),
    )
