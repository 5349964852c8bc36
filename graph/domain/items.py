"""Items: files, linked URLs and folders; listing, moving, editing, deleting.

``insert_items`` is the one write path every way of adding items goes through (upload, links,
sync, clone), so name clashes, folders, counters and events behave the same everywhere.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, Protocol

from sqlalchemy import (
    ColumnElement,
    Row,
    String,
    and_,
    bindparam,
    delete,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from graph.db.bulk import insert_many
from graph.db.engine import dialect_insert
from graph.db.ids import new_ids
from graph.db.tables import Dataset, Item, utcnow
from graph.domain import blobs, events, indexes, notify, paths, planning, queries
from graph.domain.access import Actor, Role
from graph.domain.datasets import dataset_and_scope, dataset_for, row_in_dataset
from graph.domain.errors import Conflict, InvalidInput, NotFound
from graph.domain.paging import Order, Page, page_size
from graph.domain.platform import Platform
from graph.domain.task_rows import drop_items

__all__ = [
    "DEFAULT_ORDER",
    "default_key",
    "ClashMode",
    "ItemSpec",
    "LISTING",
    "LOCATED",
    "Located",
    "below",
    "count_items",
    "create_folder",
    "delete_items",
    "ensure_folders",
    "get_item",
    "inside",
    "insert_items",
    "item_for",
    "items_at",
    "list_items",
    "listing",
    "move_items",
    "outermost",
    "relocate",
    "Removed",
    "removed_from_tasks",
    "remove_chosen",
    "remove_items",
    "system_metadata",
    "update_item",
]

ClashMode = Literal["skip", "overwrite"]
CLASH_MODES = ("skip", "overwrite")
_INSERT_ATTEMPTS = 3
_CHUNK = 500
_ITEMS = Item.__table__
# nullable columns without a default, which an INSERT may leave out
# what an overwrite replaces; identity (id, path) and user-owned fields stay
_CONTENT = ("mimetype", "size", "width", "height", "blob_id", "thumbnail_blob_id", "url")


@dataclass
class ItemSpec:
    """A file item to add: where it goes and what it holds (a blob or a URL)."""

    path: str
    mimetype: str | None = None
    size: int | None = None
    width: int | None = None
    height: int | None = None
    blob_id: str | None = None
    thumbnail_blob_id: str | None = None
    url: str | None = None
    description: str | None = None
    system: dict[str, Any] = field(default_factory=dict)
    user: dict[str, Any] = field(default_factory=dict)
    src_item_id: str | None = None


class Inserted(NamedTuple):
    """What happened to one spec: ``created``, ``overwritten`` or ``skipped``, with the item id.

    A named tuple: bulk registrations make one per item, and tuples are the cheapest to make.
    """

    item_id: str
    filename: str
    op: str


def check_mode(mode: str) -> ClashMode:
    if mode not in CLASH_MODES:
        raise InvalidInput(
            f"mode must be one of {', '.join(CLASH_MODES)}, got {mode!r}", field="mode"
        )
    return mode  # type: ignore[return-value]


def check_user_metadata(value: Any, field: str = "metadata") -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput("user metadata must be a JSON object", field=field)
    return value


def system_metadata(item: Item) -> dict[str, Any]:
    """``metadata.system`` as Dataloop shows it: stored fields plus the ones kept in columns."""
    system = dict(item.metadata_.get("system") or {})
    for key, value in (
        ("mimetype", item.mimetype),
        ("size", item.size),
        ("width", item.width),
        ("height", item.height),
    ):
        if value is not None:
            system[key] = value
    return system


async def item_for(
    session: AsyncSession, actor: Actor, item_id: str, needed: Role, *, writing: bool = False
) -> tuple[Item, Dataset]:
    """The item and its dataset, if the actor has ``needed`` in the project; one statement."""
    return await row_in_dataset(session, actor, Item, item_id, needed, writing=writing)


async def get_item(platform: Platform, actor: Actor, item_id: str) -> Item:
    async with platform.db.read() as session:
        item, _ = await item_for(session, actor, item_id, Role.annotator)
        return item


def listing(
    dataset_id: str, dir: str | None = None, recursive: bool = True, folders: bool = True
) -> list[ColumnElement[bool]]:
    """The conditions of a dataset's listing (hidden items never show); with a DQL query's, what
    lists, counts and changes by query select."""
    where = [Item.dataset_id == dataset_id, Item.hidden.is_(False)]
    if dir is not None:
        directory = paths.normalise_dir(dir)
        if not recursive:
            where.append(Item.dir == directory)
        elif directory != "/":
            where.append(
                or_(Item.dir == directory, Item.dir.startswith(directory + "/", autoescape=True))
            )
    if not folders:
        where.append(Item.type == "file")
    return where


# without an ``order by``: folders first, then by path
DEFAULT_ORDER = (Order(Item.type), Order(Item.filename), Order(Item.id))


def default_key(item: Item) -> tuple[str, str, str]:
    return item.type, item.filename, item.id


LISTING = planning.Listing(Item, DEFAULT_ORDER, default_key)


async def list_items(
    platform: Platform,
    actor: Actor,
    dataset_id: str,
    *,
    dir: str | None = None,
    recursive: bool = True,
    folders: bool = True,
    dql: str | None = None,
    dataloop: Mapping[str, Any] | None = None,
    first: int | None = None,
    after: str | None = None,
) -> Page[Item]:
    """Items of a dataset matching a DQL query (text and/or Dataloop JSON), optionally below (or
    in) one folder; by the query's ``order by``, else folders first, then by path."""
    query = queries.parse_query(dql, dataloop, resource="items")
    size = page_size(first, platform.settings.max_page_size)
    async with platform.db.read() as session:
        dataset, scope = await dataset_and_scope(session, actor, dataset_id, Role.annotator)
        whole = not scope.limited and (
            dir is None or (recursive and paths.normalise_dir(dir) == "/")
        )
        statement, params, finish = await planning.page_select(
            session,
            query,
            "items",
            dataset_id,
            [*listing(dataset_id, dir, recursive, folders), *scope.items(Item.id)],
            dataset.items_count if whole else None,
            LISTING,
            size,
            after,
            scope.viewer,
        )
        return finish((await session.execute(statement, params)).all())


async def count_items(
    platform: Platform,
    actor: Actor,
    dataset_id: str,
    *,
    dir: str | None = None,
    recursive: bool = True,
    folders: bool = True,
    dql: str | None = None,
    dataloop: Mapping[str, Any] | None = None,
) -> int:
    query = queries.parse_query(dql, dataloop, resource="items")
    async with platform.db.read() as session:
        _, scope = await dataset_and_scope(session, actor, dataset_id, Role.annotator)
        compiled = queries.compile_for(
            query,
            "items",
            platform.db.dialect,
            dataset_id,
            stored=await indexes.stored(session),
            viewer=scope.viewer,
        )
        statement = select(func.count()).where(
            *listing(dataset_id, dir, recursive, folders), *scope.items(Item.id), compiled.where
        )
        return int(await session.scalar(statement, compiled.params) or 0)


async def ensure_folders(
    session: AsyncSession, actor: Actor, dataset: Dataset, directories: Iterable[str]
) -> None:
    """Create the folder items (and their parents) that do not exist yet.

    A file standing where a folder must be is an error. Folders another transaction is creating
    at the same moment are left to it (``ON CONFLICT DO NOTHING``), so parallel uploads into a
    new folder never collide.
    """
    wanted = sorted({a for d in directories for a in paths.ancestors(d)})
    if not wanted:
        return
    existing: set[str] = set()
    for filename, _, kind, _, _ in await items_at(session, dataset.id, wanted):
        if kind != "dir":
            raise InvalidInput(f"{filename!r} is a file, so it cannot hold items", field="path")
        existing.add(filename)
    missing = [d for d in wanted if d not in existing]
    if not missing:
        return
    now = utcnow()
    rows = []
    for item_id, folder in zip(new_ids(len(missing)), missing, strict=True):
        parent, name = paths.split(folder)
        rows.append(
            {
                "id": item_id,
                "dataset_id": dataset.id,
                "dir": parent,
                "name": name,
                "filename": folder,
                "type": "dir",
                "hidden": False,
                "annotated": False,
                "annotations_count": 0,
                "metadata": {"system": {}, "user": {}},
                "creator": actor.email,
                "created_at": now,
                "updated_at": now,
            }
        )
    await session.execute(
        dialect_insert(session)(_ITEMS).on_conflict_do_nothing(
            index_elements=["dataset_id", "filename"]
        ),
        rows,
    )
    ours = {row.id for row in await items_at(session, dataset.id, missing)}
    created = [r for r in rows if r["id"] in ours]
    await events.record_columns(
        session,
        project_id=dataset.project_id,
        resource="item",
        action="created",
        actor=actor.email,
        resource_ids=[r["id"] for r in created],
        payload={"datasetId": dataset.id, "filename": [r["filename"] for r in created]},
    )


async def items_at(
    session: AsyncSession, dataset_id: str, names: Sequence[str]
) -> list[Row[tuple[str, str, str, str | None, str | None]]]:
    """The dataset's items (files and folders) at these paths, as rows of ``(filename, id, type,
    blob_id, thumbnail_blob_id)``.

    PostgreSQL gets one join against the array of names. An ``IN`` list of bound values is
    compared one by one with every row of the dataset when the planner's statistics are stale
    (a table grown in this transaction or since autovacuum last analysed it): a 100k-item
    registration took minutes that way.
    """
    columns = (Item.filename, Item.id, Item.type, Item.blob_id, Item.thumbnail_blob_id)
    if session.bind.dialect.name == "postgresql":
        wanted = (
            func.unnest(bindparam("names", list(names), type_=postgresql.ARRAY(String)))
            .table_valued("filename")
            .render_derived()
        )
        query = (
            select(*columns)
            .join(wanted, wanted.c.filename == Item.filename)
            .where(Item.dataset_id == dataset_id)
        )
        return list(await session.execute(query))
    found: list[Row[tuple[str, str, str, str | None, str | None]]] = []
    for start in range(0, len(names), _CHUNK):
        found.extend(
            await session.execute(
                select(*columns).where(
                    Item.dataset_id == dataset_id, Item.filename.in_(names[start : start + _CHUNK])
                )
            )
        )
    return found


async def insert_items(
    session: AsyncSession,
    actor: Actor,
    dataset: Dataset,
    specs: Sequence[ItemSpec],
    mode: ClashMode = "skip",
) -> tuple[list[Inserted], set[str]]:
    """Add file items in the caller's transaction, creating their folders.

    A path that already exists is skipped or overwritten (content replaced, id kept) by ``mode``;
    a path given twice in one call is an error. Returns what happened to each spec, in order, and
    the ids of blobs that an overwrite stopped using (for :func:`blobs.release`).

    The work runs in a savepoint and is tried again when a concurrent transaction committed one of
    the same paths first (PostgreSQL; SQLite has one writer at a time): the retry sees those rows
    and skips or overwrites them like any existing path.
    """
    for _ in range(_INSERT_ATTEMPTS - 1):
        try:
            async with session.begin_nested():
                return await _insert_once(session, actor, dataset, specs, mode)
        except IntegrityError:
            continue
    try:
        async with session.begin_nested():
            return await _insert_once(session, actor, dataset, specs, mode)
    except IntegrityError:
        raise Conflict("concurrent writes keep taking the same paths; try again") from None


async def _insert_once(
    session: AsyncSession,
    actor: Actor,
    dataset: Dataset,
    specs: Sequence[ItemSpec],
    mode: ClashMode,
) -> tuple[list[Inserted], set[str]]:
    placed: list[tuple[str, str, str, ItemSpec]] = []
    seen: set[str] = set()
    for index, spec in enumerate(specs):
        try:
            directory, name = paths.split(spec.path)
        except InvalidInput as exc:
            raise InvalidInput(exc.message, field=f"items[{index}].path") from None
        filename = paths.join(directory, name)
        if filename in seen:
            raise InvalidInput(f"{filename!r} is given twice", field=f"items[{index}].path")
        seen.add(filename)
        placed.append((directory, name, filename, spec))

    existing: dict[str, tuple[str, str, str | None, str | None]] = {}
    for filename, item_id, kind, blob_id, thumb_id in await items_at(
        session, dataset.id, sorted(seen)
    ):
        if kind == "dir":
            raise InvalidInput(f"{filename!r} is a folder", field="path")
        existing[filename] = (item_id, kind, blob_id, thumb_id)

    await ensure_folders(session, actor, dataset, {d for d, _, _, _ in placed})

    now = utcnow()
    dataset_id, creator = dataset.id, actor.email
    ids = iter(new_ids(sum(1 for p in placed if p[2] not in existing)))
    results: list[Inserted] = []
    rows: list[dict[str, Any]] = []
    overwritten: list[dict[str, Any]] = []
    dropped: set[str] = set()
    for directory, name, filename, spec in placed:
        if filename in existing:
            item_id, _, old_blob, old_thumb = existing[filename]
            if mode == "skip":
                results.append(Inserted(item_id, filename, "skipped"))
                continue
            dropped.update(b for b in (old_blob, old_thumb) if b is not None)
            overwritten.append(
                {
                    "item_id": item_id,
                    "updated_at": now,
                    "metadata": {"system": spec.system, "user": spec.user},
                    **{c: getattr(spec, c) for c in _CONTENT},
                }
            )
            results.append(Inserted(item_id, filename, "overwritten"))
            continue
        item_id = next(ids)
        rows.append(
            {
                "id": item_id,
                "dataset_id": dataset_id,
                "dir": directory,
                "name": name,
                "filename": filename,
                "type": "file",
                "hidden": False,
                "mimetype": spec.mimetype,
                "size": spec.size,
                "width": spec.width,
                "height": spec.height,
                "blob_id": spec.blob_id,
                "thumbnail_blob_id": spec.thumbnail_blob_id,
                "url": spec.url,
                "annotated": False,
                "annotations_count": 0,
                "description": spec.description,
                "metadata": {"system": spec.system, "user": spec.user},
                "src_item_id": spec.src_item_id,
                "creator": creator,
                "created_at": now,
                "updated_at": now,
            }
        )
        results.append(Inserted(item_id, filename, "created"))

    if rows:
        await insert_many(session, _ITEMS, rows)
        await session.execute(
            update(Dataset)
            .where(Dataset.id == dataset.id)
            .values(items_count=Dataset.items_count + len(rows), updated_at=now)
        )
    if overwritten:
        # one executemany; the SET clause is the other keys of each row
        await session.execute(
            update(_ITEMS).where(_ITEMS.c.id == bindparam("item_id")), overwritten
        )
    for op, action in (("created", "created"), ("overwritten", "updated")):
        done = [r for r in results if r.op == op]
        await events.record_columns(
            session,
            project_id=dataset.project_id,
            resource="item",
            action=action,
            actor=actor.email,
            resource_ids=[r.item_id for r in done],
            payload={"datasetId": dataset.id, "filename": [r.filename for r in done]},
        )
    still_used = {v.blob_id for v in specs if v.blob_id} | {
        v.thumbnail_blob_id for v in specs if v.thumbnail_blob_id
    }
    return results, dropped - still_used


async def create_folder(platform: Platform, actor: Actor, dataset_id: str, path: str) -> Item:
    directory = paths.normalise_dir(path, field="path")
    if directory == "/":
        raise InvalidInput("the root folder always exists", field="path")
    async with platform.db.write() as session:
        dataset = await dataset_for(session, actor, dataset_id, Role.developer, writing=True)
        await ensure_folders(session, actor, dataset, [directory])
        folder = await session.scalar(
            select(Item).where(Item.dataset_id == dataset_id, Item.filename == directory)
        )
    assert folder is not None
    return folder


async def update_item(
    platform: Platform,
    actor: Actor,
    item_id: str,
    *,
    name: str | None = None,
    description: str | None = None,
    user_metadata: dict[str, Any] | None = None,
) -> Item:
    """Rename a file, set its description (``""`` clears it) or replace ``metadata.user``."""
    async with platform.db.write() as session:
        item, dataset = await item_for(
            session, actor, item_id, Role.annotationManager, writing=True
        )
        changed: dict[str, Any] = {}
        if name is not None and name != item.name:
            if item.type == "dir":
                raise InvalidInput("rename a folder by moving its items", field="name")
            directory, new_name = paths.split(paths.join(item.dir, name), field="name")
            if directory != item.dir:
                raise InvalidInput(
                    "a name may not contain '/'; move the item instead", field="name"
                )
            await _check_free(session, dataset.id, paths.join(item.dir, new_name))
            item.name, item.filename = new_name, paths.join(item.dir, new_name)
            changed["filename"] = item.filename
        if description is not None:
            item.description = description or None
            changed["description"] = item.description
        if user_metadata is not None:
            item.metadata_ = {**item.metadata_, "user": check_user_metadata(user_metadata)}
            changed["metadata.user"] = True
        if changed:
            item.updated_at = utcnow()
            await session.flush()
            await events.record(
                session,
                project_id=dataset.project_id,
                resource="item",
                action="updated",
                resource_id=item.id,
                actor=actor.email,
                payload={"datasetId": dataset.id, **changed},
            )
    return item


async def _check_free(session: AsyncSession, dataset_id: str, filename: str) -> None:
    taken = await session.scalar(
        select(Item.id).where(Item.dataset_id == dataset_id, Item.filename == filename)
    )
    if taken is not None:
        raise InvalidInput(f"{filename!r} already exists in the dataset", field="name")


async def _items_in(
    session: AsyncSession, actor: Actor, item_ids: Sequence[str], needed: Role
) -> tuple[Dataset, list[Item]]:
    """The items named, which must all exist and share one dataset the actor may change."""
    if not item_ids:
        raise InvalidInput("no item ids given", field="itemIds")
    unique = list(dict.fromkeys(item_ids))
    items: list[Item] = []
    for start in range(0, len(unique), _CHUNK):
        items.extend(
            await session.scalars(select(Item).where(Item.id.in_(unique[start : start + _CHUNK])))
        )
    found = {i.id for i in items}
    missing = [i for i in unique if i not in found]
    if missing:
        raise NotFound("item", missing[0])
    datasets = {i.dataset_id for i in items}
    if len(datasets) != 1:
        raise InvalidInput("the items belong to more than one dataset", field="itemIds")
    dataset = await dataset_for(session, actor, datasets.pop(), needed, writing=True)
    return dataset, items


class Located(Protocol):
    """Where an item is: what moving and deleting need (an :class:`Item` or a row of its columns)."""

    @property
    def id(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def dir(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def filename(self) -> str: ...


LOCATED = (Item.id, Item.type, Item.dir, Item.name, Item.filename)
_FOLDERS_PER_STATEMENT = 200  # OR-ed folder conditions per DELETE (SQLite's expression depth)


def below(dataset_id: str, folder: str) -> ColumnElement[bool]:
    """Everything inside ``folder``, at any depth."""
    return and_(
        Item.dataset_id == dataset_id,
        or_(Item.dir == folder, Item.dir.startswith(folder + "/", autoescape=True)),
    )


def inside(directory: str, folders: Collection[str]) -> bool:
    """Whether an item in ``directory`` lies inside one of ``folders`` (at any depth)."""
    return bool(folders) and any(a in folders for a in paths.ancestors(directory))


def outermost(chosen: Iterable[Located]) -> set[str]:
    """The paths of the chosen folders that are not inside another chosen folder: an operation on
    a folder takes everything below it, so what is inside comes with the outermost one."""
    folders = {c.filename for c in chosen if c.type == "dir"}
    return {f for f in folders if not inside(paths.split(f)[0], folders)}


async def relocate(
    session: AsyncSession, actor: Actor, dataset: Dataset, chosen: Sequence[Located], target: str
) -> int:
    """Move the chosen items into the existing folder ``target`` in the caller's transaction: files
    by themselves, folders with everything below them (a chosen item inside a chosen folder comes
    with it). Returns how many chosen items changed place.

    The new paths are checked together first, in one statement: a path that is taken, or two items
    that would land on the same path, refuses the whole move.
    """
    carried = outermost(chosen)
    moves: dict[str, Located] = {}
    for item in chosen:
        new_path = paths.join(target, item.name)
        if new_path == item.filename or inside(item.dir, carried):
            continue
        if item.type == "dir" and (target + "/").startswith(item.filename + "/"):
            raise InvalidInput(f"cannot move folder {item.filename!r} into itself", field="toDir")
        if new_path in moves:
            raise InvalidInput(
                f"{moves[new_path].filename!r} and {item.filename!r} would both move to "
                f"{new_path!r}",
                field="toDir",
            )
        moves[new_path] = item
    if not moves:
        return 0
    taken = await items_at(session, dataset.id, list(moves))
    if taken:
        raise InvalidInput(f"{taken[0].filename!r} already exists in the dataset", field="toDir")
    now = utcnow()
    for new_path, item in moves.items():
        if item.type == "dir":
            cut = len(item.filename) + 1  # SQL substr is 1-based
            await session.execute(
                update(_ITEMS)
                .where(below(dataset.id, item.filename))
                .values(
                    dir=new_path + func.substr(_ITEMS.c.dir, cut),
                    filename=new_path + func.substr(_ITEMS.c.filename, cut),
                    updated_at=now,
                )
            )
    await session.execute(
        update(_ITEMS)
        .where(_ITEMS.c.id == bindparam("item_id"))
        .values(dir=target, filename=bindparam("new_filename"), updated_at=now),
        [{"item_id": item.id, "new_filename": path} for path, item in moves.items()],
    )
    await events.record_many(
        session,
        project_id=dataset.project_id,
        resource="item",
        action="updated",
        actor=actor.email,
        changes=[
            (item.id, {"datasetId": dataset.id, "filename": path}) for path, item in moves.items()
        ],
    )
    return len(moves)


async def move_items(
    platform: Platform, actor: Actor, item_ids: Sequence[str], to_dir: str
) -> list[Item]:
    """Move files and folders (with everything below them) into ``to_dir``, made if missing."""
    target = paths.normalise_dir(to_dir, field="toDir")
    async with platform.db.write() as session:
        dataset, chosen = await _items_in(session, actor, item_ids, Role.annotationManager)
        await ensure_folders(session, actor, dataset, [target])
        await relocate(session, actor, dataset, chosen, target)
        ids = [i.id for i in chosen]
        for start in range(0, len(ids), _CHUNK):
            # the moves ran as SQL: load the new places into the objects returned
            await session.scalars(
                select(Item)
                .where(Item.id.in_(ids[start : start + _CHUNK]))
                .execution_options(populate_existing=True)
            )
    return chosen


@dataclass
class Removed:
    """What deleting items took: how many were files, the blobs they used (for
    :func:`blobs.release`) and the tasks that lost items (for :func:`notify.tasks_changed`,
    after the commit)."""

    files: int = 0
    blob_ids: set[str] = field(default_factory=set)
    task_ids: set[str] = field(default_factory=set)

    def add(self, other: Removed) -> None:
        self.files += other.files
        self.blob_ids |= other.blob_ids
        self.task_ids |= other.task_ids


async def remove_items(
    session: AsyncSession, actor: Actor, dataset: Dataset, doomed: ColumnElement[bool]
) -> Removed:
    """Delete the dataset's items matching ``doomed`` in the caller's transaction, with counters
    (the dataset's, and its tasks' items) and events."""
    chosen = [Item.dataset_id == dataset.id, doomed]
    gone = (
        await session.execute(
            select(Item.id, Item.type, Item.filename, Item.annotations_count).where(*chosen)
        )
    ).all()
    blob_ids = await blobs.blob_ids_of(session, doomed)
    task_ids = await drop_items(session, select(Item.id).where(*chosen))
    # annotations go with their items (foreign key cascade)
    await session.execute(delete(Item).where(*chosen).execution_options(synchronize_session=False))
    files = sum(1 for row in gone if row.type == "file")
    await session.execute(
        update(Dataset)
        .where(Dataset.id == dataset.id)
        .values(
            items_count=Dataset.items_count - files,
            annotations_count=Dataset.annotations_count
            - sum(row.annotations_count for row in gone),
            updated_at=utcnow(),
        )
    )
    await events.record_many(
        session,
        project_id=dataset.project_id,
        resource="item",
        action="deleted",
        actor=actor.email,
        changes=[(row.id, {"datasetId": dataset.id, "filename": row.filename}) for row in gone],
    )
    return Removed(files, blob_ids, task_ids)


async def remove_chosen(
    session: AsyncSession, actor: Actor, dataset: Dataset, chosen: Sequence[Located]
) -> Removed:
    """Delete the chosen items, folders with everything below them, as :func:`remove_items` does."""
    removed = await remove_items(session, actor, dataset, Item.id.in_([c.id for c in chosen]))
    folders = sorted(outermost(chosen))
    for start in range(0, len(folders), _FOLDERS_PER_STATEMENT):
        inner = [below(dataset.id, f) for f in folders[start : start + _FOLDERS_PER_STATEMENT]]
        removed.add(await remove_items(session, actor, dataset, or_(*inner)))
    return removed


def removed_from_tasks(platform: Platform, project_id: str, removed: Removed) -> None:
    """Tell the subscribers of the tasks that lost items (after the deleting commit)."""
    if removed.task_ids:
        notify.tasks_changed(platform, project_id, sorted(removed.task_ids))


async def delete_items(platform: Platform, actor: Actor, item_ids: Sequence[str]) -> int:
    """Delete items (a folder with everything below it); returns how many file items went."""
    async with platform.db.write() as session:
        dataset, chosen = await _items_in(session, actor, item_ids, Role.annotationManager)
        removed = await remove_chosen(session, actor, dataset, chosen)
        freed = await blobs.release(session, removed.blob_ids)
    blobs.delete_bytes(platform, freed)
    removed_from_tasks(platform, dataset.project_id, removed)
    return removed.files
