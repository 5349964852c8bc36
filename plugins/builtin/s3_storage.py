"""The ``s3`` storage driver: a bucket (and a key prefix inside it) on any S3-compatible service.

AWS S3, MinIO, Ceph, R2 and the like. A driver without an integration makes unsigned requests, so it
can read public buckets only: the server's own ambient AWS credentials are never lent to a project.
Timeouts are short and retries few, so a store that does not answer fails a request in seconds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, BinaryIO, NoReturn, TypeVar

import boto3
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ReadTimeoutError
from botocore.exceptions import ConnectionError as EndpointUnreachable

from plugins.hookspecs import hookimpl
from plugins.types import ObjectInfo, StorageDriverType, StorageError

__all__ = ["S3Backend", "open_s3", "register_storage_drivers"]

T = TypeVar("T")

CONFIG_FIELDS = ("bucket", "prefix", "region", "endpoint_url")
SECRET_FIELDS = ("access_key_id", "secret_access_key", "session_token")
_CHUNK = 1 << 20
_CONNECT_TIMEOUT = 3
_READ_TIMEOUT = 10
_ATTEMPTS = 2
_MISSING_BUCKET = {"NoSuchBucket"}
_DENIED = {
    "AccessDenied",
    "AllAccessDisabled",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "403",
}
_MISSING_KEY = {"NoSuchKey", "404", "NotFound"}


@lru_cache(maxsize=32)
def _client(
    endpoint_url: str | None,
    region: str,
    access_key_id: str | None,
    secret_access_key: str | None,
    session_token: str | None,
) -> Any:
    """One client per endpoint and credentials: building one costs tens of milliseconds, and
    clients are thread-safe, so every backend over the same store shares it."""
    config = Config(
        connect_timeout=_CONNECT_TIMEOUT,
        read_timeout=_READ_TIMEOUT,
        retries={"total_max_attempts": _ATTEMPTS, "mode": "standard"},
        # custom endpoints (MinIO, Ceph, an IP address) rarely resolve bucket subdomains
        s3={"addressing_style": "path" if endpoint_url else "auto"},
        signature_version=None if access_key_id else UNSIGNED,
    )
    session = boto3.session.Session()
    return session.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key,
        aws_session_token=session_token,
        config=config,
    )


class S3Backend:
    """Objects of ``bucket`` under ``prefix``; keys given and listed are relative to the prefix."""

    def __init__(
        self, client: Any, bucket: str, prefix: str, where: str, secrets: tuple[str, ...] = ()
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix
        self.page_size = 1000
        self._where = where
        self._secrets = tuple(s for s in secrets if s)

    def _key(self, key: str) -> str:
        return self.prefix + key.lstrip("/")

    def _fail(self, exc: Exception, key: str | None = None) -> NoReturn:
        """Turn a botocore error into a :class:`StorageError` that says what is wrong, and no more."""
        target = f"object {key!r} in {self._where}" if key is not None else self._where
        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            if code in _MISSING_BUCKET:
                message = f"{self._where} does not exist"
            elif code in _DENIED:
                message = f"access to {target} was denied; check the integration's credentials"
            elif code in _MISSING_KEY and key is not None:
                message = f"{target} does not exist"
            elif code == "InvalidRange":
                message = f"the byte range asked of {target} is past its end"
            else:
                message = f"{target} failed: {code} {error.get('Message', '')}".strip()
        elif isinstance(exc, EndpointUnreachable):
            message = f"{self._where} could not be reached ({type(exc).__name__})"
        elif isinstance(exc, ReadTimeoutError | TimeoutError):
            message = f"{self._where} did not answer in time"
        else:
            message = f"{target} failed ({type(exc).__name__})"
        for secret in self._secrets:
            message = message.replace(secret, "***")
        raise StorageError(message) from None

    def _call(self, work: Callable[[], T], key: str | None = None) -> T:
        try:
            return work()
        except (BotoCoreError, ClientError, OSError) as exc:
            self._fail(exc, key)

    def put(
        self, key: str, data: BinaryIO, size: int, content_type: str | None = None
    ) -> str | None:
        full = self._key(key)
        extra = {"ContentType": content_type} if content_type else None
        # the managed transfer switches to multipart for large files and retries parts
        self._call(
            lambda: self.client.upload_fileobj(data, self.bucket, full, ExtraArgs=extra), key
        )
        head = self._call(lambda: self.client.head_object(Bucket=self.bucket, Key=full), key)
        return _etag(head.get("ETag"))

    def open(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        request: dict[str, Any] = {"Bucket": self.bucket, "Key": self._key(key)}
        if start or end is not None:
            request["Range"] = f"bytes={start}-{'' if end is None else end}"
        body = self._call(lambda: self.client.get_object(**request)["Body"], key)
        try:
            while True:
                chunk = self._call(lambda: body.read(_CHUNK), key)
                if not chunk:
                    return
                yield chunk
        finally:
            body.close()

    def delete(self, key: str) -> None:
        full = self._key(key)
        self._call(lambda: self.client.delete_object(Bucket=self.bucket, Key=full), key)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket,
            Prefix=self.prefix + prefix,
            PaginationConfig={"PageSize": self.page_size},
        )
        iterator = iter(pages)
        while True:
            page = self._call(lambda: next(iterator, None))
            if page is None:
                return
            for entry in page.get("Contents", ()):
                key = entry["Key"][len(self.prefix) :]
                if not key or key.endswith("/"):  # folder markers made by consoles hold no file
                    continue
                yield ObjectInfo(
                    key=key,
                    size=int(entry["Size"]),
                    etag=_etag(entry.get("ETag")),
                    modified=_utc(entry.get("LastModified")),
                )


def _utc(value: datetime | None) -> datetime | None:
    return value.astimezone(UTC) if value is not None else None


def _etag(value: str | None) -> str | None:
    return value.strip('"') if value else None


def _text(mapping: Mapping[str, Any] | None, name: str, what: str) -> str | None:
    value = (mapping or {}).get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise StorageError(f"{what}.{name} must be a string")
    return value


def open_s3(config: Mapping[str, Any], secret: Mapping[str, Any] | None) -> S3Backend:
    """Check the config and build a backend; makes no request, so it is cheap and never hangs."""
    bucket = _text(config, "bucket", "config")
    if bucket is None:
        raise StorageError("an s3 driver needs config.bucket, the name of the bucket")
    prefix = (_text(config, "prefix", "config") or "").strip("/")
    endpoint_url = _text(config, "endpoint_url", "config")
    if endpoint_url is not None and not endpoint_url.startswith(("http://", "https://")):
        raise StorageError("config.endpoint_url must be an http:// or https:// URL")
    region = _text(config, "region", "config") or "us-east-1"
    access_key_id = _text(secret, "access_key_id", "secret")
    secret_access_key = _text(secret, "secret_access_key", "secret")
    session_token = _text(secret, "session_token", "secret")
    if secret is not None and (access_key_id is None or secret_access_key is None):
        raise StorageError("an s3 integration needs both access_key_id and secret_access_key")
    client = _client(endpoint_url, region, access_key_id, secret_access_key, session_token)
    where = f"bucket {bucket!r}" + (f" at {endpoint_url}" if endpoint_url else "")
    return S3Backend(
        client,
        bucket,
        prefix + "/" if prefix else "",
        where,
        tuple(s for s in (access_key_id, secret_access_key, session_token) if s),
    )


@hookimpl
def register_storage_drivers() -> list[StorageDriverType]:
    return [
        StorageDriverType(
            name="s3",
            open=open_s3,
            description="A bucket and key prefix on AWS S3 or any S3-compatible service.",
            config_fields=CONFIG_FIELDS,
            secret_fields=SECRET_FIELDS,
        )
    ]
