"""DQL on every project-level list, on SQLite and PostgreSQL: projects, members, integrations,
drivers, saved queries and datasets (by a saved query too); keyset paging by any ``order by``;
unknown fields refused; an integration's secret is no field."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from graph.domain import datasets, projects, saved_queries, storage
from graph.domain.errors import NotFound
from tests.asserts import count_statements
from tests.conftest import make_user
from tests.graphql import gql, gql_errors
from tests.s3 import CREDENTIALS

LISTS = {
    "projects": "projects(dql: $q) { totalCount nodes { name } }",
    "members": "project(id: $p) { members(dql: $q) { totalCount nodes { user { email } } } }",
    "integrations": "integrations(projectId: $p, dql: $q) { totalCount nodes { name } }",
    "drivers": "drivers(projectId: $p, dql: $q) { totalCount nodes { name } }",
    "savedQueries": "savedQueries(projectId: $p, dql: $q) { totalCount nodes { name } }",
    "datasets": "datasets(projectId: $p, dql: $q) { totalCount nodes { name } }",
}


@pytest.fixture
async def data(platform, owner, project) -> Any:
    actor = owner[0]
    for name in ("alpha", "beta-1"):
        await projects.create_project(platform, actor, name)
    stranger, _ = await make_user(platform, "stranger@example.com")
    await projects.create_project(platform, stranger, "beta-2")
    for email, role in (("ann@example.com", "annotator"), ("dev@example.com", "developer")):
        await make_user(platform, email)
        await projects.add_member(platform, actor, project.id, email, role)
    keys = await storage.create_integration(
        platform, actor, project.id, "keys-a", "s3", CREDENTIALS
    )
    await storage.create_integration(platform, actor, project.id, "keys-b", "s3", CREDENTIALS)
    await storage.create_driver(platform, actor, project.id, "d1", "s3", {"bucket": "open-data"})
    await storage.create_driver(
        platform, actor, project.id, "d2", "s3", {"bucket": "private"}, keys.id
    )
    for name in ("train", "val", "test"):
        await datasets.create_dataset(platform, actor, project.id, name)
    for name, resource, dql in (
        ("front", "items", 'metadata.user.camera = "front"'),
        ("dogs", "annotations", 'label = "dog"'),
        ("splits", "datasets", 'name in ("train", "val") order by name desc'),
    ):
        await saved_queries.create_saved_query(platform, actor, project.id, name, resource, dql=dql)
    return SimpleNamespace(project_id=project.id, keys_id=keys.id, stranger=stranger)


def _query(kind: str) -> str:
    declared = "$p: ID!, $q: String" if "$p" in LISTS[kind] else "$q: String"
    return f"query({declared}) {{ {LISTS[kind]} }}"


async def _names(client, data, kind: str, dql: str | None) -> tuple[int, list[str]]:
    answer = await gql(
        client,
        _query(kind),
        {"p": data.project_id, "q": dql},
    )
    found = answer["project"]["members"] if kind == "members" else answer[kind]
    names = [n["user"]["email"] if kind == "members" else n["name"] for n in found["nodes"]]
    return found["totalCount"], names


async def test_every_list_filters_by_dql_and_refuses_unknown_fields(client, data) -> None:
    for kind, dql, expected in [
        ("projects", None, ["alpha", "beta-1", "demo"]),
        ("projects", 'name like "beta*"', ["beta-1"]),  # not the stranger's beta-2
        ("members", 'role = "annotator"', ["ann@example.com"]),
        ("members", 'role != "owner" order by email desc', ["dev@example.com", "ann@example.com"]),
        ("integrations", 'name = "keys-b"', ["keys-b"]),
        ("drivers", 'config.bucket = "private"', ["d2"]),
        ("drivers", f'integrationId = "{data.keys_id}"', ["d2"]),
        ("drivers", 'type = "s3" order by name desc', ["d2", "d1"]),
        ("savedQueries", 'resource = "annotations" or name like "s*"', ["dogs", "splits"]),
        ("datasets", 'name != "val" order by createdAt desc', ["test", "train"]),
    ]:
        assert await _names(client, data, kind, dql) == (len(expected), expected), (kind, dql)

    for kind in LISTS:
        for dql in ("nope = 1", "name >", "secret.access_key_id = 1"):
            errors = await gql_errors(
                client,
                _query(kind),
                {"p": data.project_id, "q": dql},
            )
            extensions = errors[0]["extensions"]
            assert (extensions["code"], extensions["field"]) == ("INVALID_INPUT", "dql"), kind


async def test_the_secret_is_neither_filterable_nor_returned(client, data) -> None:
    errors = await gql_errors(
        client,
        'query($p: ID!) { integrations(projectId: $p, dql: "has secret") { totalCount } }',
        {"p": data.project_id},
    )
    assert errors[0]["extensions"]["dqlField"] == "secret"
    response = await client.post(
        "/graphql",
        json={
            "query": "query($p: ID!) { integrations(projectId: $p) { nodes { id name type } } }",
            "variables": {"p": data.project_id},
        },
    )
    assert CREDENTIALS["secret_access_key"] not in response.text


async def test_keyset_paging_by_any_order(platform, owner, data) -> None:
    actor = owner[0]
    seen: list[str] = []
    after = None
    while True:
        page = await projects.list_members(
            platform, actor, data.project_id, dql="order by role desc", first=1, after=after
        )
        seen += [user.email for _, user in page.rows]
        if not page.has_next:
            break
        after = page.end_cursor
    assert seen == ["owner@example.com", "dev@example.com", "ann@example.com"]
    [(member, user)] = (
        await projects.list_members(platform, actor, data.project_id, dql='name = ""', first=1)
    ).rows
    assert (member.role, user.email) == ("annotator", "ann@example.com")

    first = await storage.list_drivers(platform, actor, data.project_id, 1, dql="order by name")
    rest = await storage.list_drivers(
        platform, actor, data.project_id, 5, first.end_cursor, dql="order by name"
    )
    assert [d.name for d in first.rows + rest.rows] == ["d1", "d2"] and not rest.has_next
    pages = [await projects.list_projects(platform, actor, dql="order by name desc", first=2)]
    pages.append(
        await projects.list_projects(
            platform, actor, dql="order by name desc", first=2, after=pages[0].end_cursor
        )
    )
    assert [[p.name for p in page.rows] for page in pages] == [["demo", "beta-1"], ["alpha"]]
    admin, _ = await make_user(platform, "admin@example.com", admin=True)
    assert await projects.count_projects(platform, admin, dql='name like "beta*"') == 2

    with count_statements(platform.db.engine) as log:
        await projects.list_members(platform, actor, data.project_id, first=100)
    assert len(log) == 3, str(log)  # the role check, the page, the page's roles


async def test_datasets_by_saved_query(client, platform, owner, data) -> None:
    answer = await gql(
        client,
        'query($p: ID!) { datasets(projectId: $p, saved: "splits") { totalCount nodes { name } } }',
        {"p": data.project_id},
    )
    assert answer["datasets"] == {"totalCount": 2, "nodes": [{"name": "val"}, {"name": "train"}]}
    for arguments, code in [
        ('saved: "front"', "INVALID_INPUT"),  # a query over items
        ('saved: "splits", dql: "name = 1"', "INVALID_INPUT"),
        ('saved: "nope"', "NOT_FOUND"),
    ]:
        errors = await gql_errors(
            client,
            f"query($p: ID!) {{ datasets(projectId: $p, {arguments}) {{ totalCount }} }}",
            {"p": data.project_id},
        )
        assert errors[0]["extensions"]["code"] == code, arguments
    # a stranger learns nothing of the project's saved queries
    with pytest.raises(NotFound):
        await saved_queries.project_selection(
            platform, data.stranger, data.project_id, "datasets", saved="splits", dql=None
        )
    filtered = await datasets.list_datasets(
        platform, owner[0], data.project_id, dataloop={"filter": {"name": "val"}}
    )
    assert [d.name for d in filtered.rows] == ["val"]
