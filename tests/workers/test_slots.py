"""UI slots: which buttons apply to an entity (scope resource, DQL filter, panel), and running
one as an annotator, which is how a developer lets annotators run a function."""

from __future__ import annotations

import pytest

from graph.domain import (
    annotations,
    assignments,
    datasets,
    executions,
    items,
    projects,
    services,
    slots,
    tasks,
)
from graph.domain.annotations import AnnotationSpec
from graph.domain.errors import Forbidden, InvalidInput, NotFound
from plugins import hookimpl
from plugins.functions import DisplayScope, PackageSpec, SpecError, UISlot
from tests.conftest import make_user
from tests.graphql import gql, gql_errors
from tests.workers.conftest import burst
from tests.workers.functions import PACKAGE, SPEC


class _OnAnnotated:
    """A plugin slot shown on annotated items (its filter reads the annotator's own work)."""

    @hookimpl
    def register_ui_slots(self) -> list[UISlot]:
        scope = DisplayScope("item", "annotated = true", "review")
        return [UISlot("Review it", "main", "on_item", (scope,), package=PACKAGE)]


@pytest.fixture
async def setup(platform, owner, project):
    await services.deploy_service(platform, owner[0], project.id, "fns", PACKAGE)
    dataset = await datasets.create_dataset(platform, owner[0], project.id, "ds")
    async with platform.db.write() as session:
        made, _ = await items.insert_items(
            session,
            owner[0],
            dataset,
            [items.ItemSpec(path="/train/a.jpg"), items.ItemSpec(path="/val/b.jpg")],
        )
    return dataset, made[0].item_id, made[1].item_id


async def test_slots_apply_by_scope_filter_and_panel(platform, owner, setup) -> None:
    dataset, train, val = setup
    on_train = await slots.slots_for(platform, owner[0], "item", train)
    assert [(s.display_name, s.function_name, s.panel) for s in on_train] == [
        ("Label it", "label", "studio"),
        ("Show its name", "on_item", "browser"),
    ]
    assert on_train[0].post_action == "drawAnnotation"
    assert [s.function_name for s in await slots.slots_for(platform, owner[0], "item", val)] == [
        "label"
    ]
    studio = await slots.slots_for(platform, owner[0], "item", train, panel="studio")
    assert [s.function_name for s in studio] == ["label"]
    assert await slots.slots_for(platform, owner[0], "dataset", dataset.id) == []


async def test_an_annotator_runs_a_slot_but_not_the_function_directly(
    platform, owner, project, setup, settings
) -> None:
    dataset, train, val = setup
    annotator, _ = await make_user(platform, "ann@example.com")
    await projects.add_member(platform, owner[0], project.id, annotator.email, "annotator")
    # it reaches the items given to it, and their slots; of the others, nothing
    await tasks.create_task(
        platform,
        owner[0],
        dataset.id,
        "mine",
        dql='dir = "/train"',
        workload=[(annotator.email, 100)],
    )
    with pytest.raises(NotFound):
        await slots.slots_for(platform, annotator, "item", val)
    service_id = (await slots.slots_for(platform, annotator, "item", train))[0].service_id
    with pytest.raises(Forbidden):
        await executions.create_execution(platform, annotator, service_id, "label", {"item": train})
    started = await slots.run_slot(platform, annotator, service_id, "label", "item", train)
    assert started.input == {
        "label": "from-slot",
        "item": {"item_id": train, "dataset_id": setup[0].id},
    }
    burst(settings)
    done = await executions.get_execution(platform, owner[0], started.id)
    assert done.status == "success"


async def test_slots_that_do_not_apply_cannot_be_run(platform, owner, project, setup) -> None:
    _, train, val = setup
    service_id = (await slots.slots_for(platform, owner[0], "item", train))[0].service_id
    with pytest.raises(NotFound, match="slot"):
        await slots.run_slot(platform, owner[0], service_id, "on_item", "item", val)
    with pytest.raises(InvalidInput) as error:
        await slots.slots_for(platform, owner[0], "pipeline", train)
    assert error.value.details["field"] == "resource"
    stranger, _ = await make_user(platform, "who@example.com")
    with pytest.raises(NotFound):
        await slots.slots_for(platform, stranger, "item", train)
    await services.set_active(platform, owner[0], service_id, False)
    assert await slots.slots_for(platform, owner[0], "item", train) == []


def test_a_package_slot_must_name_one_of_its_functions() -> None:
    manifest = SPEC.to_manifest()
    manifest["slots"][0]["functionName"] = "nope"
    with pytest.raises(SpecError, match="no function 'nope' in module 'main'"):
        PackageSpec.from_manifest(manifest)
    manifest["slots"][0]["functionName"] = "label"
    manifest["slots"][0]["displayScopes"] = [{"resource": "pipeline"}]
    with pytest.raises(SpecError, match=r"slots\[0\].displayScopes\[0\].resource"):
        PackageSpec.from_manifest(manifest)


async def test_slots_over_graphql(client, setup, settings) -> None:
    _, train, _ = setup
    listed = await gql(
        client,
        """query($i: ID!) { uiSlots(resource: "item", entityId: $i, panel: "browser") {
          serviceName functionName displayName postAction panel defaultInputs } }""",
        {"i": train},
    )
    assert listed["uiSlots"] == [
        {
            "serviceName": "fns",
            "functionName": "on_item",
            "displayName": "Show its name",
            "postAction": "noAction",
            "panel": "browser",
            "defaultInputs": {},
        }
    ]
    service = (
        await gql(
            client,
            'query($i: ID!) { uiSlots(resource: "item", entityId: $i) { serviceId } }',
            {"i": train},
        )
    )["uiSlots"][0]["serviceId"]
    ran = await gql(
        client,
        """mutation($s: ID!, $i: ID!) {
          runUiSlot(serviceId: $s, functionName: "on_item", resource: "item", entityId: $i) { id status }
        }""",
        {"s": service, "i": train},
    )
    assert ran["runUiSlot"]["status"] == "created"
    burst(settings)
    errors = await gql_errors(
        client,
        'query($i: ID!) { uiSlots(resource: "nope", entityId: $i) { displayName } }',
        {"i": train},
    )
    assert errors[0]["extensions"]["field"] == "resource"


async def test_an_annotators_slot_filters_see_only_its_own_work_on_a_consensus_copy(
    platform, plugins, owner, project, setup
) -> None:
    dataset, train, val = setup
    plugins.register(_OnAnnotated(), "on-annotated")
    people = []
    for name in ("ann1", "ann2"):
        person, _ = await make_user(platform, f"{name}@example.com")
        await projects.add_member(platform, owner[0], project.id, person.email, "annotator")
        people.append(person)
    ann1, ann2 = people
    await tasks.create_task(
        platform,
        owner[0],
        dataset.id,
        "agree",
        dql="",
        workload=[(ann1.email, 50), (ann2.email, 50)],
        consensus=assignments.Consensus(percentage=100, copies=2),
    )
    box = AnnotationSpec(type="box", label="cat", coordinates=[{"x": 1, "y": 1}, {"x": 4, "y": 4}])
    await annotations.create_annotations(platform, ann1, train, [box])

    async def shown(actor) -> list[str]:
        found = await slots.slots_for(platform, actor, "item", train, panel="review")
        return [s.display_name for s in found]

    assert await shown(owner[0]) == ["Review it"]
    assert await shown(ann1) == ["Review it"]
    assert await shown(ann2) == []  # ann1's annotation on its own copy is out of its sight
    await annotations.create_annotations(platform, ann2, train, [box])
    assert await shown(ann2) == ["Review it"]
    assert await slots.slots_for(platform, ann2, "item", val, panel="review") == []
