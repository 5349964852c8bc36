"""Changes by query on SQLite and PostgreSQL: update, move, delete and clone the items a DQL query
selects, update and delete annotations; exact counts, events, counters and freed bytes; nothing
changed by a bad query, a missing role or a read-only dataset; thousands of rows in chunks."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import func, select

from graph.db.tables import Annotation, Dataset, Event, Item
from graph.domain import annotations, blobs, bulk, datasets, items, links, projects, versioning
from graph.domain.annotations import AnnotationSpec
from graph.domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from tests.conftest import make_user
from tests.graphql import finished, gql, gql_errors

FRONT = 'metadata.user.camera = "front"'


async def _count(platform, table: Any, *where: Any) -> int:
    async with platform.db.read() as session:
        return int(await session.scalar(select(func.count()).select_from(table).where(*where)))


async def _events(platform, resource: str, action: str) -> list[str]:
    """Ids of the resources with such events, in order."""
    async with platform.db.read() as session:
        return list(
            await session.scalars(
                select(Event.resource_id)
                .where(Event.resource == resource, Event.action == action)
                .order_by(Event.seq)
            )
        )


async def _items(platform, dataset_id: str) -> dict[str, Item]:
    async with platform.db.read() as session:
        rows = await session.scalars(select(Item).where(Item.dataset_id == dataset_id))
        return {i.filename: i for i in rows}


async def _state(platform) -> list[Any]:
    """Everything a bulk change could touch, to compare before and after a refused one."""
    async with platform.db.read() as session:
        item_rows = await session.execute(
            select(
                Item.id,
                Item.filename,
                Item.metadata_,
                Item.description,
                Item.annotations_count,
                Item.updated_at,
            ).order_by(Item.id)
        )
        annotation_rows = await session.execute(
            select(
                Annotation.id,
                Annotation.label,
                Annotation.status,
                Annotation.metadata_,
                Annotation.updated_at,
            ).order_by(Annotation.id)
        )
        counters = await session.execute(
            select(Dataset.id, Dataset.items_count, Dataset.annotations_count).order_by(Dataset.id)
        )
        events = await session.scalar(select(func.count()).select_from(Event))
        return [list(item_rows), list(annotation_rows), list(counters), events]


def _stored_files(platform) -> set[Path]:
    root = platform.settings.blob_root
    return {p for p in root.rglob("*") if p.is_file() and ".staging" not in p.parts}


@pytest.fixture
async def data(platform, owner, project) -> Any:
    """Files with user metadata in folders, and annotations (one with a child)."""
    actor = owner[0]
    dataset = await datasets.create_dataset(platform, actor, project.id, "b")
    specs = [
        items.ItemSpec(
            path="/train/a.jpg",
            url="https://x.test/a.jpg",
            system={"origin": "camera"},
            user={"camera": "front", "score": 1, "nested": {"x": 1, "y": 2}},
        ),
        items.ItemSpec(path="/train/b.jpg", url="https://x.test/b.jpg", user={"camera": "back"}),
        items.ItemSpec(
            path="/train/sub/c.jpg", url="https://x.test/c.jpg", user={"camera": "front"}
        ),
        items.ItemSpec(path="/val/d.jpg", url="https://x.test/d.jpg"),
        items.ItemSpec(path="/e.png", url="https://x.test/e.png", user={"camera": "front"}),
    ]
    async with platform.db.write() as session:
        results, _ = await items.insert_items(session, actor, dataset, specs)
    ids = {r.filename: r.item_id for r in results}
    [cat] = await annotations.create_annotations(
        platform,
        actor,
        ids["/train/a.jpg"],
        [AnnotationSpec(type="box", label="cat", coordinates=[{"x": 1, "y": 1}, {"x": 9, "y": 9}])],
    )
    await annotations.create_annotations(
        platform,
        actor,
        ids["/train/a.jpg"],
        [AnnotationSpec(type="point", label="eye", coordinates={"x": 3, "y": 3}, parent_id=cat.id)],
    )
    await annotations.create_annotations(
        platform,
        actor,
        ids["/train/b.jpg"],
        [AnnotationSpec(type="class", label="cat"), AnnotationSpec(type="class", label="dog")],
    )
    await annotations.create_annotations(
        platform, actor, ids["/val/d.jpg"], [AnnotationSpec(type="class", label="dog")]
    )
    return SimpleNamespace(id=dataset.id, project_id=project.id, ids=ids, cat=cat.id)


# --- update items ---------------------------------------------------------------------------------


async def test_update_merges_user_metadata_of_the_items_selected(platform, owner, data) -> None:
    before = await _items(platform, data.id)
    changed = await bulk.update_items_by_query(
        platform,
        owner[0],
        data.id,
        dql=FRONT,
        set_user_metadata={"reviewed": True, "score": None, "nested": {"y": None, "z": 3}},
        description="checked",
    )
    assert changed == 3
    after = await _items(platform, data.id)
    a = after["/train/a.jpg"]
    assert a.metadata_["user"] == {"camera": "front", "reviewed": True, "nested": {"x": 1, "z": 3}}
    assert a.metadata_["system"] == {"origin": "camera"}  # only metadata.user changes
    assert after["/train/sub/c.jpg"].metadata_["user"] == {
        "camera": "front",
        "reviewed": True,
        "nested": {"z": 3},
    }
    assert after["/e.png"].metadata_["user"]["reviewed"] is True
    front = {"/train/a.jpg", "/train/sub/c.jpg", "/e.png"}
    assert {f for f, i in after.items() if i.description == "checked"} == front
    for filename in set(after) - front:  # the rest, folders included, untouched
        assert after[filename].metadata_ == before[filename].metadata_
        assert after[filename].updated_at == before[filename].updated_at
    assert sorted(await _events(platform, "item", "updated")) == sorted(data.ids[f] for f in front)


async def test_replace_user_metadata_and_clear_description(platform, owner, data) -> None:
    # the query selects what the listing shows: here two files and the folder /train/sub
    changed = await bulk.update_items_by_query(
        platform,
        owner[0],
        data.id,
        dql='dir = "/train"',
        set_user_metadata={"k": 1, "dropped": None},
        replace_user_metadata=True,
    )
    assert changed == 3
    after = await _items(platform, data.id)
    for filename in ("/train/a.jpg", "/train/b.jpg", "/train/sub"):
        assert after[filename].metadata_["user"] == {"k": 1}
    assert after["/train/sub/c.jpg"].metadata_["user"] == {"camera": "front"}
    cleared = await bulk.update_items_by_query(
        platform, owner[0], data.id, dql="", replace_user_metadata=True
    )
    assert cleared == len(after)  # dql "" selects everything: files and folders
    assert all(i.metadata_["user"] == {} for i in (await _items(platform, data.id)).values())
    await bulk.update_items_by_query(platform, owner[0], data.id, dql="", description="x")
    await bulk.update_items_by_query(platform, owner[0], data.id, dql="", description="")
    assert all(i.description is None for i in (await _items(platform, data.id)).values())


async def test_dataloop_filter_selects_like_dtlpy(platform, owner, data) -> None:
    # Dataloop's defaults apply to the JSON form: files only, not hidden
    query = {"filter": {"$and": [{"metadata": {"user": {"camera": "front"}}}]}}
    assert (
        await bulk.update_items_by_query(
            platform, owner[0], data.id, dataloop=query, set_user_metadata={"j": 1}
        )
        == 3
    )
    both = await bulk.update_items_by_query(
        platform,
        owner[0],
        data.id,
        dql='dir = "/train"',
        dataloop=query,
        set_user_metadata={"both": True},
    )
    assert both == 1  # ANDed: only /train/a.jpg


# --- refusals -------------------------------------------------------------------------------------


async def _every_operation(platform, actor, dataset_id: str, **query: Any) -> list[Any]:
    """Each bulk operation, as a coroutine factory, with the same query."""
    return [
        lambda: bulk.update_items_by_query(
            platform, actor, dataset_id, set_user_metadata={"x": 1}, **query
        ),
        lambda: bulk.delete_items_by_query(platform, actor, dataset_id, **query),
        lambda: bulk.move_items_by_query(platform, actor, dataset_id, "/elsewhere", **query),
        lambda: bulk.update_annotations_by_query(
            platform, actor, dataset_id, changes={"status": "approved"}, **query
        ),
        lambda: bulk.delete_annotations_by_query(platform, actor, dataset_id, **query),
    ]


@pytest.mark.parametrize(
    ("query", "dql_field"),
    [
        ({"dql": "width >"}, None),
        ({"dql": "nosuch = 1"}, "nosuch"),
        ({"dql": 'createdAt > "yesterday"'}, "createdAt"),
        ({"dataloop": {"filter": {"$nope": 1}}}, None),
        ({}, None),  # no query at all
    ],
)
async def test_a_bad_query_changes_nothing(platform, owner, data, query, dql_field) -> None:
    before = await _state(platform)
    for operation in await _every_operation(platform, owner[0], data.id, **query):
        with pytest.raises(InvalidInput) as refused:
            await operation()
        assert refused.value.details["field"] == "dql"
        if dql_field is not None:
            assert refused.value.details["dqlField"] == dql_field
    assert await _state(platform) == before


async def test_roles_and_read_only_datasets_are_enforced(platform, owner, project, data) -> None:
    annotator, _ = await make_user(platform, "annotator@example.com")
    await projects.add_member(platform, owner[0], project.id, annotator.email, "annotator")
    stranger, _ = await make_user(platform, "stranger@example.com")
    before = await _state(platform)
    for operation in await _every_operation(platform, annotator, data.id, dql=""):
        with pytest.raises(Forbidden):
            await operation()
    for operation in await _every_operation(platform, stranger, data.id, dql=""):
        with pytest.raises(NotFound):
            await operation()
    assert await _state(platform) == before
    await datasets.update_dataset(platform, owner[0], data.id, readonly=True)
    before = await _state(platform)
    for operation in await _every_operation(platform, owner[0], data.id, dql=""):
        with pytest.raises(Conflict):
            await operation()
    assert await _state(platform) == before
    # a manager may, once the dataset is unlocked
    manager, _ = await make_user(platform, "manager@example.com")
    await projects.add_member(platform, owner[0], project.id, manager.email, "annotationManager")
    await datasets.update_dataset(platform, owner[0], data.id, readonly=False)
    assert (
        await bulk.update_items_by_query(
            platform, manager, data.id, dql=FRONT, set_user_metadata={"ok": 1}
        )
        == 3
    )


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({}, "set"),  # nothing to change
        ({"set_user_metadata": [1, 2]}, "set"),
        ({"set_user_metadata": "x"}, "set"),
    ],
)
async def test_bad_changes_are_refused(platform, owner, data, arguments, field) -> None:
    before = await _state(platform)
    with pytest.raises(InvalidInput) as refused:
        await bulk.update_items_by_query(platform, owner[0], data.id, dql="", **arguments)
    assert refused.value.details["field"] == field
    deep: dict[str, Any] = {}
    for _ in range(100):
        deep = {"a": deep}
    with pytest.raises(InvalidInput, match="nested"):
        await bulk.update_items_by_query(
            platform, owner[0], data.id, dql="", set_user_metadata=deep
        )
    for changes, field in [
        ({"status": "done"}, "status"),
        ({"label": "x" * 513}, "label"),
        ({"coordinates": []}, "coordinates"),
        ({}, "set"),
    ]:
        with pytest.raises(InvalidInput) as refused:
            await bulk.update_annotations_by_query(
                platform, owner[0], data.id, dql="", changes=changes
            )
        assert refused.value.details["field"] == field
    with pytest.raises(InvalidInput) as refused:
        await bulk.move_items_by_query(platform, owner[0], data.id, "/a/../..", dql="")
    assert refused.value.details["field"] == "toDir"
    assert await _state(platform) == before


# --- delete items ---------------------------------------------------------------------------------


async def test_delete_items_by_query_keeps_counters_and_writes_events(
    platform, owner, data
) -> None:
    gone = await bulk.delete_items_by_query(platform, owner[0], data.id, dql=FRONT)
    assert gone == 3
    left = await _items(platform, data.id)
    assert {f for f, i in left.items() if i.type == "file"} == {"/train/b.jpg", "/val/d.jpg"}
    dataset = await datasets.get_dataset(platform, owner[0], data.id)
    # a.jpg's two annotations went with it; b.jpg's two and d.jpg's one remain
    assert (dataset.items_count, dataset.annotations_count) == (2, 3)
    assert await _count(platform, Annotation) == 3
    front = {data.ids[f] for f in ("/train/a.jpg", "/train/sub/c.jpg", "/e.png")}
    assert set(await _events(platform, "item", "deleted")) == front


async def test_a_selected_folder_goes_with_everything_below_it(platform, owner, data) -> None:
    gone = await bulk.delete_items_by_query(
        platform, owner[0], data.id, dql='type = "dir" and name = "train"'
    )
    assert gone == 3  # a, b and sub/c: files counted, folders not
    left = await _items(platform, data.id)
    assert sorted(left) == ["/e.png", "/val", "/val/d.jpg"]
    assert (await datasets.get_dataset(platform, owner[0], data.id)).items_count == 2
    # the JSON form selects files only (Dataloop's default), so no folder is taken along
    assert (
        await bulk.delete_items_by_query(
            platform, owner[0], data.id, dataloop={"filter": {"name": "val"}}
        )
        == 0
    )


async def test_deleting_by_query_frees_bytes_no_item_uses(platform, owner, project) -> None:
    actor = owner[0]
    dataset = await datasets.create_dataset(platform, actor, project.id, "bytes")
    async with platform.db.write() as session:
        content, _ = await blobs.ensure_blob(session, platform, blobs.stage(platform, b"shared"))
        await items.insert_items(
            session,
            actor,
            dataset,
            [
                items.ItemSpec(path="/x.jpg", blob_id=content, size=6),
                items.ItemSpec(path="/y.jpg", blob_id=content, size=6),
            ],
        )
    stored = _stored_files(platform)
    assert len(stored) == 1
    assert await bulk.delete_items_by_query(platform, actor, dataset.id, dql='name = "x.jpg"') == 1
    assert _stored_files(platform) == stored  # y.jpg still uses the bytes
    assert await bulk.delete_items_by_query(platform, actor, dataset.id, dql="") == 1
    assert _stored_files(platform) == set()


# --- move items -----------------------------------------------------------------------------------


async def test_move_items_by_query(platform, owner, data) -> None:
    moved = await bulk.move_items_by_query(platform, owner[0], data.id, "/picked", dql=FRONT)
    assert moved == 3
    left = await _items(platform, data.id)
    for name in ("a.jpg", "c.jpg", "e.png"):
        assert left[f"/picked/{name}"].dir == "/picked"
    assert left["/picked/a.jpg"].id == data.ids["/train/a.jpg"]
    assert "/train/a.jpg" not in left and "/train/b.jpg" in left
    assert len(await _events(platform, "item", "updated")) == 3
    # moving again selects the same files, already in place: nothing changes
    assert await bulk.move_items_by_query(platform, owner[0], data.id, "/picked", dql=FRONT) == 0


async def test_move_by_query_takes_folders_whole(platform, owner, data) -> None:
    # /train/sub/c.jpg and its folder /train/sub are both selected: c.jpg goes with the folder
    moved = await bulk.move_items_by_query(
        platform, owner[0], data.id, "/archive", dql='filename like "/train/**"'
    )
    assert moved == 3  # a.jpg, b.jpg, the folder sub
    files = {f for f, i in (await _items(platform, data.id)).items() if i.type == "file"}
    assert files == {
        "/archive/a.jpg",
        "/archive/b.jpg",
        "/archive/sub/c.jpg",
        "/val/d.jpg",
        "/e.png",
    }
    # the target and the folders holding it are never selected: everything at the root moves
    moved = await bulk.move_items_by_query(platform, owner[0], data.id, "/all/in", dql='dir = "/"')
    assert moved == 4  # /archive, /train, /val, /e.png; /all is left where it is
    files = {f for f, i in (await _items(platform, data.id)).items() if i.type == "file"}
    assert files == {
        "/all/in/archive/a.jpg",
        "/all/in/archive/b.jpg",
        "/all/in/archive/sub/c.jpg",
        "/all/in/val/d.jpg",
        "/all/in/e.png",
    }


async def test_move_by_query_refuses_clashes_whole(platform, owner, project) -> None:
    dataset, _ = await _dataset_with(platform, owner[0], project, ["/a/x.jpg", "/b/x.jpg", "/y"])
    before = await _state(platform)
    with pytest.raises(InvalidInput, match="both move") as refused:
        await bulk.move_items_by_query(platform, owner[0], dataset.id, "/t", dql='name = "x.jpg"')
    assert refused.value.details["field"] == "toDir"
    with pytest.raises(InvalidInput, match="already exists"):
        await bulk.move_items_by_query(platform, owner[0], dataset.id, "/b", dql='dir = "/a"')
    assert await _state(platform) == before


async def _dataset_with(platform, actor, project, paths: list[str]) -> tuple[Any, dict[str, str]]:
    dataset = await datasets.create_dataset(platform, actor, project.id, "m")
    async with platform.db.write() as session:
        results, _ = await items.insert_items(
            session,
            actor,
            dataset,
            [items.ItemSpec(path=p, url=f"https://x.test{p}") for p in paths],
        )
    return dataset, {r.filename: r.item_id for r in results}


async def test_move_by_ids_shares_the_rule_for_chosen_folders(platform, owner, project) -> None:
    dataset, ids = await _dataset_with(platform, owner[0], project, ["/a/x.jpg", "/a/b/y.jpg"])
    folder = (await _items(platform, dataset.id))["/a"]
    moved = await items.move_items(
        platform, owner[0], [folder.id, ids["/a/x.jpg"], ids["/a/b/y.jpg"]], "/m"
    )
    assert {i.filename for i in moved} == {"/m/a", "/m/a/x.jpg", "/m/a/b/y.jpg"}
    files = {f for f, i in (await _items(platform, dataset.id)).items() if i.type == "file"}
    assert files == {"/m/a/x.jpg", "/m/a/b/y.jpg"}


# --- clone by query -------------------------------------------------------------------------------


async def test_clone_by_query(platform, owner, data) -> None:
    clone = await versioning.clone_dataset(platform, owner[0], data.id, "front", dql=FRONT)
    copied = await _items(platform, clone.id)
    assert {f for f, i in copied.items() if i.type == "file"} == {
        "/train/a.jpg",
        "/train/sub/c.jpg",
        "/e.png",
    }
    assert copied["/train/a.jpg"].src_item_id == data.ids["/train/a.jpg"]
    assert (clone.items_count, clone.annotations_count) == (3, 2)  # a.jpg's box and its child
    by_folder = await versioning.clone_dataset(
        platform, owner[0], data.id, "sub", dql='type = "dir" and name = "sub"', target_dir="/v"
    )
    assert {f for f, i in (await _items(platform, by_folder.id)).items() if i.type == "file"} == {
        "/v/train/sub/c.jpg"
    }
    json_clone = await versioning.clone_dataset(
        platform, owner[0], data.id, "json", dataloop={"filter": {"dir": "/train"}}
    )
    assert json_clone.items_count == 2  # a.jpg and b.jpg


async def test_clone_by_a_bad_query_makes_nothing(platform, owner, data) -> None:
    datasets_before = await _count(platform, Dataset)
    with pytest.raises(InvalidInput) as refused:
        await versioning.clone_dataset(platform, owner[0], data.id, "bad", dql="width > ")
    assert refused.value.details["field"] == "dql"
    with pytest.raises(InvalidInput) as refused:
        await versioning.clone_dataset(
            platform, owner[0], data.id, "both", item_ids=[data.ids["/e.png"]], dql=""
        )
    assert refused.value.details["field"] == "itemIds"
    assert await _count(platform, Dataset) == datasets_before


# --- annotations ----------------------------------------------------------------------------------


async def test_update_annotations_by_query(platform, owner, data) -> None:
    changed = await bulk.update_annotations_by_query(
        platform,
        owner[0],
        data.id,
        dql='label = "cat"',
        changes={"label": "feline", "status": "approved"},
        set_user_metadata={"checked": True},
    )
    assert changed == 2
    async with platform.db.read() as session:
        rows = list(await session.scalars(select(Annotation).order_by(Annotation.id)))
    felines = [a for a in rows if a.label == "feline"]
    assert len(felines) == 2 and all(a.status == "approved" for a in felines)
    assert all(a.metadata_["user"] == {"checked": True} for a in felines)
    assert all(a.status is None and "user" not in a.metadata_ for a in rows if a not in felines)
    assert sorted(await _events(platform, "annotation", "updated")) == sorted(a.id for a in felines)
    cleared = await bulk.update_annotations_by_query(
        platform, owner[0], data.id, dql='item.dir = "/train"', changes={"status": None}
    )
    assert cleared == 4
    assert await _count(platform, Annotation, Annotation.status.is_not(None)) == 0


async def test_delete_annotations_by_query_recounts(platform, owner, data) -> None:
    # the cat box on a.jpg has a child (eye): it goes too
    gone = await bulk.delete_annotations_by_query(platform, owner[0], data.id, dql='label = "cat"')
    assert gone == 3
    left = await _items(platform, data.id)
    assert (left["/train/a.jpg"].annotations_count, left["/train/a.jpg"].annotated) == (0, False)
    assert (left["/train/b.jpg"].annotations_count, left["/train/b.jpg"].annotated) == (1, True)
    assert (await datasets.get_dataset(platform, owner[0], data.id)).annotations_count == 2
    assert len(await _events(platform, "annotation", "deleted")) == 3
    # a query on the items' counters, which are recounted once, at the end
    gone = await bulk.delete_annotations_by_query(
        platform, owner[0], data.id, dql="item.annotationsCount >= 1"
    )
    assert gone == 2
    assert (await datasets.get_dataset(platform, owner[0], data.id)).annotations_count == 0


# --- thousands of rows ----------------------------------------------------------------------------


async def test_thousands_of_items_in_chunks_each_once(platform, owner, project) -> None:
    actor = owner[0]
    n = 2 * bulk.CHUNK + 1001
    dataset = await datasets.create_dataset(platform, actor, project.id, "big")
    report = await links.add_links(
        platform,
        actor,
        dataset.id,
        [
            links.LinkSpec(
                url=f"https://x.test/{i}.jpg", path=f"/big/{i:05}.jpg", metadata={"n": i}
            )
            for i in range(n)
        ],
    )
    assert report.created == n
    seen: list[int] = []
    # the query stops matching each item as it is changed: still each is changed exactly once
    changed = await bulk.update_items_by_query(
        platform,
        actor,
        dataset.id,
        dql='dir = "/big" and not has metadata.user.seen',
        set_user_metadata={"seen": True},
        progress=seen.append,
    )
    assert changed == n
    assert seen == [bulk.CHUNK, 2 * bulk.CHUNK, n]
    updated = await _events(platform, "item", "updated")
    assert len(updated) == n and len(set(updated)) == n
    assert (
        await items.count_items(platform, actor, dataset.id, dql="metadata.user.seen = true") == n
    )

    seen.clear()
    moved = await bulk.move_items_by_query(
        platform, actor, dataset.id, "/moved", dql="metadata.user.n >= 1000", progress=seen.append
    )
    assert moved == n - 1000
    assert seen == [bulk.CHUNK, 2 * bulk.CHUNK, n - 1000, n - 1000]  # files, then folders
    assert await items.count_items(platform, actor, dataset.id, dql='dir = "/moved"') == n - 1000

    seen.clear()
    gone = await bulk.delete_items_by_query(
        platform, actor, dataset.id, dql='type = "file"', progress=seen.append
    )
    assert gone == n and seen == [bulk.CHUNK, 2 * bulk.CHUNK, n]
    assert (await datasets.get_dataset(platform, actor, dataset.id)).items_count == 0
    assert await _count(platform, Item, Item.dataset_id == dataset.id, Item.type == "file") == 0
    assert len(set(await _events(platform, "item", "deleted"))) == n


# --- GraphQL --------------------------------------------------------------------------------------


async def test_changes_by_query_over_graphql(client, data, settings) -> None:
    variables = {"d": data.id, "q": FRONT}

    async def run(mutation: str, name: str, given: dict | None = None) -> dict:
        """Start the change (an execution) and run it on a real worker; its output."""
        result = await gql(client, mutation, given or variables)
        assert result[name]["status"] == "created"
        done = await finished(client, settings, result[name])
        assert done["status"] == "success", done["error"]
        return done["output"]

    changed = await run(
        """mutation($d: ID!, $q: String) {
          updateItemsByQuery(datasetId: $d, dql: $q, set: {reviewed: true}, description: "ok") {
            id status
          }
        }""",
        "updateItemsByQuery",
    )
    assert changed == {"changed": 3}
    listed = await gql(
        client,
        """query($d: ID!) {
          items(datasetId: $d, dql: "metadata.user.reviewed = true") { totalCount }
        }""",
        {"d": data.id},
    )
    assert listed["items"]["totalCount"] == 3
    changed = await run(
        """mutation($d: ID!) {
          updateAnnotationsByQuery(datasetId: $d, dql: "label = \\"dog\\"", status: "issue") {
            id status
          }
        }""",
        "updateAnnotationsByQuery",
        {"d": data.id},
    )
    assert changed == {"changed": 2}
    changed = await run(
        """mutation($d: ID!) {
          deleteAnnotationsByQuery(datasetId: $d, filter: {filter: {label: "dog"}}) { id status }
        }""",
        "deleteAnnotationsByQuery",
        {"d": data.id},
    )
    assert changed == {"changed": 2}
    moved = await run(
        """mutation($d: ID!, $q: String) {
          moveItemsByQuery(datasetId: $d, dql: $q, toDir: "/front") { id status }
        }""",
        "moveItemsByQuery",
    )
    assert moved == {"changed": 3}
    clone = await run(
        """mutation($d: ID!, $q: String) {
          cloneDataset(datasetId: $d, name: "c", dql: $q) { id status }
        }""",
        "cloneDataset",
    )
    query = "query($d: ID!) { dataset(id: $d) { name itemsCount } }"
    cloned = (await gql(client, query, {"d": clone["datasetId"]}))["dataset"]
    assert cloned == {"name": "c", "itemsCount": 3}
    deleted = await run(
        'mutation($d: ID!) { deleteItemsByQuery(datasetId: $d, dql: "dir = \\"/front\\"") { id status } }',
        "deleteItemsByQuery",
        {"d": data.id},
    )
    assert deleted == {"changed": 3}
    errors = await gql_errors(
        client,
        'mutation($d: ID!) { deleteItemsByQuery(datasetId: $d, dql: "width >") { id } }',
        {"d": data.id},
    )
    extensions = errors[0]["extensions"]
    assert extensions["code"] == "INVALID_INPUT" and extensions["field"] == "dql"
    assert "line" in extensions and "column" in extensions
    errors = await gql_errors(
        client, "mutation($d: ID!) { deleteItemsByQuery(datasetId: $d) { id } }", {"d": data.id}
    )
    assert errors[0]["extensions"]["field"] == "dql"
    assert (await gql(client, "query($d: ID!) { dataset(id: $d) { itemsCount } }", variables))[
        "dataset"
    ]["itemsCount"] == 2
