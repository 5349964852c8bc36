"""Exports on real data (the PASCAL VOC 2007 sample's ground truth), run by real workers: each
format gives back the boxes that went in; selections, annotation filters and incremental
exports; an export cut short resumes after its checkpoint; bad requests refused at once."""

from __future__ import annotations

import asyncio
import io
import json
import zipfile
from datetime import UTC, datetime
from typing import Any

import pytest

from graph.domain import annotations, datasets, executions, exports, items, operations, projects
from graph.domain.annotation_json import from_dataloop
from graph.domain.errors import Forbidden, InvalidInput
from graph.domain.work import Work
from plugins.builtin import voc
from plugins.converters import FolderFiles, ItemAnnotations, Problem, ZipFiles
from tests.conftest import make_user, shared_data
from tests.graphql import gql, gql_errors
from tests.workers.conftest import burst

SAMPLE = shared_data() / "voc2007-100"


def _boxes(records: list[ItemAnnotations]) -> dict[str, list[tuple[Any, ...]]]:
    return {
        r.filename: sorted(
            (a["label"], *(round(c[k]) for c in a["coordinates"][:2] for k in "xy"))
            for a in r.annotations
            if a["type"] == "box"
        )
        for r in records
    }


@pytest.fixture(scope="module")
def ground_truth() -> list[ItemAnnotations]:
    read = [r for r in voc.read(FolderFiles(SAMPLE / "voc"), lambda _: None)]
    assert not [r for r in read if isinstance(r, Problem)]
    return [r for r in read if isinstance(r, ItemAnnotations)][:30]


@pytest.fixture
async def dataset(platform, owner, project, ground_truth) -> Any:
    actor = owner[0]
    dataset = await datasets.create_dataset(platform, actor, project.id, "voc")
    specs = [
        items.ItemSpec(
            path=("/val" if n % 3 == 0 else "/train") + r.filename,
            url=f"https://x.test{r.filename}",
            width=r.width,
            height=r.height,
        )
        for n, r in enumerate(ground_truth)
    ]
    async with platform.db.write() as session:
        results, _ = await items.insert_items(session, actor, dataset, specs)
    for result, record in zip(results, ground_truth, strict=True):
        await annotations.create_annotations(
            platform, actor, result.item_id, [from_dataloop(a) for a in record.annotations]
        )
    return dataset


async def _export(client, platform, owner, settings, **input: Any) -> tuple[Any, ZipFiles]:
    started = await operations.start(platform, owner[0], exports.FUNCTION, input)
    burst(settings)
    done = await executions.get_execution(platform, owner[0], started.id)
    assert done.status == "success", done.error
    response = await client.get(done.output["download"])
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    assert "attachment" in response.headers["content-disposition"]
    return done, ZipFiles(zipfile.ZipFile(io.BytesIO(response.content)))


def _read(converter: Any, archive: ZipFiles, sizes: dict[str, tuple[int, int]]) -> list[Any]:
    return [r for r in converter.read(archive, sizes.get) if isinstance(r, ItemAnnotations)]


@pytest.mark.parametrize("name", ["voc", "coco", "cvat", "yolo", "ultralytics", "dataloop"])
async def test_each_format_gives_back_the_boxes(
    client, platform, owner, settings, dataset, ground_truth, name
) -> None:
    done, archive = await _export(
        client, platform, owner, settings, datasetId=dataset.id, format=name
    )
    total = sum(len(r.annotations) for r in ground_truth)
    assert (done.output["items"], done.output["annotations"], done.output["leftOut"]) == (
        30,
        total,
        0,
    )
    assert done.progress == 100
    sizes = {
        f"/{p}{r.filename}": (r.width, r.height) for r in ground_truth for p in ("train", "val")
    }
    sizes |= {
        f"{folder}/{p}{r.filename[:-4]}": (r.width, r.height)
        for r in ground_truth
        for p in ("train", "val")
        for folder in ("", "/images")  # YOLO 1.1's label files, Ultralytics' labels/<split>/
    }
    converter = platform.plugins.converters[name]
    exported = _read(converter, archive, sizes)
    expected = {name.rsplit("/", 1)[-1]: boxes for name, boxes in _boxes(ground_truth).items()}
    found = {f.rsplit("/", 1)[-1].split(".")[0] + ".jpg": b for f, b in _boxes(exported).items()}
    assert found == expected


async def test_a_selection_and_an_annotation_filter(
    client, platform, owner, settings, dataset, ground_truth
) -> None:
    done, archive = await _export(
        client,
        platform,
        owner,
        settings,
        datasetId=dataset.id,
        format="dataloop",
        dql='dir = "/val"',
        annotationDql='label = "person"',
    )
    exported = _read(platform.plugins.converters["dataloop"], archive, {})
    assert {r.filename.split("/")[1] for r in exported} == {"val"}
    assert len(exported) == 10
    labels = {a["label"] for r in exported for a in r.annotations}
    assert labels == {"person"}
    persons = sum(a["label"] == "person" for r in ground_truth[::3] for a in r.annotations)
    assert done.output["annotations"] == persons


async def test_an_incremental_export_holds_what_changed(
    client, platform, owner, settings, dataset
) -> None:
    first, _ = await _export(
        client, platform, owner, settings, datasetId=dataset.id, format="dataloop"
    )
    page = await annotations.list_annotations(platform, owner[0], dataset.id, first=1)
    await asyncio.sleep(0.01)  # a later moment than the first export's start on every clock
    await annotations.update_annotation(platform, owner[0], page.rows[0].id, {"label": "renamed"})
    done, archive = await _export(
        client, platform, owner, settings, datasetId=dataset.id, format="dataloop", since=first.id
    )
    [changed] = _read(platform.plugins.converters["dataloop"], archive, {})
    assert "renamed" in {a["label"] for a in changed.annotations}
    assert done.output["items"] == 1


def _deleted(archive: ZipFiles) -> list[dict[str, Any]]:
    with archive.open("deleted.jsonl") as handle:
        return [json.loads(line) for line in handle]


async def test_an_incremental_export_lists_what_was_deleted(
    client, platform, owner, settings, dataset, project
) -> None:
    actor = owner[0]
    files = (await items.list_items(platform, actor, dataset.id, dql='type = "file"')).rows
    early, gone, trimmed = files[0], files[1], files[2]
    await items.delete_items(platform, actor, [early.id])  # before the first export: not listed
    other = await datasets.create_dataset(platform, actor, project.id, "other")
    async with platform.db.write() as session:
        (elsewhere, *_), _ = await items.insert_items(
            session, actor, other, [items.ItemSpec(path="/x.jpg", url="https://x.test/x.jpg")]
        )
    first, archive = await _export(
        client, platform, owner, settings, datasetId=dataset.id, format="dataloop"
    )
    assert "deleted.jsonl" not in archive.names() and "deleted" not in first.output
    await asyncio.sleep(0.01)  # a later moment than the first export's beginning on every clock
    await items.delete_items(platform, actor, [gone.id])
    await items.delete_items(platform, actor, [elsewhere.item_id])  # another dataset's
    doomed = (
        await annotations.list_annotations(
            platform, actor, dataset.id, dql=f'itemId = "{trimmed.id}"', first=1
        )
    ).rows[0]
    await annotations.delete_annotations(platform, actor, [doomed.id])

    done, archive = await _export(
        client, platform, owner, settings, datasetId=dataset.id, format="dataloop", since=first.id
    )
    listed = _deleted(archive)
    assert [{k: v for k, v in line.items() if k != "deletedAt"} for line in listed] == [
        {"resource": "item", "id": gone.id, "filename": gone.filename},
        {"resource": "annotation", "id": doomed.id},
    ]
    assert all(datetime.fromisoformat(line["deletedAt"]).tzinfo == UTC for line in listed)
    assert done.output["deleted"] == {"items": 1, "annotations": 1}
    # the file that lost an annotation is exported as it is now; the manifest is no item's
    [changed] = _read(platform.plugins.converters["dataloop"], archive, {})
    assert changed.filename == trimmed.filename
    assert doomed.id not in {a["id"] for a in changed.annotations}

    # the next one lists only what went after this one began
    again, archive = await _export(
        client, platform, owner, settings, datasetId=dataset.id, format="coco", since=done.id
    )
    assert _deleted(archive) == [] and again.output["deleted"] == {"items": 0, "annotations": 0}


async def test_an_export_cut_short_resumes_after_its_checkpoint(
    platform, owner, settings, dataset, ground_truth, monkeypatch
) -> None:
    monkeypatch.setattr(exports, "PAGE", 4)
    started = await operations.start(
        platform, owner[0], exports.FUNCTION, {"datasetId": dataset.id, "format": "coco"}
    )
    spooled: list[int] = []
    cut = asyncio.Event()

    def progress(done: int, total: int | None, noun: str) -> None:
        spooled.append(done)
        if done >= 12:
            cut.set()

    logged: list[str] = []
    work = Work(started.id, progress, logged.append)
    running = asyncio.ensure_future(
        exports.run_export(platform, owner[0], work, dict(started.input))
    )
    await cut.wait()
    running.cancel()  # as a worker's death or an interrupt would end it
    with pytest.raises(asyncio.CancelledError):
        await running
    assert spooled[:3] == [4, 8, 12]

    resumed_at = datetime.now(UTC)
    output = await exports.run_export(platform, owner[0], work, dict(started.input))
    # an export began with its first attempt: the next incremental one reads from there
    assert datetime.fromisoformat(output["began"]) < resumed_at
    assert output["resumedAfter"] in (12, 16)  # the page in flight may have been kept
    assert logged == [
        f"resuming after {output['resumedAfter']} files spooled by an earlier attempt"
    ]
    assert (output["items"], output["annotations"]) == (
        30,
        sum(len(r.annotations) for r in ground_truth),
    )
    assert not (settings.home / "exports" / started.id).exists()  # the spool is gone


async def test_bad_requests_are_refused_at_once(platform, owner, project, dataset) -> None:
    def start(actor: Any = owner[0], **input: Any) -> Any:
        return operations.start(
            platform, actor, exports.FUNCTION, {"datasetId": dataset.id, **input}
        )

    with pytest.raises(InvalidInput, match="no format 'pdf' to export to; formats: coco") as error:
        await start(format="pdf")
    assert error.value.details["field"] == "format"
    with pytest.raises(InvalidInput):
        await start(format="voc", annotationDql="label = ")
    with pytest.raises(InvalidInput):
        await start(format="voc", dql="width >")
    annotator, _ = await make_user(platform, "ann@example.com")
    await projects.add_member(platform, owner[0], project.id, annotator.email, "annotator")
    with pytest.raises(Forbidden):
        await start(actor=annotator, format="voc")


async def test_a_since_that_is_no_export_fails_the_execution(
    client, platform, owner, settings, dataset
) -> None:
    started = await operations.start(
        platform,
        owner[0],
        exports.FUNCTION,
        {"datasetId": dataset.id, "format": "voc", "since": "0" * 24},
    )
    burst(settings)
    done = await executions.get_execution(platform, owner[0], started.id)
    assert done.status == "failed" and "is not a finished export of this dataset" in done.error
    response = await client.get(f"/executions/{started.id}/export")
    assert response.status_code == 404
    missing = await client.get(f"/executions/{'1' * 24}/export")
    assert missing.status_code == 404


async def test_over_graphql(client, platform, owner, settings, dataset) -> None:
    formats = await gql(client, "{ exportFormats importFormats }")
    assert formats == {
        "exportFormats": ["coco", "cvat", "dataloop", "ultralytics", "voc", "yolo"],
        "importFormats": ["coco", "cvat", "dataloop", "ultralytics", "voc", "yolo"],
    }
    started = await gql(
        client,
        'mutation($d: ID!) { exportDataset(datasetId: $d, format: "voc", dql: "dir = \\"/val\\"") '
        "{ id status functionName } }",
        {"d": dataset.id},
    )
    assert started["exportDataset"]["status"] == "created"
    burst(settings)
    done = await executions.get_execution(platform, owner[0], started["exportDataset"]["id"])
    assert done.output["items"] == 10
    errors = await gql_errors(
        client,
        'mutation($d: ID!) { exportDataset(datasetId: $d, format: "pdf") { id } }',
        {"d": dataset.id},
    )
    assert errors[0]["extensions"]["code"] == "INVALID_INPUT"
    assert errors[0]["extensions"]["field"] == "format"
