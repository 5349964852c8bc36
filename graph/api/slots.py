"""UI slots: the buttons that apply to an entity, and running one."""

from __future__ import annotations

import strawberry

from graph.api.context import Info
from graph.api.executions import Execution
from graph.api.scalars import JSON
from graph.domain import slots

__all__ = ["SlotMutations", "SlotQueries", "UISlot"]

_RESOURCE = "`item`, `annotation`, `dataset` or `datasetQuery`"


@strawberry.type(description="A button for a function, as a frontend shows it.")
class UISlot:
    service_id: strawberry.ID
    service_name: str
    function_name: str
    display_name: str
    display_icon: str
    post_action: str = strawberry.field(
        description="What to do with the output: `noAction`, `download`, `drawAnnotation`."
    )
    panel: str = strawberry.field(description="`browser`, `studio`, `table` or `all`.")
    default_inputs: JSON

    @classmethod
    def of(cls, slot: slots.Slot) -> UISlot:
        return cls(
            service_id=strawberry.ID(slot.service_id),
            service_name=slot.service_name,
            function_name=slot.function_name,
            display_name=slot.display_name,
            display_icon=slot.display_icon,
            post_action=slot.post_action,
            panel=slot.panel,
            default_inputs=slot.default_inputs,
        )


@strawberry.type
class SlotQueries:
    @strawberry.field(
        description=f"The slots that apply to an entity ({_RESOURCE}): of the project's active "
        "services, whose display scope names the resource and whose DQL filter the entity "
        "matches; only those for `panel` if given."
    )
    async def ui_slots(
        self, info: Info, resource: str, entity_id: strawberry.ID, panel: str | None = None
    ) -> list[UISlot]:
        ctx = info.context
        found = await slots.slots_for(ctx.platform, await ctx.actor(), resource, entity_id, panel)
        return [UISlot.of(slot) for slot in found]


@strawberry.type
class SlotMutations:
    @strawberry.mutation(
        description="Run a slot's function on an entity (any member may, where the slot "
        "applies): its default inputs, then `input`, then the entity as its input of that type."
    )
    async def run_ui_slot(
        self,
        info: Info,
        service_id: strawberry.ID,
        function_name: str,
        resource: str,
        entity_id: strawberry.ID,
        input: JSON | None = None,
    ) -> Execution:
        ctx = info.context
        row = await slots.run_slot(
            ctx.platform,
            await ctx.actor(),
            service_id,
            function_name,
            resource,
            entity_id,
            input,
        )
        return Execution.of(row)
