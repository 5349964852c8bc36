"""Imports that upload the images too (``withImages``), on the PASCAL VOC 2007 sample: from an
archive in COCO and in VOC, and from a storage folder in YOLO; through real workers."""

from __future__ import annotations

import io
import shutil
import zipfile
from pathlib import Path
from typing import Any

import pytest

from graph.domain import (
    annotations,
    datasets,
    executions,
    imports,
    items,
    operations,
    projects,
    storage,
    uploads,
)
from graph.domain.errors import Forbidden
from plugins.builtin import voc
from plugins.converters import FolderFiles, ItemAnnotations
from tests.conftest import make_user, shared_data
from tests.graphql import gql
from tests.workers.conftest import burst

SAMPLE = shared_data() / "voc2007-100"
IMAGES = sorted((SAMPLE / "images").glob("*.jpg"))


@pytest.fixture(scope="module")
def truth() -> dict[str, list[tuple[Any, ...]]]:
    """The sample's boxes by image name, rounded to the pixel."""
    return {
        r.filename.lstrip("/"): sorted(
            (a["label"], *(round(c[k]) for c in a["coordinates"] for k in "xy"))
            for a in r.annotations
        )
        for r in voc.read(FolderFiles(SAMPLE / "voc"), lambda _: None)
        if isinstance(r, ItemAnnotations) and r.annotations
    }


def _archive(files: dict[str, Path | bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in files.items():
            if isinstance(content, Path):
                archive.write(content, name)
            else:
                archive.writestr(name, content)
    return buffer.getvalue()


async def _import(client, settings, dataset_id: str, body: bytes, **params: str) -> str:
    response = await client.post(f"/datasets/{dataset_id}/imports", params=params, content=body)
    assert response.status_code == 200, response.text
    burst(settings)
    return response.json()["id"]


async def _boxes(platform, owner, dataset_id: str) -> dict[str, list[tuple[Any, ...]]]:
    page = await items.list_items(platform, owner[0], dataset_id, first=1000)
    names = {row.id: row.name for row in page.rows}
    found: dict[str, list[tuple[Any, ...]]] = {}
    listed = await annotations.list_annotations(platform, owner[0], dataset_id, first=1000)
    for row in listed.rows:
        corners = [round(c[k]) for c in row.coordinates[:2] for k in "xy"]
        found.setdefault(names[row.item_id], []).append((row.label, *corners))
    return {name: sorted(boxes) for name, boxes in found.items()}


async def _files(platform, owner, dataset_id: str) -> dict[str, Any]:
    page = await items.list_items(platform, owner[0], dataset_id, first=1000)
    return {row.filename: row for row in page.rows if row.type == "file"}


async def test_a_coco_archive_with_its_images(
    client, platform, owner, project, settings, truth
) -> None:
    dataset = await datasets.create_dataset(platform, owner[0], project.id, "coco")
    body = _archive(
        {"annotations.json": SAMPLE / "coco" / "instances_default.json"}
        | {f"images/{p.name}": p for p in IMAGES}
    )
    execution_id = await _import(
        client, settings, dataset.id, body, format="coco", withImages="true"
    )
    done = await executions.get_execution(platform, owner[0], execution_id)
    assert done.status == "success", done.error
    total = sum(len(boxes) for boxes in truth.values())
    assert done.output["problemCount"] == 0, done.output["problems"][:3]
    assert (done.output["imagesUploaded"], done.output["imagesPresent"]) == (100, 0)
    assert (done.output["matched"], done.output["annotations"]) == (100, total)
    files = await _files(platform, owner, dataset.id)
    assert sorted(files) == [f"/{p.name}" for p in IMAGES]  # the images/ folder left out
    first = files["/2007_000027.jpg"]
    assert (first.mimetype, first.width, first.height) == ("image/jpeg", 486, 500)
    assert await _boxes(platform, owner, dataset.id) == truth

    # again (as after a lost worker): the images are there, matched; nothing is added twice
    await executions.rerun_execution(platform, owner[0], execution_id)
    burst(settings)
    again = await executions.get_execution(platform, owner[0], execution_id)
    assert (again.output["imagesUploaded"], again.output["imagesPresent"]) == (0, 100)
    assert len(await _files(platform, owner, dataset.id)) == 100
    assert await annotations.count_annotations(platform, owner[0], dataset.id) == total


async def test_a_voc_archive_with_its_images_a_present_one_and_a_broken_one(
    client, platform, owner, project, settings, truth
) -> None:
    dataset = await datasets.create_dataset(platform, owner[0], project.id, "voc")
    present = await uploads.upload_files(
        platform,
        owner[0],
        dataset.id,
        [uploads.IncomingFile("/2007_000027.jpg", IMAGES[0].read_bytes())],
    )
    broken = b"\xff\xd8\xff\xe0 this is not the rest of a JPEG"
    voc_xml = (SAMPLE / "voc" / "2007_000027.xml").read_text()
    body = _archive(
        {f"Annotations/{p.name}": p for p in sorted((SAMPLE / "voc").glob("*.xml"))}
        | {f"JPEGImages/{p.name}": p for p in IMAGES}
        | {"JPEGImages/broken.jpg": broken}
        | {"Annotations/broken.xml": voc_xml.replace("2007_000027.jpg", "broken.jpg")}
        | {"SegmentationClass/2007_000027.png": IMAGES[0]}  # not where VOC keeps its images
    )
    execution_id = await _import(client, settings, dataset.id, body, format="voc", withImages="1")
    done = await executions.get_execution(platform, owner[0], execution_id)
    assert done.status == "success", done.error
    assert (done.output["imagesUploaded"], done.output["imagesPresent"]) == (100, 1)
    problems = {p["where"]: p["message"] for p in done.output["problems"]}
    assert "not a readable image" in problems.pop("JPEGImages/broken.jpg")
    assert problems == {}, problems
    files = await _files(platform, owner, dataset.id)
    assert len(files) == 101 and files["/2007_000027.jpg"].id == present[0].item.id
    assert files["/broken.jpg"].mimetype == "application/octet-stream"
    boxes = await _boxes(platform, owner, dataset.id)
    # kept as a plain file, it is matched all the same (its XML says its size)
    assert boxes.pop("broken.jpg") == truth["2007_000027.jpg"]
    assert boxes == truth


async def test_a_yolo_storage_folder_with_its_images_and_a_bad_name(
    client, platform, owner, project, settings, truth, tmp_path: Path
) -> None:
    folder = tmp_path / "store" / "export"
    shutil.copytree(SAMPLE / "yolo", folder)
    for image in IMAGES:
        shutil.copy(image, folder / "obj_train_data" / image.name)
    shutil.copy(IMAGES[0], folder / "obj_train_data" / "bad\\name.jpg")  # not an item path
    admin, _ = await make_user(platform, "admin@example.com", admin=True)
    await projects.add_member(platform, owner[0], project.id, admin.email, "owner")
    driver = await storage.create_driver(
        platform, admin, project.id, "disk", "local", {"path": str(tmp_path / "store")}
    )
    dataset = await datasets.create_dataset(platform, owner[0], project.id, "yolo")
    mutation = """mutation($d: ID!, $s: ID!) {
        importAnnotations(datasetId: $d, format: "yolo", driverId: $s, folder: "export",
                          withImages: true) { id } }"""
    started = await gql(client, mutation, {"d": dataset.id, "s": driver.id})
    burst(settings)
    done = await executions.get_execution(platform, owner[0], started["importAnnotations"]["id"])
    assert done.status == "success", done.error
    # YOLO's boxes need the images' sizes: the uploaded images gave them
    assert (done.output["imagesUploaded"], done.output["matched"]) == (100, 100)
    problems = {p["where"]: p["message"] for p in done.output["problems"]}
    assert problems.keys() == {"obj_train_data/bad\\name.jpg"}
    assert "backslash" in problems["obj_train_data/bad\\name.jpg"]
    assert await _boxes(platform, owner, dataset.id) == truth


async def test_importing_images_needs_the_upload_role_and_a_format_that_keeps_them(
    client, platform, owner, project, settings
) -> None:
    dataset = await datasets.create_dataset(platform, owner[0], project.id, "d")
    manager, token = await make_user(platform, "manager@example.com")
    await projects.add_member(platform, owner[0], project.id, manager.email, "annotationManager")
    start = {"datasetId": dataset.id, "format": "coco", "blobId": "x", "withImages": True}
    with pytest.raises(Forbidden):
        await operations.start(platform, manager, imports.FUNCTION, start)
    refused = await client.post(
        f"/datasets/{dataset.id}/imports",
        params={"format": "coco", "withImages": "true"},
        content=_archive({"images/a.jpg": IMAGES[0]}),
        headers={"Authorization": f"Bearer {token}"},
    )
    assert refused.status_code == 403, refused.text
    # without the images, an annotation manager imports
    allowed = await client.post(
        f"/datasets/{dataset.id}/imports",
        params={"format": "coco"},
        content=_archive({"annotations.json": SAMPLE / "coco" / "instances_default.json"}),
        headers={"Authorization": f"Bearer {token}"},
    )
    assert allowed.status_code == 200, allowed.text
    response = await client.post(
        f"/datasets/{dataset.id}/imports", params={"format": "coco", "withImages": "yes"}
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["field"] == "withImages"
