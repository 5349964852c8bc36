"""Imports on real data, through the HTTP route and real workers: the PASCAL VOC 2007 sample's
ground truth in VOC, YOLO, COCO and CVAT gives the same boxes; a real Dataloop export keeps its
fields and exports back the same; every kind of bad input is reported; a rerun adds nothing."""

from __future__ import annotations

import dataclasses
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from graph.db.tables import Annotation
from graph.domain import (
    annotations,
    datasets,
    executions,
    exports,
    imports,
    items,
    operations,
    projects,
    recipes,
    storage,
)
from graph.domain.annotation_json import to_dataloop
from graph.domain.errors import InvalidInput, NotFound
from plugins.builtin import voc
from plugins.converters import FolderFiles, ItemAnnotations
from tests.conftest import make_user, shared_data
from tests.graphql import gql, gql_errors
from tests.workers.conftest import burst

DATA = shared_data()
SAMPLE = DATA / "voc2007-100"


def _zip(root: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(root).as_posix())
    return buffer.getvalue()


@pytest.fixture(scope="module")
def truth() -> dict[str, ItemAnnotations]:
    return {
        r.filename: r
        for r in voc.read(FolderFiles(SAMPLE / "voc"), lambda _: None)
        if isinstance(r, ItemAnnotations)
    }


@pytest.fixture
async def dataset(platform, owner, project, truth) -> Any:
    """The 100 images as files under /images (the archives name them without the folder)."""
    dataset = await datasets.create_dataset(platform, owner[0], project.id, "voc")
    specs = [
        items.ItemSpec(
            path=f"/images{r.filename}",
            url=f"https://x.test{r.filename}",
            width=r.width,
            height=r.height,
        )
        for r in truth.values()
    ]
    async with platform.db.write() as session:
        await items.insert_items(session, owner[0], dataset, specs)
    return dataset


async def _import(client, settings, dataset_id: str, body: bytes, **params: str) -> Any:
    response = await client.post(f"/datasets/{dataset_id}/imports", params=params, content=body)
    assert response.status_code == 200, response.text
    burst(settings)
    return response.json()


async def _boxes(platform, owner, dataset_id: str) -> dict[str, list[tuple[Any, ...]]]:
    found: dict[str, list[tuple[Any, ...]]] = {}
    page = await items.list_items(platform, owner[0], dataset_id, first=1000)
    names = {row.id: row.filename.removeprefix("/images") for row in page.rows}
    listed = await annotations.list_annotations(platform, owner[0], dataset_id, first=1000)
    for row in listed.rows:
        corners = [round(c[k]) for c in row.coordinates[:2] for k in "xy"]
        found.setdefault(names[row.item_id], []).append((row.label, *corners))
    return {name: sorted(boxes) for name, boxes in found.items()}


def _truth_boxes(truth: dict[str, ItemAnnotations]) -> dict[str, list[tuple[Any, ...]]]:
    return {
        name: sorted(
            (a["label"], *(round(c[k]) for c in a["coordinates"] for k in "xy"))
            for a in record.annotations
        )
        for name, record in truth.items()
        if record.annotations
    }


@pytest.mark.parametrize(
    ("name", "folder"), [("voc", "voc"), ("yolo", "yolo"), ("coco", "coco"), ("cvat", "cvat")]
)
async def test_every_format_of_the_sample_gives_the_same_boxes(
    client, platform, owner, settings, dataset, truth, name, folder
) -> None:
    started = await _import(client, settings, dataset.id, _zip(SAMPLE / folder), format=name)
    done = await executions.get_execution(platform, owner[0], started["id"])
    assert done.status == "success", done.error
    total = sum(len(r.annotations) for r in truth.values())
    assert (done.output["matched"], done.output["annotations"]) == (100, total), done.output[
        "problems"
    ][:3]
    assert done.output["problemCount"] == 0
    assert await _boxes(platform, owner, dataset.id) == _truth_boxes(truth)
    # run again (as after a lost worker): every annotation is keyed, none is written twice
    await executions.rerun_execution(platform, owner[0], started["id"])
    burst(settings)
    assert await annotations.count_annotations(platform, owner[0], dataset.id) == total


async def test_a_dataloop_export_keeps_its_fields_and_exports_back_the_same(
    client, platform, owner, project, settings
) -> None:
    root = DATA / "dataloop-json" / "yolo"
    dataset = await datasets.create_dataset(platform, owner[0], project.id, "dl")
    sources = [p for p in (root / "dataloop" / "json").rglob("*.json")]
    given = {json.loads(p.read_text())["filename"]: json.loads(p.read_text()) for p in sources}
    specs = [items.ItemSpec(path=filename, url=f"https://x.test{filename}") for filename in given]
    async with platform.db.write() as session:
        await items.insert_items(session, owner[0], dataset, specs)
    started = await _import(
        client, settings, dataset.id, _zip(root / "dataloop" / "json"), format="dataloop"
    )
    done = await executions.get_execution(platform, owner[0], started["id"])
    assert done.status == "success" and done.output["problemCount"] == 0, done.output
    expected = sum(len(item["annotations"]) for item in given.values())
    assert done.output["annotations"] == expected

    async with platform.db.read() as session:
        rows = (await session.scalars(select(Annotation).order_by(Annotation.id))).all()
    by_item = await items.list_items(platform, owner[0], dataset.id, first=1000)
    filenames = {row.id: row.filename for row in by_item.rows}
    kept: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        kept.setdefault(filenames[row.item_id], []).append(to_dataloop(row))
    fields = ("type", "label", "coordinates", "attributes", "description")
    for filename, item in given.items():
        mine = sorted(kept.get(filename, []), key=lambda a: json.dumps(a["coordinates"]))
        theirs = sorted(item["annotations"], key=lambda a: json.dumps(a["coordinates"]))
        assert len(mine) == len(theirs), filename
        for a, b in zip(mine, theirs, strict=True):
            # an empty and an absent attribute list are the same
            assert {k: a.get(k) or None for k in fields} == {k: b.get(k) or None for k in fields}, (
                filename
            )
            system_a, system_b = a["metadata"].get("system", {}), b["metadata"].get("system", {})
            for key in ("frame", "endFrame", "objectId", "snapshots_", "startTime", "endTime"):
                assert system_a.get(key) == system_b.get(key), (filename, key)
    video = kept["/2021_04_23_10_39_21_Cache_Trim_Cropped.webm"]
    assert all(len(a["metadata"]["system"]["snapshots_"]) > 10 for a in video)


def _bad_zip(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


async def test_bad_records_are_reported_and_the_rest_imported(
    client, platform, owner, settings, dataset
) -> None:
    coco = {
        "images": [
            {"id": 1, "file_name": "2007_000027.jpg", "width": 486, "height": 500},
            {"id": 2, "file_name": "not-in-the-dataset.jpg", "width": 10, "height": 10},
        ],
        "categories": [{"id": 1, "name": "person"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20]},
            {"id": 2, "image_id": 7, "category_id": 1, "bbox": [10, 10, 20, 20]},
            {"id": 3, "image_id": 1, "category_id": 9, "bbox": [10, 10, 20, 20]},
            {"id": 4, "image_id": 1, "category_id": 1, "bbox": [480, 10, 20, 20]},
        ],
    }
    body = _bad_zip({"coco.json": json.dumps(coco), "broken.json": "{"})
    started = await _import(client, settings, dataset.id, body, format="coco")
    done = await executions.get_execution(platform, owner[0], started["id"])
    assert done.status == "success"
    messages = {p["where"]: p["message"] for p in done.output["problems"]}
    assert "not JSON" in messages["broken.json"]
    assert "image_id 7 is not in images" in messages["coco.json: annotations[1]"]
    assert "category_id 9 is not in categories" in messages["coco.json: annotations[2]"]
    assert "no file of the dataset" in messages["/not-in-the-dataset.jpg"]
    # the image whose last box leaves it: refused whole, named, nothing half-written
    outside = messages["/2007_000027.jpg (/images/2007_000027.jpg)"]
    assert "annotations[1].coordinates[1].x: 500 is outside the item (0 to 486)" in outside
    assert done.output["annotations"] == 0
    logs = await executions.list_logs(platform, owner[0], started["id"], stream="log")
    assert sum("is not in" in line.line for line in logs) == 2

    clipped = await _import(client, settings, dataset.id, body, format="coco", outOfBounds="clip")
    done = await executions.get_execution(platform, owner[0], clipped["id"])
    assert done.output["annotations"] == 2


async def test_bad_archives_are_refused_before_anything_is_written(
    client, platform, owner, settings, dataset, monkeypatch
) -> None:
    async def refused(body: bytes, **params: str) -> tuple[int, dict[str, Any]]:
        response = await client.post(f"/datasets/{dataset.id}/imports", params=params, content=body)
        return response.status_code, response.json()["errors"][0]

    status, error = await refused(b"x", format="pdf")
    assert status == 400 and "no format 'pdf' to import from" in error["message"]
    status, error = await refused(b"not a zip", format="voc")
    assert status == 400 and "not a zip file" in error["message"]
    status, error = await refused(_bad_zip({"../../etc/passwd.xml": "<x/>"}), format="voc")
    assert status == 400 and "unsafe file name" in error["message"]
    status, error = await refused(b"x", format="voc", outOfBounds="stretch")
    assert status == 400 and error["extensions"]["field"] == "outOfBounds"
    monkeypatch.setattr(
        platform, "settings", dataclasses.replace(platform.settings, max_import_bytes=1000)
    )
    status, error = await refused(b"z" * 5000, format="voc")
    assert status == 413 and "larger than the limit of 1000 bytes" in error["message"]
    async with platform.db.read() as session:
        assert await session.scalar(select(func.count()).select_from(Annotation)) == 0
    listed = await executions.list_executions(platform, owner[0], dataset.project_id)
    assert listed.rows == []


async def test_export_then_import_round_trips(
    client, platform, owner, project, settings, dataset
) -> None:
    await _import(client, settings, dataset.id, _zip(SAMPLE / "voc"), format="voc")
    started = await operations.start(
        platform, owner[0], exports.FUNCTION, {"datasetId": dataset.id, "format": "cvat"}
    )
    burst(settings)
    done = await executions.get_execution(platform, owner[0], started.id)
    archive = (await client.get(done.output["download"])).content
    copy = await datasets.create_dataset(platform, owner[0], project.id, "copy")
    page = await items.list_items(platform, owner[0], dataset.id, first=1000)
    async with platform.db.write() as session:
        await items.insert_items(
            session,
            owner[0],
            copy,
            [
                items.ItemSpec(path=r.filename, url=r.url, width=r.width, height=r.height)
                for r in page.rows
                if r.type == "file"
            ],
        )
    await _import(client, settings, copy.id, archive, format="cvat")
    assert await _boxes(platform, owner, copy.id) == await _boxes(platform, owner, dataset.id)


async def test_from_a_storage_folder_over_graphql(
    client, platform, owner, project, settings, dataset, truth
) -> None:
    admin, _ = await make_user(platform, "admin@example.com", admin=True)
    await projects.add_member(platform, owner[0], project.id, admin.email, "owner")
    driver = await storage.create_driver(
        platform, admin, project.id, "shared", "local", {"path": str(SAMPLE)}
    )
    mutation = """mutation($d: ID!, $s: ID!, $f: String!) {
        importAnnotations(datasetId: $d, format: "yolo", driverId: $s, folder: $f) { id } }"""
    started = await gql(client, mutation, {"d": dataset.id, "s": driver.id, "f": "yolo"})
    burst(settings)
    done = await executions.get_execution(platform, owner[0], started["importAnnotations"]["id"])
    assert done.status == "success", done.error
    assert (done.output["matched"], done.output["problemCount"]) == (100, 0)
    assert await _boxes(platform, owner, dataset.id) == _truth_boxes(truth)

    errors = await gql_errors(client, mutation, {"d": dataset.id, "s": "0" * 24, "f": "yolo"})
    assert errors[0]["extensions"]["code"] == "NOT_FOUND"
    outsider, token = await make_user(platform, "outsider@example.com")
    other = await projects.create_project(platform, outsider, "theirs")
    theirs = await datasets.create_dataset(platform, outsider, other.id, "theirs")
    with pytest.raises(NotFound):  # their dataset, our driver: they cannot even see it
        await operations.start(
            platform,
            outsider,
            imports.FUNCTION,
            {"datasetId": theirs.id, "format": "voc", "driverId": driver.id},
        )
    await projects.add_member(platform, owner[0], project.id, outsider.email, "annotationManager")
    with pytest.raises(InvalidInput, match="not one of the dataset's project"):
        await operations.start(
            platform,
            outsider,
            imports.FUNCTION,
            {"datasetId": theirs.id, "format": "voc", "driverId": driver.id},
        )


async def test_labels_outside_the_recipe_are_reported_per_image(
    client, platform, owner, project, settings, dataset, truth
) -> None:
    voc_flags = [
        {"key": "pose", "type": "freeText"},
        {"key": "truncated", "type": "boolean"},
        {"key": "difficult", "type": "boolean"},
    ]
    recipe = await recipes.create_recipe(
        platform, owner[0], project.id, "people", labels=[{"tag": "person"}], attributes=voc_flags
    )
    await recipes.set_dataset_recipe(platform, owner[0], dataset.id, recipe.id)
    started = await _import(client, settings, dataset.id, _zip(SAMPLE / "voc"), format="voc")
    done = await executions.get_execution(platform, owner[0], started["id"])
    only_people = [r for r in truth.values() if {a["label"] for a in r.annotations} == {"person"}]
    others = [r for r in truth.values() if {a["label"] for a in r.annotations} - {"person"}]
    assert done.output["annotations"] == sum(len(r.annotations) for r in only_people)
    assert done.output["problemCount"] == len(others)
    assert all("is not in ontology 'people'" in p["message"] for p in done.output["problems"])
    labels = await annotations.list_annotations(platform, owner[0], dataset.id, first=1000)
    assert {row.label for row in labels.rows} == {"person"}


CVAT_VIDEO = """<annotations><version>1.1</version><meta><task><size>10</size>
<mode>interpolation</mode><labels><label><name>car</name><attributes>
  <attribute><name>color</name><input_type>select</input_type></attribute></attributes></label>
</labels><original_size><width>640</width><height>480</height></original_size></task>
<source>clips/street.mp4</source></meta>
<track id="3" label="car" source="manual">
  <box frame="0" keyframe="1" outside="0" occluded="0" xtl="10" ytl="20" xbr="110" ybr="80">
    <attribute name="color">black</attribute></box>
  <box frame="4" keyframe="1" outside="0" occluded="1" xtl="30" ytl="20" xbr="130" ybr="80">
    <attribute name="color">COLOR</attribute></box>
  <box frame="6" keyframe="1" outside="1" occluded="1" xtl="30" ytl="20" xbr="130" ybr="80">
    <attribute name="color">COLOR</attribute></box>
</track></annotations>"""


async def test_cvat_video_tracks_are_checked_against_the_recipe_and_round_trip(
    client, platform, owner, project, settings
) -> None:
    actor = owner[0]
    recipe = await recipes.create_recipe(
        platform,
        actor,
        project.id,
        "cars",
        labels=[{"tag": "car"}],
        attributes=[
            {"key": "color", "type": "options", "values": ["black", "white"]},
            {"key": "occluded", "type": "boolean"},
        ],
    )
    videos = []
    for name in ("videos", "copy"):
        dataset = await datasets.create_dataset(platform, actor, project.id, name)
        await recipes.set_dataset_recipe(platform, actor, dataset.id, recipe.id)
        async with platform.db.write() as session:
            spec = items.ItemSpec(
                path="/clips/street.mp4", url="https://x.test/s", width=640, height=480
            )
            await items.insert_items(session, actor, dataset, [spec])
        videos.append(dataset)
    dataset, copy = videos

    # a keyframe's attribute the recipe does not allow: the video's annotations are refused whole
    body = _bad_zip({"annotations.xml": CVAT_VIDEO.replace("COLOR", "pink")})
    started = await _import(client, settings, dataset.id, body, format="cvat")
    done = await executions.get_execution(platform, actor, started["id"])
    assert (done.output["matched"], done.output["annotations"]) == (1, 0)
    [problem] = done.output["problems"]
    assert problem["where"] == "/clips/street.mp4 (/clips/street.mp4)"
    assert problem["message"].startswith(
        "annotations[0].metadata.system.snapshots_[0]: attribute 'color' of label 'car' must be "
        "one of 'black', 'white'; got 'pink'"
    )
    assert await annotations.count_annotations(platform, actor, dataset.id) == 0

    body = _bad_zip({"annotations.xml": CVAT_VIDEO.replace("COLOR", "white")})
    started = await _import(client, settings, dataset.id, body, format="cvat")
    done = await executions.get_execution(platform, actor, started["id"])
    assert (done.output["annotations"], done.output["problemCount"]) == (1, 0)
    [row] = (await annotations.list_annotations(platform, actor, dataset.id)).rows
    assert (row.type, row.frame, row.end_frame, row.object_id) == ("box", 0, 5, "3")
    assert row.attributes == {"occluded": False, "color": "black"}
    [keyframe] = row.metadata_["system"]["snapshots_"]
    assert (keyframe["frame"], keyframe["namedAttributes"]) == (
        4,
        {"occluded": True, "color": "white"},
    )

    exported = await operations.start(
        platform, actor, exports.FUNCTION, {"datasetId": dataset.id, "format": "cvat"}
    )
    burst(settings)
    done = await executions.get_execution(platform, actor, exported.id)
    archive = (await client.get(done.output["download"])).content
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        assert "videos/clips/street.mp4.xml" in opened.namelist()
    await _import(client, settings, copy.id, archive, format="cvat")
    [again] = (await annotations.list_annotations(platform, actor, copy.id)).rows
    fields = ("type", "label", "coordinates", "attributes", "metadata")
    assert {k: to_dataloop(again)[k] for k in fields} == {k: to_dataloop(row)[k] for k in fields}
