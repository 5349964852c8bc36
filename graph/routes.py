"""Binary content beside GraphQL: upload, stream and thumbnail routes.

- ``POST /datasets/{id}/items?path=/a/b.jpg&mode=skip`` with the raw file as body (streamed to
  disk, for large files; ``Content-Type`` is the claimed type) -> the item, ``x-item-op`` header.
- ``POST /datasets/{id}/items`` with ``multipart/form-data``: ``file`` parts (names may hold
  sub-folders, ``a/b.jpg``), optional ``dir``, ``mode`` and ``metadata`` (JSON, ``metadata.user``
  of every file) -> a JSON list. The whole request may not exceed ``max_upload_bytes``.
- ``POST /projects/{id}/packages`` with a package archive (a zip with ``loopline.json``) as the
  raw body, or as the multipart part ``archive`` -> the package (``id``, ``name``, ``revision``).
  A bad archive answers 400 saying what is wrong and where; one over ``max_package_bytes``, 413.
- ``POST /datasets/{id}/imports?format=coco&outOfBounds=clip&withImages=true`` with an
  annotation archive (a zip; with ``withImages``, its images too) as the raw body, or as the
  multipart part ``archive`` -> the import's execution (``id``, ``status``); over
  ``max_import_bytes``, 413; an unsafe archive, 400.
- ``GET /items/{id}/stream`` -> the bytes, with ranges; a linked item redirects to its URL.
- ``GET /items/{id}/thumbnail`` -> the JPEG thumbnail.
- ``GET /executions/{id}/export`` -> the zip archive a finished export wrote, with ranges.

Every route needs ``Authorization: Bearer <token>``. Errors are JSON shaped like GraphQL's,
``{"errors": [{"message", "extensions": {"code"}}]}``, with the HTTP status of the code.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, BinaryIO, TypeVar
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route
from starlette.types import Message, Receive

from graph.api.context import bearer_token
from graph.api.scalars import iso
from graph.domain import content, imports, items, operations, packages, paths, storage, uploads
from graph.domain.access import Actor
from graph.domain.errors import DomainError, InvalidInput
from graph.domain.platform import Platform
from graph.domain.users import authenticate

__all__ = ["binary_routes"]

log = logging.getLogger(__name__)

_STATUS = {
    "INVALID_INPUT": 400,
    "UNAUTHENTICATED": 401,
    "FORBIDDEN": 403,
    "NOT_FOUND": 404,
    "CONFLICT": 409,
    "PAYLOAD_TOO_LARGE": 413,
    "STORAGE_UNAVAILABLE": 502,
}
_MAX_FILES_PER_REQUEST = 1000
_MAX_FORM_FIELDS = 20
Handler = Callable[[Request, Platform], Awaitable[Response]]
T = TypeVar("T")


def binary_routes() -> list[BaseRoute]:
    return [
        Route("/datasets/{dataset_id}/items", _endpoint(_upload), methods=["POST"]),
        Route("/projects/{project_id}/packages", _endpoint(_push_package), methods=["POST"]),
        Route("/datasets/{dataset_id}/imports", _endpoint(_import), methods=["POST"]),
        Route("/items/{item_id}/stream", _endpoint(_stream), methods=["GET"]),
        Route("/items/{item_id}/thumbnail", _endpoint(_thumbnail), methods=["GET"]),
        Route("/executions/{execution_id}/export", _endpoint(_export), methods=["GET"]),
    ]


# --- errors and auth ------------------------------------------------------------------------------


def _error(status: int, code: str, message: str, **details: Any) -> JSONResponse:
    extensions = {"code": code, **{k: v for k, v in details.items() if v is not None}}
    headers = {"www-authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(
        {"errors": [{"message": message, "extensions": extensions}]}, status, headers=headers
    )


def _endpoint(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Run ``handler`` with the platform; turn every failure into a JSON error response."""

    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request, request.app.state.platform)
        except DomainError as exc:
            return _error(_STATUS.get(exc.code, 400), exc.code, exc.message, **exc.details)
        except HTTPException as exc:  # starlette's multipart parser refusing malformed input
            return _error(exc.status_code, "INVALID_INPUT", str(exc.detail))
        except ClientDisconnect:
            return _error(400, "INVALID_INPUT", "the client went away during the upload")
        except Exception:
            log.exception("unexpected error in %s %s", request.method, request.url.path)
            return _error(500, "INTERNAL", "internal error; the server log has the details")

    return endpoint


async def _actor(request: Request, platform: Platform) -> Actor:
    return await authenticate(platform, bearer_token(request.headers.get("authorization")))


# --- upload ---------------------------------------------------------------------------------------


class _BodyReader:
    """A blocking ``read()`` over the request body, so a worker thread can stage it as it arrives."""

    def __init__(self, request: Request) -> None:
        self._chunks = request.stream().__aiter__()
        self._loop = asyncio.get_running_loop()

    async def _next(self) -> bytes:
        async for chunk in self._chunks:
            if chunk:
                return chunk
        return b""

    def read(self, size: int = -1) -> bytes:
        return asyncio.run_coroutine_threadsafe(self._next(), self._loop).result()


def _capped(receive: Receive, limit: int) -> Receive:
    """``receive`` that refuses a body growing past ``limit`` bytes, whatever it declared."""
    seen = 0

    async def capped() -> Message:
        nonlocal seen
        message = await receive()
        seen += len(message.get("body", b""))
        if seen > limit:
            raise uploads.TooLarge(
                f"the request body is larger than the limit of {limit} bytes",
                field="body",
                limit=limit,
            )
        return message

    return capped


def _check_declared_length(request: Request, limit: int) -> None:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise uploads.TooLarge(
            f"the request body ({declared} bytes) is larger than the limit of {limit} bytes",
            field="body",
            limit=limit,
        )


def _json_object(raw: Any, field: str) -> dict[str, Any] | None:
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        raise InvalidInput(f"{field} must be a JSON text field, not a file", field=field)
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise InvalidInput(f"{field} is not valid JSON: {exc}", field=field) from None
    return items.check_user_metadata(value, field=field)


def _summary(result: uploads.UploadResult) -> dict[str, Any]:
    item = result.item
    return {
        "id": item.id,
        "datasetId": item.dataset_id,
        "type": item.type,
        "dir": item.dir,
        "name": item.name,
        "filename": item.filename,
        "mimetype": item.mimetype,
        "size": item.size,
        "width": item.width,
        "height": item.height,
        "description": item.description,
        "metadata": {
            "system": items.system_metadata(item),
            "user": item.metadata_.get("user") or {},
        },
        "stream": f"/items/{item.id}/stream",
        "thumbnail": f"/items/{item.id}/thumbnail" if item.thumbnail_blob_id else None,
        "createdAt": iso(item.created_at),
        "updatedAt": iso(item.updated_at),
        "op": result.op,
    }


async def _upload(request: Request, platform: Platform) -> Response:
    actor = await _actor(request, platform)
    dataset_id = request.path_params["dataset_id"]
    limit = platform.settings.max_upload_bytes
    _check_declared_length(request, limit)
    if request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        return await _upload_batch(request, platform, actor, dataset_id, limit)
    return await _upload_one(request, platform, actor, dataset_id)


async def _upload_one(
    request: Request, platform: Platform, actor: Actor, dataset_id: str
) -> Response:
    query = request.query_params
    path = query.get("path")
    if not path:
        raise InvalidInput("name the file with the query parameter path, e.g. ?path=/a/b.jpg")
    paths.split(path, field="path")
    mode = items.check_mode(query.get("mode") or "skip")
    metadata = _json_object(query.get("metadata"), "metadata")
    await uploads.writable_dataset(platform, actor, dataset_id)
    staged = await uploads.stage(platform, _BodyReader(request), field="body")
    incoming = uploads.IncomingFile(
        path,
        staged,
        mimetype=request.headers.get("content-type"),
        metadata=metadata,
        description=query.get("description"),
    )
    [result] = await uploads.upload_files(platform, actor, dataset_id, [incoming], mode)
    return JSONResponse(_summary(result), headers={"x-item-op": result.op})


async def _upload_batch(
    request: Request, platform: Platform, actor: Actor, dataset_id: str, limit: int
) -> Response:
    await uploads.writable_dataset(platform, actor, dataset_id)
    capped = Request(request.scope, _capped(request.receive, limit))
    async with capped.form(max_files=_MAX_FILES_PER_REQUEST, max_fields=_MAX_FORM_FIELDS) as form:
        parts = form.getlist("file")
        if not parts:
            raise InvalidInput("send the files as form parts named 'file'", field="file")
        directory = form.get("dir") or request.query_params.get("dir") or "/"
        mode = form.get("mode") or request.query_params.get("mode") or "skip"
        if not isinstance(directory, str) or not isinstance(mode, str):
            raise InvalidInput("dir and mode must be text fields", field="dir")
        metadata = _json_object(form.get("metadata"), "metadata")
        files = []
        for index, part in enumerate(parts):
            if not isinstance(part, UploadFile):
                raise InvalidInput("every 'file' part must be a file", field=f"file[{index}]")
            files.append(
                uploads.IncomingFile(
                    uploads.remote_path(directory, part.filename, field=f"file[{index}]"),
                    part.file,
                    mimetype=part.content_type,
                    metadata=metadata,
                )
            )
        results = await uploads.upload_files(platform, actor, dataset_id, files, mode)
    return JSONResponse([_summary(r) for r in results])


# --- packages -------------------------------------------------------------------------------------


async def _push_package(request: Request, platform: Platform) -> Response:
    actor = await _actor(request, platform)
    project_id = request.path_params["project_id"]
    await packages.may_upload(platform, actor, project_id)
    package = await _received(
        request,
        platform,
        platform.settings.max_package_bytes,
        lambda archive: packages.upload_package(platform, actor, project_id, archive),
    )
    return JSONResponse(
        {
            "id": package.id,
            "projectId": package.project_id,
            "name": package.name,
            "revision": package.revision,
            "description": package.description,
        }
    )


async def _received(
    request: Request,
    platform: Platform,
    limit: int,
    store: Callable[[BinaryIO], Awaitable[T]],
) -> T:
    """The archive of a raw body or of the multipart part ``archive``, handed to ``store``."""
    _check_declared_length(request, limit)
    if request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        capped = Request(request.scope, _capped(request.receive, limit))
        async with capped.form(max_files=1, max_fields=_MAX_FORM_FIELDS) as form:
            part = form.get("archive")
            if not isinstance(part, UploadFile):
                raise InvalidInput(
                    "send the archive as a file part named 'archive'", field="archive"
                )
            return await store(part.file)
    return await store(_BodyReader(request))


def _flag(request: Request, name: str) -> bool:
    value = request.query_params.get(name, "false").lower()
    if value not in ("true", "false", "1", "0"):
        raise InvalidInput(f"{name} is true or false", field=name)
    return value in ("true", "1")


async def _import(request: Request, platform: Platform) -> Response:
    actor = await _actor(request, platform)
    dataset_id = request.path_params["dataset_id"]
    input = {
        "datasetId": dataset_id,
        "format": request.query_params.get("format", ""),
        "outOfBounds": request.query_params.get("outOfBounds", "reject"),
        "withImages": _flag(request, "withImages"),
        "blobId": "pending",
    }
    imports.check_input(platform, input)  # before the bytes arrive
    if input["withImages"]:  # uploading needs the developer role: refused before the bytes too
        await uploads.writable_dataset(platform, actor, dataset_id)
    input["blobId"] = await _received(
        request,
        platform,
        platform.settings.max_import_bytes,
        lambda archive: imports.receive_archive(platform, actor, dataset_id, archive),
    )
    execution = await operations.start(platform, actor, imports.FUNCTION, input)
    return JSONResponse({"id": execution.id, "status": execution.status})


# --- download -------------------------------------------------------------------------------------


class _Unsatisfiable(Exception):
    pass


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The one range ``header`` asks for as inclusive ``(start, end)``, or None for the whole.

    Headers that do not parse, and multi-range requests, are ignored (the whole body is a valid
    answer); a range that misses the content raises ``_Unsatisfiable``.
    """
    if not header:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash or not (first.isdigit() or last.isdigit()):
        return None
    if not first:  # suffix: the last N bytes
        length = int(last)
        if length == 0 or size == 0:
            raise _Unsatisfiable
        return max(0, size - length), size - 1
    if last and not last.isdigit():
        return None
    start = int(first)
    if last and int(last) < start:
        return None
    if start >= size:
        raise _Unsatisfiable
    return start, size - 1 if not last else min(int(last), size - 1)


def _etag(found: content.Content) -> str:
    blob = found.blob
    assert blob is not None
    return f'"{blob.sha256 or blob.etag or blob.id}"'


async def _send(
    request: Request,
    platform: Platform,
    found: content.Content,
    mimetype: str,
    *,
    ranges: bool,
    disposition: str = "inline",
) -> Response:
    """The blob's bytes, streamed from a worker thread; with ``ranges``, honours ``Range``."""
    blob = found.blob
    assert blob is not None
    size = blob.size
    etag = _etag(found)
    headers = {"etag": etag, "cache-control": "private, no-cache"}
    if ranges:
        headers["accept-ranges"] = "bytes"
        headers["content-disposition"] = f"{disposition}; filename*=UTF-8''{quote(found.name)}"
    if etag in (t.strip() for t in request.headers.get("if-none-match", "").split(",")):
        return Response(status_code=304, headers=headers)
    status, start, end = 200, 0, size - 1
    if ranges and request.headers.get("if-range", etag) == etag:
        try:
            wanted = _byte_range(request.headers.get("range"), size)
        except _Unsatisfiable:
            return Response(
                status_code=416, headers={**headers, "content-range": f"bytes */{size}"}
            )
        if wanted is not None:
            status, (start, end) = 206, wanted
            headers["content-range"] = f"bytes {start}-{end}/{size}"
    headers["content-length"] = str(end - start + 1)
    if request.method == "HEAD" or end < start:
        return Response(status_code=status, headers=headers, media_type=mimetype)
    chunks = storage.read_blob(platform, blob, found.driver, found.integration, start, end)
    first: bytes = await run_in_threadpool(next, chunks, b"")  # storage errors answer 502 here
    body: Iterator[bytes] = itertools.chain([first], chunks)
    return StreamingResponse(body, status_code=status, headers=headers, media_type=mimetype)


async def _stream(request: Request, platform: Platform) -> Response:
    actor = await _actor(request, platform)
    found = await content.item_content(platform, actor, request.path_params["item_id"])
    assert found.item is not None
    if found.blob is None:
        assert found.item.url is not None
        return RedirectResponse(found.item.url, status_code=302)
    mimetype = found.item.mimetype or "application/octet-stream"
    return await _send(request, platform, found, mimetype, ranges=True)


async def _thumbnail(request: Request, platform: Platform) -> Response:
    actor = await _actor(request, platform)
    found = await content.thumbnail_content(platform, actor, request.path_params["item_id"])
    return await _send(request, platform, found, "image/jpeg", ranges=False)


async def _export(request: Request, platform: Platform) -> Response:
    actor = await _actor(request, platform)
    found = await content.export_content(platform, actor, request.path_params["execution_id"])
    return await _send(
        request, platform, found, "application/zip", ranges=True, disposition="attachment"
    )
