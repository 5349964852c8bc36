"""Function inputs checked against their declared types before an execution exists.

Values follow Dataloop's wire form: an entity input is a dict of ids (``{"item_id": ...,
"dataset_id": ...}``) or, for convenience, the bare id; scalars and JSON by value. Entities must
exist in the execution's project; they are stored in the full Dataloop form so a worker, a UI and
dtlpy code read the same thing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from graph.db.tables import Annotation, Dataset, Execution, Item
from graph.domain.errors import InvalidInput
from plugins.functions import FunctionIO

__all__ = ["check_inputs"]

# entity type -> (id key in the wire form, table)
_ENTITIES: dict[str, tuple[str, Any]] = {
    "Item": ("item_id", Item),
    "Dataset": ("dataset_id", Dataset),
    "Annotation": ("annotation_id", Annotation),
    "Execution": ("execution_id", Execution),
}


def _scalar_ok(kind: str, value: Any) -> bool:
    if kind == "String":
        return isinstance(value, str)
    if kind == "Boolean":
        return isinstance(value, bool)
    if kind == "Integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind in ("Number", "Float"):
        return isinstance(value, int | float) and not isinstance(value, bool)
    return True  # Json


def _entity_id(kind: str, value: Any, where: str) -> str:
    key = _ENTITIES[kind][0]
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        found = value.get(key, value.get("id"))
        if isinstance(found, str):
            return found
    raise InvalidInput(f"{where} must be a {kind} id or {{{key!r}: id}}", field=where)


async def _rows(
    session: AsyncSession, kind: str, ids: set[str], project_id: str
) -> dict[str, dict[str, str]]:
    """Wire form by id of the entities of ``kind`` among ``ids`` that are in the project."""
    if not ids:
        return {}
    if kind == "Dataset":
        rows = await session.execute(
            select(Dataset.id).where(Dataset.id.in_(ids), Dataset.project_id == project_id)
        )
        return {i: {"dataset_id": i} for (i,) in rows}
    if kind == "Execution":
        rows = await session.execute(
            select(Execution.id).where(Execution.id.in_(ids), Execution.project_id == project_id)
        )
        return {i: {"execution_id": i} for (i,) in rows}
    table = _ENTITIES[kind][1]
    columns = [table.id, table.dataset_id] + ([table.item_id] if table is Annotation else [])
    rows = await session.execute(
        select(*columns)
        .join(Dataset, Dataset.id == table.dataset_id)
        .where(table.id.in_(ids), Dataset.project_id == project_id)
    )
    if table is Annotation:
        return {i: {"annotation_id": i, "item_id": item, "dataset_id": ds} for i, ds, item in rows}
    return {i: {"item_id": i, "dataset_id": ds} for i, ds in rows}


async def check_inputs(
    session: AsyncSession,
    project_id: str,
    declared: Sequence[FunctionIO],
    given: Sequence[Mapping[str, Any]],
    *,
    field: str = "input",
) -> list[dict[str, Any]]:
    """Each of ``given`` checked against ``declared`` and normalised; entities are looked up with
    one query per entity type, whatever the number of inputs."""
    by_name = {io.name: io for io in declared}
    wanted: dict[str, set[str]] = {}
    shaped: list[dict[str, Any]] = []
    for values in given:
        if not isinstance(values, Mapping):
            raise InvalidInput(f"{field} must be an object of input values by name", field=field)
        unknown = sorted(set(values) - set(by_name))
        if unknown:
            names = ", ".join(by_name) or "none"
            raise InvalidInput(
                f"{field}: unknown input {unknown[0]!r}; the function takes: {names}", field=field
            )
        out: dict[str, Any] = {}
        for io in declared:
            where = f"{field}.{io.name}"
            if io.name not in values or values[io.name] is None:
                if io.default is not None:
                    out[io.name] = io.default
                elif io.mandatory:
                    raise InvalidInput(f"{where} ({io.type}) is required", field=where)
                continue
            value = values[io.name]
            kind, many = io.type.removesuffix("[]"), io.type.endswith("[]")
            if many and not isinstance(value, list):
                raise InvalidInput(f"{where} must be a list ({io.type})", field=where)
            elements = value if many else [value]
            if kind == "Model":
                raise InvalidInput(
                    f"{where}: Model inputs arrive with model management", field=where
                )
            if kind in _ENTITIES:
                ids = [_entity_id(kind, v, where) for v in elements]
                wanted.setdefault(kind, set()).update(ids)
                out[io.name] = (kind, ids, many)
            elif not all(_scalar_ok(kind, v) for v in elements):
                raise InvalidInput(f"{where} must be {io.type}, got {value!r:.80}", field=where)
            else:
                out[io.name] = value
        shaped.append(out)
    found = {kind: await _rows(session, kind, ids, project_id) for kind, ids in wanted.items()}
    for out in shaped:
        for name, value in out.items():
            if isinstance(value, tuple):
                kind, ids, many = value
                missing = [i for i in ids if i not in found[kind]]
                if missing:
                    raise InvalidInput(
                        f"{field}.{name}: {kind.lower()} {missing[0]!r} does not exist in the project",
                        field=f"{field}.{name}",
                    )
                entities = [found[kind][i] for i in ids]
                out[name] = entities if many else entities[0]
    return shaped
