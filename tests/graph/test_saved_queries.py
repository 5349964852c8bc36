"""Saved queries on SQLite and PostgreSQL: save (checked then), list, get, change, delete; run by
name in lists, changes by query and clones; roles; bad queries refused when saved."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import func, select

from graph.db.tables import Event, SavedQuery
from graph.domain import annotations, datasets, items, projects, saved_queries
from graph.domain.annotations import AnnotationSpec
from graph.domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from tests.conftest import make_user
from tests.graphql import finished, gql, gql_errors

FILES = 'type = "file"'


async def _saved_rows(platform) -> int:
    async with platform.db.read() as session:
        return int(await session.scalar(select(func.count()).select_from(SavedQuery)))


@pytest.fixture
async def data(platform, owner, project) -> Any:
    actor = owner[0]
    dataset = await datasets.create_dataset(platform, actor, project.id, "s")
    async with platform.db.write() as session:
        results, _ = await items.insert_items(
            session,
            actor,
            dataset,
            [
                items.ItemSpec(path="/a.jpg", url="https://x.test/a", user={"camera": "front"}),
                items.ItemSpec(path="/b.jpg", url="https://x.test/b", user={"camera": "back"}),
                items.ItemSpec(path="/c.jpg", url="https://x.test/c", user={"camera": "front"}),
            ],
        )
    ids = {r.filename: r.item_id for r in results}
    await annotations.create_annotations(
        platform,
        actor,
        ids["/a.jpg"],
        [AnnotationSpec(type="class", label="cat"), AnnotationSpec(type="class", label="dog")],
    )
    return SimpleNamespace(id=dataset.id, project_id=project.id, ids=ids)


async def test_save_get_list_update_delete(platform, owner, project) -> None:
    actor = owner[0]
    front = await saved_queries.create_saved_query(
        platform,
        actor,
        project.id,
        "  front  ",
        "items",
        dql='metadata.user.camera = "front"',
        description="front camera",
    )
    assert (front.name, front.resource, front.filter, front.creator) == (
        "front",
        "items",
        None,
        actor.email,
    )
    dogs = await saved_queries.create_saved_query(
        platform,
        actor,
        project.id,
        "dogs",
        "annotations",
        dataloop={"filter": {"label": "dog"}},
    )
    await saved_queries.create_saved_query(
        platform, actor, project.id, "big", "datasets", dql="itemsCount > 1000"
    )
    got = await saved_queries.get_saved_query(platform, actor, project.id, "front")
    assert (got.id, got.dql, got.description) == (front.id, front.dql, "front camera")
    page = await saved_queries.list_saved_queries(platform, actor, project.id, first=2)
    assert [q.name for q in page.rows] == ["big", "dogs"] and page.has_next
    rest = await saved_queries.list_saved_queries(
        platform, actor, project.id, first=2, after=page.end_cursor
    )
    assert [q.name for q in rest.rows] == ["front"] and not rest.has_next
    only = await saved_queries.list_saved_queries(platform, actor, project.id, resource="items")
    assert [q.name for q in only.rows] == ["front"]
    assert await saved_queries.count_saved_queries(platform, actor, project.id) == 3

    changed = await saved_queries.update_saved_query(
        platform,
        actor,
        project.id,
        "dogs",
        {"name": "dog labels", "dql": 'type = "class"', "description": "d"},
    )
    assert (changed.id, changed.name, changed.dql, changed.filter) == (
        dogs.id,
        "dog labels",
        'type = "class"',
        {"filter": {"label": "dog"}},
    )
    cleared = await saved_queries.update_saved_query(
        platform, actor, project.id, "dog labels", {"filter": None, "description": None}
    )
    assert (cleared.filter, cleared.description) == (None, None)

    await saved_queries.delete_saved_query(platform, actor, project.id, "dog labels")
    with pytest.raises(NotFound):
        await saved_queries.get_saved_query(platform, actor, project.id, "dog labels")
    with pytest.raises(NotFound):
        await saved_queries.delete_saved_query(platform, actor, project.id, "dog labels")
    async with platform.db.read() as session:
        actions = list(
            await session.scalars(
                select(Event.action).where(Event.resource == "savedQuery").order_by(Event.seq)
            )
        )
    assert actions == ["created"] * 3 + ["updated"] * 2 + ["deleted"]


@pytest.mark.parametrize(
    ("resource", "query", "field"),
    [
        ("items", {"dql": "width >"}, "dql"),  # syntax
        ("items", {"dql": "nosuch = 1"}, "dql"),  # unknown field
        ("items", {"dql": 'width > "abc"'}, "dql"),  # type
        ("annotations", {"dql": "width > 3"}, "dql"),  # an item field, not an annotation one
        ("datasets", {"dql": 'label = "cat"'}, "dql"),
        ("items", {"dataloop": {"filter": {"$bad": 1}}}, "dql"),
        ("items", {"dataloop": [1]}, "filter"),
        ("items", {}, "dql"),  # neither
        ("items", {"dql": "   "}, "dql"),
        ("tasks", {"dql": "name = 1"}, "resource"),
    ],
)
async def test_bad_queries_are_refused_when_saved(
    platform, owner, project, resource, query, field
) -> None:
    with pytest.raises(InvalidInput) as refused:
        await saved_queries.create_saved_query(
            platform, owner[0], project.id, "bad", resource, **query
        )
    assert refused.value.details["field"] == field
    assert await _saved_rows(platform) == 0


async def test_names_are_unique_per_project_and_changes_are_checked(
    platform, owner, project
) -> None:
    actor = owner[0]
    await saved_queries.create_saved_query(platform, actor, project.id, "q", "items", dql=FILES)
    saved = await saved_queries.create_saved_query(
        platform, actor, project.id, "r", "items", dql="width > 10"
    )
    with pytest.raises(Conflict) as refused:
        await saved_queries.create_saved_query(platform, actor, project.id, "r", "items", dql=FILES)
    assert refused.value.details["field"] == "name"
    with pytest.raises(Conflict):
        await saved_queries.update_saved_query(platform, actor, project.id, "q", {"name": "r"})
    saved = await saved_queries.get_saved_query(platform, actor, project.id, "r")
    other = await projects.create_project(platform, actor, "other")
    await saved_queries.create_saved_query(platform, actor, other.id, "r", "items", dql=FILES)
    # the query must still compile after a change of resource or text; nothing is half-changed
    for changes, field in [
        ({"resource": "annotations"}, "dql"),  # width is not an annotation field
        ({"dql": "width >"}, "dql"),
        ({"resource": "nope"}, "resource"),
        ({"name": ""}, "name"),
        ({"creator": "me"}, "creator"),
    ]:
        with pytest.raises(InvalidInput) as refused:
            await saved_queries.update_saved_query(platform, actor, project.id, "r", changes)
        assert refused.value.details["field"] == field
    again = await saved_queries.get_saved_query(platform, actor, project.id, "r")
    assert (again.resource, again.dql, again.updated_at) == (
        "items",
        "width > 10",
        saved.updated_at,
    )


async def test_roles(platform, owner, project) -> None:
    await saved_queries.create_saved_query(platform, owner[0], project.id, "q", "items", dql=FILES)
    annotator, _ = await make_user(platform, "annotator@example.com")
    await projects.add_member(platform, owner[0], project.id, annotator.email, "annotator")
    developer, _ = await make_user(platform, "developer@example.com")
    await projects.add_member(platform, owner[0], project.id, developer.email, "developer")
    stranger, _ = await make_user(platform, "stranger@example.com")

    assert (await saved_queries.get_saved_query(platform, annotator, project.id, "q")).name == "q"
    assert len((await saved_queries.list_saved_queries(platform, annotator, project.id)).rows) == 1
    with pytest.raises(Forbidden):
        await saved_queries.create_saved_query(
            platform, annotator, project.id, "x", "items", dql=FILES
        )
    with pytest.raises(Forbidden):
        await saved_queries.update_saved_query(platform, annotator, project.id, "q", {"dql": "x"})
    with pytest.raises(Forbidden):
        await saved_queries.delete_saved_query(platform, annotator, project.id, "q")
    with pytest.raises(NotFound):
        await saved_queries.get_saved_query(platform, stranger, project.id, "q")
    await saved_queries.create_saved_query(platform, developer, project.id, "x", "items", dql=FILES)
    await saved_queries.delete_saved_query(platform, developer, project.id, "x")
    assert await _saved_rows(platform) == 1


async def test_run_by_name_over_graphql(client, data, settings) -> None:
    created = await gql(
        client,
        """mutation($p: ID!) {
          front: createSavedQuery(projectId: $p, name: "front", resource: "items",
                                  dql: "metadata.user.camera = \\"front\\" order by filename desc")
            { id name resource dql filter }
          dogs: createSavedQuery(projectId: $p, name: "dogs", resource: "annotations",
                                 filter: {filter: {label: "dog"}}) { filter }
        }""",
        {"p": data.project_id},
    )
    assert created["front"]["resource"] == "items" and created["front"]["filter"] is None
    assert created["dogs"]["filter"] == {"filter": {"label": "dog"}}
    listed = await gql(
        client,
        """query($d: ID!) {
          items(datasetId: $d, saved: "front") { totalCount nodes { filename } }
          annotations(datasetId: $d, saved: "dogs") { totalCount nodes { label } }
        }""",
        {"d": data.id},
    )
    assert listed["items"]["totalCount"] == 2
    assert [n["filename"] for n in listed["items"]["nodes"]] == ["/c.jpg", "/a.jpg"]
    assert [n["label"] for n in listed["annotations"]["nodes"]] == ["dog"]
    nested = await gql(
        client,
        'query($d: ID!) { dataset(id: $d) { items(saved: "front") { totalCount } } }',
        {"d": data.id},
    )
    assert nested["dataset"]["items"]["totalCount"] == 2

    started = await gql(
        client,
        """mutation($d: ID!) {
          updateItemsByQuery(datasetId: $d, saved: "front", set: {picked: true}) { id }
          clone: cloneDataset(datasetId: $d, name: "front only", saved: "front") { id }
          deleteAnnotationsByQuery(datasetId: $d, saved: "dogs") { id }
        }""",
        {"d": data.id},
    )
    outputs = {}
    for name, execution in started.items():
        outputs[name] = (await finished(client, settings, execution))["output"]
    assert outputs["updateItemsByQuery"] == {"changed": 2}
    assert outputs["deleteAnnotationsByQuery"] == {"changed": 1}
    clone = await gql(
        client,
        "query($d: ID!) { dataset(id: $d) { itemsCount } }",
        {"d": outputs["clone"]["datasetId"]},
    )
    assert clone["dataset"]["itemsCount"] == 2

    for query, field, code in [
        ('items(datasetId: $d, saved: "dogs") { totalCount }', "saved", "INVALID_INPUT"),
        ('items(datasetId: $d, saved: "front", dql: "") { totalCount }', "saved", "INVALID_INPUT"),
        ('annotations(datasetId: $d, saved: "nope") { totalCount }', None, "NOT_FOUND"),
    ]:
        errors = await gql_errors(client, f"query($d: ID!) {{ {query} }}", {"d": data.id})
        assert errors[0]["extensions"]["code"] == code
        if field:
            assert errors[0]["extensions"]["field"] == field

    errors = await gql_errors(
        client,
        """mutation($p: ID!) {
          createSavedQuery(projectId: $p, name: "bad", resource: "items", dql: "width >") { id }
        }""",
        {"p": data.project_id},
    )
    extensions = errors[0]["extensions"]
    assert (extensions["code"], extensions["field"], extensions["line"]) == (
        "INVALID_INPUT",
        "dql",
        1,
    )

    updated = await gql(
        client,
        """mutation($p: ID!) {
          updateSavedQuery(projectId: $p, name: "front", newName: "fronts", description: "f")
            { name dql description }
        }""",
        {"p": data.project_id},
    )
    assert updated["updateSavedQuery"]["name"] == "fronts"
    assert updated["updateSavedQuery"]["dql"].startswith("metadata.user.camera")
    page = await gql(
        client,
        """query($p: ID!) {
          savedQueries(projectId: $p) { totalCount nodes { name } }
          one: savedQuery(projectId: $p, name: "fronts") { description }
        }""",
        {"p": data.project_id},
    )
    assert [n["name"] for n in page["savedQueries"]["nodes"]] == ["dogs", "fronts"]
    assert page["one"]["description"] == "f"
    deleted = await gql(
        client,
        'mutation($p: ID!) { deleteSavedQuery(projectId: $p, name: "fronts") }',
        {"p": data.project_id},
    )
    assert deleted["deleteSavedQuery"] is True
    errors = await gql_errors(
        client,
        'query($d: ID!) { items(datasetId: $d, saved: "fronts") { totalCount } }',
        {"d": data.id},
    )
    assert errors[0]["extensions"]["code"] == "NOT_FOUND"
