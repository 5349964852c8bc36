"""The built-in ``s3`` driver against a real S3-compatible server (moto, on loopback)."""

from __future__ import annotations

import io

import pytest
from botocore import UNSIGNED

from plugins.builtin.s3_storage import S3Backend
from plugins.manager import Plugins
from plugins.types import StorageBackend, StorageError
from tests.s3 import CREDENTIALS, bucket_fixture, closed_port, s3_client, s3_endpoint_fixture  # noqa: F401


def _open(config: dict, secret: dict | None = CREDENTIALS) -> S3Backend:
    backend = Plugins(entry_points=False).storage_drivers["s3"].open(config, secret)
    assert isinstance(backend, S3Backend) and isinstance(backend, StorageBackend)
    return backend


def test_the_s3_driver_is_built_in() -> None:
    driver = Plugins(entry_points=False).storage_drivers["s3"]
    assert driver.config_fields == ("bucket", "prefix", "region", "endpoint_url")
    assert driver.secret_fields == ("access_key_id", "secret_access_key", "session_token")


def test_put_open_list_delete_below_the_prefix(s3_endpoint, bucket) -> None:
    raw = s3_client(s3_endpoint)
    raw.put_object(Bucket=bucket, Key="outside.txt", Body=b"no")
    raw.put_object(Bucket=bucket, Key="pre/fix-sibling.txt", Body=b"no")
    backend = _open({"bucket": bucket, "prefix": "/pre/fix/", "endpoint_url": s3_endpoint})

    etag = backend.put("/b/two.txt", io.BytesIO(b"second"), 6, "text/plain")
    backend.put("a/one.txt", io.BytesIO(b"first!"), 6)
    backend.put("c.txt", io.BytesIO(b""), 0)
    raw.put_object(Bucket=bucket, Key="pre/fix/folder/", Body=b"")  # a console's folder marker
    assert raw.get_object(Bucket=bucket, Key="pre/fix/b/two.txt")["Body"].read() == b"second"

    backend.page_size = 2  # several pages, still one key order
    listed = list(backend.list())
    assert [(o.key, o.size) for o in listed] == [("a/one.txt", 6), ("b/two.txt", 6), ("c.txt", 0)]
    assert listed[1].etag == etag and all(o.modified is not None for o in listed)
    assert [o.key for o in backend.list("b/")] == ["b/two.txt"]

    assert b"".join(backend.open("b/two.txt")) == b"second"
    assert b"".join(backend.open("b/two.txt", 1, 3)) == b"eco"
    assert b"".join(backend.open("b/two.txt", 4)) == b"nd"
    with pytest.raises(StorageError, match="past its end"):
        list(backend.open("b/two.txt", 100))

    backend.delete("b/two.txt")
    backend.delete("b/two.txt")  # deleting a missing key is no error
    assert [o.key for o in backend.list()] == ["a/one.txt", "c.txt"]
    with pytest.raises(StorageError, match="'b/two.txt'.*does not exist"):
        list(backend.open("b/two.txt"))
    assert sorted(o["Key"] for o in raw.list_objects_v2(Bucket=bucket)["Contents"]) == [
        "outside.txt",
        "pre/fix-sibling.txt",
        "pre/fix/a/one.txt",
        "pre/fix/c.txt",
        "pre/fix/folder/",
    ]


def test_a_missing_bucket_says_so(s3_endpoint) -> None:
    backend = _open({"bucket": "no-such-bucket", "endpoint_url": s3_endpoint})
    with pytest.raises(StorageError) as missing:
        list(backend.list())
    assert "'no-such-bucket'" in str(missing.value) and "does not exist" in str(missing.value)
    with pytest.raises(StorageError):
        backend.put("x", io.BytesIO(b"x"), 1)


def test_an_endpoint_that_does_not_answer_fails_without_leaking_credentials() -> None:
    backend = _open({"bucket": "photos", "endpoint_url": f"http://127.0.0.1:{closed_port()}"})
    for attempt in (lambda: list(backend.list()), lambda: list(backend.open("k"))):
        with pytest.raises(StorageError) as down:
            attempt()
        message = str(down.value)
        assert "could not be reached" in message and "'photos'" in message
        assert all(value not in message for value in CREDENTIALS.values())


@pytest.mark.parametrize(
    ("config", "secret", "expected"),
    [
        ({}, CREDENTIALS, "config.bucket"),
        ({"bucket": 3}, CREDENTIALS, "config.bucket must be a string"),
        ({"bucket": "b", "endpoint_url": "s3.example.com"}, CREDENTIALS, "http"),
        ({"bucket": "b"}, {"access_key_id": "AKIAX"}, "secret_access_key"),
        ({"bucket": "b"}, {"secret_access_key": "shh"}, "access_key_id"),
    ],
)
def test_bad_config_is_refused_before_any_request(config, secret, expected) -> None:
    with pytest.raises(StorageError, match=expected) as refused:
        _open(config, secret)
    assert "shh" not in str(refused.value) and "AKIAX" not in str(refused.value)


def test_without_an_integration_requests_are_unsigned() -> None:
    # the server's own AWS credentials (environment, instance role) are never lent to a project
    public = _open({"bucket": "open-data"}, None)
    assert public.client.meta.config.signature_version is UNSIGNED
    signed = _open({"bucket": "open-data"})
    assert signed.client.meta.config.signature_version is not UNSIGNED
    assert public.prefix == "" and signed.client.meta.region_name == "us-east-1"
