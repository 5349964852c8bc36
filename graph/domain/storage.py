"""Storage: integrations (credentials), drivers (where a dataset's files live), and reading and
writing blob bytes wherever they are (syncing a dataset from its store is in :mod:`sync`).

An integration's secret is written here and read only to open a backend: no function returns it
(they return :class:`IntegrationInfo`). Backends are synchronous plugin code, so async callers run
them in a worker thread. Objects in a user's store are never deleted by the platform: deleting an
item, a sync that finds an object gone, or deleting a driver only forgets rows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import and_, case, delete, exists, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from graph.db.engine import dialect_insert
from graph.db.ids import new_ids
from graph.db.tables import Blob, Dataset, Driver, Integration, Item, utcnow
from graph.domain import events, listing
from graph.domain.access import Actor, Role, check_role, member_role, require_admin, require_role
from graph.domain.blobs import StagedFile
from graph.domain.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    StorageUnavailable,
)
from graph.domain.paging import Page
from graph.domain.platform import Platform
from plugins.types import StorageBackend, StorageDriverType, StorageError

__all__ = [
    "ADMIN_ONLY_TYPES",
    "IntegrationInfo",
    "count_drivers",
    "count_integrations",
    "create_driver",
    "create_integration",
    "delete_driver",
    "delete_integration",
    "driver_for",
    "driver_of",
    "driver_types",
    "list_drivers",
    "list_integrations",
    "load_blob_source",
    "open_backend",
    "read_blob",
    "store_errors",
    "store_in_driver",
    "upsert_blobs",
]

# a ``local`` driver reads and writes any folder the server process can reach, so only a platform
# administrator may point one somewhere
ADMIN_ONLY_TYPES = frozenset({"local"})
_CHUNK = 500
_MAX_KEY = 1024  # Blob.key
_Row = TypeVar("_Row", Integration, Driver)
_RESOURCES: dict[type, str] = {Integration: "integration", Driver: "driver"}


@dataclass(frozen=True)
class IntegrationInfo:
    """An integration as anyone may see it: everything but the secret."""

    id: str
    project_id: str
    name: str
    type: str
    creator: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: Integration) -> IntegrationInfo:
        return cls(
            id=row.id,
            project_id=row.project_id,
            name=row.name,
            type=row.type,
            creator=row.creator,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


# --- checks ---------------------------------------------------------------------------------------


def _check_name(name: str, what: str) -> str:
    name = name.strip() if isinstance(name, str) else ""
    if not name or len(name) > 200:
        raise InvalidInput(f"a {what} name must have 1 to 200 characters", field="name")
    return name


def _driver_type(platform: Platform, name: str) -> StorageDriverType:
    known = platform.plugins.storage_drivers
    driver_type = known.get(name) if isinstance(name, str) else None
    if driver_type is None:
        raise InvalidInput(
            f"unknown storage driver type {name!r}; installed: {', '.join(sorted(known))}",
            field="type",
        )
    return driver_type


def _check_fields(value: Any, allowed: Sequence[str], field: str, what: str) -> dict[str, Any]:
    """A flat JSON object whose keys are among ``allowed``; messages name keys, never values."""
    if not isinstance(value, dict):
        raise InvalidInput(f"{field} must be a JSON object", field=field)
    unknown = sorted(k for k in value if k not in allowed)
    if unknown:
        raise InvalidInput(
            f"{what} has no field {unknown[0]!r}; it takes {', '.join(allowed) or 'none'}",
            field=f"{field}.{unknown[0]}",
        )
    for key, item in value.items():
        if isinstance(item, dict | list):
            raise InvalidInput(f"{field}.{key} must be a plain value", field=f"{field}.{key}")
    return dict(value)


def _check_secret(value: Any, driver_type: StorageDriverType) -> dict[str, str]:
    what = f"a {driver_type.name!r} integration secret"
    secret = _check_fields(value, driver_type.secret_fields, "secret", what)
    if not secret:
        raise InvalidInput(f"{what} needs {', '.join(driver_type.secret_fields)}", field="secret")
    for key, item in secret.items():
        if not isinstance(item, str) or not item:
            raise InvalidInput(f"secret.{key} must be a non-empty string", field=f"secret.{key}")
    return secret


async def _row_for(
    session: AsyncSession, actor: Actor, table: type[_Row], row_id: str, needed: Role
) -> _Row:
    """An integration or driver, if the actor has ``needed`` in its project; one statement."""
    resource = _RESOURCES[table]
    row = (
        await session.execute(
            select(table, member_role(actor, table.project_id)).where(table.id == row_id)
        )
    ).first()
    if row is None:
        raise NotFound(resource, row_id)
    found, role = row
    check_role(actor, None if role is None else Role[role], needed, resource, row_id)
    return found


async def _add(session: AsyncSession, actor: Actor, row: Integration | Driver) -> None:
    """Insert a named integration or driver with its event; a taken name is a conflict."""
    table = type(row)
    resource = _RESOURCES[table]
    taken = await session.scalar(
        select(table.id).where(table.project_id == row.project_id, table.name == row.name)
    )
    conflict = Conflict(f"the project already has a {resource} named {row.name!r}", field="name")
    if taken is not None:
        raise conflict
    session.add(row)
    try:
        await session.flush()
    except IntegrityError:  # a concurrent create took the name between our check and insert
        raise conflict from None
    await events.record(
        session,
        project_id=row.project_id,
        resource=resource,
        action="created",
        resource_id=row.id,
        actor=actor.email,
        payload={"name": row.name, "type": row.type},
    )


async def _remove(session: AsyncSession, actor: Actor, row: Integration | Driver) -> None:
    resource = _RESOURCES[type(row)]
    await session.execute(delete(type(row)).where(type(row).id == row.id))
    await events.record(
        session,
        project_id=row.project_id,
        resource=resource,
        action="deleted",
        resource_id=row.id,
        actor=actor.email,
        payload={"name": row.name, "type": row.type},
    )


# --- backends -------------------------------------------------------------------------------------


def open_backend(
    platform: Platform, driver: Driver, integration: Integration | None
) -> StorageBackend:
    """The driver's backend; raises :class:`StorageError` if its type is gone or config is bad."""
    driver_type = platform.plugins.storage_drivers.get(driver.type)
    if driver_type is None:
        raise StorageError(f"storage driver type {driver.type!r} is not installed")
    return driver_type.open(driver.config, (integration.secret or None) if integration else None)


@contextmanager
def store_errors(driver: Driver | None) -> Iterator[None]:
    """Report a failing store as :class:`StorageUnavailable`, naming the driver."""
    try:
        yield
    except (StorageError, OSError) as exc:
        where = "the platform store" if driver is None else f"storage driver {driver.name!r}"
        details = {} if driver is None else {"driver": driver.id}
        raise StorageUnavailable(f"{where}: {exc}", **details) from None


# --- types, integrations, drivers -----------------------------------------------------------------


def driver_types(platform: Platform) -> list[StorageDriverType]:
    """The kinds of storage the installed plugins provide, by name."""
    return sorted(platform.plugins.storage_drivers.values(), key=lambda t: t.name)


async def create_integration(
    platform: Platform,
    actor: Actor,
    project_id: str,
    name: str,
    type: str,
    secret: Any,
) -> IntegrationInfo:
    """Store credentials for a kind of storage; developers and above."""
    name = _check_name(name, "integration")
    driver_type = _driver_type(platform, type)
    if not driver_type.secret_fields:
        raise InvalidInput(f"{type!r} storage takes no credentials", field="type")
    checked = _check_secret(secret, driver_type)
    async with platform.db.write() as session:
        await require_role(session, actor, project_id, Role.developer)
        row = Integration(
            project_id=project_id, name=name, type=type, secret=checked, creator=actor.email
        )
        await _add(session, actor, row)
    return IntegrationInfo.of(row)


async def list_integrations(
    platform: Platform,
    actor: Actor,
    project_id: str,
    first: int | None = None,
    after: str | None = None,
    *,
    dql: str | None = None,
) -> Page[IntegrationInfo]:
    page = await listing.list_named(
        platform, actor, Integration, "integrations", project_id, first, after, dql=dql
    )
    return Page([IntegrationInfo.of(r) for r in page.rows], page.has_next, page.cursors)


async def count_integrations(
    platform: Platform, actor: Actor, project_id: str, *, dql: str | None = None
) -> int:
    return await listing.count_named(
        platform, actor, Integration, "integrations", project_id, dql=dql
    )


async def delete_integration(platform: Platform, actor: Actor, integration_id: str) -> None:
    async with platform.db.write() as session:
        row = await _row_for(session, actor, Integration, integration_id, Role.developer)
        user = await session.scalar(
            select(Driver.name).where(Driver.integration_id == integration_id).limit(1)
        )
        if user is not None:
            raise Conflict(
                f"integration {row.name!r} is used by driver {user!r}; delete the driver first"
            )
        await _remove(session, actor, row)


async def create_driver(
    platform: Platform,
    actor: Actor,
    project_id: str,
    name: str,
    type: str,
    config: Any,
    integration_id: str | None = None,
) -> Driver:
    """Describe a storage location datasets can be bound to; developers and above.

    The config is checked by opening a backend, which makes no request: a store that is down
    today does not stop anyone from setting it up.
    """
    name = _check_name(name, "driver")
    driver_type = _driver_type(platform, type)
    checked = _check_fields(config, driver_type.config_fields, "config", f"a {type!r} driver")
    async with platform.db.write() as session:
        await require_role(session, actor, project_id, Role.developer)
        if type in ADMIN_ONLY_TYPES:
            require_admin(actor)
        integration = None
        if integration_id is not None:
            integration = await session.get(Integration, integration_id)
            if integration is None or integration.project_id != project_id:
                raise NotFound("integration", integration_id)
            if integration.type != type:
                raise InvalidInput(
                    f"integration {integration.name!r} holds {integration.type!r} credentials, "
                    f"not {type!r}",
                    field="integrationId",
                )
        row = Driver(
            project_id=project_id,
            name=name,
            type=type,
            integration_id=integration_id,
            config=checked,
            creator=actor.email,
        )
        try:
            await asyncio.to_thread(open_backend, platform, row, integration)
        except StorageError as exc:
            raise InvalidInput(str(exc), field="config") from None
        await _add(session, actor, row)
    return row


async def list_drivers(
    platform: Platform,
    actor: Actor,
    project_id: str,
    first: int | None = None,
    after: str | None = None,
    *,
    dql: str | None = None,
) -> Page[Driver]:
    return await listing.list_named(
        platform, actor, Driver, "drivers", project_id, first, after, dql=dql
    )


async def count_drivers(
    platform: Platform, actor: Actor, project_id: str, *, dql: str | None = None
) -> int:
    return await listing.count_named(platform, actor, Driver, "drivers", project_id, dql=dql)


async def delete_driver(platform: Platform, actor: Actor, driver_id: str) -> None:
    """Delete a driver no dataset uses; the rows of its blobs go, the objects in its store stay."""
    async with platform.db.write() as session:
        row = await _row_for(session, actor, Driver, driver_id, Role.developer)
        user = await session.scalar(
            select(Dataset.name).where(Dataset.driver_id == driver_id).limit(1)
        )
        if user is not None:
            raise Conflict(
                f"driver {row.name!r} is used by dataset {user!r}; delete the dataset first"
            )
        used = exists().where(
            Blob.driver_id == driver_id,
            or_(Item.blob_id == Blob.id, Item.thumbnail_blob_id == Blob.id),
        )
        if await session.scalar(select(used)):
            raise Conflict(f"items cloned from datasets of driver {row.name!r} still use its files")
        await session.execute(delete(Blob).where(Blob.driver_id == driver_id))
        await _remove(session, actor, row)


# --- bytes ----------------------------------------------------------------------------------------


async def load_blob_source(
    session: AsyncSession, blob_id: str
) -> tuple[Blob, Driver | None, Integration | None]:
    """A blob with the driver and integration needed to read it; one statement."""
    row = (
        await session.execute(
            select(Blob, Driver, Integration)
            .outerjoin(Driver, Driver.id == Blob.driver_id)
            .outerjoin(Integration, Integration.id == Driver.integration_id)
            .where(Blob.id == blob_id)
        )
    ).first()
    if row is None:
        raise NotFound("blob", blob_id)
    blob, driver, integration = row
    return blob, driver, integration


def read_blob(
    platform: Platform,
    blob: Blob,
    driver: Driver | None,
    integration: Integration | None,
    start: int = 0,
    end: int | None = None,
) -> Iterator[bytes]:
    """The bytes of a blob from ``start`` to ``end`` (inclusive), in chunks.

    Lazy: nothing is opened until the first chunk is asked for, so iterate it in a worker thread.
    A store that fails raises :class:`StorageUnavailable` from the iteration.
    """
    if blob.driver_id is not None and driver is None:
        raise ValueError("a blob in a driver's store needs its driver; see load_blob_source")
    with store_errors(driver):
        backend = platform.blobs if driver is None else open_backend(platform, driver, integration)
        yield from backend.open(blob.key, start, end)


async def upsert_blobs(
    session: AsyncSession, driver_id: str, objects: Sequence[dict[str, Any]]
) -> dict[str, str]:
    """Blob rows for objects (``key``, ``size``, ``etag``, ``sha256``) of one driver, made or
    refreshed; returns their ids by key. A known hash is kept while size and etag still match."""
    ids: dict[str, str] = {}
    now = utcnow()
    insert = dialect_insert(session)
    for start in range(0, len(objects), _CHUNK):
        chunk = objects[start : start + _CHUNK]
        statement = insert(Blob).values(
            [
                {"id": blob_id, "driver_id": driver_id, "created_at": now, "updated_at": now, **o}
                for blob_id, o in zip(new_ids(len(chunk)), chunk, strict=True)
            ]
        )
        new = statement.excluded
        same = and_(Blob.size == new.size, or_(Blob.etag.is_(None), Blob.etag == new.etag))
        statement = statement.on_conflict_do_update(
            index_elements=["driver_id", "key"],
            set_={
                "size": new.size,
                "etag": new.etag,
                "sha256": case((same, func.coalesce(new.sha256, Blob.sha256)), else_=new.sha256),
                "updated_at": now,
            },
        ).returning(Blob.key, Blob.id)
        ids.update({key: blob_id for key, blob_id in await session.execute(statement)})
    return ids


async def driver_for(
    session: AsyncSession, actor: Actor, driver_id: str, needed: Role
) -> tuple[Driver, Integration | None]:
    """A driver with its integration, if the actor has ``needed`` in its project."""
    driver = await _row_for(session, actor, Driver, driver_id, needed)
    integration = None
    if driver.integration_id is not None:
        integration = await session.get(Integration, driver.integration_id)
    return driver, integration


async def driver_of(session: AsyncSession, dataset: Dataset) -> tuple[Driver, Integration | None]:
    if dataset.driver_id is None:
        raise InvalidInput(
            f"dataset {dataset.name!r} is not bound to a storage driver", field="datasetId"
        )
    driver, integration = (
        await session.execute(
            select(Driver, Integration)
            .outerjoin(Integration, Integration.id == Driver.integration_id)
            .where(Driver.id == dataset.driver_id)
        )
    ).one()
    return driver, integration


async def store_in_driver(
    platform: Platform,
    session: AsyncSession,
    dataset: Dataset,
    filename: str,
    staged: StagedFile,
    content_type: str | None,
) -> str:
    """Put an upload into the store of the dataset's driver; return the id of its blob.

    The object's key is the item path without its leading ``/``, relative to the driver's prefix.
    The staged file is removed either way. If the caller's transaction fails afterwards, the object
    stays in the user's store (where the next sync finds it).
    """
    try:
        driver, integration = await driver_of(session, dataset)
        key = filename.lstrip("/")

        def put() -> str | None:
            backend = open_backend(platform, driver, integration)
            with staged.path.open("rb") as data:
                return backend.put(key, data, staged.size, content_type)

        with store_errors(driver):
            etag = await asyncio.to_thread(put)
        object_ = {"key": key, "size": staged.size, "etag": etag, "sha256": staged.sha256}
        return (await upsert_blobs(session, driver.id, [object_]))[key]
    finally:
        staged.discard()
