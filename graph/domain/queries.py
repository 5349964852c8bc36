"""DQL over Loopline's resources: the field map of each, and turning query text or Dataloop JSON
into a WHERE clause and sort keys for the domain's list functions.

Field names are Dataloop's wire names (``createdAt``, ``datasetId``); the ``metadata.system.*``
names Dataloop keeps in JSON but Loopline keeps in columns (``metadata.system.mimetype``) are
aliases of those columns, so filters written for dtlpy run unchanged and use the columns' indexes.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any, TypeAlias

from sqlalchemy import ColumnElement, Select, Table, and_, column, select
from sqlalchemy.sql.elements import UnaryExpression
from sqlalchemy.sql.operators import custom_op
from sqlalchemy.types import Float, String

from dql import DQLError, from_json, parse
from dql.ast import And, Query
from dql.compiler import Compiled, FieldMap, Json, Kind, Relation, Scalar, compile_query
from dql.shapes import shape
from graph.db.tables import (
    Annotation,
    Dataset,
    Driver,
    Execution,
    Integration,
    Item,
    Member,
    Ontology,
    Package,
    Project,
    Recipe,
    SavedQuery,
    Service,
    Task,
    TaskItem,
    Trigger,
    User,
)
from graph.domain import reach
from graph.domain.errors import InvalidInput
from graph.domain.paging import Order, Page, keyset_page

# Core columns: building expressions on them costs less than on the ORM attributes
_I, _A, _D = Item.__table__, Annotation.__table__, Dataset.__table__

__all__ = [
    "Stored",
    "annotation_fields",
    "compile_for",
    "compile_text",
    "dataset_fields",
    "driver_fields",
    "execution_fields",
    "fields_for",
    "integration_fields",
    "item_fields",
    "keyset_select",
    "member_fields",
    "ontology_fields",
    "package_fields",
    "parse_query",
    "project_fields",
    "recipe_fields",
    "saved_query_fields",
    "service_fields",
    "task_fields",
    "task_item_fields",
    "trigger_fields",
]


Stored: TypeAlias = frozenset[tuple[str, str, tuple[tuple[str, str], ...]]]
"""JSON paths a database also holds in columns (PostgreSQL's declared indexes, made by
graph/domain/indexes.py): ``(resource, path, ((expression name, column name), ...))``."""


def _json(table: Table, name: str, resource: str, stored: Stored) -> Json:
    """The JSON column ``name`` of ``table``, with the paths under it that ``stored`` has."""
    paths = {}
    for on, path, columns in stored:
        head, *inner = path.split(".")
        if on == resource and head == name:
            paths[tuple(inner)] = {e: _stored_column(table, c, e) for e, c in columns}
    return Json(table.c[name], paths)


def _stored_column(table: Table, name: str, expression: str) -> ColumnElement[Any]:
    """A column the table has in the database but not in its model (a generated column)."""
    found = column(name, Float() if expression == "number" else String())
    found.table = table
    return found


@lru_cache(maxsize=256)
def item_fields(
    dataset_id: str | None = None, stored: Stored = frozenset(), viewed: bool = False
) -> FieldMap:
    """Items; ``annotations`` is the relation to their annotations (in the same dataset);
    ``stored`` the JSON paths held in columns, which comparisons on them read instead;
    ``viewed``: what a viewer sees (``reach.Viewer``, whose ``params`` the statement runs with):
    the relation reaches only its annotations, ``annotated`` and ``annotationsCount`` count
    only them, and ``tasks`` only its places on its consensus copies."""
    columns = {
        "id": Scalar(_I.c.id, "string"),
        "datasetId": Scalar(_I.c.dataset_id, "string"),
        "dir": Scalar(_I.c.dir, "string"),
        "name": Scalar(_I.c.name, "string"),
        "filename": Scalar(_I.c.filename, "string"),
        "type": Scalar(_I.c.type, "string"),
        "hidden": Scalar(_I.c.hidden, "boolean"),
        "mimetype": Scalar(_I.c.mimetype, "string"),
        "size": Scalar(_I.c.size, "integer"),
        "width": Scalar(_I.c.width, "integer"),
        "height": Scalar(_I.c.height, "integer"),
        "url": Scalar(_I.c.url, "string"),
        "annotated": Scalar(_I.c.annotated, "boolean"),
        "annotationsCount": Scalar(_I.c.annotations_count, "integer"),
        "description": Scalar(_I.c.description, "string"),
        "srcItemId": Scalar(_I.c.src_item_id, "string"),
        "creator": Scalar(_I.c.creator, "string"),
        "createdAt": Scalar(_I.c.created_at, "datetime"),
        "updatedAt": Scalar(_I.c.updated_at, "datetime"),
    }
    for name in ("mimetype", "size", "width", "height"):
        columns[f"metadata.system.{name}"] = columns[name]
    narrowed = [] if dataset_id is None else [_A.c.dataset_id == dataset_id]
    places = None
    if viewed:
        narrowed.append(reach.own_work_of_viewer())
        columns["annotated"] = Scalar(reach.own_annotated_of_viewer(), "boolean")
        columns["annotationsCount"] = Scalar(reach.own_annotations_count_of_viewer(), "integer")
        places = reach.own_places_of_viewer()
    scope = None if not narrowed else and_(*narrowed)
    return FieldMap(
        fields=columns,
        json={"metadata": _json(_I, "metadata", "items", stored)},
        relations={
            "annotations": Relation(
                lambda: annotation_fields(dataset_id, stored, viewed), _I.c.id, _A.c.item_id, scope
            ),
            "tasks": Relation(task_item_fields, _I.c.id, TaskItem.__table__.c.item_id, places),
        },
    )


@lru_cache(maxsize=256)
def annotation_fields(
    dataset_id: str | None = None, stored: Stored = frozenset(), viewed: bool = False
) -> FieldMap:
    """Annotations; ``item`` is the relation to the item each is on; ``stored`` and ``viewed``
    as :func:`item_fields` has them (the item's own ``annotations`` are the viewer's too)."""
    columns = {
        "id": Scalar(_A.c.id, "string"),
        "itemId": Scalar(_A.c.item_id, "string"),
        "datasetId": Scalar(_A.c.dataset_id, "string"),
        "type": Scalar(_A.c.type, "string"),
        "label": Scalar(_A.c.label, "string"),
        "objectId": Scalar(_A.c.object_id, "string"),
        "frame": Scalar(_A.c.frame, "integer"),
        "endFrame": Scalar(_A.c.end_frame, "integer"),
        "parentId": Scalar(_A.c.parent_id, "string"),
        "status": Scalar(_A.c.status, "string"),
        "source": Scalar(_A.c.source, "string"),
        "creator": Scalar(_A.c.creator, "string"),
        "modelId": Scalar(_A.c.model_id, "string"),
        "modelName": Scalar(_A.c.model_name, "string"),
        "confidence": Scalar(_A.c.confidence, "number"),
        "executionId": Scalar(_A.c.execution_id, "string"),
        "description": Scalar(_A.c.description, "string"),
        "createdAt": Scalar(_A.c.created_at, "datetime"),
        "updatedAt": Scalar(_A.c.updated_at, "datetime"),
    }
    for dataloop, ours in (
        ("metadata.system.status", "status"),
        ("metadata.system.objectId", "objectId"),
        ("metadata.system.frame", "frame"),
        ("metadata.system.endFrame", "endFrame"),
        ("metadata.system.parentId", "parentId"),
        ("metadata.system.model.model_id", "modelId"),
        ("metadata.system.model.name", "modelName"),
        ("metadata.system.model.confidence", "confidence"),
        ("metadata.user.model.model_id", "modelId"),
        ("metadata.user.model.name", "modelName"),
        ("metadata.user.model.confidence", "confidence"),
        ("model.id", "modelId"),
        ("model.name", "modelName"),
        ("model.confidence", "confidence"),
    ):
        columns[dataloop] = columns[ours]
    scope = None if dataset_id is None else _I.c.dataset_id == dataset_id
    return FieldMap(
        fields=columns,
        json={
            name: _json(_A, name, "annotations", stored)
            for name in ("metadata", "attributes", "coordinates")
        },
        relations={
            "item": Relation(
                lambda: item_fields(dataset_id, stored, viewed), _A.c.item_id, _I.c.id, scope
            )
        },
    )


@lru_cache(maxsize=1)
def dataset_fields() -> FieldMap:
    columns = {
        "id": Scalar(_D.c.id, "string"),
        "projectId": Scalar(_D.c.project_id, "string"),
        "name": Scalar(_D.c.name, "string"),
        "driverId": Scalar(_D.c.driver_id, "string"),
        "recipeId": Scalar(_D.c.recipe_id, "string"),
        "readonly": Scalar(_D.c.readonly, "boolean"),
        "srcDatasetId": Scalar(_D.c.src_dataset_id, "string"),
        "itemsCount": Scalar(_D.c.items_count, "integer"),
        "annotationsCount": Scalar(_D.c.annotations_count, "integer"),
        "creator": Scalar(_D.c.creator, "string"),
        "createdAt": Scalar(_D.c.created_at, "datetime"),
        "updatedAt": Scalar(_D.c.updated_at, "datetime"),
    }
    return FieldMap(fields=columns, json={"metadata": Json(_D.c.metadata)})


def _kind(column: Any) -> Kind:
    try:
        python = column.type.python_type
    except NotImplementedError:  # the id type
        return "string"
    kinds: dict[type, Kind] = {
        bool: "boolean",
        int: "integer",
        float: "number",
        datetime: "datetime",
    }
    return kinds.get(python, "string")


def _fields(table: Table, columns: Mapping[str, str], json: Sequence[str] = ()) -> FieldMap:
    """A field map of ``table``: ``columns`` maps wire names to column names, each of the kind
    its column's type says; ``json`` names JSON columns whose paths are fields."""
    return FieldMap(
        fields={name: Scalar(table.c[c], _kind(table.c[c])) for name, c in columns.items()},
        json={name: Json(table.c[name]) for name in json},
    )


_ENTITY = {"id": "id", "createdAt": "created_at", "updatedAt": "updated_at"}
_OWNED = {**_ENTITY, "projectId": "project_id", "name": "name", "creator": "creator"}


@lru_cache(maxsize=1)
def project_fields() -> FieldMap:
    return _fields(Project.__table__, {**_ENTITY, "name": "name", "creator": "creator"})


@lru_cache(maxsize=1)
def member_fields() -> FieldMap:
    """Members of a project: the membership's role and date, the user's email and name."""
    member, user = Member.__table__, User.__table__
    return FieldMap(
        fields={
            "userId": Scalar(member.c.user_id, "string"),
            "role": Scalar(member.c.role, "string"),
            "createdAt": Scalar(member.c.created_at, "datetime"),
            "email": Scalar(user.c.email, "string"),
            "name": Scalar(user.c.name, "string"),
        }
    )


@lru_cache(maxsize=1)
def integration_fields() -> FieldMap:
    """Integrations; the secret is no field (it is never read back, nor filtered on)."""
    return _fields(Integration.__table__, {**_OWNED, "type": "type"})


@lru_cache(maxsize=1)
def driver_fields() -> FieldMap:
    return _fields(
        Driver.__table__, {**_OWNED, "type": "type", "integrationId": "integration_id"}, ["config"]
    )


@lru_cache(maxsize=1)
def saved_query_fields() -> FieldMap:
    columns = {**_OWNED, "resource": "resource", "dql": "dql", "description": "description"}
    return _fields(SavedQuery.__table__, columns, ["filter"])


@lru_cache(maxsize=1)
def ontology_fields() -> FieldMap:
    return _fields(Ontology.__table__, _OWNED)


@lru_cache(maxsize=1)
def recipe_fields() -> FieldMap:
    columns = {**_OWNED, "ontologyId": "ontology_id", "instructions": "instructions"}
    return _fields(Recipe.__table__, columns)


@lru_cache(maxsize=1)
def task_fields() -> FieldMap:
    columns = {
        **_OWNED,
        "datasetId": "dataset_id",
        "recipeId": "recipe_id",
        "parentTaskId": "parent_task_id",
        "type": "type",
        "status": "status",
        "owner": "owner",
        "dueDate": "due_date",
        "priority": "priority",
        "distribution": "distribution",
        "itemsCount": "items_count",
    }
    return _fields(Task.__table__, columns)


@lru_cache(maxsize=1)
def task_item_fields() -> FieldMap:
    """An item's place in a task, as items see it through ``tasks.any(...)``: ``id`` is the
    task's (Dataloop's ``metadata.system.refs`` entries name the task by ``id``)."""
    columns = {
        "id": "task_id",
        "taskId": "task_id",
        "assignmentId": "assignment_id",
        "status": "status",
        "statusBy": "status_by",
        "statusAt": "status_at",
        "copy": "copy",
        "issue": "issue",
    }
    return _fields(TaskItem.__table__, columns)


@lru_cache(maxsize=1)
def service_fields() -> FieldMap:
    columns = {
        **_OWNED,
        "packageName": "package_name",
        "packageId": "package_id",
        "packageRevision": "package_revision",
        "moduleName": "module_name",
        "concurrency": "concurrency",
        "executionTimeout": "execution_timeout",
        "maxAttempts": "max_attempts",
        "onReset": "on_reset",
        "queue": "queue",
        "active": "active",
    }
    return _fields(Service.__table__, columns)


@lru_cache(maxsize=1)
def trigger_fields() -> FieldMap:
    columns = {
        **_OWNED,
        "type": "type",
        "active": "active",
        "serviceId": "service_id",
        "functionName": "function_name",
        "resource": "resource",
        "executionMode": "execution_mode",
        "cron": "cron",
        "nextAt": "next_at",
        "dql": "dql",
    }
    return _fields(Trigger.__table__, columns, ["input"])


@lru_cache(maxsize=1)
def package_fields() -> FieldMap:
    columns = {**_OWNED, "revision": "revision", "description": "description"}
    return _fields(Package.__table__, columns)


@lru_cache(maxsize=1)
def execution_fields() -> FieldMap:
    """Executions; ``input.item.item_id`` reaches into the input as stored (Dataloop's form)."""
    columns = {
        **_ENTITY,
        "projectId": "project_id",
        "serviceId": "service_id",
        "triggerId": "trigger_id",
        "packageName": "package_name",
        "moduleName": "module_name",
        "functionName": "function_name",
        "queue": "queue",
        "status": "status",
        "progress": "progress",
        "message": "message",
        "action": "action",
        "attempts": "attempts",
        "maxAttempts": "max_attempts",
        "creator": "creator",
        "startedAt": "started_at",
        "endedAt": "ended_at",
    }
    return _fields(Execution.__table__, columns, ["input", "output"])


def _invalid(exc: DQLError) -> InvalidInput:
    details: dict[str, Any] = {}
    for name in ("line", "column", "found", "expected"):
        value = getattr(exc, name, None)
        if value not in (None, ()):
            details[name] = list(value) if isinstance(value, tuple) else value
    if getattr(exc, "field", None):
        details["dqlField"] = exc.field  # type: ignore[attr-defined]
    return InvalidInput(exc.message, field="dql", **details)


_parse = lru_cache(maxsize=1024)(parse)


def parse_query(
    dql: str | None = None,
    dataloop: Mapping[str, Any] | None = None,
    *,
    resource: str = "items",
) -> Query:
    """The query written as DQL text, as a Dataloop JSON filter, or both (ANDed; the text's
    ``order by`` wins). Dataloop's default conditions apply to the JSON form as they do in dtlpy."""
    try:
        text = _parse(dql) if dql else Query()
        if dataloop is None:
            return text
        loop = from_json(dataloop, resource=resource)
    except DQLError as exc:
        raise _invalid(exc) from None
    parts = [q for q in (text.where, loop.where) if q is not None]
    where = None if not parts else parts[0] if len(parts) == 1 else And(tuple(parts))
    return Query(where, text.order or loop.order)


def keyset_select(
    entity: Any,
    where: Sequence[ColumnElement[bool]],
    compiled: Compiled,
    default_order: Sequence[Order],
    default_key: Callable[[Any], Sequence[Any]],
    first: int,
    after: str | None,
    *,
    sort_matches: bool = False,
) -> tuple[Select[Any], Callable[[Sequence[Any]], Page[Any]]]:
    """A keyset-paged SELECT of ``entity`` rows matching ``where`` and the query; run it with
    ``session.execute(...).all()`` and pass the rows to the returned function.

    With an ``order by``, the sort keys are selected beside the row (each as a nulls-last flag
    and the value) and the entity's ``id`` breaks ties; the cursor is that tuple. Without one,
    ``default_order`` and ``default_key`` (a function of the entity) apply.

    ``sort_matches`` (SQLite; see graph/domain/planning.py) keeps the database from reading
    the rows in order through an index on the sort keys: it finds the matches through the
    filter's index and sorts them.
    """
    if compiled.order:
        keys = [e for key in compiled.order for e in (key.nulls_last, key.expression)]
        order = [
            o
            for key in compiled.order
            for o in (Order(key.nulls_last), Order(key.expression, key.descending))
        ]
        order.append(Order(entity.id))
        key_of: Callable[[Any], Sequence[Any]] = lambda row: (*row[1:], row[0].id)  # noqa: E731
    else:
        keys, order = [], list(default_order)
        key_of = lambda row: default_key(row[0])  # noqa: E731
    if sort_matches:
        order = [Order(_unindexed(o.column), o.descending) for o in order]
    query = select(entity, *keys).where(*where, compiled.where)
    paged, finish = keyset_page(query, order, first, after, key_of)

    def entities(rows: Sequence[Any]) -> Page[Any]:
        page = finish(rows)
        return Page([row[0] for row in page.rows], page.has_next, page.cursors)

    return paged, entities


def _unindexed(column: Any) -> Any:
    """SQLite's no-op unary ``+``: the same value, which no index is taken to be sorted by."""
    return UnaryExpression(column, operator=custom_op("+"), type_=column.type)


# each resource's field map: of a dataset's relations, with the JSON paths stored, as viewed
_FIELDS: dict[str, Callable[[str | None, Stored, bool], FieldMap]] = {
    "items": item_fields,
    "annotations": annotation_fields,
    "datasets": lambda *_: dataset_fields(),
    "executions": lambda *_: execution_fields(),
    "services": lambda *_: service_fields(),
    "triggers": lambda *_: trigger_fields(),
    "packages": lambda *_: package_fields(),
    "projects": lambda *_: project_fields(),
    "members": lambda *_: member_fields(),
    "integrations": lambda *_: integration_fields(),
    "drivers": lambda *_: driver_fields(),
    "savedQueries": lambda *_: saved_query_fields(),
    "ontologies": lambda *_: ontology_fields(),
    "recipes": lambda *_: recipe_fields(),
    "tasks": lambda *_: task_fields(),
}


@lru_cache(maxsize=1024)
def _compiled(
    query: Query,
    query_shape: Hashable,
    resource: str,
    dataset_id: str | None,
    dialect: str,
    correlated: bool,
    stored: Stored,
    viewed: bool,
) -> Compiled:
    # ASTs are frozen and hashable, and compiled clauses are immutable: a query a UI pages
    # through, or a trigger evaluates on every event, is compiled once (for every viewer). The
    # shape is part of the key because ASTs compare values as Python does (True == 1, False == 0),
    # and `= true` and `= 1` compile to different SQL.
    fields = _FIELDS[resource](dataset_id, stored, viewed)
    return compile_query(query, fields, dialect, correlated=correlated)


def fields_for(
    resource: str, dataset_id: str | None = None, viewer: reach.Viewer | None = None
) -> FieldMap:
    """The field map of ``resource`` (its relations scoped to one dataset if given, and to what
    ``viewer`` sees: run statements made with them with ``viewer.params``)."""
    return _FIELDS[resource](dataset_id, frozenset(), viewer is not None)


def compile_for(
    query: Query,
    resource: str,
    dialect: str,
    dataset_id: str | None = None,
    *,
    correlated: bool = False,
    stored: Stored = frozenset(),
    viewer: reach.Viewer | None = None,
) -> Compiled:
    """``query`` compiled over ``resource`` (scoped to one dataset's relations if given);
    ``correlated`` as :func:`dql.compiler.compile_query` has it; ``stored`` the JSON paths
    the database holds in columns (``await indexes.stored(session)``), which it then reads:
    the same rows, through their indexes. With ``viewer`` (an annotator: ``Scope.viewer``),
    quantifiers over annotations (``annotations.any(...)``, ``.count(...)``, and those of an
    annotation's ``item``) reach only the annotations it sees, as its lists do, and an item's
    ``annotated``, ``annotationsCount`` and ``tasks`` only its own work on a consensus copy."""
    try:
        compiled = _compiled(
            query,
            shape(query),
            resource,
            dataset_id,
            dialect,
            correlated,
            stored,
            viewer is not None,
        )
    except DQLError as exc:
        raise _invalid(exc) from None
    if viewer is None:
        return compiled
    return Compiled(compiled.where, compiled.order, {**compiled.params, **viewer.params})


def compile_text(dql: str | None, resource: str, dialect: str) -> Compiled:
    """DQL text over one of the project-level lists (datasets, drivers, members, ...)."""
    return compile_for(parse_query(dql, resource=resource), resource, dialect)
