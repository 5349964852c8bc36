"""Fixtures the task tests share."""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import pytest

from graph.domain import datasets, items, projects, tasks
from graph.domain.assignments import Pulling
from tests.conftest import make_user


@pytest.fixture
async def team(platform, owner, project) -> SimpleNamespace:
    """A project with a manager, three annotators, and a dataset of 20 files in two folders."""
    actor = owner[0]
    people = {}
    for name, role in (
        ("manager", "annotationManager"),
        ("ann1", "annotator"),
        ("ann2", "annotator"),
        ("ann3", "annotator"),
    ):
        person, token = await make_user(platform, f"{name}@example.com")
        await projects.add_member(platform, actor, project.id, person.email, role)
        people[name] = person
        people[f"{name}_token"] = token
    dataset = await datasets.create_dataset(platform, actor, project.id, "photos")
    specs = [
        items.ItemSpec(
            path=f"/{'day' if i < 10 else 'night'}/{i:02d}.jpg",
            url=f"https://x.test/{i}",
            user={"n": i},
        )
        for i in range(20)
    ]
    async with platform.db.write() as session:
        results, _ = await items.insert_items(session, actor, dataset, specs)
    ids = {spec.path: r.item_id for spec, r in zip(specs, results, strict=True)}
    return SimpleNamespace(owner=actor, project=project, dataset=dataset, ids=ids, **people)


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
