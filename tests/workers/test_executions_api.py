"""Executions through GraphQL on a real worker: create and run, read status, output, status
history and logs; list with DQL in a bounded number of statements; batches; rerun, terminate."""

from __future__ import annotations

import pytest

from graph.domain import datasets, items, projects, services
from tests.asserts import count_statements
from tests.conftest import make_user
from tests.graphql import gql, gql_errors
from tests.workers.conftest import burst
from tests.workers.functions import PACKAGE

CREATE = """
mutation ($serviceId: ID!, $function: String!, $input: JSON) {
  createExecution(serviceId: $serviceId, functionName: $function, input: $input) {
    id status functionName input attempts service { name }
  }
}
"""
EXECUTION = """
query ($id: ID!, $stream: String, $first: Int, $after: String) {
  execution(id: $id) {
    id status progress message action output error attempts maxAttempts duration
    startedAt endedAt
    statusLog { status message attempt at }
    logs(stream: $stream, first: $first, after: $after) { seq attempt stream line }
    service { id name }
  }
}
"""
LIST = """
query ($projectId: ID!, $dql: String, $first: Int, $after: String) {
  executions(projectId: $projectId, dql: $dql, first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    nodes { id functionName status output service { id name queue } }
  }
}
"""


@pytest.fixture
async def service(platform, owner, project):
    return await services.deploy_service(
        platform,
        owner[0],
        project.id,
        "fns",
        PACKAGE,
        init_params={"greeting": "hi"},
        max_attempts=2,
    )


async def create(client, service_id: str, function: str, input: dict | None = None) -> dict:
    variables = {"serviceId": service_id, "function": function, "input": input}
    return (await gql(client, CREATE, variables))["createExecution"]


async def read(client, execution_id: str, **variables) -> dict:
    return (await gql(client, EXECUTION, {"id": execution_id, **variables}))["execution"]


async def test_an_execution_runs_and_reports_through_graphql(client, service, settings) -> None:
    created = await create(client, service.id, "greet", {"name": "ada"})
    assert (created["status"], created["functionName"], created["input"]) == (
        "created",
        "greet",
        {"name": "ada"},
    )
    assert (created["attempts"], created["service"]) == (0, {"name": "fns"})
    burst(settings)
    done = await read(client, created["id"])
    assert (done["status"], done["output"], done["attempts"], done["progress"]) == (
        "success",
        "hi ada (1)",
        1,
        100,
    )
    assert done["duration"] is not None and done["duration"] >= 0
    assert done["startedAt"] <= done["endedAt"]
    assert done["service"] == {"id": service.id, "name": "fns"}
    history = [(line["status"], line["attempt"]) for line in done["statusLog"]]
    assert history == [("created", 0), ("in-progress", 1), ("success", 1)]
    assert done["statusLog"][1]["message"].startswith("on ")
    assert all(line["at"] for line in done["statusLog"])


async def test_a_failure_keeps_its_traceback_in_the_logs(client, service, settings) -> None:
    created = await create(client, service.id, "fail", {"message": "no luck"})
    burst(settings)
    done = await read(client, created["id"], stream="stderr")
    assert (done["status"], done["attempts"], done["error"]) == ("failed", 2, "ValueError: no luck")
    text = "\n".join(line["line"] for line in done["logs"])
    assert "Traceback" in text and "ValueError: no luck" in text
    assert {line["attempt"] for line in done["logs"]} == {1, 2}
    assert any("retrying (attempt 2 of 2)" in (line["message"] or "") for line in done["statusLog"])


async def test_logs_are_paged_by_seq(client, service, settings) -> None:
    created = await create(client, service.id, "chatty", {"lines": 25})
    burst(settings)
    seen: list[str] = []
    after = None
    while True:
        page = (await read(client, created["id"], stream="stdout", first=10, after=after))["logs"]
        if not page:
            break
        seen += [line["line"] for line in page]
        after = page[-1]["seq"]
    assert [line.split()[1] for line in seen] == [str(n) for n in range(25)]
    [bad] = await gql_errors(client, EXECUTION, {"id": created["id"], "after": "x"})
    assert (bad["extensions"]["code"], bad["extensions"]["field"]) == ("INVALID_INPUT", "after")


async def test_executions_are_listed_with_dql_in_bounded_statements(
    client, platform, owner, project, service, settings
) -> None:
    other = await services.deploy_service(platform, owner[0], project.id, "other", PACKAGE)
    for n in range(6):
        await create(client, (service if n % 2 else other).id, "greet", {"name": f"n{n}"})
    failed = await create(client, service.id, "fail")
    burst(settings)

    listed = (await gql(client, LIST, {"projectId": project.id, "dql": 'status = "failed"'}))[
        "executions"
    ]
    assert [e["id"] for e in listed["nodes"]] == [failed["id"]]
    assert listed["totalCount"] == 1
    named = (await gql(client, LIST, {"projectId": project.id, "dql": 'input.name = "n3"'}))[
        "executions"
    ]
    assert [e["output"] for e in named["nodes"]] == ["hi n3 (2)"]

    # newest first, keyset pages; the service of every node costs one statement in all
    ids: list[str] = []
    after = None
    pages = 0
    with count_statements(platform.db.engine) as statements:
        while True:
            page = (await gql(client, LIST, {"projectId": project.id, "first": 3, "after": after}))[
                "executions"
            ]
            pages += 1
            ids += [e["id"] for e in page["nodes"]]
            assert {e["service"]["name"] for e in page["nodes"]} <= {"fns", "other"}
            if not page["pageInfo"]["hasNextPage"]:
                break
            after = page["pageInfo"]["endCursor"]
    assert len(ids) == len(set(ids)) == 7 and ids[0] == failed["id"]
    # per page: token, role, page, services, role and count for totalCount; whatever its size
    assert pages == 3 and len(statements) == 6 * pages, str(statements)
    assert sum("FROM services" in s for s in statements.statements) == pages

    [bad] = await gql_errors(client, LIST, {"projectId": project.id, "dql": "nope = 1"})
    assert (bad["extensions"]["code"], bad["extensions"]["field"]) == ("INVALID_INPUT", "dql")


async def test_a_batch_runs_once_per_selected_item(
    client, platform, owner, project, service, settings
) -> None:
    dataset = await datasets.create_dataset(platform, owner[0], project.id, "ds")
    async with platform.db.write() as session:
        await items.insert_items(
            session,
            owner[0],
            dataset,
            [items.ItemSpec(path=f"/{d}/{n}.jpg") for d in ("train", "val") for n in range(3)],
        )
    batch = """
    mutation ($serviceId: ID!, $function: String!, $datasetId: ID!, $dql: String) {
      createExecutions(serviceId: $serviceId, functionName: $function, datasetId: $datasetId,
                       dql: $dql)
    }
    """
    variables = {
        "serviceId": service.id,
        "function": "on_item",
        "datasetId": dataset.id,
        "dql": 'dir = "/train"',
    }
    assert (await gql(client, batch, variables))["createExecutions"] == 3
    burst(settings)
    listed = await gql(client, LIST, {"projectId": project.id, "dql": 'functionName = "on_item"'})
    outputs = sorted(e["output"] for e in listed["executions"]["nodes"])
    assert outputs == ["/train/0.jpg", "/train/1.jpg", "/train/2.jpg"]
    [wrong] = await gql_errors(client, batch, {**variables, "function": "greet"})
    assert wrong["extensions"]["field"] == "functionName"
    assert "exactly one Item input" in wrong["message"]
    [bad] = await gql_errors(client, batch, {**variables, "dql": "dir = "})
    assert bad["extensions"]["code"] == "INVALID_INPUT"
    assert listed["executions"]["totalCount"] == 3


async def test_bad_inputs_are_typed_errors_and_nothing_is_created(client, project, service) -> None:
    cases = [
        ("greet", {"name": 3}, "input.name"),
        ("greet", {}, "input.name"),
        ("greet", {"name": "a", "extra": 1}, "input"),
        ("nope", {}, "functionName"),
    ]
    for function, given, field in cases:
        [error] = await gql_errors(
            client, CREATE, {"serviceId": service.id, "function": function, "input": given}
        )
        assert (error["extensions"]["code"], error["extensions"].get("field")) == (
            "INVALID_INPUT",
            field,
        ), error
    listed = await gql(client, LIST, {"projectId": project.id})
    assert listed["executions"]["totalCount"] == 0


async def test_terminate_then_rerun(client, service, settings) -> None:
    created = await create(client, service.id, "greet", {"name": "t"})
    terminate = "mutation ($id: ID!) { terminateExecution(id: $id) { status toTerminate } }"
    stopped = await gql(client, terminate, created)
    assert stopped["terminateExecution"] == {"status": "terminated", "toTerminate": True}
    burst(settings)  # its job finds nothing to claim
    assert (await read(client, created["id"]))["status"] == "terminated"
    [ended] = await gql_errors(client, terminate, created)
    assert ended["extensions"]["code"] == "CONFLICT"

    rerun = "mutation ($id: ID!) { rerunExecution(id: $id) { status attempts output } }"
    again = await gql(client, rerun, created)
    assert again["rerunExecution"] == {"status": "created", "attempts": 0, "output": None}
    [running] = await gql_errors(client, rerun, created)
    assert running["extensions"]["code"] == "CONFLICT"
    burst(settings)
    done = await read(client, created["id"])
    assert (done["status"], done["output"]) == ("success", "hi t (1)")
    history = [(line["status"], line["message"]) for line in done["statusLog"]]
    assert ("terminated", "by owner@example.com") in history
    assert ("created", "rerun by owner@example.com") in history and history[-1][0] == "success"


async def test_roles_for_executions(client, platform, owner, project, service) -> None:
    annotator, annotator_token = await make_user(platform, "ann@example.com")
    _, stranger_token = await make_user(platform, "who@example.com")
    await projects.add_member(platform, owner[0], project.id, annotator.email, "annotator")
    as_annotator = {"Authorization": f"Bearer {annotator_token}"}
    as_stranger = {"Authorization": f"Bearer {stranger_token}"}
    variables = {"serviceId": service.id, "function": "greet", "input": {"name": "a"}}
    [refused] = await gql_errors(client, CREATE, variables, headers=as_annotator)
    assert refused["extensions"]["code"] == "FORBIDDEN"
    [hidden] = await gql_errors(client, CREATE, variables, headers=as_stranger)
    assert hidden["extensions"]["code"] == "NOT_FOUND"
    created = await create(client, service.id, "greet", {"name": "a"})
    seen = await gql(client, EXECUTION, {"id": created["id"]}, headers=as_annotator)
    assert seen["execution"]["id"] == created["id"]
    for query in (EXECUTION, "mutation ($id: ID!) { terminateExecution(id: $id) { id } }"):
        [error] = await gql_errors(client, query, {"id": created["id"]}, headers=as_stranger)
        assert error["extensions"]["code"] == "NOT_FOUND"
    [error] = await gql_errors(client, LIST, {"projectId": project.id}, headers=as_stranger)
    assert error["extensions"]["code"] == "NOT_FOUND"
