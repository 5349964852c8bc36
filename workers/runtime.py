"""What a function's code receives: entity objects, ``progress`` and ``context``.

Functions are plain synchronous Python. Every method here runs the platform's domain operation
(the same one the API runs) as the service's deployer, on the worker's event loop thread; effects
carry the execution's id, so an execution that runs again after a lost worker does not add its
annotations twice (the n-th annotation an execution adds is keyed ``<execution id>:<n>``: keep
the order in which a function adds them deterministic).
"""

from __future__ import annotations

import logging
import tempfile
import threading
from collections.abc import Callable, Coroutine, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from graph.db.tables import Annotation as AnnotationRow
from graph.db.tables import Dataset as DatasetRow
from graph.db.tables import Item as ItemRow
from graph.domain import annotations, content, datasets, items, storage
from graph.domain.access import Actor
from graph.domain.annotations import AnnotationSpec
from graph.domain.platform import Platform

__all__ = ["Annotation", "Context", "Dataset", "Item", "Progress", "Session"]

T = TypeVar("T")


@dataclass
class Session:
    """One attempt of one execution, as its runtime objects see it."""

    platform: Platform
    actor: Actor
    execution_id: str
    attempt: int
    call: Callable[[Coroutine[Any, Any, Any]], Any]
    terminate: threading.Event = field(default_factory=threading.Event)
    _effects: int = 0
    _scratch: Path | None = None

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        result: T = self.call(coroutine)
        return result

    def effect_keys(self, n: int) -> list[str]:
        first, self._effects = self._effects, self._effects + n
        return [f"{self.execution_id}:{i}" for i in range(first, first + n)]

    def scratch(self) -> Path:
        """A folder of this attempt's, removed when it ends."""
        if self._scratch is None:
            self._scratch = Path(tempfile.mkdtemp(prefix=f"loopline-{self.execution_id}-"))
        return self._scratch


class Item:
    """An item: its fields as when loaded (``reload()`` to refresh), its bytes, and writes."""

    def __init__(self, session: Session, row: ItemRow) -> None:
        self._session = session
        self._load(row)

    def _load(self, row: ItemRow) -> None:
        self.id, self.dataset_id = row.id, row.dataset_id
        self.name, self.dir, self.filename = row.name, row.dir, row.filename
        self.type, self.mimetype, self.size = row.type, row.mimetype, row.size
        self.width, self.height, self.url = row.width, row.height, row.url
        self.description = row.description
        self.annotations_count = row.annotations_count
        self.metadata: dict[str, Any] = dict(row.metadata_ or {})

    def __repr__(self) -> str:
        return f"Item({self.id!r}, {self.filename!r})"

    def to_json(self) -> dict[str, str]:
        return {"item_id": self.id, "dataset_id": self.dataset_id}

    def reload(self) -> Item:
        s = self._session
        self._load(s.run(items.get_item(s.platform, s.actor, self.id)))
        return self

    def read_bytes(self) -> bytes:
        """The item's content (from the platform store, its storage driver, or its URL)."""
        return b"".join(self._chunks())

    def _chunks(self) -> Iterator[bytes]:
        s = self._session
        found = s.run(content.item_content(s.platform, s.actor, self.id))
        if found.blob is None:
            import httpx

            with httpx.stream("GET", found.item.url or "", follow_redirects=True, timeout=60) as r:
                r.raise_for_status()
                yield from r.iter_bytes()
            return
        yield from storage.read_blob(s.platform, found.blob, found.driver, found.integration)

    def local_path(self) -> Path:
        """The content written to a local file (kept for this attempt), for libraries that
        want a path."""
        path = self._session.scratch() / self.id / (self.name or "content")
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("wb") as out:
                for chunk in self._chunks():
                    out.write(chunk)
        return path

    def update_metadata(self, user: Mapping[str, Any]) -> Item:
        """Merge ``user`` into ``metadata.user`` (keys set to ``None`` are removed)."""
        merged = dict(self.metadata.get("user") or {})
        for key, value in user.items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        s = self._session
        self._load(s.run(items.update_item(s.platform, s.actor, self.id, user_metadata=merged)))
        return self

    def annotations(self, dql: str | None = None) -> list[Annotation]:
        s = self._session
        where = f'itemId = "{self.id}"' + (f" and ({dql})" if dql else "")
        found: list[Annotation] = []
        after = None
        while True:
            page = s.run(
                annotations.list_annotations(
                    s.platform, s.actor, self.dataset_id, first=1000, after=after, dql=where
                )
            )
            found.extend(Annotation(s, row) for row in page.rows)
            if not page.has_next:
                return found
            after = page.end_cursor

    def add_annotations(self, specs: list[Mapping[str, Any]]) -> list[Annotation]:
        """Add annotations given as dicts of :class:`graph.domain.annotations.AnnotationSpec`
        fields (``type``, ``label``, ``coordinates``, ``attributes``, ``confidence``, ...)."""
        s = self._session
        built = [AnnotationSpec(**{"source": "function", **dict(spec)}) for spec in specs]
        rows = s.run(
            annotations.create_annotations(
                s.platform,
                s.actor,
                self.id,
                built,
                execution_id=s.execution_id,
                effect_keys=s.effect_keys(len(built)),
            )
        )
        return [Annotation(s, row) for row in rows]

    def add_annotation(self, type: str, label: str | None = None, **fields: Any) -> Annotation:
        (added,) = self.add_annotations([{"type": type, "label": label, **fields}])
        return added


class Annotation:
    def __init__(self, session: Session, row: AnnotationRow) -> None:
        self._session = session
        self._load(row)

    def _load(self, row: AnnotationRow) -> None:
        self.id, self.item_id, self.dataset_id = row.id, row.item_id, row.dataset_id
        self.type, self.label = row.type, row.label
        self.coordinates, self.attributes = row.coordinates, row.attributes
        self.confidence, self.status = row.confidence, row.status
        self.metadata: dict[str, Any] = dict(row.metadata_ or {})

    def __repr__(self) -> str:
        return f"Annotation({self.id!r}, {self.type!r}, {self.label!r})"

    def to_json(self) -> dict[str, str]:
        return {"annotation_id": self.id, "item_id": self.item_id, "dataset_id": self.dataset_id}

    def update(self, **changes: Any) -> Annotation:
        s = self._session
        self._load(s.run(annotations.update_annotation(s.platform, s.actor, self.id, changes)))
        return self


class Dataset:
    def __init__(self, session: Session, row: DatasetRow) -> None:
        self._session = session
        self.id, self.name, self.project_id = row.id, row.name, row.project_id
        self.items_count, self.metadata = row.items_count, dict(row.metadata_ or {})

    def __repr__(self) -> str:
        return f"Dataset({self.id!r}, {self.name!r})"

    def to_json(self) -> dict[str, str]:
        return {"dataset_id": self.id}

    def items(self, dql: str | None = None, page_size: int = 500) -> Iterator[Item]:
        """The dataset's items matching ``dql``, page by page (keyset), in list order."""
        s = self._session
        after = None
        while True:
            page = s.run(
                items.list_items(
                    s.platform, s.actor, self.id, first=page_size, after=after, dql=dql
                )
            )
            for row in page.rows:
                yield Item(s, row)
            if not page.has_next:
                return
            after = page.end_cursor


class Progress:
    """``update(progress=40, message="epoch 4")``; ``action`` picks the output branch a pipeline
    follows (one of the function's output actions)."""

    def __init__(self, session: Session, report: Callable[..., None]) -> None:
        self._session = session
        self._report = report

    def update(
        self, progress: int | None = None, message: str | None = None, action: str | None = None
    ) -> None:
        self._report(progress=progress, message=message, action=action)


class Context:
    """The execution a function runs in: ids, a logger whose lines go to the execution's log,
    and ``terminated`` (check it in long loops and return early when it is set)."""

    def __init__(
        self,
        session: Session,
        *,
        project_id: str | None,
        service_id: str | None,
        trigger_id: str | None,
        input: Mapping[str, Any],
        logger: logging.Logger,
    ) -> None:
        self._session = session
        self.execution_id, self.attempt = session.execution_id, session.attempt
        self.project_id, self.service_id, self.trigger_id = project_id, service_id, trigger_id
        self.input = dict(input)
        self.logger = logger

    @property
    def terminated(self) -> bool:
        return self._session.terminate.is_set()

    def dataset(self, dataset_id: str) -> Dataset:
        s = self._session
        return Dataset(s, s.run(datasets.get_dataset(s.platform, s.actor, dataset_id)))
