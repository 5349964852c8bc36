"""The keys of task_items and annotations (constraints on SQLite, triggers on PostgreSQL) hold as
keys do."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from graph.db.tables import Item
from graph.domain import tasks

_INSERT = text(
    "INSERT INTO task_items (task_id, item_id, copy, assignment_id) "
    "VALUES (:task, :item, :copy, :assignment)"
)


@pytest.fixture
async def task(platform, team) -> Any:
    """A task over the team's 20 files, half to ann1 and half to ann2."""
    return await tasks.create_task(
        platform,
        team.manager,
        team.dataset.id,
        "keys",
        dql="",
        workload=[(team.ann1.email, 50), (team.ann2.email, 50)],
    )


async def _rows(platform, where: str, **values: Any) -> list[Any]:
    async with platform.db.engine.connect() as conn:
        found = await conn.execute(
            text(f"SELECT item_id, copy, assignment_id FROM task_items WHERE {where}"), values
        )
        return list(found)


async def _second_copy(platform, task: Any, item: str) -> dict[str, Any]:
    """The values of a row giving ``item`` a second time in ``task``, to its first assignment."""
    (assignment, *_) = await _assignments(platform, task.id)
    return {"task": task.id, "item": item, "copy": 1, "assignment": assignment}


def _started(platform, statement: Any, values: dict[str, Any]) -> asyncio.Task[None]:
    """``statement`` running in a transaction of its own, beside the test's."""

    async def run() -> None:
        async with platform.db.engine.begin() as conn:
            await conn.execute(statement, values)

    return asyncio.create_task(run())


async def _assignments(platform, task_id: str) -> list[str]:
    async with platform.db.engine.connect() as conn:
        found = await conn.execute(
            text("SELECT id FROM assignments WHERE task_id = :t ORDER BY id"), {"t": task_id}
        )
        return [row.id for row in found]


@pytest.mark.parametrize(
    ("column", "constraint"),
    [
        ("task", "fk_task_items_task_id_tasks"),
        ("item", "fk_task_items_item_id_items"),
        ("assignment", "fk_task_items_assignment_id_assignments"),
    ],
)
async def test_a_row_referencing_nothing_is_refused_and_nothing_written(
    platform, team, task, column: str, constraint: str
) -> None:
    item = team.ids["/day/00.jpg"]
    good = await _second_copy(platform, task, item)
    with pytest.raises(IntegrityError) as refused:
        async with platform.db.engine.begin() as conn:
            await conn.execute(_INSERT, [good | {"copy": 2}, good | {column: "0" * 24}])
    if not platform.db.is_sqlite:  # SQLite does not say which key
        assert constraint in str(refused.value)
    assert await _rows(platform, "copy > 0") == []
    async with platform.db.engine.begin() as conn:  # the same row with real references is fine
        await conn.execute(_INSERT, good)
    assert await _rows(platform, "copy > 0") == [(item, 1, good["assignment"])]


async def test_an_update_to_an_unknown_assignment_is_refused(platform, team, task) -> None:
    item = team.ids["/day/00.jpg"]
    with pytest.raises(IntegrityError):
        async with platform.db.engine.begin() as conn:
            await conn.execute(
                text("UPDATE task_items SET assignment_id = :a WHERE item_id = :i"),
                {"a": "1" * 24, "i": item},
            )
    (row,) = await _rows(platform, "item_id = :i", i=item)
    assert row.assignment_id in await _assignments(platform, task.id)
    other = next(a for a in await _assignments(platform, task.id) if a != row.assignment_id)
    async with platform.db.engine.begin() as conn:  # reassigning to a real one is fine
        await conn.execute(
            text("UPDATE task_items SET assignment_id = :a WHERE item_id = :i"),
            {"a": other, "i": item},
        )
    assert (await _rows(platform, "item_id = :i", i=item))[0].assignment_id == other


async def test_deleting_items_assignments_and_tasks_reaches_their_rows(
    platform, team, task
) -> None:
    gone = [team.ids["/day/00.jpg"], team.ids["/day/01.jpg"]]
    async with platform.db.engine.begin() as conn:
        await conn.execute(
            text("DELETE FROM items WHERE id IN (:a, :b)"), {"a": gone[0], "b": gone[1]}
        )
    left = await _rows(platform, "task_id = :t", t=task.id)
    assert len(left) == 18 and not {row.item_id for row in left} & set(gone)

    first, second = await _assignments(platform, task.id)
    held = len(await _rows(platform, "assignment_id = :a", a=first))
    async with platform.db.engine.begin() as conn:
        await conn.execute(text("DELETE FROM assignments WHERE id = :a"), {"a": first})
    assert len(await _rows(platform, "task_id = :t AND assignment_id IS NULL", t=task.id)) == held
    assert len(await _rows(platform, "task_id = :t", t=task.id)) == 18

    async with platform.db.engine.begin() as conn:
        await conn.execute(text("DELETE FROM tasks WHERE id = :t"), {"t": task.id})
    assert await _rows(platform, "task_id = :t", t=task.id) == []


_MANY = 1200  # past the number of references a check looks up one by one (trigger_keys._FEW)
_ADD_MANY = text(
    "INSERT INTO task_items (task_id, item_id, copy, assignment_id) "
    "SELECT CAST(:task AS VARCHAR), id, 1, CAST(:assignment AS VARCHAR) FROM items "
    "WHERE dir = '/many' UNION ALL SELECT CAST(:task AS VARCHAR), CAST(:extra AS VARCHAR), 1, "
    "CAST(:assignment AS VARCHAR) WHERE CAST(:extra AS VARCHAR) IS NOT NULL"
)


async def _many_items(platform, team) -> list[str]:
    """``_MANY`` new files of the team's dataset, in the folder ``/many``."""
    async with platform.db.write() as session:
        made = [
            Item(
                dataset_id=team.dataset.id, dir="/many", name=f"{k}.jpg", filename=f"/many/{k}.jpg"
            )
            for k in range(_MANY)
        ]
        session.add_all(made)
    return [item.id for item in made]


async def test_many_rows_in_one_statement_are_checked_as_one_is(platform, team, task) -> None:
    ids = await _many_items(platform, team)
    (assignment, *_) = await _assignments(platform, task.id)
    values = {"task": task.id, "assignment": assignment}
    with pytest.raises(IntegrityError) as refused:
        async with platform.db.engine.begin() as conn:
            await conn.execute(_ADD_MANY, values | {"extra": "0" * 24})
    if not platform.db.is_sqlite:
        assert "fk_task_items_item_id_items" in str(refused.value)
        assert "0" * 24 in str(refused.value)
    assert await _rows(platform, "copy = 1") == []
    async with platform.db.engine.begin() as conn:
        await conn.execute(_ADD_MANY, values | {"extra": None})
    assert len(await _rows(platform, "copy = 1")) == _MANY
    async with platform.db.engine.begin() as conn:
        await conn.execute(text("DELETE FROM items WHERE id = :i"), {"i": ids[7]})
    assert len(await _rows(platform, "copy = 1")) == _MANY - 1


async def _adding(platform, team, task, many: bool) -> tuple[Any, dict[str, Any], str, int]:
    """A statement adding one row to the task, or ``_MANY`` rows at once (each the second copy
    of its item); its values, an item it references and how many rows it adds."""
    if not many:
        item = team.ids["/night/10.jpg"]
        return _INSERT, await _second_copy(platform, task, item), item, 1
    ids = await _many_items(platform, team)
    (assignment, *_) = await _assignments(platform, task.id)
    return _ADD_MANY, {"task": task.id, "assignment": assignment, "extra": None}, ids[500], _MANY


# two writers at once: PostgreSQL only (SQLite runs one write at a time)
_ON_POSTGRESQL = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
_ONE_OR_MANY = pytest.mark.parametrize("many", [False, True], ids=["one row", "many rows"])


@_ON_POSTGRESQL
@_ONE_OR_MANY
async def test_rows_added_while_their_item_is_deleted_wait_and_are_refused(
    platform, team, task, many: bool
) -> None:
    statement, values, item, _ = await _adding(platform, team, task, many)
    async with platform.db.engine.connect() as deleting:
        await deleting.execute(text("DELETE FROM items WHERE id = :i"), {"i": item})

        adding = _started(platform, statement, values)
        await asyncio.sleep(0.3)
        assert not adding.done()  # waits for the delete's transaction
        await deleting.commit()
        with pytest.raises(IntegrityError):
            await adding
    assert await _rows(platform, "copy = 1") == []


@_ON_POSTGRESQL
@_ONE_OR_MANY
async def test_an_item_deleted_while_rows_are_added_takes_its_row_with_them(
    platform, team, task, many: bool
) -> None:
    statement, values, item, added = await _adding(platform, team, task, many)
    async with platform.db.engine.connect() as adding:
        await adding.execute(statement, values)

        deleting = _started(platform, text("DELETE FROM items WHERE id = :i"), {"i": item})
        await asyncio.sleep(0.3)
        assert not deleting.done()  # the added rows hold their items
        await adding.commit()
        await deleting
    assert await _rows(platform, "item_id = :i", i=item) == []
    assert len(await _rows(platform, "copy = 1")) == added - 1


_ANNOTATE = text(
    "INSERT INTO annotations (id, item_id, dataset_id, type, coordinates, attributes, metadata, "
    "source, creator, parent_id, created_at, updated_at) VALUES (:id, :item, :dataset, 'point', "
    "'{}', '{}', '{}', 'api', 'test', :parent, :now, :now)"
)


def _annotation(team: Any, id: str, parent: str | None = None, **given: str) -> dict[str, Any]:
    return {
        "id": id,
        "item": team.ids["/day/00.jpg"],
        "dataset": team.dataset.id,
        "parent": parent,
        "now": datetime.now(UTC),
    } | given


async def _annotation_ids(platform) -> list[str]:
    async with platform.db.engine.connect() as conn:
        return list(await conn.scalars(text("SELECT id FROM annotations ORDER BY id")))


@pytest.mark.parametrize(
    ("column", "constraint"),
    [
        ("item", "fk_annotations_item_id_items"),
        ("dataset", "fk_annotations_dataset_id_datasets"),
        ("parent", "fk_annotations_parent_id_annotations"),
    ],
)
async def test_an_annotation_referencing_nothing_is_refused_and_nothing_written(
    platform, team, column: str, constraint: str
) -> None:
    with pytest.raises(IntegrityError) as refused:
        async with platform.db.engine.begin() as conn:
            await conn.execute(
                _ANNOTATE, [_annotation(team, "a1"), _annotation(team, "a2", **{column: "0" * 24})]
            )
    if not platform.db.is_sqlite:
        assert constraint in str(refused.value)
    assert await _annotation_ids(platform) == []


async def test_a_parent_in_the_same_statement_is_found_and_takes_its_children_along(
    platform, team
) -> None:
    async with platform.db.engine.begin() as conn:
        await conn.execute(
            _ANNOTATE,
            [
                _annotation(team, "pose"),
                _annotation(team, "point1", parent="pose"),
                _annotation(team, "point2", parent="pose"),
                _annotation(team, "other", item=team.ids["/day/01.jpg"]),
            ],
        )
    async with platform.db.engine.begin() as conn:
        await conn.execute(text("DELETE FROM annotations WHERE id = 'pose'"))
    assert await _annotation_ids(platform) == ["other"]
    async with platform.db.engine.begin() as conn:
        await conn.execute(text("DELETE FROM items WHERE id = :i"), {"i": team.ids["/day/01.jpg"]})
    assert await _annotation_ids(platform) == []
