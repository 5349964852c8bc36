"""Helpers the task tests share."""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

from graph.domain import tasks
from graph.domain.assignments import Pulling


async def pulling_task(
    platform: Any,
    team: SimpleNamespace,
    people: Sequence[Any],
    name: str = "pull",
    *,
    batch: int = 3,
    most: int | None = None,
) -> Any:
    """A pulling task over every file of the team's dataset, made by its manager, for
    ``people``: batches of ``batch``, at most ``most`` held (two batches unless given)."""
    return await tasks.create_task(
        platform,
        team.manager,
        team.dataset.id,
        name,
        dql="",
        pulling=Pulling([p.email for p in people], batch, batch * 2 if most is None else most),
    )
