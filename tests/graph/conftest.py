"""Fixtures the task tests share."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from graph.domain import datasets, items, projects
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
