"""Datasets: create, rename, lock, delete, list; the folder tree."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, bindparam, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from dql.compiler import Compiled
from graph.db.tables import Annotation, Dataset, Driver, Item, Member, Task, TaskItem
from graph.domain import blobs, events, notify, queries
from graph.domain.access import Actor, Role, check_role, member_role, require_role
from graph.domain.errors import Conflict, InvalidInput, NotFound
from graph.domain.paging import Order, Page, page_size
from graph.domain.platform import Platform
from graph.domain.reach import Viewer, consensus_copies_of, given_to, own_work

T = TypeVar("T")

__all__ = [
    "Scope",
    "count_datasets",
    "dataset_and_scope",
    "create_dataset",
    "insert_dataset",
    "dataset_for",
    "delete_dataset",
    "get_dataset",
    "list_datasets",
    "row_in_dataset",
    "update_dataset",
]


def check_name(name: str) -> str:
    name = name.strip() if isinstance(name, str) else ""
    if not name or len(name) > 200 or "/" in name:
        raise InvalidInput("a dataset name must have 1 to 200 characters and no '/'", field="name")
    return name


def _check(
    actor: Actor,
    role: str | None,
    needed: Role,
    resource: str,
    resource_id: str,
    dataset: Dataset,
    writing: bool,
) -> None:
    check_role(actor, None if role is None else Role[role], needed, resource, resource_id)
    if writing and dataset.readonly:
        raise Conflict(f"dataset {dataset.name!r} is read-only; unlock it first", id=dataset.id)


async def dataset_for(
    session: AsyncSession, actor: Actor, dataset_id: str, needed: Role, *, writing: bool = False
) -> Dataset:
    """The dataset, if the actor has ``needed`` in its project; one statement.

    ``writing`` also refuses a read-only dataset.
    """
    dataset, _ = await dataset_and_scope(session, actor, dataset_id, needed, writing=writing)
    return dataset


# built once: every dataset-scoped call starts with it
_DATASET_AND_ROLE = select(
    Dataset,
    select(Member.role)
    .where(Member.project_id == Dataset.project_id, Member.user_id == bindparam("user_id"))
    .scalar_subquery(),
).where(Dataset.id == bindparam("dataset_id"))


async def dataset_and_scope(
    session: AsyncSession, actor: Actor, dataset_id: str, needed: Role, *, writing: bool = False
) -> tuple[Dataset, Scope]:
    """:func:`dataset_for`, and the items of it the actor may reach (:class:`Scope`)."""
    row = (
        await session.execute(
            _DATASET_AND_ROLE, {"dataset_id": dataset_id, "user_id": actor.user_id}
        )
    ).first()
    if row is None:
        raise NotFound("dataset", dataset_id)
    dataset, role = row
    _check(actor, role, needed, "dataset", dataset_id, dataset, writing)
    return dataset, Scope(actor, None if role is None else Role[role])


class Scope:
    """The items of a dataset an actor reaches: annotators the items given to them in tasks
    (and those items' annotations, :mod:`graph.domain.reach`), every other role all of them."""

    def __init__(self, actor: Actor, role: Role | None) -> None:
        self.limited = not actor.is_admin and role == Role.annotator
        self._user_id, self._email = actor.user_id, actor.email
        # what DQL over its rows may reach through their relations (queries.compile_for)
        self.viewer = Viewer(actor.user_id, actor.email) if self.limited else None

    def items(self, item_id: Any) -> list[ColumnElement[bool]]:
        """Conditions keeping the rows whose item (``item_id``, a column) the actor reaches."""
        return [item_id.in_(given_to(self._user_id))] if self.limited else []

    def annotations(self) -> list[ColumnElement[bool]]:
        """Conditions keeping the annotations the actor reaches: those of its items, but of an
        item it annotates as a consensus copy only its own (the copies stay independent)."""
        if not self.limited:
            return []
        return [*self.items(Annotation.item_id), own_work(self._user_id, self._email)]

    def rows(self, resource: str) -> list[ColumnElement[bool]]:
        """The conditions of :meth:`items` or :meth:`annotations`, by DQL resource name."""
        return self.items(Item.id) if resource == "items" else self.annotations()


async def _own(session: AsyncSession, actor: Actor, annotation: Annotation) -> bool:
    """Whether an annotator may see the annotation of an item given to it."""
    if annotation.creator == actor.email:
        return True
    copies = consensus_copies_of(actor.user_id).where(TaskItem.item_id == annotation.item_id)
    return not await session.scalar(select(copies.exists()))


async def row_in_dataset(
    session: AsyncSession,
    actor: Actor,
    table: type[T],
    row_id: str,
    needed: Role,
    *,
    writing: bool = False,
) -> tuple[T, Dataset]:
    """A row of ``table`` (an item, or an annotation) and its dataset, if the actor has
    ``needed`` in the project and reaches its item (:class:`Scope`); one statement. Others are
    told it does not exist."""
    entity: Any = table
    resource = entity.__tablename__.rstrip("s")
    item_id = entity.id if entity is Item else entity.item_id
    given = given_to(actor.user_id).where(TaskItem.item_id == item_id).exists()
    row = (
        await session.execute(
            select(entity, Dataset, member_role(actor, Dataset.project_id), given)
            .join(Dataset, Dataset.id == entity.dataset_id)
            .where(entity.id == row_id)
        )
    ).first()
    if row is None:
        raise NotFound(resource, row_id)
    found, dataset, role, reached = row
    if role is not None and Scope(actor, Role[role]).limited:
        # an annotator reaches the items given to it, and on a consensus copy its own work
        if not reached or (entity is Annotation and not await _own(session, actor, found)):
            raise NotFound(resource, row_id)
    _check(actor, role, needed, resource, row_id, dataset, writing)
    return found, dataset


def dataset_event(dataset: Dataset) -> dict[str, Any]:
    return {"name": dataset.name, "projectId": dataset.project_id}


async def create_dataset(
    platform: Platform,
    actor: Actor,
    project_id: str,
    name: str,
    driver_id: str | None = None,
) -> Dataset:
    async with platform.db.write() as session:
        await require_role(session, actor, project_id, Role.developer)
        return await insert_dataset(session, actor, project_id, name, driver_id)


async def insert_dataset(
    session: AsyncSession,
    actor: Actor,
    project_id: str,
    name: str,
    driver_id: str | None = None,
    src_dataset_id: str | None = None,
) -> Dataset:
    """Add a dataset inside the caller's transaction (clone and merge make one with their items)."""
    name = check_name(name)
    if driver_id is not None:
        driver = await session.get(Driver, driver_id)
        if driver is None or driver.project_id != project_id:
            raise NotFound("driver", driver_id)
    taken = await session.scalar(
        select(Dataset.id).where(Dataset.project_id == project_id, Dataset.name == name)
    )
    if taken is not None:
        raise Conflict(f"the project already has a dataset named {name!r}", field="name")
    dataset = Dataset(
        project_id=project_id,
        name=name,
        driver_id=driver_id,
        src_dataset_id=src_dataset_id,
        creator=actor.email,
    )
    session.add(dataset)
    try:
        await session.flush()
    except IntegrityError:  # a concurrent create took the name between our check and insert
        raise Conflict(f"the project already has a dataset named {name!r}", field="name") from None
    await events.record(
        session,
        project_id=project_id,
        resource="dataset",
        action="created",
        resource_id=dataset.id,
        actor=actor.email,
        payload=dataset_event(dataset),
    )
    return dataset


async def get_dataset(platform: Platform, actor: Actor, dataset_id: str) -> Dataset:
    async with platform.db.read() as session:
        return await dataset_for(session, actor, dataset_id, Role.annotator)


def _compiled(platform: Platform, dql: str | None, dataloop: Mapping[str, Any] | None) -> Compiled:
    query = queries.parse_query(dql, dataloop, resource="datasets")
    return queries.compile_for(query, "datasets", platform.db.dialect)


async def list_datasets(
    platform: Platform,
    actor: Actor,
    project_id: str,
    first: int | None = None,
    after: str | None = None,
    *,
    dql: str | None = None,
    dataloop: Mapping[str, Any] | None = None,
) -> Page[Dataset]:
    """Datasets of a project matching a DQL query (text and/or Dataloop JSON), by its
    ``order by``, else by name."""
    compiled = _compiled(platform, dql, dataloop)
    async with platform.db.read() as session:
        await require_role(session, actor, project_id, Role.annotator)
        statement, finish = queries.keyset_select(
            Dataset,
            [Dataset.project_id == project_id],
            compiled,
            [Order(Dataset.name), Order(Dataset.id)],
            lambda d: (d.name, d.id),
            page_size(first, platform.settings.max_page_size),
            after,
        )
        return finish((await session.execute(statement, compiled.params)).all())


async def count_datasets(
    platform: Platform,
    actor: Actor,
    project_id: str,
    *,
    dql: str | None = None,
    dataloop: Mapping[str, Any] | None = None,
) -> int:
    compiled = _compiled(platform, dql, dataloop)
    async with platform.db.read() as session:
        await require_role(session, actor, project_id, Role.annotator)
        query = select(func.count()).where(Dataset.project_id == project_id, compiled.where)
        return int(await session.scalar(query, compiled.params) or 0)


async def update_dataset(
    platform: Platform,
    actor: Actor,
    dataset_id: str,
    *,
    name: str | None = None,
    readonly: bool | None = None,
) -> Dataset:
    """Rename and/or lock (``readonly``) a dataset."""
    try:
        async with platform.db.write() as session:
            dataset = await dataset_for(session, actor, dataset_id, Role.developer)
            changed: dict[str, Any] = {}
            if name is not None and name != dataset.name:
                dataset.name = changed["name"] = check_name(name)
            if readonly is not None and readonly != dataset.readonly:
                dataset.readonly = changed["readonly"] = readonly
            if changed:
                await session.flush()
                await events.record(
                    session,
                    project_id=dataset.project_id,
                    resource="dataset",
                    action="updated",
                    resource_id=dataset.id,
                    actor=actor.email,
                    payload=changed,
                )
    except IntegrityError:
        raise Conflict(f"the project already has a dataset named {name!r}", field="name") from None
    return dataset


async def delete_dataset(platform: Platform, actor: Actor, dataset_id: str) -> None:
    """Delete a dataset with its items, annotations and tasks; bytes no other item uses are
    freed."""
    async with platform.db.write() as session:
        dataset = await dataset_for(session, actor, dataset_id, Role.developer, writing=True)
        # its tasks go with it (a cascade): their assignees' lists of work are told
        task_ids = list(await session.scalars(select(Task.id).where(Task.dataset_id == dataset_id)))
        blob_ids = await blobs.blob_ids_of(session, Item.dataset_id == dataset_id)
        await session.execute(
            update(Dataset).where(Dataset.src_dataset_id == dataset_id).values(src_dataset_id=None)
        )
        await session.execute(delete(Item).where(Item.dataset_id == dataset_id))
        await session.execute(delete(Dataset).where(Dataset.id == dataset_id))
        freed = await blobs.release(session, blob_ids)
        await events.record(
            session,
            project_id=dataset.project_id,
            resource="dataset",
            action="deleted",
            resource_id=dataset_id,
            actor=actor.email,
            payload=dataset_event(dataset),
        )
    blobs.delete_bytes(platform, freed)
    if task_ids:
        notify.tasks_changed(platform, dataset.project_id, task_ids, progress=False)
