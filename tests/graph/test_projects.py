"""Users, tokens, projects, members and roles (enforced in the domain layer)."""

from __future__ import annotations

import stat

import pytest

from graph.domain import datasets, projects, users
from graph.domain.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthenticated
from tests.conftest import make_user
from tests.graphql import gql, gql_errors


async def test_first_start_creates_one_admin_with_a_private_token_file(platform) -> None:
    token = await users.bootstrap_admin(platform)
    assert token is not None
    actor = await users.authenticate(platform, token)
    assert actor.is_admin and actor.email == "admin@localhost"
    path = platform.settings.admin_token_file
    assert path.read_text().strip() == token
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert await users.bootstrap_admin(platform) is None  # the second start makes nobody


async def test_revoked_and_unknown_tokens_are_refused(platform, owner) -> None:
    actor, token = owner
    assert (await users.authenticate(platform, token)).user_id == actor.user_id
    await users.revoke_token(platform, actor, token)
    with pytest.raises(Unauthenticated):
        await users.authenticate(platform, token)
    with pytest.raises(Unauthenticated):
        await users.authenticate(platform, "ll_not-a-token")
    with pytest.raises(Unauthenticated):
        await users.authenticate(platform, None)


async def test_only_admins_create_users(platform, owner) -> None:
    with pytest.raises(Forbidden):
        await users.create_user(platform, owner[0], "someone@example.com")
    with pytest.raises(InvalidInput):
        await users.create_user(platform, None, "not-an-email")
    await users.create_user(platform, None, "dup@example.com")
    with pytest.raises(Conflict):
        await users.create_user(platform, None, "DUP@example.com")


async def test_member_of_one_project_sees_nothing_of_another(platform, owner, project) -> None:
    stranger, _ = await make_user(platform, "stranger@example.com")
    dataset = await datasets.create_dataset(platform, owner[0], project.id, "private")
    with pytest.raises(NotFound):
        await projects.get_project(platform, stranger, project.id)
    with pytest.raises(NotFound):
        await datasets.get_dataset(platform, stranger, dataset.id)
    with pytest.raises(NotFound):
        await datasets.list_datasets(platform, stranger, project.id)
    assert (await projects.list_projects(platform, stranger)).rows == []


async def test_roles_are_ordered_and_enforced(platform, owner, project) -> None:
    annotator, _ = await make_user(platform, "annotator@example.com")
    await projects.add_member(platform, owner[0], project.id, "annotator@example.com", "annotator")
    # an annotator reads but may not create datasets or manage members
    assert (await projects.get_project(platform, annotator, project.id)).id == project.id
    with pytest.raises(Forbidden) as denied:
        await datasets.create_dataset(platform, annotator, project.id, "nope")
    assert denied.value.details["needed"] == "developer"
    with pytest.raises(Forbidden):
        await projects.add_member(platform, annotator, project.id, "owner@example.com", "annotator")
    # promoted to developer, the same call works
    await projects.add_member(platform, owner[0], project.id, "annotator@example.com", "developer")
    assert (await datasets.create_dataset(platform, annotator, project.id, "ok")).name == "ok"


async def test_bad_role_and_last_owner(platform, owner, project) -> None:
    await make_user(platform, "x@example.com")
    with pytest.raises(InvalidInput) as bad:
        await projects.add_member(platform, owner[0], project.id, "x@example.com", "boss")
    assert bad.value.details["field"] == "role"
    with pytest.raises(NotFound):
        await projects.add_member(platform, owner[0], project.id, "ghost@example.com", "annotator")
    with pytest.raises(Conflict):
        await projects.remove_member(platform, owner[0], project.id, "owner@example.com")


async def test_projects_over_graphql(client) -> None:
    created = await gql(client, 'mutation { createProject(name: "p1") { id name creator } }')
    project_id = created["createProject"]["id"]
    assert created["createProject"]["creator"] == "owner@example.com"
    data = await gql(
        client,
        "query($id: ID!) { project(id: $id) { name members { nodes { role user { email } } } } }",
        {"id": project_id},
    )
    assert data["project"]["members"]["nodes"] == [
        {"role": "owner", "user": {"email": "owner@example.com"}}
    ]
    errors = await gql_errors(client, 'query { project(id: "000000000000000000000000") { id } }')
    assert errors[0]["extensions"]["code"] == "NOT_FOUND"
    errors = await gql_errors(client, 'mutation { createUser(email: "a@b.c") { token } }')
    assert errors[0]["extensions"]["code"] == "FORBIDDEN"
