"""Integrations, drivers and sync against a real S3-compatible server (moto, on loopback)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import func, select

from graph.db.tables import Blob, Driver, Event, Integration, Item
from graph.domain import blobs, datasets, items, projects, storage, sync, tasks
from graph.domain.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    StorageUnavailable,
)
from tests.conftest import make_user
from tests.graphql import finished, gql, gql_errors
from tests.s3 import CREDENTIALS, bucket_fixture, closed_port, s3_client, s3_endpoint_fixture  # noqa: F401

PREFIX = "teams/vision"


def _put(endpoint: str, bucket: str, objects: dict[str, bytes]) -> None:
    client = s3_client(endpoint)
    for key, body in objects.items():
        client.put_object(Bucket=bucket, Key=f"{PREFIX}/{key}", Body=body)


def _keys(endpoint: str, bucket: str) -> list[str]:
    listed = s3_client(endpoint).list_objects_v2(Bucket=bucket)
    return sorted(o["Key"] for o in listed.get("Contents", ()))


async def _bound_dataset(platform, actor, project, endpoint: str, bucket: str, name="synced"):
    integration = await storage.create_integration(
        platform, actor, project.id, f"{name}-keys", "s3", CREDENTIALS
    )
    driver = await storage.create_driver(
        platform,
        actor,
        project.id,
        f"{name}-bucket",
        "s3",
        {"bucket": bucket, "prefix": PREFIX, "endpoint_url": endpoint},
        integration.id,
    )
    dataset = await datasets.create_dataset(platform, actor, project.id, name, driver.id)
    return dataset, driver


async def _files(platform, actor, dataset_id) -> dict[str, Item]:
    page = await items.list_items(platform, actor, dataset_id, first=1000)
    return {i.filename: i for i in page.rows}


async def _count(platform, table) -> int:
    async with platform.db.read() as session:
        return int(await session.scalar(select(func.count()).select_from(table)))


async def _item_events(platform) -> list[tuple[str, str]]:
    async with platform.db.read() as session:
        rows = await session.execute(
            select(Event.action, Event.payload).where(Event.resource == "item").order_by(Event.seq)
        )
        return [(action, payload.get("filename")) for action, payload in rows]


async def _read(platform, item: Item, start: int = 0, end: int | None = None) -> bytes:
    async with platform.db.read() as session:
        blob, driver, integration = await storage.load_blob_source(session, item.blob_id)
    return b"".join(storage.read_blob(platform, blob, driver, integration, start, end))


async def test_sync_creates_items_then_applies_only_what_changed(
    platform, owner, project, s3_endpoint, bucket
) -> None:
    actor = owner[0]
    _put(
        s3_endpoint,
        bucket,
        {"a.jpg": b"a" * 10, "train/b.png": b"bb", "train/sub/c.txt": b"ccc", "keep.txt": b"k"},
    )
    # neither outside the prefix nor in a sibling folder that merely starts with its name
    s3_client(s3_endpoint).put_object(Bucket=bucket, Key="elsewhere/x.jpg", Body=b"x")
    s3_client(s3_endpoint).put_object(Bucket=bucket, Key=PREFIX + "-old/y.jpg", Body=b"y")
    dataset, driver = await _bound_dataset(platform, actor, project, s3_endpoint, bucket)

    first = await sync.sync_dataset(platform, actor, dataset.id)
    assert first == sync.SyncReport(created=4)
    files = await _files(platform, actor, dataset.id)
    assert sorted(files) == [
        "/a.jpg",
        "/keep.txt",
        "/train",
        "/train/b.png",
        "/train/sub",
        "/train/sub/c.txt",
    ]
    assert files["/train/b.png"].mimetype == "image/png" and files["/train/b.png"].size == 2
    assert files["/a.jpg"].mimetype == "image/jpeg" and files["/train/sub"].type == "dir"
    async with platform.db.read() as session:
        rows = (await session.scalars(select(Blob).order_by(Blob.key))).all()
    assert [(b.driver_id, b.key, b.size, b.sha256) for b in rows] == [
        (driver.id, "a.jpg", 10, None),
        (driver.id, "keep.txt", 1, None),
        (driver.id, "train/b.png", 2, None),
        (driver.id, "train/sub/c.txt", 3, None),
    ]
    assert all(b.etag for b in rows)
    synced = await datasets.get_dataset(platform, actor, dataset.id)
    assert synced.items_count == 4 and synced.last_synced_at is not None
    a_id = files["/a.jpg"].id
    await items.update_item(platform, actor, a_id, user_metadata={"camera": "front"})
    task = await tasks.create_task(
        platform, actor, dataset.id, "label", dql="", workload=[(actor.email, 100)]
    )
    assert task.items_count == 4

    # change one (same size, new bytes: only the etag tells), delete one, add one
    _put(s3_endpoint, bucket, {"a.jpg": b"A" * 10, "train/d.jpg": b"dddd"})
    s3_client(s3_endpoint).delete_object(Bucket=bucket, Key=f"{PREFIX}/train/b.png")
    before = len(await _item_events(platform))

    second = await sync.sync_dataset(platform, actor, dataset.id)
    assert second == sync.SyncReport(created=1, updated=1, deleted=1, unchanged=2)
    assert (await _item_events(platform))[before:] == [
        ("created", "/train/d.jpg"),
        ("updated", "/a.jpg"),
        ("deleted", "/train/b.png"),
    ]
    files = await _files(platform, actor, dataset.id)
    assert "/train/b.png" not in files and files["/train/d.jpg"].size == 4
    assert files["/a.jpg"].id == a_id and files["/a.jpg"].metadata_["user"] == {"camera": "front"}
    assert await _read(platform, files["/a.jpg"]) == b"A" * 10
    assert (await datasets.get_dataset(platform, actor, dataset.id)).items_count == 4
    # the deleted item left the task too
    assert (await tasks.get_task(platform, actor, task.id)).items_count == 3
    async with platform.db.read() as session:
        keys = (await session.scalars(select(Blob.key).order_by(Blob.key))).all()
    assert keys == ["a.jpg", "keep.txt", "train/d.jpg", "train/sub/c.txt"]

    # nothing changed: nothing written but the sync time
    before = len(await _item_events(platform))
    assert await sync.sync_dataset(platform, actor, dataset.id) == sync.SyncReport(unchanged=4)
    assert len(await _item_events(platform)) == before

    # deleting an item forgets the object; the user's bucket keeps it
    await items.delete_items(platform, actor, [files["/keep.txt"].id])
    assert f"{PREFIX}/keep.txt" in _keys(s3_endpoint, bucket)
    assert await sync.sync_dataset(platform, actor, dataset.id) == sync.SyncReport(
        created=1, unchanged=3
    )


async def test_read_blob_streams_the_bucket_bytes_and_ranges(
    platform, owner, project, s3_endpoint, bucket
) -> None:
    actor = owner[0]
    body = bytes(range(256)) * 8
    _put(s3_endpoint, bucket, {"raw/data.bin": body})
    dataset, _ = await _bound_dataset(platform, actor, project, s3_endpoint, bucket)
    await sync.sync_dataset(platform, actor, dataset.id)
    item = (await _files(platform, actor, dataset.id))["/raw/data.bin"]

    assert await _read(platform, item) == body
    assert await _read(platform, item, 10, 19) == body[10:20]
    assert await _read(platform, item, 2000) == body[2000:]

    # gone from the bucket behind the platform's back: a clear storage error, not a crash
    s3_client(s3_endpoint).delete_object(Bucket=bucket, Key=f"{PREFIX}/raw/data.bin")
    with pytest.raises(StorageUnavailable) as gone:
        await _read(platform, item)
    assert "raw/data.bin" in gone.value.message and "does not exist" in gone.value.message


async def test_read_blob_reads_the_platform_store(platform) -> None:
    staged = blobs.stage(platform, b"platform bytes")
    async with platform.db.write() as session:
        blob_id, _ = await blobs.ensure_blob(session, platform, staged)
    async with platform.db.read() as session:
        blob, driver, integration = await storage.load_blob_source(session, blob_id)
        with pytest.raises(NotFound):
            await storage.load_blob_source(session, "no-such-blob")
    assert driver is None and integration is None
    assert b"".join(storage.read_blob(platform, blob, None, None, 9)) == b"bytes"
    platform.blobs.delete(blob.key)
    with pytest.raises(StorageUnavailable):
        b"".join(storage.read_blob(platform, blob, None, None))


async def test_store_in_driver_puts_the_upload_under_the_prefix(
    platform, owner, project, s3_endpoint, bucket
) -> None:
    actor = owner[0]
    dataset, driver = await _bound_dataset(platform, actor, project, s3_endpoint, bucket)
    staged = blobs.stage(platform, b"uploaded bytes")
    async with platform.db.write() as session:
        blob_id = await storage.store_in_driver(
            platform, session, dataset, "/up/new.jpg", staged, "image/jpeg"
        )
        await items.insert_items(
            session, actor, dataset, [items.ItemSpec(path="/up/new.jpg", blob_id=blob_id, size=14)]
        )
    assert not staged.path.exists()
    assert _keys(s3_endpoint, bucket) == [f"{PREFIX}/up/new.jpg"]
    head = s3_client(s3_endpoint).head_object(Bucket=bucket, Key=f"{PREFIX}/up/new.jpg")
    assert head["ContentType"] == "image/jpeg"
    async with platform.db.read() as session:
        blob = await session.get(Blob, blob_id)
    assert (blob.driver_id, blob.key, blob.size) == (driver.id, "up/new.jpg", 14)
    assert blob.sha256 == staged.sha256 and blob.etag
    # the etag recorded on upload is the one the store lists: the next sync changes nothing
    assert await sync.sync_dataset(platform, actor, dataset.id) == sync.SyncReport(unchanged=1)
    async with platform.db.read() as session:
        assert (await session.get(Blob, blob_id)).sha256 == staged.sha256


async def test_unreachable_store_fails_fast_and_changes_nothing(
    platform, owner, project, client, settings
) -> None:
    actor = owner[0]
    driver = await storage.create_driver(
        platform,
        actor,
        project.id,
        "down",
        "s3",
        {"bucket": "photos", "endpoint_url": f"http://127.0.0.1:{closed_port()}"},
    )
    dataset = await datasets.create_dataset(platform, actor, project.id, "ds", driver.id)
    with pytest.raises(StorageUnavailable) as down:
        await sync.sync_dataset(platform, actor, dataset.id)
    assert "could not be reached" in down.value.message and "down" in down.value.message
    started = await gql(
        client, "mutation($d: ID!) { syncDataset(datasetId: $d) { id } }", {"d": dataset.id}
    )
    done = await finished(client, settings, started["syncDataset"])
    assert done["status"] == "failed" and "could not be reached" in done["error"]
    assert await _count(platform, Item) == 0 and await _count(platform, Blob) == 0
    assert (await datasets.get_dataset(platform, actor, dataset.id)).last_synced_at is None


async def test_missing_bucket_is_reported_by_name(
    platform, owner, project, s3_endpoint, bucket
) -> None:
    actor = owner[0]
    dataset, _ = await _bound_dataset(platform, actor, project, s3_endpoint, bucket + "-missing")
    with pytest.raises(StorageUnavailable) as missing:
        await sync.sync_dataset(platform, actor, dataset.id)
    assert f"{bucket}-missing" in missing.value.message
    assert "does not exist" in missing.value.message
    assert CREDENTIALS["secret_access_key"] not in missing.value.message


async def test_objects_whose_key_is_no_clean_path_are_skipped(
    platform, owner, project, s3_endpoint, bucket
) -> None:
    actor = owner[0]
    _put(s3_endpoint, bucket, {"ok.jpg": b"1", "a//b.jpg": b"2", "x/../y.jpg": b"3", "dir/": b""})
    dataset, _ = await _bound_dataset(platform, actor, project, s3_endpoint, bucket)
    report = await sync.sync_dataset(platform, actor, dataset.id)
    assert report == sync.SyncReport(created=1, skipped=2)  # the folder marker is no object
    assert list(await _files(platform, actor, dataset.id)) == ["/ok.jpg"]


async def test_sync_refuses_unbound_readonly_and_foreign_datasets(
    platform, owner, project, s3_endpoint, bucket
) -> None:
    actor = owner[0]
    plain = await datasets.create_dataset(platform, actor, project.id, "plain")
    with pytest.raises(InvalidInput) as unbound:
        await sync.sync_dataset(platform, actor, plain.id)
    assert unbound.value.details["field"] == "datasetId"
    dataset, _ = await _bound_dataset(platform, actor, project, s3_endpoint, bucket)
    await datasets.update_dataset(platform, actor, dataset.id, readonly=True)
    with pytest.raises(Conflict):
        await sync.sync_dataset(platform, actor, dataset.id)
    stranger, _ = await make_user(platform, "stranger@example.com")
    with pytest.raises(NotFound):
        await sync.sync_dataset(platform, stranger, dataset.id)


async def test_bad_driver_and_integration_input_is_refused_and_writes_nothing(
    platform, owner, project, s3_endpoint
) -> None:
    actor = owner[0]
    other = await projects.create_project(platform, actor, "other")
    foreign = await storage.create_integration(platform, actor, other.id, "keys", "s3", CREDENTIALS)
    before = (await _count(platform, Driver), await _count(platform, Integration))
    config = {"bucket": "b", "endpoint_url": s3_endpoint}

    async def refused(error: type[Exception], call: Any) -> Any:
        with pytest.raises(error) as caught:
            await call
        return caught.value

    bad_type = await refused(
        InvalidInput, storage.create_driver(platform, actor, project.id, "d", "ftp", config)
    )
    assert bad_type.details["field"] == "type" and "s3" in bad_type.message
    no_bucket = await refused(
        InvalidInput,
        storage.create_driver(platform, actor, project.id, "d", "s3", {"endpoint_url": "http://x"}),
    )
    assert no_bucket.details["field"] == "config" and "bucket" in no_bucket.message
    unknown_key = await refused(
        InvalidInput,
        storage.create_driver(platform, actor, project.id, "d", "s3", {**config, "acl": "x"}),
    )
    assert unknown_key.details["field"] == "config.acl"
    await refused(
        InvalidInput,
        storage.create_driver(platform, actor, project.id, "d", "s3", {**config, "prefix": {}}),
    )
    await refused(
        InvalidInput,
        storage.create_driver(
            platform, actor, project.id, "d", "s3", {**config, "endpoint_url": "ftp://x"}
        ),
    )
    await refused(InvalidInput, storage.create_driver(platform, actor, project.id, "d", "s3", "b"))
    await refused(
        NotFound, storage.create_driver(platform, actor, project.id, "d", "s3", config, foreign.id)
    )
    await refused(
        NotFound, storage.create_driver(platform, actor, project.id, "d", "s3", config, "nope")
    )
    await refused(
        InvalidInput, storage.create_driver(platform, actor, project.id, " ", "s3", config)
    )

    bad_secret = await refused(
        InvalidInput,
        storage.create_integration(
            platform, actor, project.id, "k", "s3", {**CREDENTIALS, "password": "hunter2"}
        ),
    )
    assert bad_secret.details["field"] == "secret.password" and "hunter2" not in bad_secret.message
    await refused(
        InvalidInput, storage.create_integration(platform, actor, project.id, "k", "s3", {})
    )
    await refused(
        InvalidInput,
        storage.create_integration(platform, actor, project.id, "k", "s3", {"access_key_id": 7}),
    )
    await refused(
        InvalidInput, storage.create_integration(platform, actor, project.id, "k", "local", {})
    )
    await refused(
        InvalidInput, storage.create_integration(platform, actor, project.id, "k", "gcs", {})
    )
    # a half secret is accepted as written, and refused where it is used
    half = await storage.create_integration(
        platform, actor, project.id, "half", "s3", {"access_key_id": "AKIAONLY"}
    )
    incomplete = await refused(
        InvalidInput,
        storage.create_driver(platform, actor, project.id, "d", "s3", config, half.id),
    )
    assert "secret_access_key" in incomplete.message and "AKIAONLY" not in incomplete.message
    assert (await _count(platform, Driver), await _count(platform, Integration)) == (
        before[0],
        before[1] + 1,
    )

    await storage.create_driver(platform, actor, project.id, "d", "s3", config)
    await refused(Conflict, storage.create_driver(platform, actor, project.id, "d", "s3", config))
    await refused(
        Conflict, storage.create_integration(platform, actor, other.id, "keys", "s3", CREDENTIALS)
    )


async def test_roles_and_the_admin_only_local_driver(platform, owner, project, tmp_path) -> None:
    actor = owner[0]
    await storage.create_driver(platform, actor, project.id, "pub", "s3", {"bucket": "open-data"})
    stranger, _ = await make_user(platform, "stranger@example.com")
    with pytest.raises(NotFound):
        await storage.list_drivers(platform, stranger, project.id)
    with pytest.raises(NotFound):
        await storage.list_integrations(platform, stranger, project.id)
    annotator, _ = await make_user(platform, "annotator@example.com")
    await projects.add_member(platform, actor, project.id, "annotator@example.com", "annotator")
    assert [d.name for d in (await storage.list_drivers(platform, annotator, project.id)).rows] == [
        "pub"
    ]
    with pytest.raises(Forbidden):
        await storage.create_driver(platform, annotator, project.id, "x", "s3", {"bucket": "b"})
    with pytest.raises(Forbidden):
        await storage.create_integration(platform, annotator, project.id, "x", "s3", CREDENTIALS)

    # a local driver reads server folders: the project owner may not make one, an admin may
    folder = tmp_path / "shared-folder"
    (folder / "cats").mkdir(parents=True)
    (folder / "cats" / "tom.jpg").write_bytes(b"meow")
    with pytest.raises(Forbidden):
        await storage.create_driver(
            platform, actor, project.id, "disk", "local", {"path": str(folder)}
        )
    admin, _ = await make_user(platform, "root@example.com", admin=True)
    driver = await storage.create_driver(
        platform, admin, project.id, "disk", "local", {"path": str(folder)}
    )
    dataset = await datasets.create_dataset(platform, actor, project.id, "disk", driver.id)
    assert await sync.sync_dataset(platform, actor, dataset.id) == sync.SyncReport(created=1)
    tom = (await _files(platform, actor, dataset.id))["/cats/tom.jpg"]
    assert await _read(platform, tom) == b"meow"


async def test_delete_only_what_nothing_uses_and_keep_the_bucket(
    platform, owner, project, s3_endpoint, bucket
) -> None:
    actor = owner[0]
    _put(s3_endpoint, bucket, {"one.jpg": b"1", "two.jpg": b"22"})
    dataset, driver = await _bound_dataset(platform, actor, project, s3_endpoint, bucket)
    # a second dataset on the same driver shares its blob rows and syncs on its own
    twin = await datasets.create_dataset(platform, actor, project.id, "twin", driver.id)
    await sync.sync_dataset(platform, actor, dataset.id)
    assert await sync.sync_dataset(platform, actor, twin.id) == sync.SyncReport(created=2)
    assert await _count(platform, Blob) == 2
    one = (await _files(platform, actor, dataset.id))["/one.jpg"]
    # an item elsewhere that uses one of the driver's files (as a clone does)
    plain = await datasets.create_dataset(platform, actor, project.id, "plain")
    async with platform.db.write() as session:
        await items.insert_items(
            session, actor, plain, [items.ItemSpec(path="/copy.jpg", blob_id=one.blob_id)]
        )

    with pytest.raises(Conflict):
        await storage.delete_driver(platform, actor, driver.id)
    with pytest.raises(Conflict):
        await storage.delete_integration(platform, actor, driver.integration_id)
    await datasets.delete_dataset(platform, actor, dataset.id)
    assert (await _files(platform, actor, twin.id)).keys() == {"/one.jpg", "/two.jpg"}
    await datasets.delete_dataset(platform, actor, twin.id)
    with pytest.raises(Conflict) as cloned:
        await storage.delete_driver(platform, actor, driver.id)
    assert "still use" in cloned.value.message
    await datasets.delete_dataset(platform, actor, plain.id)
    await storage.delete_driver(platform, actor, driver.id)
    await storage.delete_integration(platform, actor, driver.integration_id)
    assert await _count(platform, Blob) == 0 and await _count(platform, Driver) == 0
    assert await _count(platform, Integration) == 0
    assert _keys(s3_endpoint, bucket) == [f"{PREFIX}/one.jpg", f"{PREFIX}/two.jpg"]
    with pytest.raises(NotFound):
        await storage.delete_driver(platform, actor, driver.id)


async def test_the_secret_never_leaves_the_server(
    platform, owner, project, client, s3_endpoint, bucket
) -> None:
    fields = "id projectId name type creator createdAt"
    created = await client.post(
        "/graphql",
        json={
            "query": "mutation($p: ID!, $s: JSON!) { createIntegration(projectId: $p, "
            f'name: "keys", type: "s3", secret: $s) {{ {fields} }} }}',
            "variables": {"p": project.id, "s": CREDENTIALS},
        },
    )
    integration_id = created.json()["data"]["createIntegration"]["id"]
    driver = await gql(
        client,
        'mutation($p: ID!, $c: JSON!, $i: ID) { createDriver(projectId: $p, name: "b", '
        'type: "s3", config: $c, integrationId: $i) { id integrationId config } }',
        {
            "p": project.id,
            "c": {"bucket": bucket, "prefix": PREFIX, "endpoint_url": s3_endpoint},
            "i": integration_id,
        },
    )
    assert driver["createDriver"]["integrationId"] == integration_id
    listed = await client.post(
        "/graphql",
        json={
            "query": "query($p: ID!) {"
            f" integrations(projectId: $p) {{ totalCount nodes {{ {fields} }} }}"
            " drivers(projectId: $p) { totalCount nodes { id projectId name type integrationId"
            " config creator createdAt } }"
            " storageDriverTypes { name description configFields secretFields } }",
            "variables": {"p": project.id},
        },
    )
    body = listed.json()
    assert body["data"]["integrations"]["totalCount"] == 1
    assert {t["name"]: t["secretFields"] for t in body["data"]["storageDriverTypes"]} == {
        "local": [],
        "s3": ["access_key_id", "secret_access_key", "session_token"],
    }
    async with platform.db.read() as session:
        payloads = json.dumps((await session.scalars(select(Event.payload))).all())
    for text in (created.text, listed.text, payloads):
        for value in CREDENTIALS.values():
            assert value not in text
    # the API has no way to ask for it
    errors = await gql_errors(
        client,
        "query($p: ID!) { integrations(projectId: $p) { nodes { secret } } }",
        {"p": project.id},
    )
    assert errors[0]["extensions"]["code"] == "GRAPHQL_VALIDATION"


async def test_storage_over_graphql(
    platform, owner, project, client, s3_endpoint, bucket, settings
) -> None:
    _put(s3_endpoint, bucket, {"cats/a.jpg": b"a", "dogs/b.jpg": b"b"})
    integration = await gql(
        client,
        'mutation($p: ID!, $s: JSON!) { createIntegration(projectId: $p, name: "k", type: "s3",'
        " secret: $s) { id } }",
        {"p": project.id, "s": CREDENTIALS},
    )
    driver = await gql(
        client,
        'mutation($p: ID!, $c: JSON!, $i: ID) { createDriver(projectId: $p, name: "b", type: "s3",'
        " config: $c, integrationId: $i) { id } }",
        {
            "p": project.id,
            "c": {"bucket": bucket, "prefix": PREFIX, "endpoint_url": s3_endpoint},
            "i": integration["createIntegration"]["id"],
        },
    )
    driver_id = driver["createDriver"]["id"]
    dataset = await gql(
        client,
        'mutation($p: ID!, $d: ID) { createDataset(projectId: $p, name: "ds", driverId: $d) { id } }',
        {"p": project.id, "d": driver_id},
    )
    dataset_id = dataset["createDataset"]["id"]
    started = await gql(
        client, "mutation($d: ID!) { syncDataset(datasetId: $d) { id } }", {"d": dataset_id}
    )
    report = await finished(client, settings, started["syncDataset"])
    assert report["output"] == {
        "created": 2,
        "updated": 0,
        "deleted": 0,
        "unchanged": 0,
        "skipped": 0,
    }
    data = await gql(
        client,
        "query($d: ID!) { dataset(id: $d) { itemsCount lastSyncedAt } }",
        {"d": dataset_id},
    )
    assert data["dataset"]["itemsCount"] == 2 and data["dataset"]["lastSyncedAt"]

    bad = await gql_errors(
        client,
        'mutation($p: ID!) { createDriver(projectId: $p, name: "x", type: "nfs", config: {}) '
        "{ id } }",
        {"p": project.id},
    )
    assert bad[0]["extensions"]["code"] == "INVALID_INPUT"
    conflict = await gql_errors(
        client, "mutation($d: ID!) { deleteDriver(id: $d) }", {"d": driver_id}
    )
    assert conflict[0]["extensions"]["code"] == "CONFLICT"
    stranger, token = await make_user(platform, "stranger@example.com")
    hidden = await gql_errors(
        client,
        "query($p: ID!) { drivers(projectId: $p) { nodes { id } } }",
        {"p": project.id},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert hidden[0]["extensions"]["code"] == "NOT_FOUND"
    await gql(client, "mutation($d: ID!) { deleteDataset(id: $d) }", {"d": dataset_id})
    assert await gql(client, "mutation($d: ID!) { deleteDriver(id: $d) }", {"d": driver_id}) == {
        "deleteDriver": True
    }
    gone = await gql(
        client, "query($p: ID!) { drivers(projectId: $p) { totalCount } }", {"p": project.id}
    )
    assert gone["drivers"]["totalCount"] == 0
