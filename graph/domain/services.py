"""Services: a package module deployed in a project, with its run settings.

Deploying needs the developer role. A service runs one revision of an uploaded package (the
latest when deployed; ``update_service(revision=...)`` redeploys another) or a plugin's package.
Paused services keep their executions ``created`` until resumed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from graph.db.tables import Execution, Service
from graph.domain import events, listing, packages
from graph.domain.access import Actor, Role, require_role
from graph.domain.errors import InvalidInput, NotFound
from graph.domain.inputs import check_inputs
from graph.domain.paging import Page
from graph.domain.platform import Platform
from graph.queue import DEFAULT_QUEUE, PLATFORM_QUEUE
from plugins.functions import FunctionSpec, ModuleSpec

__all__ = [
    "ON_RESET",
    "delete_service",
    "deploy_service",
    "function_of",
    "get_service",
    "count_services",
    "list_services",
    "service_for",
    "set_active",
    "update_service",
]

ON_RESET = ("failed", "rerun")
_QUEUE = re.compile(r"^[A-Za-z0-9_\-.]{1,64}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-.]{0,199}$")


def _check_settings(
    *,
    concurrency: int | None,
    execution_timeout: int | None,
    max_attempts: int | None,
    on_reset: str | None,
    queue: str | None,
) -> None:
    if concurrency is not None and not 1 <= concurrency <= 1000:
        raise InvalidInput("concurrency must be between 1 and 1000", field="concurrency")
    if execution_timeout is not None and not 1 <= execution_timeout <= 7 * 86400:
        raise InvalidInput(
            "executionTimeout must be between 1 second and 7 days", field="executionTimeout"
        )
    if max_attempts is not None and not 1 <= max_attempts <= 100:
        raise InvalidInput("maxAttempts must be between 1 and 100", field="maxAttempts")
    if on_reset is not None and on_reset not in ON_RESET:
        raise InvalidInput(f"onReset must be one of {', '.join(ON_RESET)}", field="onReset")
    if queue is not None and (not _QUEUE.match(queue) or queue == PLATFORM_QUEUE):
        raise InvalidInput(
            f"queue must be 1-64 letters, digits, '_', '-' or '.', and not {PLATFORM_QUEUE!r}",
            field="queue",
        )


def _module_of(deployable: packages.Deployable, module_name: str | None) -> ModuleSpec:
    spec = deployable.spec
    if module_name is None:
        if len(spec.modules) != 1:
            names = ", ".join(m.name for m in spec.modules)
            raise InvalidInput(
                f"package {spec.name!r} has several modules ({names}): name one", field="moduleName"
            )
        return spec.modules[0]
    module = spec.module(module_name)
    if module is None:
        raise InvalidInput(
            f"package {spec.name!r} has no module {module_name!r}", field="moduleName"
        )
    return module


async def _init_params(
    session: AsyncSession, project_id: str, module: ModuleSpec, params: Mapping[str, Any] | None
) -> dict[str, Any]:
    (checked,) = await check_inputs(
        session, project_id, module.init_inputs, [params or {}], field="initParams"
    )
    return checked


async def service_for(
    session: AsyncSession, actor: Actor, service_id: str, needed: Role
) -> Service:
    service = await session.get(Service, service_id)
    if service is None:
        raise NotFound("service", service_id)
    await require_role(session, actor, service.project_id, needed)
    return service


async def function_of(
    session: AsyncSession, platform: Platform, service: Service, function_name: str
) -> tuple[ModuleSpec, FunctionSpec]:
    """The module and function a service runs under ``function_name``."""
    deployable = await packages.deployable(
        session, platform, service.project_id, service.package_name, service.package_revision
    )
    module = _module_of(deployable, service.module_name)
    function = module.function(function_name)
    if function is None:
        names = ", ".join(f.name for f in module.functions)
        raise InvalidInput(
            f"service {service.name!r} has no function {function_name!r}; it has: {names}",
            field="functionName",
        )
    return module, function


def _event(service: Service) -> dict[str, Any]:
    return {
        "name": service.name,
        "package": service.package_name,
        "revision": service.package_revision,
        "active": service.active,
    }


async def deploy_service(
    platform: Platform,
    actor: Actor,
    project_id: str,
    name: str,
    package: str,
    *,
    module: str | None = None,
    revision: int | None = None,
    init_params: Mapping[str, Any] | None = None,
    concurrency: int = 10,
    execution_timeout: int = 3600,
    max_attempts: int = 3,
    on_reset: str = "failed",
    queue: str = DEFAULT_QUEUE,
) -> Service:
    if not _NAME.match(name):
        raise InvalidInput("a service name is 1-200 letters, digits, '_', '-' or '.'", field="name")
    _check_settings(
        concurrency=concurrency,
        execution_timeout=execution_timeout,
        max_attempts=max_attempts,
        on_reset=on_reset,
        queue=queue,
    )
    async with platform.db.write() as session:
        await require_role(session, actor, project_id, Role.developer)
        deployable = await packages.deployable(session, platform, project_id, package, revision)
        module_spec = _module_of(deployable, module)
        params = await _init_params(session, project_id, module_spec, init_params)
        clash = await session.scalar(
            select(Service.id).where(Service.project_id == project_id, Service.name == name)
        )
        if clash is not None:
            raise InvalidInput(f"the project already has a service named {name!r}", field="name")
        service = Service(
            project_id=project_id,
            name=name,
            package_name=package,
            package_id=deployable.package_id,
            package_revision=deployable.revision,
            module_name=module_spec.name,
            init_params=params,
            concurrency=concurrency,
            execution_timeout=execution_timeout,
            max_attempts=max_attempts,
            on_reset=on_reset,
            queue=queue,
            creator=actor.email,
        )
        session.add(service)
        await session.flush()
        await events.record(
            session,
            project_id=project_id,
            resource="service",
            action="created",
            resource_id=service.id,
            actor=actor.email,
            payload=_event(service),
        )
    return service


async def update_service(
    platform: Platform,
    actor: Actor,
    service_id: str,
    *,
    revision: int | None = None,
    latest: bool = False,
    init_params: Mapping[str, Any] | None = None,
    concurrency: int | None = None,
    execution_timeout: int | None = None,
    max_attempts: int | None = None,
    on_reset: str | None = None,
    queue: str | None = None,
) -> Service:
    """Change a service's settings; ``revision`` (or ``latest``) redeploys its package. Workers
    pick the change up at their next execution of it."""
    _check_settings(
        concurrency=concurrency,
        execution_timeout=execution_timeout,
        max_attempts=max_attempts,
        on_reset=on_reset,
        queue=queue,
    )
    async with platform.db.write() as session:
        service = await service_for(session, actor, service_id, Role.developer)
        if revision is not None or latest or init_params is not None:
            if service.package_id is None and (revision is not None or latest):
                raise InvalidInput(
                    f"package {service.package_name!r} comes from a plugin and has no revisions",
                    field="revision",
                )
            wanted = None if latest else (revision or service.package_revision)
            deployable = await packages.deployable(
                session, platform, service.project_id, service.package_name, wanted
            )
            module = _module_of(deployable, service.module_name)
            service.package_revision = deployable.revision
            service.init_params = await _init_params(
                session,
                service.project_id,
                module,
                service.init_params if init_params is None else init_params,
            )
        for attribute, value in (
            ("concurrency", concurrency),
            ("execution_timeout", execution_timeout),
            ("max_attempts", max_attempts),
            ("on_reset", on_reset),
            ("queue", queue),
        ):
            if value is not None:
                setattr(service, attribute, value)
        await events.record(
            session,
            project_id=service.project_id,
            resource="service",
            action="updated",
            resource_id=service.id,
            actor=actor.email,
            payload=_event(service),
        )
    return service


async def set_active(platform: Platform, actor: Actor, service_id: str, active: bool) -> Service:
    """Pause or resume a service. Paused, its new executions wait; resumed, they are queued."""
    async with platform.db.write() as session:
        service = await service_for(session, actor, service_id, Role.developer)
        service.active = active
        if active:
            # the scheduler enqueues waiting executions at its next look (a second at most)
            await session.execute(
                update(Execution)
                .where(Execution.service_id == service.id, Execution.status == "created")
                .values(queue=service.queue, job_id=None, queued_at=None)
            )
        await events.record(
            session,
            project_id=service.project_id,
            resource="service",
            action="updated",
            resource_id=service.id,
            actor=actor.email,
            payload=_event(service),
        )
    return service


async def get_service(platform: Platform, actor: Actor, service_id: str) -> Service:
    async with platform.db.read() as session:
        return await service_for(session, actor, service_id, Role.annotator)


async def list_services(
    platform: Platform,
    actor: Actor,
    project_id: str,
    first: int | None = None,
    after: str | None = None,
    *,
    dql: str | None = None,
) -> Page[Service]:
    """The project's services matching a DQL query, by its ``order by``, else by name."""
    return await listing.list_named(
        platform, actor, Service, "services", project_id, first, after, dql=dql
    )


async def count_services(
    platform: Platform, actor: Actor, project_id: str, *, dql: str | None = None
) -> int:
    return await listing.count_named(platform, actor, Service, "services", project_id, dql=dql)


async def delete_service(platform: Platform, actor: Actor, service_id: str) -> None:
    """Delete a service with its triggers and executions; running ones stop at their next
    heartbeat (their rows are gone)."""
    async with platform.db.write() as session:
        service = await service_for(session, actor, service_id, Role.developer)
        await session.delete(service)
        await events.record(
            session,
            project_id=service.project_id,
            resource="service",
            action="deleted",
            resource_id=service.id,
            actor=actor.email,
            payload=_event(service),
        )
