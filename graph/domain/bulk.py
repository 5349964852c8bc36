"""Changes by query: update, move or delete the items a DQL query selects in a dataset, and update
or delete the annotations one selects.

A query selects what the dataset's listing with it shows (``items(datasetId, dql, filter)``,
``annotations(datasetId, dql, filter)``): for items, files and folders, never hidden items. Its
``order by`` does not matter. A query must be given; an empty ``dql`` (``""``) selects everything.

Each call is one transaction: it happens whole or not at all. The matching rows are visited in
chunks of :data:`CHUNK` by keyset on ``id``, so memory stays flat however many match, and no row
is visited twice. The query is evaluated for each chunk against what the earlier chunks left: a
chunk changes only its own rows and what they take along (the contents of a deleted folder, the
children of a deleted annotation), and item counters are recounted at the end, so a row later in
the order is judged as it was. Each returns how many rows it changed; ``progress``, if given, is
called after each chunk with the count so far (an execution will report it once executions exist).

User metadata is changed by a JSON merge patch (RFC 7396): the patch's keys are set, objects are
merged key by key at any depth, and a key whose value is ``null`` is removed. ``replace`` applies
the patch to an empty object instead, so ``metadata.user`` becomes the patch without its nulls.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Row, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from dql.ast import Query
from dql.compiler import Compiled
from graph.db.tables import Annotation, Item, utcnow
from graph.domain import (
    annotations,
    blobs,
    events,
    indexes,
    items,
    keyframes,
    paths,
    queries,
    recipe_check,
)
from graph.domain.access import Actor, Role
from graph.domain.datasets import dataset_for
from graph.domain.errors import InvalidInput
from graph.domain.platform import Platform

__all__ = [
    "CHUNK",
    "Progress",
    "delete_annotations_by_query",
    "delete_items_by_query",
    "merge_patch",
    "move_items_by_query",
    "update_annotations_by_query",
    "update_items_by_query",
]

CHUNK = 2000  # rows read and changed per step
_MAX_PATCH_DEPTH = 64
_MAX_LABEL = 512
_ANNOTATION_CHANGES = ("label", "status")
_I, _A = Item.__table__, Annotation.__table__

Progress = Callable[[int], None]


# --- shared ---------------------------------------------------------------------------------------


def _query(dql: str | None, dataloop: Mapping[str, Any] | None, resource: str) -> Query:
    if dql is None and dataloop is None:
        raise InvalidInput('give a query in dql or filter (dql "" selects everything)', field="dql")
    return queries.parse_query(dql, dataloop, resource=resource)


async def _items_where(
    session: AsyncSession, dataset_id: str, query: Query
) -> tuple[list[ColumnElement[bool]], Mapping[str, Any]]:
    """The conditions selecting the query's items, and the values of their parameters."""
    compiled = await _compiled(session, query, "items", dataset_id)
    return [*items.listing(dataset_id), compiled.where], compiled.params


async def _annotations_where(
    session: AsyncSession, dataset_id: str, query: Query
) -> tuple[list[ColumnElement[bool]], Mapping[str, Any]]:
    compiled = await _compiled(session, query, "annotations", dataset_id)
    return [Annotation.dataset_id == dataset_id, compiled.where], compiled.params


async def _compiled(
    session: AsyncSession, query: Query, resource: str, dataset_id: str
) -> Compiled:
    dialect = session.bind.dialect.name
    stored = await indexes.stored(session)
    return queries.compile_for(query, resource, dialect, dataset_id, stored=stored)


async def _chunks(
    session: AsyncSession,
    columns: Sequence[Any],
    where: Sequence[ColumnElement[bool]],
    params: Mapping[str, Any],
) -> AsyncIterator[Sequence[Row[Any]]]:
    """The rows matching ``where`` (its parameters' values in ``params``) in chunks of
    :data:`CHUNK`, by the first column (an ``id``)."""
    key = columns[0]
    after: str | None = None
    while True:
        query = select(*columns).where(*where)
        if after is not None:
            query = query.where(key > after)
        rows = (await session.execute(query.order_by(key).limit(CHUNK), params)).all()
        if rows:
            yield rows
        if len(rows) < CHUNK:
            return
        after = rows[-1][0]


class _Tally:
    """How many rows were changed so far, told to ``progress`` after each chunk."""

    def __init__(self, progress: Progress | None) -> None:
        self.done, self.progress = 0, progress

    def add(self, n: int) -> None:
        self.done += n
        if self.progress is not None:
            self.progress(self.done)


def _check_patch(patch: Any, field: str) -> dict[str, Any]:
    """A merge patch: a JSON object, nested at most ``_MAX_PATCH_DEPTH`` deep."""
    checked = items.check_user_metadata(patch, field=field)
    level = [checked]
    for _ in range(_MAX_PATCH_DEPTH):
        level = [v for obj in level for v in obj.values() if isinstance(v, dict)]
        if not level:
            return checked
    raise InvalidInput(f"{field} is nested more than {_MAX_PATCH_DEPTH} levels deep", field=field)


def merge_patch(target: Any, patch: Any) -> Any:
    """``target`` changed by the JSON merge patch ``patch`` (RFC 7396); neither is modified."""
    if not isinstance(patch, dict):
        return patch
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged


def _with_user(metadata: Any, patch: dict[str, Any], replace: bool) -> dict[str, Any]:
    """``metadata`` (``{system, user, ...}``) with ``user`` patched or replaced."""
    current = dict(metadata) if isinstance(metadata, dict) else {}
    current["user"] = merge_patch({} if replace else current.get("user"), patch)
    return current


# --- items ----------------------------------------------------------------------------------------


async def update_items_by_query(
    platform: Platform,
    actor: Actor,
    dataset_id: str,
    *,
    dql: str | None = None,
    dataloop: Mapping[str, Any] | None = None,
    set_user_metadata: Mapping[str, Any] | None = None,
    replace_user_metadata: bool = False,
    description: str | None = None,
    progress: Progress | None = None,
) -> int:
    """Change ``metadata.user`` (merge ``set_user_metadata``, or replace it) and/or the
    description (``""`` clears it) of the items selected; one ``item updated`` event each."""
    query = _query(dql, dataloop, "items")
    patch = _check_patch(set_user_metadata, "set")
    metadata = set_user_metadata is not None or replace_user_metadata
    if not metadata and description is None:
        raise InvalidInput("nothing to change: give set, replace or description", field="set")
    payload: dict[str, Any] = {"datasetId": dataset_id}
    if metadata:
        payload["metadata.user"] = True
    if description is not None:
        payload["description"] = description or None
    tally = _Tally(progress)
    async with platform.db.write() as session:
        dataset = await dataset_for(
            session, actor, dataset_id, Role.annotationManager, writing=True
        )
        where, params = await _items_where(session, dataset_id, query)
        columns = (_I.c.id, _I.c.metadata) if metadata else (_I.c.id,)
        async for rows in _chunks(session, columns, where, params):
            now = utcnow()
            changes: list[dict[str, Any]] = []
            for row in rows:
                change: dict[str, Any] = {"item_id": row.id, "updated_at": now}
                if metadata:
                    change["metadata"] = _with_user(row.metadata, patch, replace_user_metadata)
                if description is not None:
                    change["description"] = description or None
                changes.append(change)
            await session.execute(update(_I).where(_I.c.id == bindparam("item_id")), changes)
            await events.record_many(
                session,
                project_id=dataset.project_id,
                resource="item",
                action="updated",
                actor=actor.email,
                changes=[(row.id, payload) for row in rows],
            )
            tally.add(len(rows))
    return tally.done


async def delete_items_by_query(
    platform: Platform,
    actor: Actor,
    dataset_id: str,
    *,
    dql: str | None = None,
    dataloop: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
) -> int:
    """Delete the items selected, a selected folder with everything below it, as ``deleteItems``
    does; returns how many files went. Bytes no other item uses are freed after the commit."""
    query = _query(dql, dataloop, "items")
    tally = _Tally(progress)
    freed: list[str] = []
    from_tasks = items.Removed()
    async with platform.db.write() as session:
        dataset = await dataset_for(
            session, actor, dataset_id, Role.annotationManager, writing=True
        )
        where, params = await _items_where(session, dataset_id, query)
        async for rows in _chunks(session, items.LOCATED, where, params):
            removed = await items.remove_chosen(session, actor, dataset, rows)
            freed += await blobs.release(session, removed.blob_ids)
            from_tasks.task_ids |= removed.task_ids
            tally.add(removed.files)
    blobs.delete_bytes(platform, freed)
    items.removed_from_tasks(platform, dataset.project_id, from_tasks)
    return tally.done


async def move_items_by_query(
    platform: Platform,
    actor: Actor,
    dataset_id: str,
    to_dir: str,
    *,
    dql: str | None = None,
    dataloop: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
) -> int:
    """Move the items selected into ``to_dir`` (made if missing), as ``moveItems`` does: files by
    themselves, folders with everything below them (a selected item inside a selected folder comes
    with it). ``to_dir`` and the folders holding it are never selected. Returns how many selected
    items changed place; a path that would be taken twice refuses the whole move.

    Files move first, in chunks, then the folders; the selected folders are held in memory (as
    many as the query selects, usually few).
    """
    query = _query(dql, dataloop, "items")
    target = paths.normalise_dir(to_dir, field="toDir")
    tally = _Tally(progress)
    async with platform.db.write() as session:
        dataset = await dataset_for(
            session, actor, dataset_id, Role.annotationManager, writing=True
        )
        await items.ensure_folders(session, actor, dataset, [target])
        where, params = await _items_where(session, dataset_id, query)
        if target != "/":
            where.append(Item.filename.not_in(paths.ancestors(target)))
        folders = (
            await session.execute(select(*items.LOCATED).where(*where, Item.type == "dir"), params)
        ).all()
        carried = items.outermost(folders)
        async for rows in _chunks(session, items.LOCATED, [*where, Item.type == "file"], params):
            chosen = [row for row in rows if not items.inside(row.dir, carried)]
            tally.add(await items.relocate(session, actor, dataset, chosen, target))
        tally.add(await items.relocate(session, actor, dataset, folders, target))
    return tally.done


# --- annotations ----------------------------------------------------------------------------------


def _check_annotation_changes(changes: Mapping[str, Any]) -> None:
    unknown = sorted(set(changes) - set(_ANNOTATION_CHANGES))
    if unknown:
        raise InvalidInput(f"cannot change {', '.join(unknown)} by query", field=unknown[0])
    if "status" in changes:
        annotations.check_status(changes["status"], "status")
    label = changes.get("label")
    if label is not None and (not isinstance(label, str) or len(label) > _MAX_LABEL):
        raise InvalidInput(f"a label is text of at most {_MAX_LABEL} characters", field="label")


def _changed(value: Mapping[str, Any]) -> set[str]:
    return {"metadata"} if "metadata" in value else set()


async def update_annotations_by_query(
    platform: Platform,
    actor: Actor,
    dataset_id: str,
    *,
    dql: str | None = None,
    dataloop: Mapping[str, Any] | None = None,
    changes: Mapping[str, Any] | None = None,
    set_user_metadata: Mapping[str, Any] | None = None,
    replace_user_metadata: bool = False,
    progress: Progress | None = None,
) -> int:
    """Set ``label`` and/or ``status`` (``changes``; ``None`` clears) and change
    ``metadata.user`` (merge ``set_user_metadata``, or replace it) of the annotations selected; one
    ``annotation updated`` event each. A new label must be in the dataset's recipe, if it has
    one (the annotations' attribute values are not checked again); a video annotation's
    keyframes that had its former label take the new one."""
    query = _query(dql, dataloop, "annotations")
    fixed = dict(changes or {})
    _check_annotation_changes(fixed)
    patch = _check_patch(set_user_metadata, "set")
    metadata = set_user_metadata is not None or replace_user_metadata
    if not metadata and not fixed:
        raise InvalidInput("nothing to change: give label, status, set or replace", field="set")
    tally = _Tally(progress)
    async with platform.db.write() as session:
        dataset = await dataset_for(
            session, actor, dataset_id, Role.annotationManager, writing=True
        )
        if fixed.get("label") is not None:
            rules = await recipe_check.rules_of(session, dataset)
            if rules is not None:
                recipe_check.check_label(rules, fixed["label"], "the new label", "label")
        where, params = await _annotations_where(session, dataset_id, query)
        relabel = "label" in fixed
        columns = (
            _A.c.id,
            _A.c.item_id,
            *((_A.c.label,) if relabel else ()),
            *((_A.c.metadata,) if metadata or relabel else ()),
        )
        async for rows in _chunks(session, columns, where, params):
            now = utcnow()
            values: list[dict[str, Any]] = []
            for row in rows:
                value: dict[str, Any] = {"annotation_id": row.id, "updated_at": now, **fixed}
                if metadata:
                    value["metadata"] = _with_user(row.metadata, patch, replace_user_metadata)
                if relabel:
                    frames = keyframes.relabelled_with(
                        value.get("metadata", row.metadata), row.label, fixed["label"]
                    )
                    if frames is not None:
                        value["metadata"] = frames
                values.append(value)
            # one statement per set of columns changed (executemany takes the same keys)
            for group in (
                [v for v in values if "metadata" in v],
                [v for v in values if "metadata" not in v],
            ):
                if group:
                    await session.execute(
                        update(_A).where(_A.c.id == bindparam("annotation_id")), group
                    )
            await events.record_many(
                session,
                project_id=dataset.project_id,
                resource="annotation",
                action="updated",
                actor=actor.email,
                changes=[
                    (row.id, {"itemId": row.item_id, "fields": sorted(set(fixed) | _changed(v))})
                    for row, v in zip(rows, values, strict=True)
                ],
            )
            tally.add(len(rows))
    return tally.done


async def delete_annotations_by_query(
    platform: Platform,
    actor: Actor,
    dataset_id: str,
    *,
    dql: str | None = None,
    dataloop: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
) -> int:
    """Delete the annotations selected with their child annotations, as ``deleteAnnotations``
    does; returns how many went. Items' counters are recounted once, at the end (the item ids
    touched are held in memory)."""
    query = _query(dql, dataloop, "annotations")
    tally = _Tally(progress)
    async with platform.db.write() as session:
        dataset = await dataset_for(
            session, actor, dataset_id, Role.annotationManager, writing=True
        )
        where, params = await _annotations_where(session, dataset_id, query)
        touched: set[str] = set()
        async for rows in _chunks(session, (_A.c.id, _A.c.item_id), where, params):
            ids = [row.id for row in rows]
            tally.add(await annotations.remove_annotations(session, actor, dataset, ids))
            touched.update(row.item_id for row in rows)
        await annotations.recount(session, touched, dataset.id, -tally.done)
    return tally.done
