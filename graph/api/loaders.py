"""DataLoaders, made per request, so a list of N things costs one query per relation, not N.

Loaders serve fields of objects the caller was already allowed to see (an item's annotations, its
dataset), so they load by id without checking roles again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from functools import cached_property
from typing import Any

from strawberry.dataloader import DataLoader

from graph.db.tables import (
    Annotation,
    Assignment,
    Dataset,
    Item,
    Ontology,
    Package,
    PackageRevision,
    Recipe,
    Service,
    TaskItem,
)
from graph.domain import loading
from graph.domain.access import Actor
from graph.domain.platform import Platform
from graph.domain.tasks import Progress

__all__ = ["Loaders"]


class Loaders:
    def __init__(self, platform: Platform, actor: Callable[[], Awaitable[Actor]]) -> None:
        self._platform = platform
        self._actor = actor  # the caller, for what it may see of an item (consensus copies)

    def _by_id(self, table: Any) -> DataLoader[str, Any]:
        async def load(ids: Sequence[str]) -> list[Any]:
            return await loading.by_ids(self._platform, table, ids)

        return DataLoader(load_fn=load)

    @cached_property
    def dataset(self) -> DataLoader[str, Dataset | None]:
        return self._by_id(Dataset)

    @cached_property
    def item(self) -> DataLoader[str, Item | None]:
        return self._by_id(Item)

    @cached_property
    def annotations_of_item(self) -> DataLoader[str, list[Annotation]]:
        async def load(item_ids: Sequence[str]) -> list[list[Annotation]]:
            viewer = await self._actor()
            return await loading.annotations_of_items(self._platform, item_ids, viewer)

        return DataLoader(load_fn=load)

    @cached_property
    def own_annotations_count(self) -> DataLoader[str, int | None]:
        async def load(item_ids: Sequence[str]) -> list[int | None]:
            return await loading.own_counts_of_items(self._platform, item_ids, await self._actor())

        return DataLoader(load_fn=load)

    @cached_property
    def task_items_of_item(self) -> DataLoader[str, list[TaskItem]]:
        async def load(item_ids: Sequence[str]) -> list[list[TaskItem]]:
            viewer = await self._actor()
            return await loading.task_items_of_items(self._platform, item_ids, viewer)

        return DataLoader(load_fn=load)

    @cached_property
    def task_progress(self) -> DataLoader[str, Progress]:
        async def load(task_ids: Sequence[str]) -> list[Progress]:
            return await loading.progress_of_tasks(self._platform, task_ids)

        return DataLoader(load_fn=load)

    @cached_property
    def assignments_of_task(self) -> DataLoader[str, list[tuple[Assignment, str]]]:
        async def load(task_ids: Sequence[str]) -> list[list[tuple[Assignment, str]]]:
            return await loading.assignments_of_tasks(self._platform, task_ids)

        return DataLoader(load_fn=load)

    @cached_property
    def recipe(self) -> DataLoader[str, Recipe | None]:
        return self._by_id(Recipe)

    @cached_property
    def ontology(self) -> DataLoader[str, Ontology | None]:
        return self._by_id(Ontology)

    @cached_property
    def service(self) -> DataLoader[str, Service | None]:
        return self._by_id(Service)

    @cached_property
    def package(self) -> DataLoader[str, Package | None]:
        return self._by_id(Package)

    @cached_property
    def revisions_of_package(self) -> DataLoader[str, list[PackageRevision]]:
        async def load(package_ids: Sequence[str]) -> list[list[PackageRevision]]:
            return await loading.revisions_of_packages(self._platform, package_ids)

        return DataLoader(load_fn=load)
