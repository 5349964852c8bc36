"""Writing an import's annotations a chunk of images at a time, each image whole or not at all.

Every image's annotations are checked first, apart from the database (types, geometry against
the file's size, parents within the file), then the chunk is written in one transaction: the
recipe read once and each image checked against it, the images an earlier attempt of the same
execution wrote left out (their first annotation's key is there), the rest inserted with one
statement and counted. An image that fails a check is reported and left out alone. If the
chunk's write fails all the same (a file deleted meanwhile, a lost attempt still writing), each
image is written on its own so only the images at fault are lost. A chunk costs a bounded number
of statements, whatever its size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from graph.db.ids import new_ids
from graph.db.tables import Annotation, utcnow
from graph.domain import annotations, recipe_check
from graph.domain.access import Actor, Role
from graph.domain.annotation_json import from_dataloop
from graph.domain.annotations import AnnotationSpec
from graph.domain.datasets import dataset_for
from graph.domain.errors import DomainError, InvalidInput
from graph.domain.geometry import Outside
from graph.domain.import_matching import Target
from graph.domain.platform import Platform
from plugins.converters import ItemAnnotations, Problem

__all__ = ["Image", "prepare", "write_chunk"]

_IN_CHUNK = 500  # keys per IN (...) list


@dataclass
class Image:
    """One image of a format matched to a file, its annotations checked and made rows."""

    index: int  # which image of the import: its annotations' keys are "<execution>:<index>:<n>"
    record: ItemAnnotations
    target: Target
    specs: list[AnnotationSpec] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def where(self) -> str:
        return f"{self.record.filename} ({self.target.filename})"


def _parent_of(annotation: dict[str, Any]) -> Any:
    return ((annotation.get("metadata") or {}).get("system") or {}).get("parentId")


def prepare(
    image: Image, dataset_id: str, actor: Actor, execution_id: str, outside: Outside
) -> None:
    """Check the image's annotations and make their rows (parents first, children pointing at
    them: a pose's points); raises the first error, naming its place."""
    given = image.record.annotations
    specs = annotations.checked([from_dataloop(a) for a in given], image.target.size, outside)
    ids = new_ids(len(specs))
    parent_of = [_parent_of(a) for a in given]
    order: Sequence[int] = range(len(given))
    if any(parent is not None for parent in parent_of):
        # a child's parent is an annotation of the file that is no child itself
        parents = {
            a["id"]: i
            for a, i, parent in zip(given, ids, parent_of, strict=True)
            if a.get("id") and parent is None
        }
        order = sorted(order, key=lambda n: parent_of[n] is not None)
        for n in order:
            parent = parent_of[n]
            if parent is None:
                continue
            if parent not in parents:
                raise InvalidInput(f"the parent {parent!r} is not in the file", field="parentId")
            specs[n] = replace(specs[n], parent_id=parents[parent])
    now = utcnow()
    image.specs = specs
    image.rows = [
        annotations.row(
            specs[n],
            ids[n],
            image.target.id,
            dataset_id,
            actor,
            now,
            execution_id=execution_id,
            effect_key=f"{execution_id}:{image.index}:{n}",
        )
        for n in order
    ]


async def _write(
    platform: Platform, actor: Actor, dataset_id: str, images: Sequence[Image]
) -> list[tuple[Image, DomainError]]:
    """One transaction for ``images``; the images the recipe refused, with why."""
    refused: list[tuple[Image, DomainError]] = []
    async with platform.db.write() as session:
        dataset = await dataset_for(
            session, actor, dataset_id, Role.annotationManager, writing=True
        )
        rules = await recipe_check.rules_of(session, dataset)
        allowed = []
        for image in images:
            try:
                recipe_check.check_with(rules, image.specs)
            except DomainError as error:
                refused.append((image, error))
            else:
                allowed.append(image)
        keys = [image.rows[0]["effect_key"] for image in allowed if image.rows]
        done: set[str | None] = set()
        for start in range(0, len(keys), _IN_CHUNK):
            done.update(
                await session.scalars(
                    select(Annotation.effect_key).where(
                        Annotation.effect_key.in_(keys[start : start + _IN_CHUNK])
                    )
                )
            )
        rows = [
            row for image in allowed if image.rows and image.rows[0]["effect_key"] not in done
            for row in image.rows
        ]  # fmt: skip
        await annotations.insert_rows(session, actor, dataset, rows)
    return refused


async def write_chunk(
    platform: Platform,
    actor: Actor,
    dataset_id: str,
    images: Sequence[Image],
    report: Callable[[Problem], None],
) -> int:
    """Write the chunk's images (see the module's docstring); how many annotations they hold
    (written now or by an earlier attempt). What is left out is reported."""
    try:
        refused = await _write(platform, actor, dataset_id, images)
    except (DomainError, IntegrityError) as failure:
        if len(images) > 1:
            return sum(
                [await write_chunk(platform, actor, dataset_id, [i], report) for i in images]
            )
        message = (
            failure.message
            if isinstance(failure, DomainError)
            else "not written: the file was deleted, or its annotations written by another "
            "attempt of the import, meanwhile"
        )
        report(Problem(images[0].where, message))
        return 0
    for image, error in refused:
        report(Problem(image.where, error.message))
    left_out = {id(image) for image, _ in refused}
    return sum(len(image.rows) for image in images if id(image) not in left_out)
