"""Uploading a local folder to a Loopline server over HTTP: what ``loopline upload`` runs.

Files go in batches to the multipart route (one transaction per batch), several batches at a
time. A batch the server refuses as bad input (a bad name, a file over the limit) is retried file
by file, so one bad file costs only itself. Hidden files and folders (``.name``) are left out.
"""

from __future__ import annotations

import mimetypes
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx

__all__ = ["Summary", "batches", "local_files", "upload_dir"]

_MAX_BATCH_BYTES = 64 << 20  # a batch is one request the server holds before it commits
_TIMEOUT = httpx.Timeout(60.0, read=600.0)
_RETRY_ONE_BY_ONE = (400, 413)


@dataclass
class Summary:
    """Counts by outcome, and the reasons of failures (``path: message``)."""

    created: int = 0
    skipped: int = 0
    overwritten: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, other: Summary) -> None:
        self.created += other.created
        self.skipped += other.skipped
        self.overwritten += other.overwritten
        self.failed += other.failed
        self.errors.extend(other.errors)

    @property
    def total(self) -> int:
        return self.created + self.skipped + self.overwritten + self.failed


def local_files(root: Path) -> list[Path]:
    """Regular files below ``root``, sorted, without hidden files or folders."""
    found: list[Path] = []
    for directory, folders, names in os.walk(root):
        folders[:] = sorted(f for f in folders if not f.startswith("."))
        found.extend(
            Path(directory, n)
            for n in sorted(names)
            if not n.startswith(".") and Path(directory, n).is_file()
        )
    return found


def batches(
    files: Sequence[Path], size: int, max_bytes: int = _MAX_BATCH_BYTES
) -> Iterator[list[Path]]:
    """Groups of at most ``size`` files and (unless one file alone is bigger) ``max_bytes``."""
    batch: list[Path] = []
    weight = 0
    for path in files:
        length = path.stat().st_size
        if batch and (len(batch) >= size or weight + length > max_bytes):
            yield batch
            batch, weight = [], 0
        batch.append(path)
        weight += length
    if batch:
        yield batch


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json()["errors"][0]["message"])
    except (ValueError, KeyError, IndexError, TypeError):
        return f"HTTP {response.status_code}: {response.text[:200]}"


class _Sender:
    def __init__(
        self, http: httpx.Client, root: Path, dataset_id: str, remote_dir: str, mode: str
    ) -> None:
        self.http, self.root = http, root
        self.url = f"/datasets/{dataset_id}/items"
        self.form = {"dir": remote_dir, "mode": mode}

    def send(self, batch: list[Path]) -> Summary:
        names = [path.relative_to(self.root).as_posix() for path in batch]
        try:
            with ExitStack() as stack:
                parts = [
                    ("file", (name, stack.enter_context(path.open("rb")), _claim(name)))
                    for name, path in zip(names, batch, strict=True)
                ]
                response = self.http.post(self.url, data=self.form, files=parts)
        except (httpx.HTTPError, OSError) as exc:
            return Summary(failed=len(batch), errors=[f"{names[0]}...: {exc}"])
        if response.status_code == 200:
            summary = Summary()
            for result in response.json():
                op = result["op"]
                setattr(summary, op, getattr(summary, op) + 1)
            return summary
        if response.status_code in _RETRY_ONE_BY_ONE and len(batch) > 1:
            summary = Summary()
            for path in batch:
                summary.add(self.send([path]))
            return summary
        where = names[0] if len(names) == 1 else f"{names[0]} and {len(names) - 1} more"
        return Summary(failed=len(batch), errors=[f"{where}: {_message(response)}"])


def _claim(name: str) -> str:
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


def upload_dir(
    root: Path,
    files: Sequence[Path],
    *,
    server: str,
    token: str,
    dataset_id: str,
    remote_dir: str = "/",
    mode: str = "skip",
    batch: int = 50,
    workers: int = 4,
    progress: Callable[[int], None] = lambda done: None,
) -> Summary:
    """Upload ``files`` (below ``root``) keeping their folders under ``remote_dir``."""
    summary = Summary()
    headers = {"Authorization": f"Bearer {token}"}
    with (
        httpx.Client(base_url=server, headers=headers, timeout=_TIMEOUT) as http,
        ThreadPoolExecutor(max_workers=workers) as pool,
    ):
        sender = _Sender(http, root, dataset_id, remote_dir, mode)
        pending = {pool.submit(sender.send, b): len(b) for b in batches(files, batch)}
        for done in as_completed(pending):
            summary.add(done.result())
            progress(pending[done])
    return summary
