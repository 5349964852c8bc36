"""The binary HTTP routes: raw and multipart uploads, streaming with ranges, thumbnails, errors."""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from PIL import Image

from graph.app import create_app
from graph.domain import datasets, items, projects
from graph.domain.platform import Platform
from tests.conftest import make_user
from tests.graph.test_uploads import (
    blob_count,
    blob_key,
    jpeg,
    new_dataset,
    stored_files,
    voc_images,
)


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == code and error["message"]
    return error


async def upload_raw(client: httpx.AsyncClient, dataset_id: str, path: str, data: Any, **kw: Any):
    params = {"path": path, **kw.pop("params", {})}
    return await client.post(f"/datasets/{dataset_id}/items", params=params, content=data, **kw)


@pytest.fixture
async def dataset(platform, owner, project) -> Any:
    return await new_dataset(platform, owner[0], project)


# --- uploads --------------------------------------------------------------------------------------


async def test_raw_body_upload_and_clash_modes(client, dataset) -> None:
    data = voc_images(1)[0].read_bytes()
    first = await upload_raw(
        client, dataset.id, "/raw/a.jpg", data, headers={"content-type": "image/png"}
    )
    assert first.status_code == 200, first.text
    assert first.headers["x-item-op"] == "created"
    item = first.json()
    assert (item["filename"], item["mimetype"], item["size"]) == (
        "/raw/a.jpg",
        "image/jpeg",
        len(data),
    )
    assert item["metadata"]["system"]["mimetypeClaimed"] == "image/png"
    assert item["thumbnail"] == f"/items/{item['id']}/thumbnail"

    skipped = await upload_raw(client, dataset.id, "/raw/a.jpg", jpeg())
    assert skipped.headers["x-item-op"] == "skipped" and skipped.json()["id"] == item["id"]
    assert skipped.json()["size"] == len(data)
    replaced = await upload_raw(
        client,
        dataset.id,
        "/raw/a.jpg",
        jpeg(),
        params={"mode": "overwrite", "metadata": '{"k": 1}', "description": "d"},
    )
    assert replaced.headers["x-item-op"] == "overwritten"
    assert replaced.json()["id"] == item["id"] and replaced.json()["width"] == 40
    assert replaced.json()["metadata"]["user"] == {"k": 1}
    assert replaced.json()["description"] is None  # an overwrite keeps user-owned fields
    described = await upload_raw(client, dataset.id, "/d.jpg", jpeg(), params={"description": "d"})
    assert described.json()["description"] == "d"


async def test_a_form_content_type_is_no_claim(client, dataset) -> None:
    """curl --data-binary sends application/x-www-form-urlencoded for any file."""
    response = await upload_raw(
        client,
        dataset.id,
        "/blob.dat",
        bytes(range(256)),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.json()["mimetype"] == "application/octet-stream"
    assert "mimetypeClaimed" not in response.json()["metadata"]["system"]


async def test_raw_body_upload_streams_a_chunked_body(client, platform, dataset) -> None:
    data = voc_images(1)[0].read_bytes()

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(data), 7000):
            yield data[start : start + 7000]

    response = await upload_raw(client, dataset.id, "/chunked.jpg", chunks())
    assert response.status_code == 200, response.text
    streamed = await client.get(response.json()["stream"])
    assert streamed.content == data
    assert [p for p in stored_files(platform) if ".staging" in p.parts] == []


async def test_multipart_batch_with_folders_and_metadata(client, dataset) -> None:
    images = voc_images(4)
    response = await client.post(
        f"/datasets/{dataset.id}/items",
        data={"dir": "/batch", "mode": "skip", "metadata": json.dumps({"camera": "x"})},
        files=[
            ("file", (f"sub{i % 2}/{p.name}", p.read_bytes(), "image/jpeg"))
            for i, p in enumerate(images)
        ],
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert [r["filename"] for r in body] == [
        f"/batch/sub{i % 2}/{p.name}" for i, p in enumerate(images)
    ]
    assert {r["op"] for r in body} == {"created"}
    assert all(r["metadata"]["user"] == {"camera": "x"} for r in body)
    for path, result in zip(images, body, strict=True):
        with Image.open(path) as original:
            assert (result["width"], result["height"]) == original.size


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"params": {"path": "../x.jpg"}}, "path"),
        ({"params": {}}, None),
        ({"params": {"path": "/a.jpg", "mode": "merge"}}, "mode"),
        ({"params": {"path": "/a.jpg", "metadata": "{not json"}}, "metadata"),
        ({"params": {"path": "/a.jpg", "metadata": "[1]"}}, "metadata"),
    ],
)
async def test_bad_raw_uploads_are_400(client, platform, dataset, kwargs, field) -> None:
    response = await client.post(f"/datasets/{dataset.id}/items", content=b"x", **kwargs)
    error = assert_error(response, 400, "INVALID_INPUT")
    assert error["extensions"].get("field") == field
    assert await blob_count(platform) == 0


async def test_bad_multipart_uploads_are_400(client, platform, dataset) -> None:
    url = f"/datasets/{dataset.id}/items"
    cases = [
        {"files": [("file", ("../up.jpg", b"x", "image/jpeg"))]},
        {"files": [("other", ("a.jpg", b"x", "image/jpeg"))]},
        {"data": {"file": "not a file"}, "files": [("x", ("a.jpg", b"x"))]},
        {"data": {"metadata": "nope"}, "files": [("file", ("a.jpg", b"x"))]},
        {"data": {"mode": "sideways"}, "files": [("file", ("a.jpg", b"x"))]},
        {"files": [("file", ("a.jpg", b"x")), ("file", ("a.jpg", b"y"))]},
    ]
    for case in cases:
        assert_error(await client.post(url, **case), 400, "INVALID_INPUT")
    broken = await client.post(
        url,
        content=b"--zz\r\nnonsense",
        headers={"content-type": "multipart/form-data; boundary=zz"},
    )
    assert_error(broken, 400, "INVALID_INPUT")
    no_boundary = await client.post(
        url, content=b"x", headers={"content-type": "multipart/form-data"}
    )
    assert_error(no_boundary, 400, "INVALID_INPUT")
    assert await blob_count(platform) == 0 and stored_files(platform) == []


@pytest.fixture
async def small_client(platform, owner) -> AsyncIterator[httpx.AsyncClient]:
    """A client for an app whose upload limit is 2,000 bytes."""
    small = Platform(
        dataclasses.replace(platform.settings, max_upload_bytes=2000), platform.db, platform.plugins
    )
    transport = httpx.ASGITransport(app=create_app(small, migrate=False))
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://loopline.test",
        headers={"Authorization": f"Bearer {owner[1]}"},
    ) as http:
        yield http


async def test_oversized_uploads_are_413_with_nothing_stored(
    small_client, platform, dataset
) -> None:
    big = bytes(range(256)) * 10

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: caught while streaming
        for start in range(0, len(big), 500):
            yield big[start : start + 500]

    responses = [
        await upload_raw(small_client, dataset.id, "/big.bin", big),
        await upload_raw(small_client, dataset.id, "/big.bin", chunked()),
        await small_client.post(
            f"/datasets/{dataset.id}/items", files=[("file", ("big.bin", big))]
        ),
    ]
    for response in responses:
        error = assert_error(response, 413, "PAYLOAD_TOO_LARGE")
        assert error["extensions"]["limit"] == 2000
    assert await blob_count(platform) == 0 and stored_files(platform) == []
    fits = await upload_raw(small_client, dataset.id, "/ok.bin", big[:2000])
    assert fits.status_code == 200


async def test_uploads_need_a_token_and_access(client, platform, owner, project, dataset) -> None:
    url = f"/datasets/{dataset.id}/items"
    for headers in ({"Authorization": ""}, {"Authorization": "Bearer wrong"}):
        response = await client.post(url, params={"path": "/a"}, content=b"a", headers=headers)
        assert_error(response, 401, "UNAUTHENTICATED")
        assert response.headers["www-authenticate"] == "Bearer"
    _, stranger = await make_user(platform, "stranger@example.com")
    stranger_headers = {"Authorization": f"Bearer {stranger}"}
    response = await client.post(url, params={"path": "/a"}, content=b"a", headers=stranger_headers)
    assert_error(response, 404, "NOT_FOUND")
    assert_error(await upload_raw(client, "missing", "/a", b"a"), 404, "NOT_FOUND")
    annotator, token = await make_user(platform, "annotator@example.com")
    await projects.add_member(platform, owner[0], project.id, annotator.email, "annotator")
    response = await client.post(
        url, params={"path": "/a"}, content=b"a", headers={"Authorization": f"Bearer {token}"}
    )
    assert_error(response, 403, "FORBIDDEN")
    await datasets.update_dataset(platform, owner[0], dataset.id, readonly=True)
    assert_error(await upload_raw(client, dataset.id, "/a", b"a"), 409, "CONFLICT")
    assert await blob_count(platform) == 0


# --- streaming ------------------------------------------------------------------------------------


@pytest.fixture
async def uploaded(client, dataset) -> tuple[dict[str, Any], bytes]:
    data = voc_images(1)[0].read_bytes()
    response = await upload_raw(client, dataset.id, "/s/photo one.jpg", data)
    return response.json(), data


async def test_stream_whole_file(client, uploaded) -> None:
    item, data = uploaded
    response = await client.get(f"/items/{item['id']}/stream")
    assert response.status_code == 200
    assert response.content == data
    assert response.headers["content-type"] == "image/jpeg"
    assert response.headers["content-length"] == str(len(data))
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["content-disposition"] == "inline; filename*=UTF-8''photo%20one.jpg"
    etag = response.headers["etag"]
    again = await client.get(f"/items/{item['id']}/stream", headers={"if-none-match": etag})
    assert again.status_code == 304 and again.content == b""


@pytest.mark.parametrize(
    ("header", "wanted"),
    [
        ("bytes=0-99", (0, 99)),
        ("bytes=100-", (100, None)),
        ("bytes=-100", (-100, None)),
        ("bytes=10-10", (10, 10)),
        ("bytes=5-999999999", (5, None)),
    ],
)
async def test_stream_ranges(client, uploaded, header: str, wanted) -> None:
    item, data = uploaded
    response = await client.get(f"/items/{item['id']}/stream", headers={"range": header})
    start, end = wanted
    expected = data[start:] if end is None else data[start : end + 1]
    assert response.status_code == 206
    assert response.content == expected
    first = start if start >= 0 else len(data) + start
    assert (
        response.headers["content-range"]
        == f"bytes {first}-{first + len(expected) - 1}/{len(data)}"
    )
    assert response.headers["content-length"] == str(len(expected))


@pytest.mark.parametrize("header", ["bytes=999999-", "bytes=-0", "bytes=999999-1000000"])
async def test_unsatisfiable_range_is_416(client, uploaded, header: str) -> None:
    item, data = uploaded
    response = await client.get(f"/items/{item['id']}/stream", headers={"range": header})
    assert response.status_code == 416
    assert response.headers["content-range"] == f"bytes */{len(data)}"


@pytest.mark.parametrize("header", ["bytes=abc", "items=0-5", "bytes=0-5,10-20", "bytes=9-3"])
async def test_unusable_range_headers_get_the_whole_file(client, uploaded, header: str) -> None:
    item, data = uploaded
    response = await client.get(f"/items/{item['id']}/stream", headers={"range": header})
    assert response.status_code == 200 and response.content == data


async def test_stream_of_an_empty_file_links_and_folders(client, platform, owner, dataset) -> None:
    empty = (await upload_raw(client, dataset.id, "/empty.bin", b"")).json()
    response = await client.get(f"/items/{empty['id']}/stream")
    assert response.status_code == 200 and response.content == b""
    assert response.headers["content-length"] == "0"
    ranged = await client.get(f"/items/{empty['id']}/stream", headers={"range": "bytes=-5"})
    assert ranged.status_code == 416

    async with platform.db.write() as session:
        results, _ = await items.insert_items(
            session,
            owner[0],
            dataset,
            [items.ItemSpec(path="/links/cat.jpg", url="https://example.com/cat.jpg")],
        )
    response = await client.get(f"/items/{results[0].item_id}/stream")
    assert response.status_code == 302
    assert response.headers["location"] == "https://example.com/cat.jpg"
    folder = await items.create_folder(platform, owner[0], dataset.id, "/links")
    assert_error(await client.get(f"/items/{folder.id}/stream"), 404, "NOT_FOUND")
    assert_error(await client.get("/items/missing/stream"), 404, "NOT_FOUND")


async def test_stream_and_thumbnail_need_access(client, platform, uploaded) -> None:
    item, _ = uploaded
    _, stranger = await make_user(platform, "stranger@example.com")
    for route in ("stream", "thumbnail"):
        url = f"/items/{item['id']}/{route}"
        assert_error(await client.get(url, headers={"Authorization": ""}), 401, "UNAUTHENTICATED")
        response = await client.get(url, headers={"Authorization": f"Bearer {stranger}"})
        assert_error(response, 404, "NOT_FOUND")


async def test_lost_bytes_are_a_502(client, platform, uploaded) -> None:
    item, _ = uploaded
    async with platform.db.read() as session:
        from graph.db.tables import Item

        row = await session.get(Item, item["id"])
    platform.blobs.delete(await blob_key(platform, row.blob_id))
    assert_error(await client.get(f"/items/{item['id']}/stream"), 502, "STORAGE_UNAVAILABLE")


# --- thumbnails -----------------------------------------------------------------------------------


async def test_thumbnail_route(client, dataset, uploaded) -> None:
    item, _ = uploaded
    response = await client.get(item["thumbnail"])
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/jpeg"
    thumb = Image.open(io.BytesIO(response.content))
    assert thumb.format == "JPEG" and max(thumb.size) == 256
    assert int(response.headers["content-length"]) == len(response.content)
    again = await client.get(item["thumbnail"], headers={"if-none-match": response.headers["etag"]})
    assert again.status_code == 304

    text = (await upload_raw(client, dataset.id, "/notes.txt", b"words")).json()
    assert text["thumbnail"] is None
    error = assert_error(await client.get(f"/items/{text['id']}/thumbnail"), 404, "NOT_FOUND")
    assert "thumbnail" in error["message"]
