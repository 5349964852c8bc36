"""Linked URL items, one by one and in bulk from CSV: fields, clashes, and bad input refused whole."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from graph.db.tables import Blob, Event, Item
from graph.domain import blobs, datasets, items, links, projects
from graph.domain.errors import Conflict, Forbidden, InvalidInput
from graph.domain.links import LinkSpec
from tests.conftest import make_user
from tests.graphql import gql, gql_errors

STORY_CSV = """url,path,camera,score,reviewed,metadata
https://cdn.example.com/street/0001.jpg,,front,0.91,true,"{""weather"": ""rain""}"
https://cdn.example.com/street/0002.jpg,,front,0.42,false,
https://cdn.example.com/street/0003.png,,back,1,,
https://cdn.example.com/street/0004.jpg,/night/0004.jpg,back,7,true,
https://cdn.example.com/street/0005.jpg,/night/0005.jpg,side,,,"{""tags"": [""a"", ""b""]}"
https://cdn.example.com/video/clip.mp4,,side,3.5,false,
https://cdn.example.com/street/0007.jpg?sig=abc,,front,007,,
https://cdn.example.com/street/0008.jpg,,front,-2,TRUE,
http://cdn.example.com/street/0009.jpg,,,,,
https://cdn.example.com/street/,/street-index,front,,,
"""

ADD_LINKS = """
mutation($d: ID!, $links: [LinkInput!]!, $mode: String! = "skip") {
  addLinks(datasetId: $d, links: $links, mode: $mode) { created skipped overwritten itemIds }
}
"""
ADD_CSV = """
mutation($d: ID!, $csv: String!, $mode: String! = "skip") {
  addLinksFromCsv(datasetId: $d, csv: $csv, mode: $mode) { created skipped overwritten itemIds }
}
"""
LIST = """
query($d: ID!) {
  items(datasetId: $d, first: 100) { nodes { type filename name url mimetype metadata } }
}
"""


@pytest.fixture
async def dataset(platform, owner, project) -> Any:
    return await datasets.create_dataset(platform, owner[0], project.id, "linked")


async def _count(platform, table: Any, *where: Any) -> int:
    async with platform.db.read() as session:
        return int(await session.scalar(select(func.count()).select_from(table).where(*where)))


async def test_links_become_url_items_with_dataloop_link_info(platform, owner, dataset) -> None:
    report = await links.add_links(
        platform,
        owner[0],
        dataset.id,
        [
            LinkSpec("https://img.example.com/a/cat%20one.jpg", metadata={"camera": "front"}),
            LinkSpec("https://img.example.com/b.png", path="/pets/dog.png"),
            LinkSpec("https://img.example.com/get?id=5", path="/x/no-extension"),
            LinkSpec("https://img.example.com/c.bin", mimetype="image/webp"),
        ],
    )
    assert (report.created, report.skipped, report.overwritten) == (4, 0, 0)
    cat = await items.get_item(platform, owner[0], report.item_ids[0])
    assert (cat.filename, cat.url, cat.mimetype, cat.blob_id) == (
        "/cat one.jpg",
        "https://img.example.com/a/cat%20one.jpg",
        "image/jpeg",
        None,
    )
    assert cat.metadata_ == {
        "system": {
            "linkInfo": {
                "type": "url",
                "ref": "https://img.example.com/a/cat%20one.jpg",
                "mimetype": "image/jpeg",
            }
        },
        "user": {"camera": "front"},
    }
    dog = await items.get_item(platform, owner[0], report.item_ids[1])
    assert (dog.dir, dog.name, dog.mimetype) == ("/pets", "dog.png", "image/png")
    unknown = await items.get_item(platform, owner[0], report.item_ids[2])
    # nothing to guess from: the column stays empty, the link says "image" as Dataloop's does
    assert unknown.mimetype is None
    assert unknown.metadata_["system"]["linkInfo"]["mimetype"] == "image"
    given = await items.get_item(platform, owner[0], report.item_ids[3])
    assert given.mimetype == "image/webp"

    page = await items.list_items(platform, owner[0], dataset.id)
    assert [(i.type, i.filename) for i in page.rows if i.type == "dir"] == [
        ("dir", "/pets"),
        ("dir", "/x"),
    ]
    assert (await datasets.get_dataset(platform, owner[0], dataset.id)).items_count == 4
    assert await _count(platform, Blob) == 0
    created = await _count(platform, Event, Event.resource == "item", Event.action == "created")
    assert created == 6  # 4 links and 2 folders


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/a.jpg",
        "example.com/a.jpg",
        "https://",
        "https:///a.jpg",
        "https://exa mple.com/a.jpg",
        "javascript:alert(1)",
        "http://[::1/a.jpg",
        "",
    ],
)
async def test_invalid_urls_are_refused_naming_the_link(platform, owner, dataset, url) -> None:
    good = LinkSpec("https://example.com/ok.jpg")
    with pytest.raises(InvalidInput) as caught:
        await links.add_links(platform, owner[0], dataset.id, [good, LinkSpec(url)])
    assert caught.value.details["field"] == "links[1].url"
    assert await _count(platform, Item) == 0


async def test_bad_paths_and_duplicates_are_refused_whole(platform, owner, dataset) -> None:
    with pytest.raises(InvalidInput) as caught:
        await links.add_links(
            platform,
            owner[0],
            dataset.id,
            [LinkSpec("https://a.example/x.jpg"), LinkSpec("https://b.example/y.jpg", "/../y.jpg")],
        )
    assert caught.value.details["field"] == "links[1].path"
    with pytest.raises(InvalidInput) as caught:
        await links.add_links(
            platform,
            owner[0],
            dataset.id,
            [
                LinkSpec("https://a.example/one/x.jpg"),
                LinkSpec("https://a.example/y.jpg"),
                LinkSpec("https://a.example/two/x.jpg"),
            ],
        )
    assert caught.value.details["field"] == "links[2].path"
    assert "links[0]" in caught.value.message
    with pytest.raises(InvalidInput) as caught:
        await links.add_links(
            platform, owner[0], dataset.id, [LinkSpec("https://a.example/x.jpg", metadata=[1])]
        )
    assert caught.value.details["field"] == "links[0].metadata"
    with pytest.raises(InvalidInput) as caught:
        await links.add_links(
            platform, owner[0], dataset.id, [LinkSpec("https://a.example/x.jpg")], mode="replace"
        )
    assert caught.value.details["field"] == "mode"
    assert await _count(platform, Item) == 0
    assert await _count(platform, Event, Event.resource == "item") == 0


async def test_skip_keeps_and_overwrite_replaces_existing_paths(platform, owner, dataset) -> None:
    first = await links.add_links(
        platform,
        owner[0],
        dataset.id,
        [LinkSpec("https://old.example/a.jpg", metadata={"v": 1}), LinkSpec("https://x/b.jpg")],
    )
    again = [LinkSpec("https://new.example/a.jpg", metadata={"v": 2}), LinkSpec("https://x/c.jpg")]
    skipped = await links.add_links(platform, owner[0], dataset.id, again)
    assert (skipped.created, skipped.skipped, skipped.overwritten) == (1, 1, 0)
    assert skipped.item_ids[0] == first.item_ids[0]
    kept = await items.get_item(platform, owner[0], first.item_ids[0])
    assert (kept.url, kept.metadata_["user"]) == ("https://old.example/a.jpg", {"v": 1})

    replaced = await links.add_links(platform, owner[0], dataset.id, again, mode="overwrite")
    assert (replaced.created, replaced.skipped, replaced.overwritten) == (0, 0, 2)
    assert replaced.item_ids == [first.item_ids[0], skipped.item_ids[1]]
    new = await items.get_item(platform, owner[0], first.item_ids[0])
    assert (new.url, new.metadata_["user"]) == ("https://new.example/a.jpg", {"v": 2})
    assert new.metadata_["system"]["linkInfo"]["ref"] == "https://new.example/a.jpg"
    assert (await datasets.get_dataset(platform, owner[0], dataset.id)).items_count == 3
    updated = await _count(platform, Event, Event.resource == "item", Event.action == "updated")
    assert updated == 2


async def test_overwriting_a_stored_file_with_a_link_frees_its_bytes(
    platform, owner, dataset
) -> None:
    staged = blobs.stage(platform, b"some image bytes")
    async with platform.db.write() as session:
        blob_id, _ = await blobs.ensure_blob(session, platform, staged)
        await items.insert_items(
            session, owner[0], dataset, [items.ItemSpec(path="/a.jpg", blob_id=blob_id, size=16)]
        )
    stored = [p for p in platform.settings.blob_root.rglob("*") if p.is_file()]
    assert len(stored) == 1
    await links.add_links(
        platform, owner[0], dataset.id, [LinkSpec("https://x.example/a.jpg")], mode="overwrite"
    )
    item = (await items.list_items(platform, owner[0], dataset.id)).rows[0]
    assert (item.blob_id, item.url, item.size) == (None, "https://x.example/a.jpg", None)
    assert await _count(platform, Blob) == 0
    assert not stored[0].exists()


async def test_roles_and_read_only_datasets(platform, owner, project, dataset) -> None:
    annotator, _ = await make_user(platform, "annotator@example.com")
    await projects.add_member(platform, owner[0], project.id, annotator.email, "annotator")
    link = [LinkSpec("https://x.example/a.jpg")]
    with pytest.raises(Forbidden):
        await links.add_links(platform, annotator, dataset.id, link)
    await datasets.update_dataset(platform, owner[0], dataset.id, readonly=True)
    with pytest.raises(Conflict):
        await links.add_links(platform, owner[0], dataset.id, link)
    assert await _count(platform, Item) == 0


# --- CSV ------------------------------------------------------------------------------------------


def test_csv_columns_become_paths_and_typed_user_metadata() -> None:
    parsed = links.links_from_csv(STORY_CSV)
    assert len(parsed) == 10
    assert parsed[0] == LinkSpec(
        "https://cdn.example.com/street/0001.jpg",
        metadata={"weather": "rain", "camera": "front", "score": 0.91, "reviewed": True},
    )
    assert parsed[2].metadata == {"camera": "back", "score": 1}
    assert parsed[3].path == "/night/0004.jpg"
    assert parsed[4].metadata == {"tags": ["a", "b"], "camera": "side"}
    # "007" keeps its leading zeros as text; TRUE is a boolean; -2 an integer
    assert parsed[6].metadata == {"camera": "front", "score": "007"}
    assert parsed[7].metadata == {"camera": "front", "score": -2, "reviewed": True}
    assert parsed[8].metadata == {}


def test_csv_name_and_mimetype_columns_and_quoted_lines() -> None:
    text = (
        "Name,URL,MimeType,note\n"
        "\n"
        'a.jpg,https://x.example/1,image/jpeg,"two\nlines"\n'
        "b.jpg,https://x.example/2,,  spaced  \n"
    )
    parsed = links.links_from_csv(text)
    assert parsed == [
        LinkSpec("https://x.example/1", "a.jpg", {"note": "two\nlines"}, "image/jpeg"),
        LinkSpec("https://x.example/2", "b.jpg", {"note": "spaced"}, None),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "line 1: the CSV is empty"),
        ("path,link\n/a.jpg,https://x/a.jpg\n", "line 1: the header needs a url column"),
        ("url,url\nhttps://x/a.jpg,https://x/b.jpg\n", "line 1: column 'url' appears twice"),
        ("url,\nhttps://x/a.jpg,\n", "line 1: column 2 has no name"),
        ("url\nhttps://x/a.jpg\nhttps://x/b.jpg,extra\n", "line 3: 2 values for 1 columns"),
        (
            "url,metadata\nhttps://x/1.jpg,\n\nhttps://x/2.jpg,{}\nhttps://x/3.jpg,\n"
            "https://x/4.jpg,\nhttps://x/5.jpg,{oops}\n",
            "line 7: the metadata column is not valid JSON",
        ),
        ('url,metadata\nhttps://x/1.jpg,"[1, 2]"\n', "line 2: the metadata column must hold"),
        ("url\nhttps://x/1.jpg\nfile:///etc/passwd\n", "line 3: 'file:///etc/passwd' is not"),
        ("url\nhttps://x/a.jpg\n\n\nhttps://y/a.jpg\n", "line 5: path '/a.jpg' is also"),
        (
            "url,path\nhttps://x/1.jpg,/a.jpg\nhttps://x/2.jpg,\nhttps://x/3.jpg,a.jpg\n",
            "line 4: path '/a.jpg' is also the path of line 2",
        ),
        ("url,path\nhttps://x/1.jpg,/a/../b.jpg\n", "line 2: path '/a/../b.jpg'"),
    ],
)
def test_bad_csv_is_refused_naming_the_line(text: str, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        links.links_from_csv(text)
    assert caught.value.details["field"] == "csv"
    assert caught.value.message.startswith(message), caught.value.message


async def test_story_links_10_url_items_from_a_csv(client, platform, dataset) -> None:
    data = await gql(client, ADD_CSV, {"d": dataset.id, "csv": STORY_CSV})
    report = data["addLinksFromCsv"]
    assert (report["created"], report["skipped"], report["overwritten"]) == (10, 0, 0)
    assert len(set(report["itemIds"])) == 10
    nodes = (await gql(client, LIST, {"d": dataset.id}))["items"]["nodes"]
    files = {n["filename"]: n for n in nodes if n["type"] == "file"}
    assert sorted(files) == [
        "/0001.jpg",
        "/0002.jpg",
        "/0003.png",
        "/0007.jpg",
        "/0008.jpg",
        "/0009.jpg",
        "/clip.mp4",
        "/night/0004.jpg",
        "/night/0005.jpg",
        "/street-index",
    ]
    first = files["/0001.jpg"]
    assert first["url"] == "https://cdn.example.com/street/0001.jpg"
    assert first["mimetype"] == "image/jpeg"
    assert first["metadata"]["user"] == {
        "weather": "rain",
        "camera": "front",
        "score": 0.91,
        "reviewed": True,
    }
    assert first["metadata"]["system"]["linkInfo"]["ref"] == first["url"]
    assert files["/clip.mp4"]["mimetype"] == "video/mp4"
    assert files["/0007.jpg"]["url"].endswith("?sig=abc")

    again = (await gql(client, ADD_CSV, {"d": dataset.id, "csv": STORY_CSV}))["addLinksFromCsv"]
    assert (again["created"], again["skipped"]) == (0, 10)
    assert again["itemIds"] == report["itemIds"]


async def test_graphql_errors_name_the_field_and_write_nothing(
    client, platform, owner, dataset
) -> None:
    errors = await gql_errors(
        client,
        ADD_LINKS,
        {"d": dataset.id, "links": [{"url": "https://x/a.jpg"}, {"url": "ftp://x/b.jpg"}]},
    )
    assert errors[0]["extensions"]["code"] == "INVALID_INPUT"
    assert errors[0]["extensions"]["field"] == "links[1].url"
    bad_csv = "url,metadata\nhttps://x/a.jpg,{}\nhttps://x/b.jpg,{nope\n"
    errors = await gql_errors(client, ADD_CSV, {"d": dataset.id, "csv": bad_csv})
    assert errors[0]["extensions"]["field"] == "csv"
    assert errors[0]["message"].startswith("line 3: ")
    assert await _count(platform, Item) == 0

    data = await gql(
        client,
        ADD_LINKS,
        {
            "d": dataset.id,
            "links": [{"url": "https://x/a.jpg", "path": "/p/a.jpg", "metadata": {"k": 1}}],
        },
    )
    assert data["addLinks"]["created"] == 1
    item = await items.get_item(platform, owner[0], data["addLinks"]["itemIds"][0])
    assert item.metadata_["user"] == {"k": 1}


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("https://h.example/a/b/photo.jpg?size=large#top", "/photo.jpg"),
        ("https://h.example/a/b%20c.png", "/b c.png"),
        ("https://h.example/folder/", "/folder"),
        ("https://h.example", "/h.example"),
        ("HTTP://H.example:8080/x.gif", "/x.gif"),
    ],
)
def test_default_paths_come_from_the_url(url: str, path: str) -> None:
    assert links.link_spec(LinkSpec(url)).path == path


async def test_registrations_larger_than_a_batch_stay_all_or_nothing(
    platform, owner, dataset, monkeypatch
) -> None:
    monkeypatch.setattr(links, "_BATCH", 3)
    many = [LinkSpec(f"https://x.example/{i}.jpg", path=f"/d{i % 2}/{i}.jpg") for i in range(8)]
    with pytest.raises(InvalidInput) as caught:
        await links.add_links(platform, owner[0], dataset.id, [*many, many[1]])
    assert caught.value.details["field"] == "links[8].path"
    assert "links[1]" in caught.value.message
    with pytest.raises(InvalidInput) as caught:
        await links.add_links(platform, owner[0], dataset.id, [*many[:7], LinkSpec("nope")])
    assert caught.value.details["field"] == "links[7].url"
    assert await _count(platform, Item) == 0
    assert await _count(platform, Event) == 1  # the dataset's creation

    report = await links.add_links(platform, owner[0], dataset.id, many)
    assert report.created == 8 and len(set(report.item_ids)) == 8
    assert (await datasets.get_dataset(platform, owner[0], dataset.id)).items_count == 8
    assert await _count(platform, Item, Item.type == "dir") == 2
