"""Pushing a package folder to a Loopline server: what ``loopline package push`` runs.

The folder (its ``loopline.json`` at the root) is zipped in memory, leaving out hidden files and
folders (``.git``, ``.env``), ``__pycache__`` and compiled files, and posted as the raw body of
``POST /projects/{id}/packages``; the server checks it before storing anything.
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path
from typing import Any

import httpx

__all__ = ["PushFailed", "push_package", "zip_directory"]

_TIMEOUT = httpx.Timeout(60.0, read=600.0)


class PushFailed(Exception):
    """The server refused the archive (``message`` says why) or could not be reached."""


def _kept(name: str) -> bool:
    return not name.startswith(".") and name != "__pycache__" and not name.endswith(".pyc")


def zip_directory(root: Path) -> bytes:
    """The files below ``root`` as a zip, named relative to it, in a stable order."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for directory, folders, names in os.walk(root):
            folders[:] = sorted(f for f in folders if _kept(f))
            for name in sorted(n for n in names if _kept(n)):
                path = Path(directory, name)
                if path.is_file():
                    archive.write(path, path.relative_to(root).as_posix())
    return buffer.getvalue()


def push_package(root: Path, *, server: str, token: str, project_id: str) -> dict[str, Any]:
    """Upload the folder as a package of the project; the server's answer (id, name, revision)."""
    body = zip_directory(root)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/zip"}
    try:
        response = httpx.post(
            f"{server.rstrip('/')}/projects/{project_id}/packages",
            content=body,
            headers=headers,
            timeout=_TIMEOUT,
        )
    except httpx.HTTPError as exc:
        raise PushFailed(f"{server}: {exc}") from None
    if response.status_code != 200:
        try:
            message = str(response.json()["errors"][0]["message"])
        except (ValueError, KeyError, IndexError, TypeError):
            message = f"HTTP {response.status_code}: {response.text[:200]}"
        raise PushFailed(message)
    result: dict[str, Any] = response.json()
    return result
