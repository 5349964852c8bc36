"""A real S3-compatible server for the tests: moto's, on loopback, one per test session.

Import the fixtures into a test module to use them as ``s3_endpoint`` and ``bucket``:
``from tests.s3 import bucket_fixture, s3_endpoint_fixture  # noqa: F401``.
"""

from __future__ import annotations

import logging
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import pytest

__all__ = [
    "CREDENTIALS",
    "bucket_fixture",
    "closed_port",
    "free_port",
    "moto_s3_server",
    "s3_client",
    "s3_endpoint_fixture",
]

# moto accepts any credentials; these are distinctive so tests can prove they never leak
CREDENTIALS = {
    "access_key_id": "AKIALOOPLINETEST0001",
    "secret_access_key": "loopline-test-secret-4f1b2c9e7d",
}


def free_port() -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


closed_port = free_port  # a port that refuses connections: the endpoint of a store that is down


@contextmanager
def moto_s3_server() -> Iterator[str]:
    """Run moto's S3-compatible server on 127.0.0.1 and yield its endpoint URL."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request is noise
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def s3_client(endpoint: str) -> Any:
    """A boto3 client on the test server, to put objects into buckets the way a user would."""
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=CREDENTIALS["access_key_id"],
        aws_secret_access_key=CREDENTIALS["secret_access_key"],
    )


@pytest.fixture(scope="session", name="s3_endpoint")
def s3_endpoint_fixture() -> Iterator[str]:
    with moto_s3_server() as endpoint:
        yield endpoint


@pytest.fixture(name="bucket")
def bucket_fixture(s3_endpoint: str) -> str:
    """A new, empty bucket for one test."""
    name = f"test-{uuid.uuid4().hex[:16]}"
    s3_client(s3_endpoint).create_bucket(Bucket=name)
    return name
