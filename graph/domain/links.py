"""Linked items: items whose content stays at a URL, registered one by one or in bulk from CSV.

A linked item has no blob; ``url`` holds the address and ``metadata.system.linkInfo`` carries
Dataloop's link description (``{"type": "url", "ref": url, "mimetype": ...}``), so clients written
for Dataloop's URL links resolve them the same way.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import math
import mimetypes
import posixpath
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from graph.domain import blobs, items, paths
from graph.domain.access import Actor, Role
from graph.domain.datasets import dataset_for
from graph.domain.errors import InvalidInput
from graph.domain.platform import Platform

__all__ = ["LinkReport", "LinkSpec", "add_links", "link_spec", "links_from_csv"]

_MAX_URL = 8192
# what one insert_items call holds: bounds the memory of a huge registration, not its speed
_BATCH = 20_000
_DEFAULT_LINK_MIMETYPE = "image"  # Dataloop's UrlLink default when nothing can be guessed
_URL_COLUMN = "url"
_PATH_COLUMNS = ("path", "name", "filename")
_BLANK_OR_CONTROL = re.compile(r"[\s\x00-\x1f\x7f]")
# numbers as JSON writes them: no leading zeros (codes like 007 stay text), no bare "." or "+"
_INT = re.compile(r"-?(0|[1-9][0-9]*)")
_FLOAT = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?")


@dataclass(frozen=True)
class LinkSpec:
    """One URL to register; ``path`` defaults to ``/`` + the URL's file name."""

    url: str
    path: str | None = None
    metadata: dict[str, Any] | None = None
    mimetype: str | None = None


@dataclass(frozen=True)
class LinkReport:
    """How many links were created, skipped (path taken, mode skip) or overwritten; ids in order."""

    created: int
    skipped: int
    overwritten: int
    item_ids: list[str] = field(default_factory=list)


def _check_url(url: Any) -> str:
    if not isinstance(url, str) or not url.strip():
        raise InvalidInput("a link needs a URL", field="url")
    url = url.strip()
    if len(url) > _MAX_URL:
        raise InvalidInput(f"the URL is longer than {_MAX_URL} characters", field="url")
    if _BLANK_OR_CONTROL.search(url):
        raise InvalidInput(f"URL {url!r} contains whitespace or control characters", field="url")
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        raise InvalidInput(f"{url!r} is not a valid URL", field="url") from None
    if parts.scheme.lower() not in ("http", "https") or not host:
        raise InvalidInput(f"{url!r} is not an http(s) URL with a host", field="url")
    return url


def _default_name(url: str) -> str:
    """The URL's file name, else its last folder name, else its host."""
    parts = urlsplit(url)
    segments = [unquote(s) for s in parts.path.split("/") if s]
    return segments[-1] if segments else str(parts.hostname)


@functools.lru_cache(maxsize=1024)
def _mimetype_of_suffix(suffix: str) -> str | None:
    """The MIME type a file name's suffix suggests (cached: bulk links share a few suffixes)."""
    return mimetypes.guess_type("name" + suffix, strict=False)[0]


def link_spec(link: LinkSpec) -> items.ItemSpec:
    """The item a link becomes; errors name the link's field (``url``, ``path``, ``metadata``)."""
    url = _check_url(link.url)
    directory, name = paths.split(link.path if link.path else "/" + _default_name(url))
    guessed = link.mimetype or _mimetype_of_suffix(posixpath.splitext(name)[1].lower())
    return items.ItemSpec(
        path=paths.join(directory, name),
        mimetype=guessed,
        url=url,
        system={
            "linkInfo": {"type": "url", "ref": url, "mimetype": guessed or _DEFAULT_LINK_MIMETYPE}
        },
        user=items.check_user_metadata(link.metadata),
    )


@dataclass(frozen=True)
class _Where:
    """How errors name a link: ``links[3].url`` for API input, ``line 7`` of a CSV text."""

    lines: Sequence[int] | None = None

    def name(self, index: int) -> str:
        return f"links[{index}]" if self.lines is None else f"line {self.lines[index]}"

    def error(self, index: int, exc: InvalidInput) -> InvalidInput:
        if self.lines is None:
            return InvalidInput(exc.message, field=f"links[{index}].{exc.details['field']}")
        return InvalidInput(f"line {self.lines[index]}: {exc.message}", field="csv")


class _Checker:
    """Turns links into item specs in order, naming a bad one and refusing a path given twice."""

    def __init__(self, where: _Where) -> None:
        self.where = where
        self.first_at: dict[str, int] = {}

    def specs(self, links: Sequence[LinkSpec], start: int = 0) -> list[items.ItemSpec]:
        """Specs of ``links``, which are the links from index ``start`` on."""
        specs: list[items.ItemSpec] = []
        for index, link in enumerate(links, start):
            try:
                spec = link_spec(link)
                earlier = self.first_at.setdefault(spec.path, index)
                if earlier != index:
                    raise InvalidInput(
                        f"path {spec.path!r} is also the path of {self.where.name(earlier)}; "
                        "give each link its own path",
                        field="path",
                    )
            except InvalidInput as exc:
                raise self.where.error(index, exc) from None
            specs.append(spec)
        return specs


async def add_links(
    platform: Platform,
    actor: Actor,
    dataset_id: str,
    links: Sequence[LinkSpec],
    mode: str = "skip",
) -> LinkReport:
    """Register URL items in one transaction; a path that exists is skipped or overwritten.

    Links are checked and written in batches, so a huge registration holds one batch of rows in
    memory; a bad link anywhere rolls the whole registration back. Overwriting a file item with
    a link frees its bytes if nothing else uses them.
    """
    clash = items.check_mode(mode)
    checker = _Checker(_Where())
    results: list[items.Inserted] = []
    dropped: set[str] = set()
    async with platform.db.write() as session:
        dataset = await dataset_for(session, actor, dataset_id, Role.developer, writing=True)
        for start in range(0, len(links), _BATCH):
            specs = checker.specs(links[start : start + _BATCH], start)
            done, unused = await items.insert_items(session, actor, dataset, specs, clash)
            results.extend(done)
            dropped |= unused
        freed = await blobs.release(session, dropped)
    blobs.delete_bytes(platform, freed)
    ops = [r.op for r in results]
    return LinkReport(
        created=ops.count("created"),
        skipped=ops.count("skipped"),
        overwritten=ops.count("overwritten"),
        item_ids=[r.item_id for r in results],
    )


# --- CSV ------------------------------------------------------------------------------------------


def _value(raw: str) -> Any:
    """A CSV cell as metadata: an integer, a finite float, true/false (any case), else the text."""
    if _INT.fullmatch(raw):
        return int(raw)
    if _FLOAT.fullmatch(raw):
        number = float(raw)
        if math.isfinite(number):
            return number
    lowered = raw.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    return raw


def _records(text: str) -> Iterator[tuple[int, list[str]]]:
    """Non-blank CSV records with the line each starts on (quoted cells may span lines)."""
    reader = csv.reader(io.StringIO(text))
    start = 1
    try:
        for record in reader:
            if any(cell.strip() for cell in record):
                yield start, record
            start = reader.line_num + 1
    except csv.Error as exc:
        raise InvalidInput(f"line {reader.line_num}: {exc}", field="csv") from None


@dataclass(frozen=True)
class _Columns:
    url: int
    path: int | None
    metadata: int | None
    mimetype: int | None
    extra: list[tuple[int, str]]


def _columns(header: list[str], line: int) -> _Columns:
    names = [cell.strip() for cell in header]
    keys = [name.lower() for name in names]
    for index, name in enumerate(names):
        if not name:
            raise InvalidInput(f"line {line}: column {index + 1} has no name", field="csv")
        if keys.index(name.lower()) != index:
            raise InvalidInput(f"line {line}: column {name!r} appears twice", field="csv")
    if _URL_COLUMN not in keys:
        raise InvalidInput(
            f"line {line}: the header needs a url column; it has {', '.join(names)}", field="csv"
        )
    path = next((keys.index(c) for c in _PATH_COLUMNS if c in keys), None)
    metadata = keys.index("metadata") if "metadata" in keys else None
    mimetype = keys.index("mimetype") if "mimetype" in keys else None
    known = {keys.index(_URL_COLUMN), path, metadata, mimetype}
    return _Columns(
        url=keys.index(_URL_COLUMN),
        path=path,
        metadata=metadata,
        mimetype=mimetype,
        extra=[(i, n) for i, n in enumerate(names) if i not in known],
    )


def _link_of_row(row: list[str], columns: _Columns, line: int) -> LinkSpec:
    def cell(index: int | None) -> str:
        return row[index].strip() if index is not None and index < len(row) else ""

    user: dict[str, Any] = {}
    raw = cell(columns.metadata)
    if raw:
        try:
            user = json.loads(raw)
        except ValueError as exc:
            raise InvalidInput(
                f"line {line}: the metadata column is not valid JSON ({exc})", field="csv"
            ) from None
        if not isinstance(user, dict):
            raise InvalidInput(
                f"line {line}: the metadata column must hold a JSON object", field="csv"
            )
    for index, name in columns.extra:
        value = cell(index)
        if value:
            user[name] = _value(value)
    return LinkSpec(
        url=cell(columns.url),
        path=cell(columns.path) or None,
        metadata=user,
        mimetype=cell(columns.mimetype) or None,
    )


def links_from_csv(text: str) -> list[LinkSpec]:
    """Links from CSV text with a header row.

    Columns: ``url`` (required); ``path`` (or ``name`` / ``filename``), ``mimetype``; ``metadata``
    holding a JSON object that becomes the user metadata; every other column sets one user
    metadata key on top of it (numbers and true/false parsed, empty cells left out). Errors name
    the CSV line.
    """
    records = _records(text)
    header = next(records, None)
    if header is None:
        raise InvalidInput("line 1: the CSV is empty; it needs a header with a url column", "csv")
    header_line, names = header
    columns = _columns(names, header_line)
    width = len(names)
    links: list[LinkSpec] = []
    lines: list[int] = []
    for line, row in records:
        if len(row) > width:
            raise InvalidInput(f"line {line}: {len(row)} values for {width} columns", field="csv")
        links.append(_link_of_row(row, columns, line))
        lines.append(line)
    _Checker(_Where(lines)).specs(links)
    return links
