"""Declared metadata indexes on SQLite and PostgreSQL: built on the compiler's expressions,
idempotent, dropped cleanly, refused for bad paths and roles, and invisible in query results."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from graph.cli import main
from graph.db.engine import Database
from graph.domain import annotations, datasets, indexes, items, projects
from graph.domain.access import Actor
from graph.domain.errors import Forbidden, InvalidInput, NotFound
from graph.domain.platform import Platform
from tests.conftest import make_user
from tests.graphql import gql, gql_errors

N = 1200  # enough rows that both planners prefer an index for a 1% match
CAMERAS = ("back", "left", "right")


async def fill(platform: Platform, actor: Actor, project_id: str) -> str:
    """A dataset of N items: 1% with camera "front", scores i/N (one the string "high"), and 1,200
    annotations with a color attribute (1% red) on 30 of them; statistics gathered as autovacuum
    would."""
    dataset = await datasets.create_dataset(platform, actor, project_id, "indexed")
    specs = []
    for i in range(N):
        user: dict[str, Any] = {
            "camera": "front" if i % 100 == 0 else CAMERAS[i % 3],
            "score": "high" if i == 5 else i / N,
        }
        if i % 7 == 0:
            user["reviewed"] = i % 2 == 0
        specs.append(items.ItemSpec(path=f"/d{i % 4}/{i:05d}.jpg", user=user))
    async with platform.db.write() as session:
        results, _ = await items.insert_items(session, actor, dataset, specs)
    for k, result in enumerate(results[:ANNOTATED]):
        specs = [
            annotations.AnnotationSpec(type="class", label="car", attributes={"color": color(k, n)})
            for n in range(PER_ITEM)
        ]
        await annotations.create_annotations(platform, actor, result.item_id, specs)
    await analyze(platform)
    return dataset.id


ANNOTATED, PER_ITEM = 30, 40


def color(item: int, n: int) -> str:
    """1% of the annotations are red."""
    return "red" if (item * PER_ITEM + n) % 100 == 0 else "blue"


async def analyze(platform: Platform) -> None:
    async with platform.db.write() as session:
        await session.execute(text("ANALYZE"))


async def sql_index_names(platform: Platform) -> set[str]:
    """The metadata indexes that exist in the database itself."""
    if platform.db.is_sqlite:
        query = "SELECT name FROM sqlite_master WHERE type = 'index'"
    else:
        query = "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"
    async with platform.db.read() as session:
        names = (await session.execute(text(query))).scalars()
        return {n for n in names if n.startswith("ix_meta_")}


@pytest.fixture
async def platform(platform: Platform) -> AsyncIterator[Platform]:
    """conftest's platform, without SQL indexes left by other tests: the PostgreSQL test database
    outlives a test (its tables are emptied, its indexes stay)."""
    await drop_sql_indexes(platform)
    yield platform
    await drop_sql_indexes(platform)


async def stored_columns(platform: Platform) -> set[tuple[str, str]]:
    """The generated columns metadata indexes add (PostgreSQL), as (table, column)."""
    if platform.db.is_sqlite:
        return set()
    query = (
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = "
        "current_schema() AND is_generated = 'ALWAYS'"
    )
    async with platform.db.read() as session:
        return {(t, c) for t, c in (await session.execute(text(query))).all()}


async def drop_sql_indexes(platform: Platform) -> None:
    names = await sql_index_names(platform)
    columns = await stored_columns(platform)
    async with platform.db.write() as session:
        for name in names:
            await session.execute(text(f'DROP INDEX "{name}"'))
        for table, column in columns:
            await session.execute(text(f'ALTER TABLE "{table}" DROP COLUMN "{column}"'))


@pytest.fixture
async def dataset_id(platform, owner, project) -> str:
    return await fill(platform, owner[0], project.id)


async def _ids(platform, actor, dataset_id: str, dql: str) -> list[str]:
    page = await items.list_items(platform, actor, dataset_id, dql=dql, first=1000)
    return [i.id for i in page.rows]


async def test_create_builds_the_sql_indexes_once(platform, owner, project) -> None:
    actor = owner[0]
    declared = await indexes.create_index(platform, actor, "items", "metadata.user.camera")
    kinds = {"values"} if platform.db.is_sqlite else {"values", "numbers"}
    assert set(declared.sql_indexes) == kinds
    assert declared.creator == actor.email
    assert await sql_index_names(platform) == set(declared.sql_indexes.values())
    again = await indexes.create_index(platform, actor, "items", "metadata.user.camera")
    assert again.id == declared.id and again.sql_indexes == declared.sql_indexes
    listed = await indexes.list_indexes(platform, actor)
    assert [(r.resource, r.path) for r in listed] == [("items", "metadata.user.camera")]


async def test_create_rebuilds_an_sql_index_that_went_missing(platform, owner, project) -> None:
    declared = await indexes.create_index(platform, owner[0], "items", "metadata.user.camera")
    async with platform.db.write() as session:
        for name in declared.sql_indexes.values():
            await session.execute(text(f"DROP INDEX {name}"))
    assert await sql_index_names(platform) == set()
    await indexes.create_index(platform, owner[0], "items", "metadata.user.camera")
    assert await sql_index_names(platform) == set(declared.sql_indexes.values())


async def test_declaring_again_replaces_an_index_of_an_older_definition(
    platform, owner, project
) -> None:
    """A release that changes what is indexed: the next declaration builds the new index and
    drops the old one."""
    declared = await indexes.create_index(platform, owner[0], "items", "metadata.user.camera")
    async with platform.db.write() as session:
        await session.execute(text('CREATE INDEX "ix_meta_items_old" ON items (dataset_id)'))
        await session.execute(
            text("UPDATE metadata_indexes SET sql_indexes = :old"),
            {"old": '{"values": "ix_meta_items_old"}'},
        )
    again = await indexes.create_index(platform, owner[0], "items", "metadata.user.camera")
    assert again.sql_indexes == declared.sql_indexes
    assert await sql_index_names(platform) == set(declared.sql_indexes.values())


async def test_names_are_derived_not_user_text(platform, owner, project) -> None:
    a = await indexes.create_index(platform, owner[0], "items", "metadata.user.camera")
    b = await indexes.create_index(platform, owner[0], "annotations", "attributes.color")
    names = [*a.sql_indexes.values(), *b.sql_indexes.values()]
    assert all(n.startswith("ix_meta_") and "camera" not in n and "color" not in n for n in names)
    assert len(set(names)) == len(names)


async def test_drop_removes_indexes_and_declaration(platform, owner, project) -> None:
    actor = owner[0]
    await indexes.create_index(platform, actor, "items", "metadata.user.camera")
    await indexes.create_index(platform, actor, "annotations", "attributes.color")
    await indexes.drop_index(platform, actor, "items", "metadata.user.camera")
    remaining = await indexes.list_indexes(platform, actor)
    assert [(r.resource, r.path) for r in remaining] == [("annotations", "attributes.color")]
    assert await sql_index_names(platform) == set(remaining[0].sql_indexes.values())
    assert [r.path for r in await indexes.list_indexes(platform, actor, "items")] == []
    with pytest.raises(NotFound):
        await indexes.drop_index(platform, actor, "items", "metadata.user.camera")


async def test_postgresql_stores_the_path_in_generated_columns(platform, owner, project) -> None:
    """PostgreSQL: the declaration adds generated columns named by hash, its indexes are on
    them, and dropping it drops them; SQLite indexes the expressions and adds no column."""
    actor = owner[0]
    declared = await indexes.create_index(platform, actor, "items", "metadata.user.camera")
    columns = await stored_columns(platform)
    if platform.db.is_sqlite:
        assert columns == set()
        return
    assert len(columns) == 3 and {t for t, _ in columns} == {"items"}
    assert all(c.startswith("meta_") and "camera" not in c for _, c in columns)
    async with platform.db.read() as session:
        definitions = (
            await session.execute(
                text("SELECT indexname, indexdef FROM pg_indexes WHERE indexname LIKE 'ix_meta_%'")
            )
        ).all()
        assert {name for name, _ in definitions} == set(declared.sql_indexes.values())
        assert all(sum(c in d for _, c in columns) == 2 for _, d in definitions)
        assert {p for _, p, _ in await indexes.stored(session)} == {"metadata.user.camera"}
    await indexes.create_index(platform, actor, "items", "metadata.user.score")
    await indexes.drop_index(platform, actor, "items", "metadata.user.camera")
    assert len(await stored_columns(platform)) == 3  # the score's
    async with platform.db.read() as session:
        assert {p for _, p, _ in await indexes.stored(session)} == {"metadata.user.score"}


async def test_another_process_keeps_working_across_a_drop(
    platform, owner, project, dataset_id, settings
) -> None:
    """A process that learnt of a declaration (its own engine) still queries correctly while
    and after another one drops it: the columns go only once it has re-read the declarations."""
    actor = owner[0]
    dql = 'metadata.user.camera = "front"'
    expected = await _ids(platform, actor, dataset_id, dql)
    await indexes.create_index(platform, actor, "items", "metadata.user.camera")
    other = Platform(settings, Database(settings.database_url), platform.plugins)
    try:
        assert await _ids(other, actor, dataset_id, dql) == expected
        await indexes.drop_index(platform, actor, "items", "metadata.user.camera")
        assert await stored_columns(platform) == set()
        assert await _ids(other, actor, dataset_id, dql) == expected
        assert await items.count_items(other, actor, dataset_id, dql=dql) == len(expected)
    finally:
        await other.db.dispose()


async def test_events_record_declarations(platform, owner, project) -> None:
    await indexes.create_index(platform, owner[0], "items", "metadata.user.camera")
    await indexes.create_index(platform, owner[0], "items", "metadata.user.camera")
    await indexes.drop_index(platform, owner[0], "items", "metadata.user.camera")
    async with platform.db.read() as session:
        rows = (
            await session.execute(
                text("SELECT action FROM events WHERE resource = 'metadataIndex' ORDER BY seq")
            )
        ).scalars()
        assert list(rows) == ["created", "deleted"]


async def test_results_are_the_same_with_and_without_the_index(
    platform, owner, project, dataset_id
) -> None:
    actor = owner[0]
    queries = [
        'metadata.user.camera = "front"',
        'metadata.user.camera in ("front", "left")',
        'metadata.user.camera != "front"',
        'metadata.user.camera > "l"',
        "metadata.user.score > 0.99",
        "metadata.user.score <= 0.01",
        'metadata.user.score = "high"',
        "metadata.user.reviewed = true",
        'annotations.any(attributes.color = "red")',
    ]
    before = {q: await _ids(platform, actor, dataset_id, q) for q in queries}
    assert len(before['metadata.user.camera = "front"']) == N // 100
    red = {k for k in range(ANNOTATED) for n in range(PER_ITEM) if color(k, n) == "red"}
    assert len(before['annotations.any(attributes.color = "red")']) == len(red)
    for path in ("metadata.user.camera", "metadata.user.score", "metadata.user.reviewed"):
        await indexes.create_index(platform, actor, "items", path)
    await indexes.create_index(platform, actor, "annotations", "attributes.color")
    after = {q: await _ids(platform, actor, dataset_id, q) for q in queries}
    assert after == before
    count = await items.count_items(platform, actor, dataset_id, dql="metadata.user.score > 0.99")
    assert count == len(before["metadata.user.score > 0.99"])


@pytest.mark.parametrize(
    ("resource", "path", "field"),
    [
        ("datasets", "metadata.user.camera", "resource"),
        ("tasks", "metadata.x", "resource"),
        ("items", "width", "path"),  # a column
        ("items", "metadata.system.mimetype", "path"),  # an alias of a column
        ("annotations", "label", "path"),
        ("items", "metadata", "path"),  # the whole JSON column
        ("items", "nosuch.field", "path"),
        ("items", "metadata..camera", "path"),
        ("items", "", "path"),
        ("items", "metadata.user.a-b", "path"),  # not a plain segment
        ("items", "metadata.user.'); DROP TABLE items; --", "path"),
        ("items", "metadata.user.x\x00", "path"),
        ("items", "metadata." + "x" * 600, "path"),
        ("items", "annotations.label", "path"),  # a relation, not a JSON path
    ],
)
async def test_bad_resources_and_paths_are_refused(
    platform, owner, project, resource, path, field
) -> None:
    with pytest.raises(InvalidInput) as raised:
        await indexes.create_index(platform, owner[0], resource, path)
    assert raised.value.details["field"] == field
    assert await indexes.list_indexes(platform, owner[0]) == []
    assert await sql_index_names(platform) == set()
    assert await stored_columns(platform) == set()


async def test_roles(platform, owner, project) -> None:
    other_project = await projects.create_project(platform, owner[0], "other")
    annotator, _ = await make_user(platform, "annotator@example.com")
    developer, _ = await make_user(platform, "dev@example.com")
    loner, _ = await make_user(platform, "loner@example.com")
    admin, _ = await make_user(platform, "admin@example.com", admin=True)
    await projects.add_member(platform, owner[0], project.id, annotator.email, "annotator")
    await projects.add_member(platform, owner[0], other_project.id, developer.email, "developer")
    for refused in (annotator, loner):
        with pytest.raises(Forbidden):
            await indexes.create_index(platform, refused, "items", "metadata.user.camera")
    assert await sql_index_names(platform) == set()
    assert await stored_columns(platform) == set()
    await indexes.create_index(platform, developer, "items", "metadata.user.camera")
    await indexes.create_index(platform, admin, "items", "metadata.user.score")
    assert len(await indexes.list_indexes(platform, loner)) == 2  # declarations are not secret
    # dropping: the declarer or an administrator
    with pytest.raises(Forbidden):
        await indexes.drop_index(platform, owner[0], "items", "metadata.user.camera")
    await indexes.drop_index(platform, developer, "items", "metadata.user.camera")
    with pytest.raises(Forbidden):
        await indexes.drop_index(platform, developer, "items", "metadata.user.score")
    await indexes.drop_index(platform, admin, "items", "metadata.user.score")
    assert await indexes.list_indexes(platform, admin) == []


async def test_declaration_rows_match_sql_indexes_after_refusal(platform, owner, project) -> None:
    """A refused declaration leaves neither a row nor an SQL index behind."""
    loner, _ = await make_user(platform, "loner@example.com")
    with pytest.raises(Forbidden):
        await indexes.create_index(platform, loner, "annotations", "attributes.color")
    async with platform.db.read() as session:
        assert (await session.execute(text("SELECT count(*) FROM metadata_indexes"))).scalar() == 0
    assert await sql_index_names(platform) == set()


CREATE = """mutation($r: String!, $p: String!) {
  createIndex(resource: $r, path: $p) { id resource path sqlIndexes creator }
}"""
DROP = "mutation($r: String!, $p: String!) { dropIndex(resource: $r, path: $p) }"
LIST = "query($r: String) { indexes(resource: $r) { resource path sqlIndexes } }"


async def test_api(platform, owner, project, client) -> None:
    made = (await gql(client, CREATE, {"r": "items", "p": "metadata.user.camera"}))["createIndex"]
    assert made["resource"] == "items" and made["creator"] == owner[0].email
    assert set(made["sqlIndexes"]) == await sql_index_names(platform)
    listed = (await gql(client, LIST, {"r": "items"}))["indexes"]
    assert listed == [
        {"resource": "items", "path": "metadata.user.camera", "sqlIndexes": made["sqlIndexes"]}
    ]
    assert (await gql(client, LIST, {"r": "annotations"}))["indexes"] == []
    errors = await gql_errors(client, CREATE, {"r": "items", "p": "width"})
    assert errors[0]["extensions"]["code"] == "INVALID_INPUT"
    errors = await gql_errors(client, LIST, {"r": "pipelines"})
    assert errors[0]["extensions"]["code"] == "INVALID_INPUT"
    assert (await gql(client, DROP, {"r": "items", "p": "metadata.user.camera"}))["dropIndex"]
    errors = await gql_errors(client, DROP, {"r": "items", "p": "metadata.user.camera"})
    assert errors[0]["extensions"]["code"] == "NOT_FOUND"
    assert await sql_index_names(platform) == set()


def test_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOPLINE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LOOPLINE_DATABASE_URL", raising=False)
    runner = CliRunner()
    added = runner.invoke(main, ["index", "add", "items", "metadata.user.camera"])
    assert added.exit_code == 0, added.output
    assert added.output.startswith("items metadata.user.camera: ix_meta_items_")
    assert runner.invoke(main, ["index", "add", "items", "metadata.user.camera"]).exit_code == 0
    listed = runner.invoke(main, ["index", "list"])
    assert listed.output == added.output
    bad = runner.invoke(main, ["index", "add", "items", "width"])
    assert bad.exit_code == 1 and "column" in bad.output
    assert runner.invoke(main, ["index", "add", "datasets", "metadata.x"]).exit_code == 2
    dropped = runner.invoke(main, ["index", "drop", "items", "metadata.user.camera"])
    assert dropped.exit_code == 0 and runner.invoke(main, ["index", "list"]).output == ""
    missing = runner.invoke(main, ["index", "drop", "items", "metadata.user.camera"])
    assert missing.exit_code == 1 and "does not exist" in missing.output
