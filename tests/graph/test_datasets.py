from __future__ import annotations

from tests.graphql import gql, gql_errors


async def test_create_rename_and_list_datasets(client, project) -> None:
    created = await gql(
        client,
        "mutation($p: ID!) { createDataset(projectId: $p, name: 'x') { id name } }".replace(
            "'", '"'
        ),
        {"p": project.id},
    )
    dataset_id = created["createDataset"]["id"]
    await gql(
        client,
        'mutation($id: ID!) { updateDataset(id: $id, name: "renamed") { name } }',
        {"id": dataset_id},
    )
    data = await gql(
        client,
        "query($p: ID!) { datasets(projectId: $p) { totalCount nodes { id name itemsCount } } }",
        {"p": project.id},
    )
    assert data["datasets"]["totalCount"] == 1
    assert data["datasets"]["nodes"] == [{"id": dataset_id, "name": "renamed", "itemsCount": 0}]


async def test_duplicate_dataset_name_is_a_conflict(client, project) -> None:
    query = 'mutation($p: ID!) { createDataset(projectId: $p, name: "same") { id } }'
    await gql(client, query, {"p": project.id})
    errors = await gql_errors(client, query, {"p": project.id})
    assert errors[0]["extensions"]["code"] == "CONFLICT"
    assert "same" in errors[0]["message"]


async def test_unauthenticated_request_is_refused(client, project) -> None:
    errors = await gql_errors(
        client, "query { projects { nodes { id } } }", headers={"Authorization": ""}
    )
    assert errors[0]["extensions"]["code"] == "UNAUTHENTICATED"
