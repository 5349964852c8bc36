"""Finding a package's code in a worker: a plugin's class, or an uploaded archive unpacked once
per revision under ``LOOPLINE_HOME/packages`` and imported as its own Python package.

An archive's modules are imported as submodules of a package named for the package and revision
(``loopline_packages.p<id>_r<revision>``), so two packages may both have a ``main.py``; an
archive's own modules import each other relatively (``from . import helpers``).
"""

from __future__ import annotations

import importlib
import io
import shutil
import sys
import tempfile
import types
import zipfile
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from graph.db.tables import Blob, PackageRevision
from graph.domain import storage
from graph.domain.platform import Platform
from graph.domain.runs import Claim
from plugins.functions import ModuleSpec, PackageSpec

__all__ = ["package_spec", "runner"]

Call = Callable[[Coroutine[Any, Any, Any]], Any]
_ROOT = "loopline_packages"


def package_spec(platform: Platform, call: Call, claim: Claim) -> PackageSpec:
    if claim.package_id is None:
        spec = platform.plugins.packages.get(claim.package_name)
        if spec is None:
            raise LookupError(f"package {claim.package_name!r} is not installed on this worker")
        return spec
    row = call(_revision(platform, claim.package_id, claim.package_revision or 0))[0]
    return PackageSpec.from_manifest(row.spec)


def runner(platform: Platform, call: Call, claim: Claim, module: ModuleSpec) -> Callable[..., Any]:
    """The class (or factory) whose methods are the module's functions."""
    if module.runner is not None:  # a plugin's (its spec is the plugin's own object)
        return module.runner
    if claim.package_id is None:
        raise LookupError(f"module {module.name!r} of {claim.package_name!r} has no runner")
    revision = claim.package_revision or 0
    name = f"p{claim.package_id}_r{revision}"
    folder = platform.settings.home / "packages" / name
    if not folder.exists():
        _, blob = call(_revision(platform, claim.package_id, revision))
        _unpack(b"".join(storage.read_blob(platform, blob, None, None)), folder)
    package = _import_package(name, folder)
    dotted = module.entry_point.removesuffix(".py").replace("/", ".")
    code = importlib.import_module(f"{package}.{dotted}")
    found = getattr(code, module.class_name, None)
    if found is None:
        raise LookupError(f"{module.entry_point} defines no {module.class_name!r}")
    return found  # type: ignore[no-any-return]


async def _revision(
    platform: Platform, package_id: str, revision: int
) -> tuple[PackageRevision, Blob]:
    async with platform.db.read() as session:
        row = await session.get(PackageRevision, (package_id, revision))
        if row is None:
            raise LookupError(f"package revision {package_id}@{revision} no longer exists")
        blob = await session.get(Blob, row.blob_id)
        assert blob is not None
        return row, blob


def _unpack(data: bytes, folder: Path) -> None:
    """Unpack into a sibling temporary folder, then rename: a half-unpacked revision is never
    seen by another worker process. Names were checked at upload."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".unpack-"))
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            archive.extractall(staging)
        try:
            staging.rename(folder)
        except OSError:  # another process unpacked it first
            pass
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _import_package(name: str, folder: Path) -> str:
    if _ROOT not in sys.modules:
        root = types.ModuleType(_ROOT)
        root.__path__ = []
        sys.modules[_ROOT] = root
    dotted = f"{_ROOT}.{name}"
    if dotted not in sys.modules:
        package = types.ModuleType(dotted)
        package.__path__ = [str(folder)]
        package.__package__ = dotted
        sys.modules[dotted] = package
    return dotted
