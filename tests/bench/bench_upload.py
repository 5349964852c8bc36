"""Image upload throughput: the domain layer and the HTTP multipart route, beside the bare work.

Run: ``python -m tests.bench.bench_upload [--copies 10] [--batch 50] [--workers 4]``.

The images are the 100 PASCAL VOC images of the shared test data, each copied ``--copies`` times
with a JPEG comment segment naming the copy inserted after the SOI marker: every file has distinct
content (nothing is deduplicated) while decoding costs exactly what the original does. One more
row uploads the unchanged images ``--copies`` times (content deduplicated) for comparison.

The anchor is the same images only hashed and thumbnailed with Pillow in this process (no
database, no HTTP), once on one thread and once on one thread per core. The design target for
uploads with metadata and a thumbnail is 300 images/s.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from PIL import Image

from graph.config import Settings
from graph.db.migrate import upgrade
from graph.domain import datasets, projects, uploads, users
from graph.domain.access import Actor
from graph.domain.platform import Platform
from graph.upload_client import local_files, upload_dir
from tests.conftest import shared_data

TARGET = 300.0


def distinct_copy(data: bytes, copy: int) -> bytes:
    """``data`` (a JPEG) with a COM segment naming the copy: new bytes, same pixels."""
    comment = f"loopline bench copy {copy}".encode()
    return data[:2] + b"\xff\xfe" + struct.pack(">H", len(comment) + 2) + comment + data[2:]


def bare_work(data: bytes) -> bytes:
    """The anchor: what any uploader must do per image, with nothing around it."""
    hashlib.sha256(data).hexdigest()
    with Image.open(io.BytesIO(data)) as image:
        # the least a 256 px thumbnail needs: the same scaled decode and resize as the platform's
        width, height = image.size
        scale = 256 / max(width, height)
        target = (round(width * scale), round(height * scale))
        image.draft("RGB", (int(target[0] * 0.9) + 1, int(target[1] * 0.9) + 1))
        small = image.resize(target, Image.Resampling.BILINEAR, reducing_gap=None)
        out = io.BytesIO()
        small.save(out, "JPEG", quality=80)
    return out.getvalue()


def timed(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


async def domain_upload(
    home: Path, images: list[tuple[str, bytes]], batch: int, in_flight: int, name: str
) -> float:
    """Seconds to upload ``images`` through ``uploads.upload_files`` on SQLite, in batches of
    ``batch`` with ``in_flight`` calls running at once (what concurrent requests do)."""
    settings = Settings.from_env({"LOOPLINE_HOME": str(home)})
    home.mkdir(parents=True, exist_ok=True)
    platform = Platform.from_settings(settings)
    try:
        await upgrade(platform.db)
        user = await users.create_user(platform, None, f"{name}@bench.test")
        actor = Actor(user.id, user.email)
        project = await projects.create_project(platform, actor, name)
        dataset = await datasets.create_dataset(platform, actor, project.id, name)
        gate = asyncio.Semaphore(in_flight)

        async def one(first: int) -> None:
            async with gate:
                files = [
                    uploads.IncomingFile(path, io.BytesIO(data))
                    for path, data in images[first : first + batch]
                ]
                results = await uploads.upload_files(platform, actor, dataset.id, files)
                assert all(r.op == "created" and r.item.thumbnail_blob_id for r in results)

        start = time.perf_counter()
        await asyncio.gather(*(one(first) for first in range(0, len(images), batch)))
        return time.perf_counter() - start
    finally:
        await platform.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_upload(home: Path, folder: Path, batch: int, workers: int) -> float:
    """Seconds for ``loopline upload``'s client to send ``folder`` to a ``loopline serve``."""
    port = _free_port()
    env = {**os.environ, "LOOPLINE_HOME": str(home), "LOOPLINE_PORT": str(port)}
    log = (home.parent / "server.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-c", "from graph.cli import main; main()", "serve"],
        env=env,
        stdout=log,
        stderr=log,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError(f"the server did not start; see {log.name}")
            time.sleep(0.1)
        token = (home / "admin-token").read_text().strip()
        headers = {"Authorization": f"Bearer {token}"}

        def gql(query: str, variables: dict[str, str]) -> dict:
            response = httpx.post(
                f"{url}/graphql", json={"query": query, "variables": variables}, headers=headers
            )
            body = response.json()
            assert "errors" not in body, body
            return body["data"]

        project = gql('mutation { createProject(name: "bench") { id } }', {})["createProject"]
        dataset = gql(
            'mutation($p: ID!) { createDataset(projectId: $p, name: "bench") { id } }',
            {"p": project["id"]},
        )["createDataset"]
        files = local_files(folder)
        start = time.perf_counter()
        summary = upload_dir(
            folder,
            files,
            server=url,
            token=token,
            dataset_id=dataset["id"],
            batch=batch,
            workers=workers,
        )
        elapsed = time.perf_counter() - start
        assert summary.created == len(files) and not summary.failed, summary
        return elapsed
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--copies", type=int, default=10)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--workers", type=int, default=4, help="concurrent HTTP requests")
    args = parser.parse_args()

    sources = sorted((shared_data() / "voc2007-100" / "images").glob("*.jpg"))
    originals = [(p.name, p.read_bytes()) for p in sources]
    distinct = [
        (f"/c{copy}/{name}", distinct_copy(data, copy))
        for copy in range(args.copies)
        for name, data in originals
    ]
    repeated = [
        (f"/c{copy}/{name}", data) for copy in range(args.copies) for name, data in originals
    ]
    assert len({hashlib.sha256(d).digest() for _, d in distinct}) == len(distinct)
    count = len(distinct)
    cores = os.cpu_count() or 1

    root = Path(tempfile.mkdtemp(prefix="loopline-bench-"))
    try:
        folder = root / "images"
        for path, data in distinct:
            target = folder / path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)

        payloads = [d for _, d in distinct]
        anchor_1 = timed(lambda: [bare_work(d) for d in payloads])
        with ThreadPoolExecutor(cores) as pool:
            anchor_n = timed(lambda: list(pool.map(bare_work, payloads)))
        domain_1 = asyncio.run(domain_upload(root / "d1", distinct, args.batch, 1, "one"))
        domain_2 = asyncio.run(domain_upload(root / "d2", distinct, args.batch, 2, "two"))
        deduped = asyncio.run(domain_upload(root / "dedup", repeated, args.batch, 2, "dedup"))
        http = http_upload(root / "http", folder, args.batch, args.workers)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    rows = [
        ("anchor: sha256 + Pillow thumbnail, 1 thread, no DB", "distinct", anchor_1),
        (f"anchor: sha256 + Pillow thumbnail, {cores} threads, no DB", "distinct", anchor_n),
        ("domain upload_files, SQLite, 1 batch at a time", "distinct", domain_1),
        ("domain upload_files, SQLite, 2 batches at a time", "distinct", domain_2),
        ("domain upload_files, SQLite, 2 batches at a time", "deduplicated", deduped),
        (f"HTTP multipart, uvicorn + SQLite, {args.workers} clients", "distinct", http),
    ]
    print(
        f"\n{count} VOC images (~{sum(map(len, payloads)) // count // 1024} KiB each), "
        f"batches of {args.batch}, {cores} cores; target >= {TARGET:.0f} images/s\n"
    )
    print(f"{'path':58} {'content':13} {'seconds':>8} {'images/s':>9}")
    for label, content, seconds in rows:
        print(f"{label:58} {content:13} {seconds:8.2f} {count / seconds:9.0f}")


if __name__ == "__main__":
    main()
