"""What an annotator reaches: the items given to it in tasks, and their annotations, except that
on an item it annotates as one of several consensus copies it sees only its own work (the copies
stay independent until they are scored): its own annotations, their count, and its own place in
the task (the other copies' statuses say who finished).

The conditions take the user as values, or as bound parameters (:func:`own_work_of_viewer`,
whose values :attr:`Viewer.params` gives), so that DQL relations compiled once serve every
annotator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, String, bindparam, case, func, or_, select

from graph.db.tables import Annotation, Assignment, Item, Task, TaskItem

__all__ = [
    "Viewer",
    "consensus_copies_of",
    "given_to",
    "own_annotated_of_viewer",
    "own_annotations_count_of_viewer",
    "own_count",
    "own_places",
    "own_places_of_viewer",
    "own_work",
    "own_work_of_viewer",
]

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


def _viewer() -> tuple[Any, Any]:
    """The viewer's user id and email, as the parameters :attr:`Viewer.params` gives values."""
    return (
        bindparam(_USER, type_=String(), required=True),
        bindparam(_EMAIL, type_=String(), required=True),
    )


def own_work_of_viewer() -> ColumnElement[bool]:
    """:func:`own_work` of the viewer whose :attr:`Viewer.params` the statement runs with."""
    return own_work(*_viewer())


def _on_copy(user_id: Any, item_id: Any) -> ColumnElement[bool]:
    # uncorrelated: the copies are read once, not per row (nor tied to a task_items row
    # around it, as in the ``tasks`` relation)
    return item_id.in_(consensus_copies_of(user_id).correlate(None))


def own_count(item_id: Any, email: Any) -> Any:
    """The number of annotations ``email`` made on the item ``item_id`` (a column)."""
    return (
        select(func.count())
        .select_from(Annotation)
        .where(Annotation.item_id == item_id, Annotation.creator == email)
        .correlate_except(Annotation)
        .scalar_subquery()
    )


def own_annotations_count_of_viewer() -> ColumnElement[int]:
    """An item's annotation count as the viewer sees it: on its consensus copies, of its own
    annotations only (the others' are out of its sight); elsewhere the item's count."""
    user_id, email = _viewer()
    return case(
        (_on_copy(user_id, Item.id), own_count(Item.id, email)), else_=Item.annotations_count
    )


def own_annotated_of_viewer() -> ColumnElement[bool]:
    """Whether an item is annotated as the viewer sees it (:func:`own_annotations_count_of_viewer`)."""
    user_id, email = _viewer()
    return case((_on_copy(user_id, Item.id), own_count(Item.id, email) > 0), else_=Item.annotated)


def own_places(user_id: Any, table: Any = TaskItem) -> ColumnElement[bool]:
    """The places in tasks (``task_items`` rows, or their history: ``TaskItemStatus``) a user
    sees: on its consensus copies only its own, whose status is its own work; elsewhere all of
    the items'."""
    mine = select(Assignment.id).where(Assignment.assignee_id == user_id).correlate(None)
    return or_(table.assignment_id.in_(mine), ~_on_copy(user_id, table.item_id))


def own_places_of_viewer() -> ColumnElement[bool]:
    """:func:`own_places` of the viewer whose :attr:`Viewer.params` the statement runs with."""
    return own_places(_viewer()[0])
