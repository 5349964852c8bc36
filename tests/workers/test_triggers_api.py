"""Triggers through GraphQL: event and cron triggers created, read, listed, updated, deleted;
bad ones refused naming the field; an event trigger firing on new items through the dispatcher
and a real worker."""

from __future__ import annotations

import pytest

from graph.domain import datasets, dispatch, items, projects, services
from tests.conftest import make_user
from tests.graphql import gql, gql_errors
from tests.workers.conftest import burst
from tests.workers.functions import PACKAGE

FIELDS = """
  id projectId name type active serviceId functionName input resource actions executionMode
  dql filter cron startAt endAt nextAt maxCatchUp creator service { id name }
"""
CREATE = f"""
mutation ($trigger: TriggerInput!) {{ createTrigger(trigger: $trigger) {{ {FIELDS} }} }}
"""
UPDATE = f"""
mutation ($id: ID!, $active: Boolean, $cron: String, $dql: String, $input: JSON) {{
  updateTrigger(id: $id, active: $active, cron: $cron, dql: $dql, input: $input) {{ {FIELDS} }}
}}
"""
TRIGGERS = """query ($projectId: ID!, $dql: String) {
  triggers(projectId: $projectId, dql: $dql) { nodes { name type active } }
}"""


@pytest.fixture
async def service(platform, owner, project):
    return await services.deploy_service(platform, owner[0], project.id, "fns", PACKAGE)


def event(service_id: str, **changes) -> dict:
    return {
        "serviceId": service_id,
        "name": "on train",
        "functionName": "label",
        "resource": "Item",
        "actions": ["Created"],
        "dql": 'dir = "/train"',
        "input": {"label": "dog"},
        **changes,
    }


def cron(service_id: str, **changes) -> dict:
    return {
        "serviceId": service_id,
        "name": "nightly",
        "type": "Cron",
        "functionName": "greet",
        "cron": "0 3 * * *",
        "input": {"name": "night"},
        **changes,
    }


async def create(client, trigger: dict) -> dict:
    return (await gql(client, CREATE, {"trigger": trigger}))["createTrigger"]


async def test_event_and_cron_triggers_are_created_read_updated_and_deleted(
    client, project, service
) -> None:
    on_items = await create(client, event(service.id))
    assert {k: on_items[k] for k in ("type", "resource", "actions", "executionMode", "dql")} == {
        "type": "Event",
        "resource": "Item",
        "actions": ["Created"],
        "executionMode": "Once",
        "dql": 'dir = "/train"',
    }
    assert (on_items["input"], on_items["active"], on_items["cron"], on_items["nextAt"]) == (
        {"label": "dog"},
        True,
        None,
        None,
    )
    assert on_items["service"] == {"id": service.id, "name": "fns"}

    nightly = await create(
        client, cron(service.id, startAt="2030-01-01T00:00:00Z", endAt="2031-01-01T00:00:00")
    )
    assert (nightly["type"], nightly["executionMode"], nightly["resource"]) == ("Cron", None, None)
    assert (nightly["startAt"], nightly["endAt"]) == (
        "2030-01-01T00:00:00.000Z",
        "2031-01-01T00:00:00.000Z",
    )
    assert nightly["nextAt"] == "2030-01-01T03:00:00.000Z"
    assert nightly["maxCatchUp"] == 1

    read = await gql(client, f"query ($id: ID!) {{ trigger(id: $id) {{ {FIELDS} }} }}", nightly)
    assert read["trigger"] == nightly
    listed = await gql(client, TRIGGERS, {"projectId": project.id})
    assert listed["triggers"]["nodes"] == [
        {"name": "nightly", "type": "Cron", "active": True},
        {"name": "on train", "type": "Event", "active": True},
    ]
    crons = await gql(client, TRIGGERS, {"projectId": project.id, "dql": "has cron"})
    assert [t["name"] for t in crons["triggers"]["nodes"]] == ["nightly"]

    paused = (await gql(client, UPDATE, {"id": on_items["id"], "active": False}))["updateTrigger"]
    assert paused["active"] is False
    changed = (
        await gql(client, UPDATE, {"id": on_items["id"], "dql": 'dir = "/val"', "input": {}})
    )["updateTrigger"]
    assert (changed["dql"], changed["input"]) == ('dir = "/val"', {})
    rescheduled = (await gql(client, UPDATE, {"id": nightly["id"], "cron": "30 4 * * *"}))[
        "updateTrigger"
    ]
    assert (rescheduled["cron"], rescheduled["nextAt"]) == (
        "30 4 * * *",
        "2030-01-01T04:30:00.000Z",
    )

    deleted = await gql(client, "mutation ($id: ID!) { deleteTrigger(id: $id) }", nightly)
    assert deleted["deleteTrigger"] is True
    [gone] = await gql_errors(client, "query ($id: ID!) { trigger(id: $id) { id } }", nightly)
    assert gone["extensions"]["code"] == "NOT_FOUND"


async def test_bad_triggers_are_refused_naming_the_field(client, project, service) -> None:
    cases = [
        (event(service.id, dql="dir = "), "dql"),
        (event(service.id, dql="nope = 1"), "dql"),
        (event(service.id, resource="Pipeline"), "resource"),
        (event(service.id, actions=["Exploded"]), "actions"),
        (event(service.id, executionMode="Sometimes"), "executionMode"),
        (event(service.id, functionName="greet", input={"name": "x"}), "functionName"),
        (event(service.id, resource="Dataset", dql=None), "functionName"),
        (event(service.id, input={"item": "x"}), "input.item"),
        (event(service.id, input={"label": 3}), "input.label"),
        (event(service.id, type="Webhook"), "type"),
        (event(service.id, name="bad/name"), "name"),
        (cron(service.id, cron="every day"), "cron"),
        (cron(service.id, cron="61 * * * *"), "cron"),
        (cron(service.id, cron=None), "cron"),
        (cron(service.id, startAt="tomorrow"), "startAt"),
        (cron(service.id, startAt="2030-01-02T00:00:00Z", endAt="2030-01-01T00:00:00Z"), "endAt"),
        (cron(service.id, maxCatchUp=1000), "maxCatchUp"),
        (cron(service.id, dql='dir = "/a"'), "dql"),
        (cron(service.id, input={}), "input.name"),
    ]
    for trigger, field in cases:
        [error] = await gql_errors(client, CREATE, {"trigger": trigger})
        assert (error["extensions"]["code"], error["extensions"].get("field")) == (
            "INVALID_INPUT",
            field,
        ), (trigger, error)
    [missing] = await gql_errors(client, CREATE, {"trigger": event("0" * 24)})
    assert missing["extensions"]["code"] == "NOT_FOUND"
    assert (await gql(client, TRIGGERS, {"projectId": project.id}))["triggers"]["nodes"] == []

    created = await create(client, event(service.id))
    [again] = await gql_errors(client, CREATE, {"trigger": event(service.id)})
    assert again["extensions"]["field"] == "name"
    for changes, field in (({"dql": "dir ="}, "dql"), ({"cron": "* * * * *"}, "cron")):
        [error] = await gql_errors(client, UPDATE, {"id": created["id"], **changes})
        assert error["extensions"]["field"] == field, error


async def test_an_event_trigger_runs_its_function_on_matching_new_items(
    client, platform, owner, project, service, settings
) -> None:
    trigger = await create(client, event(service.id))
    dataset = await datasets.create_dataset(platform, owner[0], project.id, "ds")
    async with platform.db.write() as session:
        await items.insert_items(
            session,
            owner[0],
            dataset,
            [items.ItemSpec(path=f"/{d}/{n}.jpg") for d in ("train", "val") for n in range(2)],
        )
    await dispatch.dispatch(platform)
    burst(settings)
    listed = await gql(
        client,
        """query ($projectId: ID!, $dql: String) {
          executions(projectId: $projectId, dql: $dql) {
            totalCount nodes { status functionName triggerId input }
          }
        }""",
        {"projectId": project.id, "dql": f'triggerId = "{trigger["id"]}"'},
    )
    runs = listed["executions"]
    assert runs["totalCount"] == 2
    assert {(e["status"], e["functionName"]) for e in runs["nodes"]} == {("success", "label")}
    assert {e["input"]["label"] for e in runs["nodes"]} == {"dog"}
    page = await items.list_items(platform, owner[0], dataset.id, folders=False)
    labelled = sorted(i.filename for i in page.rows if i.metadata_.get("user", {}).get("labelled"))
    assert labelled == ["/train/0.jpg", "/train/1.jpg"]


async def test_roles_for_triggers(client, platform, owner, project, service) -> None:
    annotator, annotator_token = await make_user(platform, "ann@example.com")
    _, stranger_token = await make_user(platform, "who@example.com")
    await projects.add_member(platform, owner[0], project.id, annotator.email, "annotator")
    as_annotator = {"Authorization": f"Bearer {annotator_token}"}
    as_stranger = {"Authorization": f"Bearer {stranger_token}"}
    [refused] = await gql_errors(
        client, CREATE, {"trigger": event(service.id)}, headers=as_annotator
    )
    assert refused["extensions"]["code"] == "FORBIDDEN"
    [hidden] = await gql_errors(client, CREATE, {"trigger": event(service.id)}, headers=as_stranger)
    assert hidden["extensions"]["code"] == "NOT_FOUND"
    created = await create(client, event(service.id))
    seen = await gql(client, TRIGGERS, {"projectId": project.id}, headers=as_annotator)
    assert [t["name"] for t in seen["triggers"]["nodes"]] == ["on train"]
    [error] = await gql_errors(
        client, UPDATE, {"id": created["id"], "active": False}, headers=as_annotator
    )
    assert error["extensions"]["code"] == "FORBIDDEN"
    for query in (
        "query ($id: ID!) { trigger(id: $id) { id } }",
        "mutation ($id: ID!) { deleteTrigger(id: $id) }",
    ):
        [error] = await gql_errors(client, query, {"id": created["id"]}, headers=as_stranger)
        assert error["extensions"]["code"] == "NOT_FOUND", query
