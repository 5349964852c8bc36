"""How each annotator of a task works: items given and done, pace, and rework.

Read from the status history (graph/domain/item_statuses.py) in one query: an item is done by
whoever last set its status; the pace is the median time between one status set and the
annotator's next in the task (gaps over :data:`BREAK` are breaks, not work); rework counts the
items of an annotator's assignment someone else sent back (cleared with a reviewer's issue).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from graph.db.tables import TaskItem, TaskItemStatus
from graph.domain.access import Actor, Role
from graph.domain.assignments import assignments_of
from graph.domain.platform import Platform
from graph.domain.task_rows import task_for

__all__ = ["BREAK", "AnnotatorStats", "analytics"]

BREAK = 3600.0
"""Seconds between two status sets past which the annotator is taken to have paused."""


@dataclass(frozen=True)
class AnnotatorStats:
    assignee: str
    assigned: int  # items its assignment holds now
    done: int  # of those, with a status
    seconds_per_item: float | None  # median pace; None before two status sets
    reworked: int  # items sent back to it
    rework_rate: float  # reworked / items it set a status on (0 when none)


async def analytics(platform: Platform, actor: Actor, task_id: str) -> list[AnnotatorStats]:
    """Per assignee of the task, in the order the assignments were made. Managers only."""
    async with platform.db.read() as session:
        await task_for(session, actor, task_id, Role.annotationManager)
        assigned = (await assignments_of(session, [task_id]))[task_id]
        held = {
            (assignment_id, bool(has_status)): n
            for assignment_id, has_status, n in (
                await session.execute(
                    select(TaskItem.assignment_id, TaskItem.status.is_not(None), func.count())
                    .where(TaskItem.task_id == task_id)
                    .group_by(TaskItem.assignment_id, TaskItem.status.is_not(None))
                )
            ).all()
        }
        history = (
            await session.execute(
                select(
                    TaskItemStatus.item_id,
                    TaskItemStatus.assignment_id,
                    TaskItemStatus.status,
                    TaskItemStatus.previous,
                    TaskItemStatus.actor,
                    TaskItemStatus.created_at,
                )
                .where(TaskItemStatus.task_id == task_id)
                .order_by(TaskItemStatus.seq)
            )
        ).all()
    email_of = {a.id: email for a, email in assigned}
    touched: dict[str, set[str]] = defaultdict(set)
    moments: dict[str, list[datetime]] = defaultdict(list)
    sent_back: dict[str, set[str]] = defaultdict(set)
    for item_id, assignment_id, status, previous, by, at in history:
        if status is not None:
            touched[by].add(item_id)
            moments[by].append(at)
        elif previous is not None and assignment_id in email_of and by != email_of[assignment_id]:
            sent_back[email_of[assignment_id]].add(item_id)
    out = []
    for assignment, email in assigned:
        given = held.get((assignment.id, True), 0) + held.get((assignment.id, False), 0)
        paces = [
            gap
            for earlier, later in zip(moments[email], moments[email][1:], strict=False)
            if 0 <= (gap := (later - earlier).total_seconds()) <= BREAK
        ]
        worked = len(touched[email])
        out.append(
            AnnotatorStats(
                assignee=email,
                assigned=given,
                done=held.get((assignment.id, True), 0),
                seconds_per_item=statistics.median(paces) if paces else None,
                reworked=len(sent_back[email]),
                rework_rate=len(sent_back[email]) / worked if worked else 0.0,
            )
        )
    return out
