"""Uploads through the domain and GraphQL: media inspection, thumbnails, dedupe, clashes, limits,
access, and nothing left behind when an upload fails."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import func, select

from graph.db.tables import Blob, Event, Item
from graph.domain import datasets, items, projects, storage, uploads
from graph.domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from graph.domain.platform import Platform
from tests.conftest import make_user, shared_data

VOC = shared_data() / "voc2007-100" / "images"


def voc_images(count: int = 100) -> list[Path]:
    return sorted(VOC.glob("*.jpg"))[:count]


def jpeg(
    size: tuple[int, int] = (40, 20), color: str = "red", orientation: int | None = None
) -> bytes:
    out = io.BytesIO()
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    Image.new("RGB", size, color).save(out, "JPEG", exif=exif)
    return out.getvalue()


def png(size: tuple[int, int] = (30, 10)) -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", size, (0, 0, 255, 128)).save(out, "PNG")
    return out.getvalue()


def stored_files(platform: Platform) -> list[Path]:
    """Every file in the blob store, staging included (it must be empty between requests)."""
    root = platform.settings.blob_root
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


async def blob_count(platform: Platform) -> int:
    async with platform.db.read() as session:
        return int(await session.scalar(select(func.count()).select_from(Blob)) or 0)


async def new_dataset(platform: Platform, actor: Any, project: Any, name: str = "ds") -> Any:
    return await datasets.create_dataset(platform, actor, project.id, name)


def thumbnail_image(platform: Platform, blob_key: str) -> Image.Image:
    data = b"".join(platform.blobs.open(blob_key))
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


async def blob_key(platform: Platform, blob_id: str | None) -> str:
    assert blob_id is not None
    async with platform.db.read() as session:
        blob = await session.get(Blob, blob_id)
    assert blob is not None
    return blob.key


def incoming(
    path: str, data: bytes, mimetype: str | None = None, **kw: Any
) -> uploads.IncomingFile:
    return uploads.IncomingFile(path, io.BytesIO(data), mimetype=mimetype, **kw)


# --- images ---------------------------------------------------------------------------------------


async def test_voc_images_get_their_size_channels_and_a_thumbnail(platform, owner, project) -> None:
    actor = owner[0]
    dataset = await new_dataset(platform, actor, project)
    files = voc_images()
    results = await uploads.upload_files(
        platform,
        actor,
        dataset.id,
        [uploads.IncomingFile(f"/voc/{f.name}", f.open("rb"), "image/jpeg") for f in files],
    )
    assert [r.op for r in results] == ["created"] * len(files)
    for path, result in zip(files, results, strict=True):
        item = result.item
        with Image.open(path) as original:
            assert (item.width, item.height) == original.size
        assert item.filename == f"/voc/{path.name}"
        assert item.mimetype == "image/jpeg"
        assert item.size == path.stat().st_size
        system = item.metadata_["system"]
        assert system["channels"] == 3 and system["originalname"] == path.name
        assert "mimetypeClaimed" not in system and "note" not in system
    for result in results[:10]:
        thumb = thumbnail_image(platform, await blob_key(platform, result.item.thumbnail_blob_id))
        assert thumb.format == "JPEG" and max(thumb.size) == 256
        ratio = result.item.width / result.item.height
        assert abs(thumb.size[0] / thumb.size[1] - ratio) < 0.02
    assert (await datasets.get_dataset(platform, actor, dataset.id)).items_count == len(files)
    async with platform.db.read() as session:
        created = await session.scalar(
            select(func.count()).where(Event.resource == "item", Event.action == "created")
        )
    assert created == len(files) + 1  # the files and the /voc folder


async def test_identical_content_is_stored_once(platform, owner, project) -> None:
    dataset = await new_dataset(platform, owner[0], project)
    data = voc_images(1)[0].read_bytes()
    results = await uploads.upload_files(
        platform, owner[0], dataset.id, [incoming("/a.jpg", data), incoming("/b/c.jpg", data)]
    )
    first, second = (r.item for r in results)
    assert first.id != second.id
    assert first.blob_id == second.blob_id and first.thumbnail_blob_id == second.thumbnail_blob_id
    assert await blob_count(platform) == 2  # the content and its thumbnail
    again = await uploads.upload_files(platform, owner[0], dataset.id, [incoming("/d.jpg", data)])
    assert again[0].item.blob_id == first.blob_id
    assert await blob_count(platform) == 2
    assert len(stored_files(platform)) == 2


async def test_exif_orientation_swaps_width_and_height(platform, owner, project) -> None:
    dataset = await new_dataset(platform, owner[0], project)
    [result] = await uploads.upload_files(
        platform, owner[0], dataset.id, [incoming("/turned.jpg", jpeg((400, 200), orientation=6))]
    )
    item = result.item
    assert (item.width, item.height) == (200, 400)
    assert item.metadata_["system"]["exif"] == {"orientation": 6}
    thumb = thumbnail_image(platform, await blob_key(platform, item.thumbnail_blob_id))
    assert thumb.size == (128, 256)  # shown the right way up


async def test_png_with_transparency_and_a_wrong_claimed_type(platform, owner, project) -> None:
    dataset = await new_dataset(platform, owner[0], project)
    [result] = await uploads.upload_files(
        platform, owner[0], dataset.id, [incoming("/fake.jpg", png(), "image/jpeg")]
    )
    item = result.item
    assert item.mimetype == "image/png"
    assert item.metadata_["system"]["mimetypeClaimed"] == "image/jpeg"
    assert (item.width, item.height) == (30, 10)
    assert item.metadata_["system"]["channels"] == 4
    assert thumbnail_image(platform, await blob_key(platform, item.thumbnail_blob_id)).size == (
        30,
        10,
    )


@pytest.mark.parametrize(
    ("name", "data", "claimed", "expected"),
    [
        ("data.json", b'{"a": [1, 2]}', None, "application/json"),
        ("notes", b"plain words\n", None, "text/plain"),
        ("table.csv", b"a,b\n1,2\n", "application/vnd.ms-excel", "text/csv"),
        ("doc.bin", b"%PDF-1.4\n...", "image/png", "application/pdf"),
        (
            "clip.webm",
            b"\x1aE\xdf\xa3\x9fB\x86\x81\x01B\xf7\x81\x01B\xf2\x81\x04webm",
            None,
            "video/webm",
        ),
        ("blob.dat", bytes(range(256)), None, "application/octet-stream"),
        ("custom.bin", bytes(range(256)), "application/x-custom", "application/x-custom"),
    ],
)
async def test_the_bytes_decide_the_mimetype(
    platform, owner, project, name: str, data: bytes, claimed: str | None, expected: str
) -> None:
    dataset = await new_dataset(platform, owner[0], project)
    [result] = await uploads.upload_files(
        platform, owner[0], dataset.id, [incoming(f"/{name}", data, claimed)]
    )
    assert result.item.mimetype == expected
    assert result.item.thumbnail_blob_id is None and result.item.width is None


@pytest.mark.parametrize(
    ("data", "claimed"),
    [
        (voc_images(1)[0].read_bytes()[:5000], "image/jpeg"),  # truncated
        (bytes(range(256)) * 4, "image/jpeg"),  # garbage named .jpg
        (b"\xff\xd8\xff\xe0" + bytes(300), None),  # a JPEG signature and nothing decodable
    ],
)
async def test_a_corrupt_image_is_kept_as_a_plain_file(
    platform, owner, project, data: bytes, claimed: str | None
) -> None:
    dataset = await new_dataset(platform, owner[0], project)
    [result] = await uploads.upload_files(
        platform, owner[0], dataset.id, [incoming("/broken.jpg", data, claimed)]
    )
    item = result.item
    assert item.mimetype == "application/octet-stream"
    assert item.size == len(data) and item.blob_id is not None
    assert item.width is None and item.height is None and item.thumbnail_blob_id is None
    assert item.metadata_["system"]["note"].startswith("not a readable image")


async def test_text_named_as_an_image_is_text_with_a_note(platform, owner, project) -> None:
    dataset = await new_dataset(platform, owner[0], project)
    [result] = await uploads.upload_files(
        platform, owner[0], dataset.id, [incoming("/words.jpg", b"just words\n")]
    )
    assert result.item.mimetype == "text/plain"
    assert result.item.metadata_["system"]["note"] == (
        "not a readable image: its bytes are text/plain, not image/jpeg"
    )


async def test_a_zero_byte_file_is_an_empty_item(platform, owner, project) -> None:
    dataset = await new_dataset(platform, owner[0], project)
    results = await uploads.upload_files(
        platform,
        owner[0],
        dataset.id,
        [incoming("/empty.jpg", b"", "image/jpeg"), incoming("/empty.txt", b"", "text/plain")],
    )
    image, text = (r.item for r in results)
    assert (image.size, image.mimetype) == (0, "application/octet-stream")
    assert image.metadata_["system"]["note"] == "not a readable image: the file is empty"
    assert (text.size, text.mimetype) == (0, "text/plain")
    assert image.blob_id == text.blob_id is not None
    assert b"".join(platform.blobs.open(await blob_key(platform, image.blob_id))) == b""


# --- clashes --------------------------------------------------------------------------------------


async def test_skip_keeps_the_item_and_stores_nothing_new(platform, owner, project) -> None:
    dataset = await new_dataset(platform, owner[0], project)
    [first] = await uploads.upload_files(
        platform, owner[0], dataset.id, [incoming("/a.jpg", jpeg(color="red"))]
    )
    before = stored_files(platform)
    [skipped] = await uploads.upload_files(
        platform, owner[0], dataset.id, [incoming("/a.jpg", jpeg(color="blue"))], mode="skip"
    )
    assert skipped.op == "skipped"
    assert skipped.item.id == first.item.id and skipped.item.blob_id == first.item.blob_id
    assert stored_files(platform) == before and await blob_count(platform) == 2


async def test_overwrite_replaces_content_keeps_id_and_frees_old_bytes(
    platform, owner, project
) -> None:
    dataset = await new_dataset(platform, owner[0], project)
    red, blue = jpeg(color="red"), jpeg((10, 50), color="blue")
    [first] = await uploads.upload_files(
        platform, owner[0], dataset.id, [incoming("/a.jpg", red, metadata={"k": 1})]
    )
    old_keys = {
        await blob_key(platform, first.item.blob_id),
        await blob_key(platform, first.item.thumbnail_blob_id),
    }
    [second] = await uploads.upload_files(
        platform, owner[0], dataset.id, [incoming("/a.jpg", blue)], mode="overwrite"
    )
    assert second.op == "overwritten" and second.item.id == first.item.id
    assert (second.item.width, second.item.height) == (10, 50)
    assert second.item.blob_id != first.item.blob_id
    assert await blob_count(platform) == 2
    assert not any(platform.blobs.exists(k) for k in old_keys)
    assert (await datasets.get_dataset(platform, owner[0], dataset.id)).items_count == 1


async def test_overwrite_keeps_bytes_another_item_still_uses(platform, owner, project) -> None:
    dataset = await new_dataset(platform, owner[0], project)
    red = jpeg(color="red")
    await uploads.upload_files(
        platform, owner[0], dataset.id, [incoming("/a.jpg", red), incoming("/b.jpg", red)]
    )
    await uploads.upload_files(
        platform, owner[0], dataset.id, [incoming("/a.jpg", jpeg(color="blue"))], mode="overwrite"
    )
    b = (await items.list_items(platform, owner[0], dataset.id, dir="/", recursive=False)).rows
    kept = next(i for i in b if i.name == "b.jpg")
    assert platform.blobs.exists(await blob_key(platform, kept.blob_id))
    assert await blob_count(platform) == 4


# --- bad input and access -------------------------------------------------------------------------


async def _nothing_stored(platform: Platform) -> None:
    assert await blob_count(platform) == 0
    assert stored_files(platform) == []
    async with platform.db.read() as session:
        assert await session.scalar(select(func.count()).select_from(Item)) == 0


@pytest.mark.parametrize(
    ("path", "field"),
    [("../x.jpg", "files[1].path"), ("/a/../../x.jpg", "files[1].path"), ("/", "files[1].path")],
)
async def test_bad_paths_are_refused_before_any_work(
    platform, owner, project, path: str, field: str
) -> None:
    dataset = await new_dataset(platform, owner[0], project)
    with pytest.raises(InvalidInput) as error:
        await uploads.upload_files(
            platform, owner[0], dataset.id, [incoming("/ok.jpg", jpeg()), incoming(path, jpeg())]
        )
    assert error.value.details["field"] == field
    await _nothing_stored(platform)


async def test_other_bad_batches(platform, owner, project) -> None:
    dataset = await new_dataset(platform, owner[0], project)
    cases = [
        ([incoming("/a.jpg", b"1"), incoming("//a.jpg", b"2")], "skip", "files[1].path"),
        ([incoming("/a.jpg", b"1", metadata=[1])], "skip", "files[0].metadata"),  # type: ignore[arg-type]
        ([incoming("/a.jpg", b"1")], "replace", "mode"),
        ([], "skip", "files"),
    ]
    for files, mode, field in cases:
        with pytest.raises(InvalidInput) as error:
            await uploads.upload_files(platform, owner[0], dataset.id, files, mode=mode)
        assert error.value.details["field"] == field
    await _nothing_stored(platform)


async def test_a_failed_transaction_deletes_the_bytes_it_placed(platform, owner, project) -> None:
    dataset = await new_dataset(platform, owner[0], project)
    await items.create_folder(platform, owner[0], dataset.id, "/taken")
    files = [incoming(f"/{p.name}", p.read_bytes()) for p in voc_images(5)]
    with pytest.raises(InvalidInput, match="is a folder"):  # found inside the transaction
        await uploads.upload_files(
            platform, owner[0], dataset.id, [*files, incoming("/taken", b"x")], mode="overwrite"
        )
    assert await blob_count(platform) == 0
    assert stored_files(platform) == []
    with pytest.raises(InvalidInput, match="is a folder") as error:  # found before any work
        await uploads.upload_files(
            platform, owner[0], dataset.id, [*files, incoming("/taken", b"x")]
        )
    assert error.value.details["field"] == "files[5].path"
    assert await blob_count(platform) == 0
    assert stored_files(platform) == []
    page = await items.list_items(platform, owner[0], dataset.id)
    assert [i.filename for i in page.rows] == ["/taken"]


async def test_oversized_file_is_refused_with_nothing_stored(platform, owner, project) -> None:
    small = Platform(
        dataclasses.replace(platform.settings, max_upload_bytes=1000), platform.db, platform.plugins
    )
    dataset = await new_dataset(small, owner[0], project)
    with pytest.raises(uploads.TooLarge) as error:
        await uploads.upload_files(
            small,
            owner[0],
            dataset.id,
            [incoming("/s.txt", b"x" * 1000), incoming("/big.bin", b"x" * 1001)],
        )
    assert error.value.code == "PAYLOAD_TOO_LARGE" and error.value.details["limit"] == 1000
    assert isinstance(error.value, InvalidInput)
    await _nothing_stored(small)


async def test_access_rules(platform, owner, project) -> None:
    dataset = await new_dataset(platform, owner[0], project)
    with pytest.raises(NotFound):
        await uploads.upload_files(platform, owner[0], "nope", [incoming("/a.txt", b"a")])
    stranger, _ = await make_user(platform, "stranger@example.com")
    with pytest.raises(NotFound):
        await uploads.upload_files(platform, stranger, dataset.id, [incoming("/a.txt", b"a")])
    annotator, _ = await make_user(platform, "annotator@example.com")
    await projects.add_member(platform, owner[0], project.id, annotator.email, "annotator")
    with pytest.raises(Forbidden):
        await uploads.upload_files(platform, annotator, dataset.id, [incoming("/a.txt", b"a")])
    await datasets.update_dataset(platform, owner[0], dataset.id, readonly=True)
    with pytest.raises(Conflict, match="read-only"):
        await uploads.upload_files(platform, owner[0], dataset.id, [incoming("/a.txt", b"a")])
    await _nothing_stored(platform)


async def test_a_driver_bound_dataset_keeps_bytes_in_its_store(
    platform, project, tmp_path: Path
) -> None:
    admin, _ = await make_user(platform, "admin@example.com", admin=True)
    bucket = tmp_path / "bucket"
    bucket.mkdir()
    driver = await storage.create_driver(
        platform, admin, project.id, "disk", "local", {"path": str(bucket)}
    )
    dataset = await datasets.create_dataset(platform, admin, project.id, "bound", driver.id)
    data = voc_images(1)[0].read_bytes()
    [result] = await uploads.upload_files(
        platform, admin, dataset.id, [incoming("/in/a.jpg", data)]
    )
    assert (bucket / "in" / "a.jpg").read_bytes() == data
    item = result.item
    assert item.width and item.thumbnail_blob_id is not None
    async with platform.db.read() as session:
        content_blob = await session.get(Blob, item.blob_id)
        thumb_blob = await session.get(Blob, item.thumbnail_blob_id)
    assert content_blob.driver_id == driver.id and thumb_blob.driver_id is None
    assert [p.parent.name for p in stored_files(platform)] != []  # the thumbnail, platform side


# --- GraphQL --------------------------------------------------------------------------------------

UPLOAD = """
mutation($d: ID!, $files: [Upload!]!, $dir: String!, $mode: String!, $m: JSON) {
  uploadItems(datasetId: $d, files: $files, dir: $dir, mode: $mode, metadata: $m) {
    op item { id filename mimetype width height thumbnail stream metadata }
  }
}"""


async def graphql_upload(client, variables: dict[str, Any], files: list[tuple[str, bytes]]) -> Any:
    """A GraphQL multipart request: ``operations``, ``map`` and one form part per file."""
    operations = {"query": UPLOAD, "variables": {**variables, "files": [None] * len(files)}}
    mapping = {str(i): [f"variables.files.{i}"] for i in range(len(files))}
    response = await client.post(
        "/graphql",
        data={"operations": json.dumps(operations), "map": json.dumps(mapping)},
        files={str(i): (name, data, "image/jpeg") for i, (name, data) in enumerate(files)},
    )
    assert response.status_code == 200, response.text
    return response.json()


async def test_graphql_multipart_upload(client, platform, owner, project) -> None:
    dataset = await new_dataset(platform, owner[0], project)
    images = voc_images(3)
    body = await graphql_upload(
        client,
        {"d": dataset.id, "dir": "/g", "mode": "skip", "m": {"source": "test"}},
        [(p.name, p.read_bytes()) for p in images] + [("sub/x.png", png())],
    )
    assert "errors" not in body, body
    results = body["data"]["uploadItems"]
    assert [r["op"] for r in results] == ["created"] * 4
    assert [r["item"]["filename"] for r in results] == [f"/g/{p.name}" for p in images] + [
        "/g/sub/x.png"
    ]
    first = results[0]["item"]
    with Image.open(images[0]) as original:
        assert (first["width"], first["height"]) == original.size
    assert first["thumbnail"] == f"/items/{first['id']}/thumbnail"
    assert first["metadata"]["user"] == {"source": "test"}
    assert results[3]["item"]["mimetype"] == "image/png"
    assert results[3]["item"]["metadata"]["system"]["mimetypeClaimed"] == "image/jpeg"

    again = await graphql_upload(
        client, {"d": dataset.id, "dir": "/g", "mode": "skip"}, [(images[0].name, b"other")]
    )
    assert again["data"]["uploadItems"][0]["op"] == "skipped"


async def test_graphql_upload_errors_are_typed(client, platform, owner, project) -> None:
    dataset = await new_dataset(platform, owner[0], project)
    body = await graphql_upload(
        client, {"d": dataset.id, "dir": "/", "mode": "skip"}, [("../x.jpg", jpeg())]
    )
    assert body["errors"][0]["extensions"]["code"] == "INVALID_INPUT"
    assert body["errors"][0]["extensions"]["field"] == "files[0]"
    body = await graphql_upload(
        client, {"d": "missing", "dir": "/", "mode": "skip"}, [("a.jpg", jpeg())]
    )
    assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    await _nothing_stored(platform)


async def test_concurrent_uploads_into_the_same_new_folders(platform, owner, project) -> None:
    """Batches racing to create the same folders and blobs all succeed (PostgreSQL runs them
    truly at once; the second to insert a folder retries and finds it)."""
    dataset = await new_dataset(platform, owner[0], project)
    shared = [jpeg(color=c) for c in ("red", "green", "blue")]

    def batch(n: int) -> list[uploads.IncomingFile]:
        order = shared if n % 2 else shared[::-1]
        return [incoming(f"/x/y{n % 2}/{n}-{i}.jpg", data) for i, data in enumerate(order)]

    done = await asyncio.gather(
        *(uploads.upload_files(platform, owner[0], dataset.id, batch(n)) for n in range(6))
    )
    assert [r.op for results in done for r in results] == ["created"] * 18
    page = await items.list_items(platform, owner[0], dataset.id, folders=True)
    folders = [i.filename for i in page.rows if i.type == "dir"]
    assert folders == ["/x", "/x/y0", "/x/y1"]
    assert await blob_count(platform) == 6  # three contents, three thumbnails
    assert (await datasets.get_dataset(platform, owner[0], dataset.id)).items_count == 18
