"""Consensus: the agreement of the annotators of a consensus item, and their merged annotations.

A consensus task gives a share of its items to several annotators each (graph/domain/
assignments.py); each annotates its copy, and an annotator's annotations are those it created.
When every copy of an item has a status, the item is scored: for each pair of its annotators,
their annotations are matched one to one, most similar first: shapes that agree by at least
:data:`MATCH` (graph/domain/overlap.py: the IoU of areas, a box with a polygon or a mask alike;
the distance similarity of points), shapeless ones of the same type (classes) by label. Then

- ``label``: matched pairs with the same label over the larger of the two sets (1 when both
  are empty: they agree there is nothing),
- ``iou``: the mean similarity of the matched shapes (None without shapes),
- ``attributes``: matched pairs with equal attributes over the matched pairs (None without),

and ``overall`` is the mean of those a pair has. An item's scores are its pairs' means; an
annotator's, the mean overall of the pairs it is in.

``merge`` groups the annotations of all an item's annotators into objects, most similar pairs
first: two groups join when no annotator is in both and every member of one matches every
member of the other. Each object a majority of the annotators drew becomes one annotation: the
most common label and attributes (a tie: its most central member's), and the mean box when all
are unrotated boxes, the mean point when all are points, else the shape of its most central
member (the best mean similarity to the others).
"""

from __future__ import annotations

import itertools
import json
import statistics
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from graph.db.bulk import insert_many
from graph.db.tables import Annotation, Assignment, Task, TaskItem, TaskItemScore, User, utcnow
from graph.domain import annotations, overlap
from graph.domain.access import Actor, Role
from graph.domain.annotations import AnnotationSpec
from graph.domain.overlap import Shape
from graph.domain.platform import Platform
from graph.domain.task_rows import task_for

__all__ = ["MATCH", "AnnotatorScore", "agreement", "annotator_scores", "merge", "score_done"]

MATCH = 0.5
"""The least similarity (graph/domain/overlap.py) that makes two shapes the same object."""


@dataclass(frozen=True)
class AnnotatorScore:
    assignee: str
    items: int  # scored items it annotated
    overall: float | None


@dataclass(frozen=True, eq=False)
class _Mark:
    """An annotator's annotation on the item, with its shape read once."""

    annotator: str
    annotation: Annotation
    shape: Shape | None


def _marks(annotator: str, found: Sequence[Annotation]) -> list[_Mark]:
    return [_Mark(annotator, a, overlap.shape_of(a.type, a.coordinates)) for a in found]


def _agree(a: _Mark, b: _Mark) -> tuple[float, float | None] | None:
    """Whether two annotations can be the same object: (how well they match, the geometry's
    share of it, None for shapeless ones); None when they cannot."""
    if a.shape is None or b.shape is None:
        if a.shape is None and b.shape is None:
            same = (
                a.annotation.type == b.annotation.type and a.annotation.label == b.annotation.label
            )
            return (1.0, None) if same else None
        return None
    found = overlap.similarity(a.shape, b.shape, MATCH)
    return (found, found) if found >= MATCH else None


def _matches(
    first: Sequence[_Mark], second: Sequence[_Mark]
) -> list[tuple[Annotation, Annotation, float | None]]:
    """One-to-one matches of two annotators' annotations, best first: (a, b, similarity of
    their shapes or None)."""
    candidates = []
    for a, b in itertools.product(first, second):
        agreed = _agree(a, b)
        if agreed is not None:
            candidates.append((agreed[0], a.annotation, b.annotation, agreed[1]))
    taken: set[str] = set()
    out = []
    for _, a, b, geometry in sorted(candidates, key=lambda c: -c[0]):
        if a.id not in taken and b.id not in taken:
            taken.update((a.id, b.id))
            out.append((a, b, geometry))
    return out


def _mean(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.fmean(present) if present else None


def agreement(by_annotator: dict[str, list[Annotation]]) -> dict[str, Any]:
    """An item's scores from each annotator's annotations on it (see the module)."""
    marks = {who: _marks(who, found) for who, found in by_annotator.items()}
    pairs = []
    for (x, first), (y, second) in itertools.combinations(sorted(marks.items()), 2):
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
    """The objects a majority of the annotators drew, one annotation each (see the module)."""
    marks = [m for who in sorted(by_annotator) for m in _marks(who, by_annotator[who])]
    majority = len(by_annotator) // 2 + 1
    scores = _scores(marks)
    return [
        _object([marks[k] for k in group], _central(group, scores))
        for group in _objects(marks, scores)
        if len(group) >= majority
    ]


def _scores(marks: Sequence[_Mark]) -> dict[tuple[int, int], float]:
    """How well each pair of marks (by position, of different annotators) matches, for those
    that can be the same object."""
    scores = {}
    for i, j in itertools.combinations(range(len(marks)), 2):
        if marks[i].annotator != marks[j].annotator:
            agreed = _agree(marks[i], marks[j])
            if agreed is not None:
                scores[i, j] = agreed[0]
    return scores


def _objects(marks: Sequence[_Mark], scores: dict[tuple[int, int], float]) -> list[list[int]]:
    """The marks (by position) grouped into objects, best matching pairs first; the groups in
    the order of their first member."""
    group_of = {i: [i] for i in range(len(marks))}
    for i, j in sorted(scores, key=lambda pair: (-scores[pair], pair)):
        one, other = group_of[i], group_of[j]
        if one is other:
            continue
        if {marks[k].annotator for k in one} & {marks[k].annotator for k in other}:
            continue
        if any((min(x, y), max(x, y)) not in scores for x in one for y in other):
            continue  # complete linkage: every member matches every other
        one.extend(other)
        for k in other:
            group_of[k] = one
    groups = {id(g): sorted(g) for g in group_of.values()}
    return sorted(groups.values())


def _central(group: list[int], scores: dict[tuple[int, int], float]) -> int:
    """The member (its place in ``group``) with the best mean score with the others; the first
    of equals."""
    if len(group) == 1:
        return 0

    def closeness(k: int) -> float:
        return statistics.fmean(scores[min(k, o), max(k, o)] for o in group if o != k)

    return max(range(len(group)), key=lambda place: (closeness(group[place]), -place))


def _object(members: list[_Mark], central_at: int) -> AnnotationSpec:
    """One annotation for a group of matched marks."""
    central = members[central_at].annotation
    annotations = [m.annotation for m in members]
    label = _commonest([a.label for a in annotations], central.label)
    attributes = _commonest([a.attributes or {} for a in annotations], central.attributes or {})
    shape_type, coordinates = central.type, central.coordinates
    boxes = [m.shape.box for m in members if m.annotation.type == "box" and m.shape is not None]
    points = [m.shape.point for m in members if m.shape is not None]
    if len(boxes) == len(members) and all(boxes):
        mean = [statistics.fmean(b[k] for b in boxes if b) for k in range(4)]
        shape_type = "box"
        coordinates = [{"x": mean[0], "y": mean[1]}, {"x": mean[2], "y": mean[3]}]
    elif len(points) == len(members) and all(points):
        shape_type = "point"
        coordinates = {
            "x": statistics.fmean(p[0] for p in points if p),
            "y": statistics.fmean(p[1] for p in points if p),
        }
    return AnnotationSpec(
        type=shape_type,
        label=label,
        coordinates=coordinates,
        attributes=attributes or None,
        source="consensus",
    )


def _commonest(values: list[Any], central: Any) -> Any:
    """The most common of ``values`` (compared as JSON); a tie goes to ``central``'s."""
    counts = Counter(json.dumps(v, sort_keys=True) for v in values)
    best = max(counts.values())
    if counts[json.dumps(central, sort_keys=True)] == best:
        return central
    return next(v for v in values if counts[json.dumps(v, sort_keys=True)] == best)
