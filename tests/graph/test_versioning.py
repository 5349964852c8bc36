"""Clones and merges copy rows, never bytes; selections, clashes and lineage; bad input refused."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import func, select

from graph.db.tables import Annotation, Blob, Dataset, Event, Item
from graph.domain import annotations, blobs, datasets, items, projects, versioning
from graph.domain.annotations import AnnotationSpec
from graph.domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from tests.conftest import make_user
from tests.graphql import finished, gql, gql_errors

BOX = [{"x": 1, "y": 2}, {"x": 30, "y": 40}]


async def _count(platform, table: Any, *where: Any) -> int:
    async with platform.db.read() as session:
        return int(await session.scalar(select(func.count()).select_from(table).where(*where)))


def _stored_files(platform) -> set[Path]:
    root = platform.settings.blob_root
    return {p for p in root.rglob("*") if p.is_file() and ".staging" not in p.parts}


async def _fill(platform, actor, dataset, specs: list[items.ItemSpec]) -> dict[str, str]:
    async with platform.db.write() as session:
        results, _ = await items.insert_items(session, actor, dataset, specs)
    return {r.filename: r.item_id for r in results}


async def _files(platform, actor, dataset_id: str) -> dict[str, Item]:
    page = await items.list_items(platform, actor, dataset_id, folders=False, first=1000)
    return {i.filename: i for i in page.rows}


async def _annotations_of(platform, item_id: str) -> list[Annotation]:
    async with platform.db.read() as session:
        return list(
            await session.scalars(
                select(Annotation).where(Annotation.item_id == item_id).order_by(Annotation.id)
            )
        )


@pytest.fixture
async def source(platform, owner, project) -> Any:
    """A dataset with stored files (bytes and a thumbnail), a link, folders and annotations."""
    actor = owner[0]
    dataset = await datasets.create_dataset(platform, actor, project.id, "source")
    async with platform.db.write() as session:
        content, _ = await blobs.ensure_blob(session, platform, blobs.stage(platform, b"jpeg!"))
        thumb, _ = await blobs.ensure_blob(session, platform, blobs.stage(platform, b"thumb"))
    ids = await _fill(
        platform,
        actor,
        dataset,
        [
            items.ItemSpec(
                path="/train/a.jpg",
                mimetype="image/jpeg",
                size=5,
                width=64,
                height=48,
                blob_id=content,
                thumbnail_blob_id=thumb,
                description="first",
                system={"originalname": "a.jpg"},
                user={"camera": "front"},
            ),
            items.ItemSpec(path="/train/deep/b.jpg", blob_id=content, user={"camera": "back"}),
            items.ItemSpec(path="/val/c.jpg", url="https://x.example/c.jpg", user={"k": 1}),
            items.ItemSpec(path="/d.jpg", url="https://x.example/d.jpg"),
        ],
    )
    [box] = await annotations.create_annotations(
        platform,
        actor,
        ids["/train/a.jpg"],
        [AnnotationSpec(type="box", label="cat", coordinates=BOX)],
    )
    await annotations.create_annotations(
        platform,
        actor,
        ids["/train/a.jpg"],
        [
            AnnotationSpec(
                type="point", label="eye", coordinates={"x": 3, "y": 4}, parent_id=box.id
            ),
            AnnotationSpec(type="class", label="indoor", attributes={"lit": True}),
        ],
    )
    await annotations.create_annotations(
        platform, actor, ids["/val/c.jpg"], [AnnotationSpec(type="class", label="dog")]
    )
    return SimpleNamespace(id=dataset.id, project_id=dataset.project_id, ids=ids)


async def test_clone_copies_rows_and_annotations_but_no_bytes(platform, owner, source) -> None:
    actor = owner[0]
    blobs_before, files_before = await _count(platform, Blob), _stored_files(platform)
    clone = await versioning.clone_dataset(platform, actor, source.id, "v2")
    assert (clone.project_id, clone.src_dataset_id, clone.name) == (
        source.project_id,
        source.id,
        "v2",
    )
    assert (clone.items_count, clone.annotations_count) == (4, 4)
    assert await _count(platform, Blob) == blobs_before == 2
    assert _stored_files(platform) == files_before

    originals = await _files(platform, actor, source.id)
    copies = await _files(platform, actor, clone.id)
    assert sorted(copies) == sorted(originals)
    for path, copy in copies.items():
        original = originals[path]
        assert copy.id != original.id and copy.src_item_id == original.id
        assert copy.dataset_id == clone.id
        for column in ("blob_id", "thumbnail_blob_id", "url", "mimetype", "size", "width"):
            assert getattr(copy, column) == getattr(original, column), column
        assert copy.description == original.description
        assert copy.metadata_ == original.metadata_
        assert (copy.annotated, copy.annotations_count) == (
            original.annotated,
            original.annotations_count,
        )
    folders = await items.list_items(platform, actor, clone.id)
    assert [i.filename for i in folders.rows if i.type == "dir"] == [
        "/train",
        "/train/deep",
        "/val",
    ]

    src_a = await _annotations_of(platform, originals["/train/a.jpg"].id)
    new_a = await _annotations_of(platform, copies["/train/a.jpg"].id)
    assert [a.src_annotation_id for a in new_a] == [a.id for a in src_a]
    assert not {a.id for a in new_a} & {a.id for a in src_a}
    assert [(a.type, a.label, a.coordinates, a.attributes) for a in new_a] == [
        (a.type, a.label, a.coordinates, a.attributes) for a in src_a
    ]
    box, point = new_a[0], new_a[1]
    assert point.parent_id == box.id  # remapped to the copied parent
    assert all(a.dataset_id == clone.id for a in new_a)
    created = await _count(
        platform,
        Event,
        Event.resource == "annotation",
        Event.payload["datasetId"].as_string() == clone.id,
    )
    assert created == 4

    # the copies are independent: deleting the source keeps the clone and the shared bytes
    await datasets.delete_dataset(platform, actor, source.id)
    assert await _count(platform, Blob) == 2
    assert _stored_files(platform) == files_before
    assert (await datasets.get_dataset(platform, actor, clone.id)).src_dataset_id is None
    assert len(await _files(platform, actor, clone.id)) == 4


async def test_clone_without_metadata_or_annotations(platform, owner, source) -> None:
    clone = await versioning.clone_dataset(
        platform, owner[0], source.id, "bare", with_metadata=False, with_annotations=False
    )
    assert (clone.items_count, clone.annotations_count) == (4, 0)
    copies = await _files(platform, owner[0], clone.id)
    first = copies["/train/a.jpg"]
    assert first.metadata_ == {"system": {"originalname": "a.jpg"}, "user": {}}
    assert (first.annotated, first.annotations_count) == (False, 0)
    assert await _count(platform, Annotation, Annotation.dataset_id == clone.id) == 0


async def test_clone_a_selection_below_a_target_folder(platform, owner, source) -> None:
    ids = source.ids
    async with platform.db.read() as session:
        train = await session.scalar(
            select(Item.id).where(Item.dataset_id == source.id, Item.filename == "/train")
        )
    clone = await versioning.clone_dataset(
        platform,
        owner[0],
        source.id,
        "picked",
        # a folder brings everything below it; a file inside it is not copied twice
        item_ids=[train, ids["/val/c.jpg"], ids["/train/deep/b.jpg"], ids["/val/c.jpg"]],
        target_dir="snapshot/2024",
    )
    copies = await _files(platform, owner[0], clone.id)
    assert sorted(copies) == [
        "/snapshot/2024/train/a.jpg",
        "/snapshot/2024/train/deep/b.jpg",
        "/snapshot/2024/val/c.jpg",
    ]
    assert copies["/snapshot/2024/val/c.jpg"].src_item_id == ids["/val/c.jpg"]
    assert (clone.items_count, clone.annotations_count) == (3, 4)


async def test_bad_clones_create_nothing(platform, owner, project, source) -> None:
    actor = owner[0]
    other = await datasets.create_dataset(platform, actor, project.id, "other")
    other_ids = await _fill(platform, actor, other, [items.ItemSpec(path="/z.jpg")])
    before = (await _count(platform, Dataset), await _count(platform, Item))
    with pytest.raises(InvalidInput) as caught:
        await versioning.clone_dataset(
            platform,
            actor,
            source.id,
            "mixed",
            item_ids=[source.ids["/d.jpg"], other_ids["/z.jpg"]],
        )
    assert caught.value.details["field"] == "itemIds"
    with pytest.raises(InvalidInput):
        await versioning.clone_dataset(platform, actor, source.id, "none", item_ids=[])
    with pytest.raises(Conflict):
        await versioning.clone_dataset(platform, actor, source.id, "other")
    with pytest.raises(InvalidInput):
        await versioning.clone_dataset(platform, actor, source.id, "bad/name")
    with pytest.raises(InvalidInput):
        await versioning.clone_dataset(platform, actor, source.id, "x", target_dir="../up")
    assert (await _count(platform, Dataset), await _count(platform, Item)) == before
    assert (
        await _count(platform, Event, Event.resource == "dataset", Event.action == "created") == 2
    )


async def test_annotators_and_strangers_may_not_clone_or_merge(
    platform, owner, project, source
) -> None:
    annotator, _ = await make_user(platform, "annotator@example.com")
    await projects.add_member(platform, owner[0], project.id, annotator.email, "annotator")
    with pytest.raises(Forbidden):
        await versioning.clone_dataset(platform, annotator, source.id, "mine")
    other = await datasets.create_dataset(platform, owner[0], project.id, "other")
    with pytest.raises(Forbidden):
        await versioning.merge_datasets(platform, annotator, [source.id, other.id], "mine")
    # an annotator may still read where a dataset comes from
    assert (await versioning.lineage(platform, annotator, source.id)).ancestors == []
    stranger, _ = await make_user(platform, "stranger@example.com")
    with pytest.raises(NotFound):
        await versioning.clone_dataset(platform, stranger, source.id, "mine")
    assert await _count(platform, Dataset) == 2


async def test_large_sources_are_copied_in_batches(platform, owner, project, monkeypatch) -> None:
    monkeypatch.setattr(versioning, "_BATCH", 3)
    actor = owner[0]
    dataset = await datasets.create_dataset(platform, actor, project.id, "many")
    ids = await _fill(
        platform, actor, dataset, [items.ItemSpec(path=f"/{i:02d}.jpg") for i in range(11)]
    )
    for i in (0, 3, 4, 10):
        await annotations.create_annotations(
            platform, actor, ids[f"/{i:02d}.jpg"], [AnnotationSpec(type="class", label=str(i))] * 2
        )
    clone = await versioning.clone_dataset(platform, actor, dataset.id, "copy")
    assert (clone.items_count, clone.annotations_count) == (11, 8)
    copies = await _files(platform, actor, clone.id)
    assert sorted(copies) == sorted(ids)
    assert [copies[f"/{i:02d}.jpg"].annotations_count for i in range(11)] == [
        2, 0, 0, 2, 2, 0, 0, 0, 0, 0, 2,
    ]  # fmt: skip


async def test_merge_resolves_clashing_paths_by_source_order(platform, owner, project) -> None:
    actor = owner[0]
    alpha = await datasets.create_dataset(platform, actor, project.id, "alpha")
    beta = await datasets.create_dataset(platform, actor, project.id, "beta")
    gamma = await datasets.create_dataset(platform, actor, project.id, "gamma")
    a = await _fill(
        platform,
        actor,
        alpha,
        [items.ItemSpec(path=p, user={"from": "alpha"}) for p in ("/a.jpg", "/f", "/y/1.jpg")],
    )
    b = await _fill(
        platform,
        actor,
        beta,
        [
            items.ItemSpec(path=p, user={"from": "beta"})
            for p in ("/a.jpg", "/b.jpg", "/f/3.jpg", "/y", "/y2/4.jpg")
        ],
    )
    g = await _fill(
        platform, actor, gamma, [items.ItemSpec(path=p) for p in ("/a.jpg", "/gamma/a.jpg")]
    )
    await annotations.create_annotations(
        platform, actor, b["/a.jpg"], [AnnotationSpec(type="class", label="beta-a")]
    )
    merged = await versioning.merge_datasets(
        platform, actor, [alpha.id, beta.id, gamma.id], "merged"
    )
    assert merged.src_dataset_id is None
    assert merged.metadata_ == {"system": {"mergedFrom": [alpha.id, beta.id, gamma.id]}}
    assert (merged.items_count, merged.annotations_count) == (10, 1)
    copies = await _files(platform, actor, merged.id)
    assert {path: item.src_item_id for path, item in copies.items()} == {
        "/a.jpg": a["/a.jpg"],
        "/f": a["/f"],
        "/y/1.jpg": a["/y/1.jpg"],
        "/beta/a.jpg": b["/a.jpg"],  # the path was taken
        "/b.jpg": b["/b.jpg"],
        "/beta/f/3.jpg": b["/f/3.jpg"],  # /f is a file in the merge
        "/beta/y": b["/y"],  # /y is a folder in the merge
        "/y2/4.jpg": b["/y2/4.jpg"],
        "/gamma/a.jpg": g["/gamma/a.jpg"],  # its own path was free
        "/gamma/a (2).jpg": g["/a.jpg"],  # taken, and so was /gamma/a.jpg
    }
    assert copies["/beta/a.jpg"].annotations_count == 1
    assert copies["/beta/a.jpg"].metadata_["user"] == {"from": "beta"}

    bare = await versioning.merge_datasets(
        platform, actor, [beta.id, alpha.id], "bare", with_metadata=False, with_annotations=False
    )
    copies = await _files(platform, actor, bare.id)
    assert copies["/a.jpg"].src_item_id == b["/a.jpg"]
    assert copies["/alpha/a.jpg"].src_item_id == a["/a.jpg"]
    assert copies["/a.jpg"].metadata_["user"] == {}
    assert bare.annotations_count == 0


async def test_bad_merges_create_nothing(platform, owner, project) -> None:
    actor = owner[0]
    first = await datasets.create_dataset(platform, actor, project.id, "first")
    second = await datasets.create_dataset(platform, actor, project.id, "second")
    elsewhere = await projects.create_project(platform, actor, "elsewhere")
    foreign = await datasets.create_dataset(platform, actor, elsewhere.id, "foreign")
    with pytest.raises(InvalidInput) as caught:
        await versioning.merge_datasets(platform, actor, [first.id, foreign.id], "mixed")
    assert caught.value.details["field"] == "datasetIds"
    with pytest.raises(InvalidInput):
        await versioning.merge_datasets(platform, actor, [first.id], "single")
    with pytest.raises(InvalidInput):
        await versioning.merge_datasets(platform, actor, [first.id, first.id], "twice")
    with pytest.raises(Conflict):
        await versioning.merge_datasets(platform, actor, [first.id, second.id], "second")
    assert await _count(platform, Dataset) == 3


async def _made(client, settings, started: dict) -> dict:
    """Run a clone or merge execution on a real worker; the dataset it made."""
    done = await finished(client, settings, started)
    assert done["status"] == "success", done["error"]
    query = """query($d: ID!) {
      dataset(id: $d) { id name srcDatasetId itemsCount annotationsCount metadata }
    }"""
    return (await gql(client, query, {"d": done["output"]["datasetId"]}))["dataset"]


async def test_lineage_after_a_clone_of_a_clone_over_graphql(
    client, platform, owner, source, settings
) -> None:
    clone = """mutation($d: ID!, $n: String!) {
      cloneDataset(datasetId: $d, name: $n) { id status functionName }
    }"""

    async def cloned(dataset_id: str, name: str) -> dict:
        started = (await gql(client, clone, {"d": dataset_id, "n": name}))["cloneDataset"]
        assert (started["status"], started["functionName"]) == ("created", "clone_dataset")
        return await _made(client, settings, started)

    v2 = await cloned(source.id, "v2")
    v3 = await cloned(v2["id"], "v3")
    side = await cloned(source.id, "side")
    assert (v3["srcDatasetId"], v3["itemsCount"], v3["annotationsCount"]) == (v2["id"], 4, 4)

    query = """query($d: ID!) {
      datasetLineage(datasetId: $d) { ancestors { name } clones { name srcDatasetId } }
    }"""
    of_v3 = (await gql(client, query, {"d": v3["id"]}))["datasetLineage"]
    assert of_v3 == {"ancestors": [{"name": "v2"}, {"name": "source"}], "clones": []}
    of_source = (await gql(client, query, {"d": source.id}))["datasetLineage"]
    assert of_source["ancestors"] == []
    assert of_source["clones"] == [
        {"name": "v2", "srcDatasetId": source.id},
        {"name": "side", "srcDatasetId": source.id},
        {"name": "v3", "srcDatasetId": v2["id"]},
    ]
    assert side["srcDatasetId"] == source.id

    # items know their source item, and the chain can be followed item by item
    listed = await gql(
        client,
        """query($d: ID!) { items(datasetId: $d, folders: false) {
          nodes { filename srcItem { filename srcItem { id datasetId } } }
        } }""",
        {"d": v3["id"]},
    )
    nodes = {n["filename"]: n for n in listed["items"]["nodes"]}
    deepest = nodes["/train/a.jpg"]["srcItem"]["srcItem"]
    assert deepest == {"id": source.ids["/train/a.jpg"], "datasetId": source.id}


async def test_merge_and_errors_over_graphql(
    client, platform, owner, project, source, settings
) -> None:
    other = await datasets.create_dataset(platform, owner[0], project.id, "other")
    await _fill(platform, owner[0], other, [items.ItemSpec(path="/d.jpg")])
    started = await gql(
        client,
        """mutation($ids: [ID!]!) {
          mergeDatasets(datasetIds: $ids, name: "all", withAnnotations: false) { id }
        }""",
        {"ids": [source.id, other.id]},
    )
    merged = await _made(client, settings, started["mergeDatasets"])
    assert (merged["name"], merged["itemsCount"], merged["annotationsCount"]) == ("all", 5, 0)
    # what only the work itself can find fails the execution, with the domain's message
    started = await gql(
        client,
        'mutation($d: ID!, $i: [ID!]) { cloneDataset(datasetId: $d, name: "x", itemIds: $i) { id } }',
        {"d": source.id, "i": ["000000000000000000000000"]},
    )
    done = await finished(client, settings, started["cloneDataset"])
    assert done["status"] == "failed" and "000000000000000000000000" in done["error"]
    # what the request can check is refused at once
    errors = await gql_errors(
        client,
        'mutation($d: ID!) { cloneDataset(datasetId: $d, name: "x", dql: "width >") { id } }',
        {"d": source.id},
    )
    assert errors[0]["extensions"]["field"] == "dql"
    errors = await gql_errors(
        client,
        'mutation($d: ID!) { cloneDataset(datasetId: $d, name: "all") { id } }',
        {"d": source.id},
    )
    assert errors[0]["extensions"]["code"] == "CONFLICT"
