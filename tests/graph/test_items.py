"""Folders, listing with keyset cursors, moving, renaming, metadata and deleting items."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from graph.db.tables import Item
from graph.domain import datasets, items
from graph.domain.errors import Conflict, InvalidInput, NotFound
from tests.graphql import gql, gql_errors


async def _dataset_with(platform, actor, project, paths: list[str]):
    dataset = await datasets.create_dataset(platform, actor, project.id, "ds")
    async with platform.db.write() as session:
        results, _ = await items.insert_items(
            session,
            actor,
            dataset,
            [items.ItemSpec(path=p, url=f"https://x.test{p}") for p in paths],
        )
    return dataset, {r.filename: r.item_id for r in results}


async def test_insert_creates_parent_folders_and_counts_files(platform, owner, project) -> None:
    dataset, _ = await _dataset_with(platform, owner[0], project, ["/a/b/one.jpg", "/a/two.jpg"])
    page = await items.list_items(platform, owner[0], dataset.id)
    assert [(i.type, i.filename) for i in page.rows] == [
        ("dir", "/a"),
        ("dir", "/a/b"),
        ("file", "/a/b/one.jpg"),
        ("file", "/a/two.jpg"),
    ]
    assert (await datasets.get_dataset(platform, owner[0], dataset.id)).items_count == 2


async def test_keyset_pages_cover_everything_once(platform, owner, project) -> None:
    paths = [f"/f{i % 3}/img{i:03}.jpg" for i in range(25)]
    dataset, _ = await _dataset_with(platform, owner[0], project, paths)
    seen, after = [], None
    while True:
        page = await items.list_items(
            platform, owner[0], dataset.id, folders=False, first=7, after=after
        )
        seen += [i.filename for i in page.rows]
        if not page.has_next:
            break
        after = page.end_cursor
    assert seen == sorted(paths)
    with pytest.raises(InvalidInput):
        await items.list_items(platform, owner[0], dataset.id, after="garbage")
    with pytest.raises(InvalidInput):
        await items.list_items(platform, owner[0], dataset.id, first=100000)


async def test_listing_one_folder_recursive_or_not(platform, owner, project) -> None:
    dataset, _ = await _dataset_with(
        platform, owner[0], project, ["/a/x.jpg", "/a/b/y.jpg", "/ab/z.jpg"]
    )
    flat = await items.list_items(platform, owner[0], dataset.id, dir="/a", recursive=False)
    assert [i.filename for i in flat.rows] == ["/a/b", "/a/x.jpg"]
    deep = await items.list_items(platform, owner[0], dataset.id, dir="/a", folders=False)
    assert [i.filename for i in deep.rows] == ["/a/b/y.jpg", "/a/x.jpg"]  # not /ab
    assert await items.count_items(platform, owner[0], dataset.id, dir="/a", folders=False) == 2


async def test_move_files_and_folders(platform, owner, project) -> None:
    dataset, ids = await _dataset_with(platform, owner[0], project, ["/a/b/y.jpg", "/c/x.jpg"])
    folder_b = (
        await items.list_items(platform, owner[0], dataset.id, dir="/a", recursive=False)
    ).rows[0]
    await items.move_items(platform, owner[0], [folder_b.id, ids["/c/x.jpg"]], "/moved")
    files = await items.list_items(platform, owner[0], dataset.id, folders=False)
    assert sorted(i.filename for i in files.rows) == ["/moved/b/y.jpg", "/moved/x.jpg"]
    moved = await items.get_item(platform, owner[0], ids["/a/b/y.jpg"])
    assert moved.dir == "/moved/b"
    with pytest.raises(InvalidInput):
        await items.move_items(platform, owner[0], [folder_b.id], "/moved/b/inner")


async def test_rename_metadata_and_description(platform, owner, project) -> None:
    dataset, ids = await _dataset_with(platform, owner[0], project, ["/a.jpg", "/b.jpg"])
    item = await items.update_item(
        platform, owner[0], ids["/a.jpg"], name="c.jpg", description="hi", user_metadata={"k": [1]}
    )
    assert (item.filename, item.description, item.metadata_["user"]) == ("/c.jpg", "hi", {"k": [1]})
    with pytest.raises(InvalidInput):
        await items.update_item(platform, owner[0], ids["/b.jpg"], name="c.jpg")  # taken
    with pytest.raises(InvalidInput):
        await items.update_item(platform, owner[0], ids["/b.jpg"], name="../../etc")
    with pytest.raises(InvalidInput):
        await items.update_item(platform, owner[0], ids["/b.jpg"], user_metadata=[1, 2])  # type: ignore[arg-type]
    cleared = await items.update_item(platform, owner[0], ids["/a.jpg"], description="")
    assert cleared.description is None


async def test_bad_paths_are_refused_and_nothing_is_written(platform, owner, project) -> None:
    dataset = await datasets.create_dataset(platform, owner[0], project.id, "ds")
    for bad in ["../x.jpg", "/a/../../x", "/a\\b.jpg", "/", "/a/\x00.jpg"]:
        with pytest.raises(InvalidInput):
            async with platform.db.write() as session:
                await items.insert_items(
                    session,
                    owner[0],
                    dataset,
                    [items.ItemSpec(path="/ok.jpg"), items.ItemSpec(path=bad)],
                )
    with pytest.raises(InvalidInput):
        async with platform.db.write() as session:
            await items.insert_items(
                session,
                owner[0],
                dataset,
                [items.ItemSpec(path="/d.jpg"), items.ItemSpec(path="d.jpg")],
            )
    async with platform.db.read() as session:
        assert await session.scalar(select(func.count()).select_from(Item)) == 0


async def test_skip_and_overwrite_on_name_clash(platform, owner, project) -> None:
    dataset, ids = await _dataset_with(platform, owner[0], project, ["/a.jpg"])
    async with platform.db.write() as session:
        skipped, _ = await items.insert_items(
            session, owner[0], dataset, [items.ItemSpec(path="/a.jpg", url="https://other.test/a")]
        )
    assert skipped[0].op == "skipped"
    async with platform.db.write() as session:
        replaced, _ = await items.insert_items(
            session,
            owner[0],
            dataset,
            [items.ItemSpec(path="/a.jpg", url="https://other.test/a")],
            mode="overwrite",
        )
    assert replaced[0].op == "overwritten" and replaced[0].item_id == ids["/a.jpg"]
    assert (await items.get_item(platform, owner[0], ids["/a.jpg"])).url == "https://other.test/a"


async def test_delete_folder_removes_content_and_updates_counters(platform, owner, project) -> None:
    dataset, ids = await _dataset_with(
        platform, owner[0], project, ["/a/x.jpg", "/a/b/y.jpg", "/z.jpg"]
    )
    folder = (
        await items.list_items(platform, owner[0], dataset.id, dir="/", recursive=False)
    ).rows[0]
    assert folder.filename == "/a"
    assert await items.delete_items(platform, owner[0], [folder.id]) == 2
    remaining = await items.list_items(platform, owner[0], dataset.id)
    assert [i.filename for i in remaining.rows] == ["/z.jpg"]
    assert (await datasets.get_dataset(platform, owner[0], dataset.id)).items_count == 1
    with pytest.raises(NotFound):
        await items.delete_items(platform, owner[0], [ids["/a/x.jpg"]])


async def test_readonly_dataset_refuses_changes(platform, owner, project) -> None:
    dataset, ids = await _dataset_with(platform, owner[0], project, ["/a.jpg"])
    await datasets.update_dataset(platform, owner[0], dataset.id, readonly=True)
    with pytest.raises(Conflict):
        await items.create_folder(platform, owner[0], dataset.id, "/new")
    with pytest.raises(Conflict):
        await items.delete_items(platform, owner[0], [ids["/a.jpg"]])
    with pytest.raises(Conflict):
        await items.update_item(platform, owner[0], ids["/a.jpg"], description="x")


async def test_items_over_graphql(client, project) -> None:
    data = await gql(
        client,
        'mutation($p: ID!) { createDataset(projectId: $p, name: "g") { id } }',
        {"p": project.id},
    )
    dataset_id = data["createDataset"]["id"]
    folder = await gql(
        client,
        'mutation($d: ID!) { createFolder(datasetId: $d, path: "/train/cats") { id type filename dir } }',
        {"d": dataset_id},
    )
    assert folder["createFolder"]["filename"] == "/train/cats"
    listed = await gql(
        client,
        "query($d: ID!) { items(datasetId: $d) { totalCount nodes { filename type } } }",
        {"d": dataset_id},
    )
    assert listed["items"]["totalCount"] == 2
    errors = await gql_errors(
        client,
        'mutation($d: ID!) { createFolder(datasetId: $d, path: "/../up") { id } }',
        {"d": dataset_id},
    )
    assert errors[0]["extensions"] == {"code": "INVALID_INPUT", "field": "path"}
    errors = await gql_errors(client, 'mutation { updateItem(id: "nope", metadata: 5) { id } }')
    assert errors[0]["extensions"]["code"] in {"NOT_FOUND", "INVALID_INPUT"}


async def test_a_file_cannot_hold_items(platform, owner, project) -> None:
    dataset, _ = await _dataset_with(platform, owner[0], project, ["/a"])
    with pytest.raises(InvalidInput) as refused:
        async with platform.db.write() as session:
            await items.insert_items(session, owner[0], dataset, [items.ItemSpec(path="/a/b.jpg")])
    assert "'/a' is a file" in refused.value.message
    with pytest.raises(InvalidInput):
        await items.create_folder(platform, owner[0], dataset.id, "/a/sub")
