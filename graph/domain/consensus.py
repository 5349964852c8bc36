"""Consensus: the agreement of the annotators of a consensus item, and their merged annotations.

A consensus task gives a share of its items to several annotators each (graph/domain/
assignments.py); each annotates its copy, and an annotator's annotations are those it created.
When every copy of an item has a status, the item is scored: for each pair of its annotators,
their annotations are matched one to one (the same type; shapes by the overlap of their bounds,
IoU >= :data:`MATCH`, highest first; shapeless ones such as classes by label), then

- ``label``: matched pairs with the same label over the larger of the two sets (1 when both
  are empty: they agree there is nothing),
- ``iou``: the mean IoU of the matched shapes' bounds (None without shapes),
- ``attributes``: matched pairs with equal attributes over the matched pairs (None without),

and ``overall`` is the mean of those a pair has. An item's scores are its pairs' means; an
annotator's, the mean overall of the pairs it is in. ``merge`` writes, per item, one annotation
for each annotation of the first annotator (by email) that a majority of the annotators drew
(it and its matches): the most common label, the mean box (other shapes: the first
annotator's), the first one's attributes. An object the first annotator missed is not merged.
"""

from __future__ import annotations

import itertools
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from graph.db.bulk import insert_many
from graph.db.tables import Annotation, Assignment, Task, TaskItem, TaskItemScore, User, utcnow
from graph.domain import annotations
from graph.domain.access import Actor, Role
from graph.domain.annotations import AnnotationSpec
from graph.domain.platform import Platform
from graph.domain.task_rows import task_for

__all__ = ["MATCH", "AnnotatorScore", "agreement", "annotator_scores", "merge", "score_done"]

MATCH = 0.5
"""The least IoU of two shapes' bounds that makes them the same object."""


@dataclass(frozen=True)
class AnnotatorScore:
    assignee: str
    items: int  # scored items it annotated
    overall: float | None


def _points(coordinates: Any) -> Iterator[tuple[float, float]]:
    if isinstance(coordinates, dict):
        if isinstance(coordinates.get("x"), int | float) and isinstance(
            coordinates.get("y"), int | float
        ):
            yield float(coordinates["x"]), float(coordinates["y"])
        for value in coordinates.values():
            if isinstance(value, dict | list):
                yield from _points(value)
    elif isinstance(coordinates, list):
        for value in coordinates:
            yield from _points(value)


def _bounds(annotation: Annotation) -> tuple[float, float, float, float] | None:
    points = list(_points(annotation.coordinates))
    if not points:
        return None
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    # a point or a line has no area: half a pixel around it
    return min(xs) - 0.5, min(ys) - 0.5, max(xs) + 0.5, max(ys) + 0.5


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    common = width * height
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - common
    return common / area


def _matches(
    first: Sequence[Annotation], second: Sequence[Annotation]
) -> list[tuple[Annotation, Annotation, float | None]]:
    """One-to-one matches of two annotators' annotations, best first: (a, b, IoU or None)."""
    candidates = []
    for a, b in itertools.product(first, second):
        if a.type != b.type:
            continue
        box_a, box_b = _bounds(a), _bounds(b)
        if box_a is None or box_b is None:
            if box_a is None and box_b is None and a.label == b.label:
                candidates.append((1.0, a, b, None))
            continue
        iou = _iou(box_a, box_b)
        if iou >= MATCH:
            candidates.append((iou, a, b, iou))
    taken: set[str] = set()
    out = []
    for _, a, b, iou in sorted(candidates, key=lambda c: -c[0]):
        if a.id not in taken and b.id not in taken:
            taken.update((a.id, b.id))
            out.append((a, b, iou))
    return out


def _mean(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.fmean(present) if present else None


def agreement(by_annotator: dict[str, list[Annotation]]) -> dict[str, Any]:
    """An item's scores from each annotator's annotations on it (see the module)."""
    pairs = []
    for (x, first), (y, second) in itertools.combinations(sorted(by_annotator.items()), 2):
        matched = _matches(first, second)
        larger = max(len(first), len(second))
        label = sum(a.label == b.label for a, b, _ in matched) / larger if larger else 1.0
        iou = _mean([i for _, _, i in matched])
        attributes = (
            sum((a.attributes or {}) == (b.attributes or {}) for a, b, _ in matched) / len(matched)
            if matched
            else None
        )
        overall = _mean([label, iou, attributes])
        pairs.append(
            {
                "a": x,
                "b": y,
                "label": label,
                "iou": iou,
                "attributes": attributes,
                "overall": overall,
            }
        )
    return {
        "label": _mean([p["label"] for p in pairs]),
        "iou": _mean([p["iou"] for p in pairs]),
        "attributes": _mean([p["attributes"] for p in pairs]),
        "overall": _mean([p["overall"] for p in pairs]) or 0.0,
        "pairs": pairs,
    }


async def _copies(
    session: AsyncSession, task_id: str, item_ids: Sequence[str]
) -> dict[str, list[tuple[str, str | None]]]:
    """Each consensus item's copies: (assignee email, status)."""
    rows = await session.execute(
        select(TaskItem.item_id, User.email, TaskItem.status)
        .join(Assignment, Assignment.id == TaskItem.assignment_id)
        .join(User, User.id == Assignment.assignee_id)
        .where(TaskItem.task_id == task_id, TaskItem.item_id.in_(item_ids))
        .order_by(TaskItem.item_id, TaskItem.copy)
    )
    copies: dict[str, list[tuple[str, str | None]]] = defaultdict(list)
    for item_id, email, status in rows.all():
        copies[item_id].append((email, status))
    return {item: found for item, found in copies.items() if len(found) > 1}


async def _annotations_of(
    session: AsyncSession, item_id: str, emails: Sequence[str]
) -> dict[str, list[Annotation]]:
    found: dict[str, list[Annotation]] = {email: [] for email in emails}
    for row in await session.scalars(
        select(Annotation)
        .where(Annotation.item_id == item_id, Annotation.creator.in_(emails))
        .order_by(Annotation.id)
    ):
        found[row.creator].append(row)
    return found


async def score_done(session: AsyncSession, task: Task, item_ids: Sequence[str]) -> None:
    """Score the consensus items among ``item_ids`` whose every copy now has a status (again,
    if one was scored before and sent back)."""
    if not task.consensus_copies or not item_ids:
        return
    copies = await _copies(session, task.id, item_ids)
    done = [item for item, found in copies.items() if all(s is not None for _, s in found)]
    if not done:
        return
    rows = []
    for item_id in done:
        by_annotator = await _annotations_of(session, item_id, [e for e, _ in copies[item_id]])
        scores = agreement(by_annotator)
        rows.append(
            {
                "task_id": task.id,
                "item_id": item_id,
                "overall": scores["overall"],
                "scores": scores,
                "created_at": utcnow(),
            }
        )
    await session.execute(
        TaskItemScore.__table__.delete().where(
            TaskItemScore.task_id == task.id, TaskItemScore.item_id.in_(done)
        )
    )
    await insert_many(session, TaskItemScore.__table__, rows)


async def item_scores(platform: Platform, actor: Actor, task_id: str) -> list[TaskItemScore]:
    """The task's scored consensus items, lowest agreement first. Managers only."""
    async with platform.db.read() as session:
        await task_for(session, actor, task_id, Role.annotationManager)
        return list(
            await session.scalars(
                select(TaskItemScore)
                .where(TaskItemScore.task_id == task_id)
                .order_by(TaskItemScore.overall, TaskItemScore.item_id)
            )
        )


async def annotator_scores(platform: Platform, actor: Actor, task_id: str) -> list[AnnotatorScore]:
    """Each annotator's mean agreement over the scored items it annotated. Managers only."""
    overall: dict[str, list[float]] = defaultdict(list)
    items: Counter[str] = Counter()
    for score in await item_scores(platform, actor, task_id):
        seen = set()
        for pair in score.scores["pairs"]:
            for who in (pair["a"], pair["b"]):
                if pair["overall"] is not None:
                    overall[who].append(pair["overall"])
                seen.add(who)
        items.update(seen)
    return [AnnotatorScore(who, items[who], _mean(overall[who])) for who in sorted(items)]


async def merge(platform: Platform, actor: Actor, task_id: str) -> int:
    """Write the consensus annotations of the task's scored items (see the module); again on a
    later call only for what was not written yet. The number written."""
    async with platform.db.read() as session:
        task = await task_for(session, actor, task_id, Role.annotationManager)
        scored = list(
            await session.scalars(
                select(TaskItemScore.item_id).where(TaskItemScore.task_id == task.id)
            )
        )
        copies = await _copies(session, task.id, scored)
        chosen = {
            item: await _annotations_of(session, item, [e for e, _ in copies[item]])
            for item in scored
            if item in copies
        }
        planned = {
            item: [(f"c:{task.id}:{item}:{n}", spec) for n, spec in enumerate(_merged(found))]
            for item, found in chosen.items()
        }
        keys = [key for wanted in planned.values() for key, _ in wanted]
        written = set(
            await session.scalars(
                select(Annotation.effect_key).where(Annotation.effect_key.in_(keys))
            )
        )
    count = 0
    for item_id, wanted in planned.items():
        new = [(key, spec) for key, spec in wanted if key not in written]
        if new:  # keyed: a merge that runs twice at once still writes each annotation once
            await annotations.create_annotations(
                platform,
                actor,
                item_id,
                [spec for _, spec in new],
                effect_keys=[key for key, _ in new],
            )
            count += len(new)
    return count


def _merged(by_annotator: dict[str, list[Annotation]]) -> list[AnnotationSpec]:
    """The groups of matched annotations a majority drew, one annotation each."""
    annotators = sorted(by_annotator)
    if not annotators:
        return []
    seeds = by_annotator[annotators[0]]
    groups: dict[str, list[Annotation]] = {a.id: [a] for a in seeds}
    for other in annotators[1:]:
        for seed, match, _ in _matches(seeds, by_annotator[other]):
            groups[seed.id].append(match)
    majority = len(annotators) // 2 + 1
    out = []
    for seed in seeds:
        group = groups[seed.id]
        if len(group) < majority:
            continue
        label = Counter(a.label for a in group).most_common(1)[0][0]
        coordinates = seed.coordinates
        if seed.type == "box":
            corners = [list(_points(a.coordinates)) for a in group]
            if all(len(c) == 2 for c in corners):
                coordinates = [
                    {
                        "x": statistics.fmean(c[k][0] for c in corners),
                        "y": statistics.fmean(c[k][1] for c in corners),
                    }
                    for k in range(2)
                ]
        out.append(
            AnnotationSpec(
                type=seed.type,
                label=label,
                coordinates=coordinates,
                attributes=seed.attributes,
                source="consensus",
            )
        )
    return out
