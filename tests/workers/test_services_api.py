"""Services through GraphQL: deploy, read, update, pause and resume, delete, and roles."""

from __future__ import annotations

from graph.domain import projects, runs
from tests.conftest import make_user
from tests.graphql import gql, gql_errors
from tests.workers.conftest import burst
from tests.workers.functions import PACKAGE

FIELDS = """
  id projectId name packageName packageId packageRevision moduleName initParams
  concurrency executionTimeout maxAttempts onReset queue active creator
  package { name plugin id revision }
"""
DEPLOY = f"""
mutation ($projectId: ID!, $name: String!, $package: String!, $module: String,
          $params: JSON, $timeout: Int, $attempts: Int, $onReset: String, $queue: String) {{
  deployService(projectId: $projectId, name: $name, packageName: $package, moduleName: $module,
                initParams: $params, executionTimeout: $timeout, maxAttempts: $attempts,
                onReset: $onReset, queue: $queue) {{ {FIELDS} }}
}}
"""
UPDATE = f"""
mutation ($id: ID!, $params: JSON, $concurrency: Int, $onReset: String, $revision: Int) {{
  updateService(id: $id, initParams: $params, concurrency: $concurrency, onReset: $onReset,
                revision: $revision) {{ {FIELDS} }}
}}
"""
SERVICES = """query ($projectId: ID!, $dql: String) {
  services(projectId: $projectId, dql: $dql) { totalCount nodes { name active } }
}"""
RUN = """
mutation ($id: ID!) {
  createExecution(serviceId: $id, functionName: "greet", input: {name: "ada"}) { id }
}
"""
STATUS = "query ($id: ID!) { execution(id: $id) { status output } }"


async def deploy(client, project_id: str, name: str = "fns", **variables) -> dict:
    variables = {"projectId": project_id, "name": name, "package": PACKAGE, **variables}
    return (await gql(client, DEPLOY, variables))["deployService"]


async def test_deploy_read_update_and_delete(client, project) -> None:
    service = await deploy(client, project.id, params={"greeting": "hi"}, attempts=2)
    assert {k: service[k] for k in ("name", "packageName", "packageId", "packageRevision")} == {
        "name": "fns",
        "packageName": PACKAGE,
        "packageId": None,
        "packageRevision": None,
    }
    assert (service["moduleName"], service["initParams"], service["maxAttempts"]) == (
        "main",
        {"greeting": "hi"},
        2,
    )
    # the domain's defaults for what was not given
    assert (service["concurrency"], service["executionTimeout"], service["onReset"]) == (
        10,
        3600,
        "failed",
    )
    assert (service["queue"], service["active"], service["creator"]) == (
        "default",
        True,
        "owner@example.com",
    )
    assert service["package"] == {"name": PACKAGE, "plugin": True, "id": None, "revision": None}
    read = await gql(client, f"query ($id: ID!) {{ service(id: $id) {{ {FIELDS} }} }}", service)
    assert read["service"] == service

    await deploy(client, project.id, "another")
    listed = await gql(client, SERVICES, {"projectId": project.id})
    assert [s["name"] for s in listed["services"]["nodes"]] == ["another", "fns"]
    named = await gql(client, SERVICES, {"projectId": project.id, "dql": 'name like "an*"'})
    assert named["services"] == {"totalCount": 1, "nodes": [{"name": "another", "active": True}]}
    [wrong] = await gql_errors(client, SERVICES, {"projectId": project.id, "dql": "nope = 1"})
    assert wrong["extensions"]["field"] == "dql"

    updated = (
        await gql(
            client,
            UPDATE,
            {
                "id": service["id"],
                "params": {"greeting": "yo"},
                "concurrency": 3,
                "onReset": "rerun",
            },
        )
    )["updateService"]
    assert (updated["initParams"], updated["concurrency"], updated["onReset"]) == (
        {"greeting": "yo"},
        3,
        "rerun",
    )
    assert updated["maxAttempts"] == 2  # untouched

    deleted = await gql(client, "mutation ($id: ID!) { deleteService(id: $id) }", service)
    assert deleted["deleteService"] is True
    [gone] = await gql_errors(client, "query ($id: ID!) { service(id: $id) { id } }", service)
    assert gone["extensions"]["code"] == "NOT_FOUND"


async def test_bad_settings_are_refused_naming_the_field(client, project) -> None:
    cases = [
        ({"name": "bad name!"}, "name"),
        ({"timeout": 0}, "executionTimeout"),
        ({"attempts": 1000}, "maxAttempts"),
        ({"onReset": "explode"}, "onReset"),
        ({"queue": "platform"}, "queue"),
        ({"module": "nope"}, "moduleName"),
        ({"params": {"greeting": 3}}, "initParams.greeting"),
    ]
    for changes, field in cases:
        variables = {"projectId": project.id, "name": "fns", "package": PACKAGE, **changes}
        [error] = await gql_errors(client, DEPLOY, variables)
        assert error["extensions"]["code"] == "INVALID_INPUT", error
        assert error["extensions"]["field"] == field, (changes, error)
    [missing] = await gql_errors(
        client, DEPLOY, {"projectId": project.id, "name": "fns", "package": "nope"}
    )
    assert missing["extensions"]["code"] == "NOT_FOUND"
    service = await deploy(client, project.id)
    [again] = await gql_errors(
        client, DEPLOY, {"projectId": project.id, "name": "fns", "package": PACKAGE}
    )
    assert again["extensions"]["field"] == "name"
    [plugin] = await gql_errors(client, UPDATE, {"id": service["id"], "revision": 2})
    assert plugin["extensions"]["field"] == "revision"
    assert (await gql(client, SERVICES, {"projectId": project.id}))["services"]["nodes"] == [
        {"name": "fns", "active": True}
    ]


async def test_pause_keeps_executions_waiting_until_resume(
    client, platform, project, settings
) -> None:
    service = await deploy(client, project.id)
    paused = await gql(client, "mutation ($id: ID!) { pauseService(id: $id) { active } }", service)
    assert paused["pauseService"] == {"active": False}
    created = (await gql(client, RUN, service))["createExecution"]
    burst(settings)
    assert (await gql(client, STATUS, created))["execution"]["status"] == "created"
    resumed = await gql(
        client, "mutation ($id: ID!) { resumeService(id: $id) { active } }", service
    )
    assert resumed["resumeService"] == {"active": True}
    assert await runs.requeue_lost(platform, grace=0) == 1  # what the scheduler does each second
    burst(settings)
    assert (await gql(client, STATUS, created))["execution"] == {
        "status": "success",
        "output": "hello ada (1)",
    }


async def test_roles_for_services(client, platform, owner, project) -> None:
    annotator, annotator_token = await make_user(platform, "ann@example.com")
    _, stranger_token = await make_user(platform, "who@example.com")
    await projects.add_member(platform, owner[0], project.id, annotator.email, "annotator")
    as_annotator = {"Authorization": f"Bearer {annotator_token}"}
    as_stranger = {"Authorization": f"Bearer {stranger_token}"}
    variables = {"projectId": project.id, "name": "fns", "package": PACKAGE}
    [refused] = await gql_errors(client, DEPLOY, variables, headers=as_annotator)
    assert (refused["extensions"]["code"], refused["extensions"]["needed"]) == (
        "FORBIDDEN",
        "developer",
    )
    [hidden] = await gql_errors(client, DEPLOY, variables, headers=as_stranger)
    assert hidden["extensions"]["code"] == "NOT_FOUND"
    service = await deploy(client, project.id)
    # an annotator sees services but may not change or run them
    seen = await gql(client, SERVICES, {"projectId": project.id}, headers=as_annotator)
    assert seen["services"]["nodes"] == [{"name": "fns", "active": True}]
    for mutation in (
        "mutation ($id: ID!) { pauseService(id: $id) { id } }",
        "mutation ($id: ID!) { deleteService(id: $id) }",
        RUN,
    ):
        [error] = await gql_errors(client, mutation, service, headers=as_annotator)
        assert error["extensions"]["code"] == "FORBIDDEN", mutation
    for query in (
        "query ($id: ID!) { service(id: $id) { id } }",
        "mutation ($id: ID!) { pauseService(id: $id) { id } }",
    ):
        [error] = await gql_errors(client, query, service, headers=as_stranger)
        assert error["extensions"]["code"] == "NOT_FOUND", query
    [error] = await gql_errors(client, SERVICES, {"projectId": project.id}, headers=as_stranger)
    assert error["extensions"]["code"] == "NOT_FOUND"
