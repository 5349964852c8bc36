"""Live-update messages, published right after the commits that make the changes.

Messages carry ids and actions only: subscribers read the rows (graph/domain/live.py), so what
a subscriber sees is what the database holds, and a message says nothing to whoever reads it
without the rights to read the rows.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import TypeVar

from graph.domain.platform import Platform
from graph.pubsub import (
    assignments_channel,
    execution_channel,
    items_channel,
    service_channel,
    task_channel,
)

__all__ = ["executions_changed", "items_changed", "tasks_changed"]

T = TypeVar("T")

_IDS = 1000  # ids per message


def _chunks(values: Sequence[T]) -> Iterable[list[T]]:
    for start in range(0, len(values), _IDS):
        yield list(values[start : start + _IDS])


async def executions_changed(
    platform: Platform, changes: Iterable[tuple[str, str | None]], *, created: bool = False
) -> None:
    """``(execution id, service id)`` of executions whose status or progress changed.
    ``created``: new executions, which no one can yet watch by id, only by service."""
    by_service: dict[str, list[str]] = defaultdict(list)
    messages: list[tuple[str, dict[str, list[str]]]] = []
    for execution_id, service_id in changes:
        if not created:
            messages.append((execution_channel(execution_id), {"ids": [execution_id]}))
        if service_id is not None:
            by_service[service_id].append(execution_id)
    for service_id, ids in by_service.items():
        messages.extend((service_channel(service_id), {"ids": chunk}) for chunk in _chunks(ids))
    platform.hub.publish_soon(messages)


async def items_changed(platform: Platform, changes: Iterable[tuple[str, str, str]]) -> None:
    """``(dataset id, action, item id)`` of items created, updated or deleted, in order."""
    by_dataset: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for dataset_id, action, item_id in changes:
        by_dataset[dataset_id].append((action, item_id))
    # awaited: a filtered subscriber reads the items when the message arrives, so it goes out
    # before the dispatcher (or a test) moves on to later changes of the same items
    await platform.hub.publish(
        [
            (items_channel(dataset_id), {"events": chunk})
            for dataset_id, events in by_dataset.items()
            for chunk in _chunks(events)
        ]
    )


def tasks_changed(
    platform: Platform, project_id: str, task_ids: Iterable[str], *, progress: bool = True
) -> None:
    """Tasks of a project whose work changed: their items' statuses or assignments, or (with
    ``progress`` False) only the tasks themselves (created, paused, renamed, deleted), which
    their assignees' lists of work show."""
    ids = list(dict.fromkeys(task_ids))
    messages: list[tuple[str, dict[str, list[str]]]] = [
        (assignments_channel(project_id), {"tasks": ids})
    ]
    if progress:
        messages.extend((task_channel(t), {"ids": [t]}) for t in ids)
    platform.hub.publish_soon(messages)
