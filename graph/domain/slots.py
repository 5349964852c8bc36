"""UI slots: the buttons a frontend shows for functions, and running one.

A slot comes from a package (its manifest's ``slots``) or from a plugin (hook
``register_ui_slots``, naming the package). It applies in a project where its package's module is
deployed as an active service, to the entities its display scopes name: a resource (``item``,
``annotation``, ``dataset``; ``datasetQuery`` shows on datasets; ``task`` once tasks exist) and a
DQL filter evaluated by SQL on the entity. Any member sees and runs the slots that apply to what
it can see (an annotator: the items given to it, whose filters see what its queries see):
publishing a slot is how a developer lets annotators run a function.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from graph.db.tables import Annotation, Dataset, Execution, Item, Service
from graph.domain import executions, packages, queries
from graph.domain.access import Actor, Role, project_role
from graph.domain.datasets import Scope, dataset_and_scope, row_in_dataset
from graph.domain.errors import InvalidInput, NotFound
from graph.domain.platform import Platform
from graph.domain.reach import Viewer
from graph.domain.services import function_of
from plugins.functions import SLOT_RESOURCES, UISlot

__all__ = ["Slot", "run_slot", "slots_for"]

# slot resource -> (table, DQL resource, function input type)
_ENTITIES: dict[str, tuple[Any, str, str]] = {
    "item": (Item, "items", "Item"),
    "annotation": (Annotation, "annotations", "Annotation"),
    "dataset": (Dataset, "datasets", "Dataset"),
    "datasetQuery": (Dataset, "datasets", "Dataset"),
}


@dataclass(frozen=True)
class Slot:
    service_id: str
    service_name: str
    function_name: str
    display_name: str
    display_icon: str
    post_action: str
    panel: str
    default_inputs: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


async def _reached(
    session: Any, actor: Actor, resource: str, entity_id: str
) -> tuple[str, Viewer | None]:
    """The project of an entity the actor reaches as its reads do (an annotator: the items
    given to it, their annotations and its datasets), and who its filters run as."""
    table = _ENTITIES[resource][0]
    try:
        if table is Dataset:
            dataset, scope = await dataset_and_scope(session, actor, entity_id, Role.annotator)
        else:
            _, dataset = await row_in_dataset(session, actor, table, entity_id, Role.annotator)
            scope = Scope(actor, await project_role(session, actor, dataset.project_id))
    except NotFound:
        raise NotFound(resource, entity_id) from None
    return dataset.project_id, scope.viewer


def _check_resource(resource: str) -> None:
    if resource not in SLOT_RESOURCES:
        raise InvalidInput(f"resource must be one of {', '.join(SLOT_RESOURCES)}", field="resource")
    if resource == "task":
        raise InvalidInput("task slots apply once tasks exist", field="resource")


async def slots_for(
    platform: Platform, actor: Actor, resource: str, entity_id: str, panel: str | None = None
) -> list[Slot]:
    """The slots that apply to one entity (in ``panel``, or any), by service and name."""
    _check_resource(resource)
    async with platform.db.read() as session:
        project_id, viewer = await _reached(session, actor, resource, entity_id)
        services = list(
            await session.scalars(
                select(Service)
                .where(Service.project_id == project_id, Service.active.is_(True))
                .order_by(Service.name)
            )
        )
        found: list[Slot] = []
        matched: dict[str, bool] = {}  # DQL filter -> whether the entity matches it
        for service in services:
            for slot in await _declared(session, platform, service):
                for scope in slot.display_scopes:
                    if scope.resource != resource:
                        continue
                    if panel is not None and scope.panel not in (panel, "all"):
                        continue
                    if scope.filter not in matched:
                        matched[scope.filter] = await _matches(
                            session, platform, resource, entity_id, scope.filter, viewer
                        )
                    if matched[scope.filter]:
                        found.append(
                            Slot(
                                service_id=service.id,
                                service_name=service.name,
                                function_name=slot.function_name,
                                display_name=slot.display_name or slot.function_name,
                                display_icon=slot.display_icon,
                                post_action=slot.post_action,
                                panel=scope.panel,
                                default_inputs=dict(slot.default_inputs),
                            )
                        )
                        break
    return found


async def _declared(session: Any, platform: Platform, service: Service) -> list[UISlot]:
    try:
        deployable = await packages.deployable(
            session, platform, service.project_id, service.package_name, service.package_revision
        )
    except (NotFound, InvalidInput):  # the package went away under the service
        return []
    own = [s for s in deployable.spec.slots if s.module_name == service.module_name]
    from_plugins = [
        s
        for s in platform.plugins.ui_slots
        if s.package == service.package_name and s.module_name == service.module_name
    ]
    return own + from_plugins


async def _matches(
    session: Any,
    platform: Platform,
    resource: str,
    entity_id: str,
    dql: str,
    viewer: Viewer | None,
) -> bool:
    """Whether the entity matches a slot's filter, as the viewer's own queries would find it
    (an annotator's reach only its own work on a consensus copy)."""
    if not dql.strip():
        return True
    table, dql_resource, _ = _ENTITIES[resource]
    try:
        compiled = queries.compile_for(
            queries.parse_query(dql, resource=dql_resource),
            dql_resource,
            platform.db.dialect,
            viewer=viewer,
        )
    except InvalidInput:  # a slot with a broken filter shows nowhere
        return False
    hit = await session.scalar(
        select(table.id).where(table.id == entity_id, compiled.where), compiled.params
    )
    return hit is not None


async def run_slot(
    platform: Platform,
    actor: Actor,
    service_id: str,
    function_name: str,
    resource: str,
    entity_id: str,
    input: Mapping[str, Any] | None = None,
) -> Execution:
    """Run a slot's function on an entity: its default inputs, then ``input``, then the entity
    as the function's input of its type."""
    applicable = await slots_for(platform, actor, resource, entity_id)
    slot = next(
        (s for s in applicable if s.service_id == service_id and s.function_name == function_name),
        None,
    )
    if slot is None:
        raise NotFound("slot", f"{service_id}.{function_name} on {resource} {entity_id}")
    async with platform.db.read() as session:
        service = await session.get(Service, service_id)
        assert service is not None
        _, function = await function_of(session, platform, service, function_name)
    kind = _ENTITIES[resource][2]
    values = {**slot.default_inputs, **(input or {})}
    for declared in function.inputs:
        if declared.type == kind:
            values[declared.name] = entity_id
            break
    return await executions.create_execution(
        platform, actor, service_id, function_name, values, needed=Role.annotator
    )
