"""Packages: code a project deploys as services, from a plugin or from an uploaded archive.

An archive is a zip of Python files with a ``loopline.json`` manifest at its root (Dataloop's
package JSON: :mod:`plugins.functions`). It is checked before anything is stored: a valid zip
with safe member names and a bounded unpacked size, a manifest that parses, and for each module an
entry point that compiles and defines the class with a method per declared function. Nothing of
the archive runs in the API process. Uploading a name again makes a new revision; services stay
on the revision they were deployed with until updated.
"""

from __future__ import annotations

import ast
import asyncio
import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from graph.db.tables import Package, PackageRevision, Service
from graph.domain import blobs, events
from graph.domain.access import Actor, Role, require_role
from graph.domain.archives import checked_members
from graph.domain.errors import Conflict, InvalidInput, NotFound
from graph.domain.platform import Platform
from graph.domain.uploads import TooLarge
from plugins.functions import PackageSpec, SpecError

__all__ = [
    "MANIFEST",
    "Deployable",
    "delete_package",
    "deployable",
    "get_package",
    "list_packages",
    "may_upload",
    "package_source",
    "revision_spec",
    "upload_package",
]

MANIFEST = "loopline.json"
_MAX_MEMBERS = 10_000
_MAX_UNPACKED = 512 << 20


@dataclass(frozen=True)
class Deployable:
    """A package as a service deploys it: the plugin's, or one revision of an uploaded one."""

    spec: PackageSpec
    package_id: str | None = None
    revision: int | None = None


def _check_module_code(
    archive: zipfile.ZipFile, files: dict[str, zipfile.ZipInfo], spec: PackageSpec
) -> None:
    for name, member in files.items():
        if name.endswith(".py"):
            source = archive.read(member)
            try:
                ast.parse(source, filename=name)
            except SyntaxError as exc:
                raise InvalidInput(
                    f"{name}, line {exc.lineno}: {exc.msg}",
                    field="archive",
                    file=name,
                    line=exc.lineno,
                ) from None
    for module in spec.modules:
        if module.entry_point not in files:
            raise InvalidInput(
                f"module {module.name!r}: entry point {module.entry_point!r} is not in the archive",
                field="archive",
            )
        tree = ast.parse(archive.read(files[module.entry_point]))
        classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
        runner = classes.get(module.class_name)
        if runner is None:
            raise InvalidInput(
                f"module {module.name!r}: {module.entry_point} defines no class {module.class_name!r}",
                field="archive",
            )
        methods = {
            n.name for n in runner.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
        }
        for function in module.functions:
            if function.name not in methods:
                raise InvalidInput(
                    f"module {module.name!r}: class {module.class_name} has no method {function.name!r}",
                    field="archive",
                )


def read_archive(data: bytes | Path) -> PackageSpec:
    """The checked spec of an archive (its bytes or its file); :class:`InvalidInput` says what
    is wrong and where."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data) if isinstance(data, bytes) else data)
    except zipfile.BadZipFile:
        raise InvalidInput("the archive is not a zip file", field="archive") from None
    with archive:
        files = checked_members(archive, max_members=_MAX_MEMBERS, max_unpacked=_MAX_UNPACKED)
        if MANIFEST not in files:
            raise InvalidInput(f"the archive has no {MANIFEST} at its root", field="archive")
        try:
            manifest = json.loads(archive.read(files[MANIFEST]))
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"{MANIFEST} is not valid JSON: {exc}", field="archive") from None
        try:
            spec = PackageSpec.from_manifest(manifest)
        except SpecError as exc:
            raise InvalidInput(f"{MANIFEST}: {exc}", field="archive", where=exc.where) from None
        _check_module_code(archive, files, spec)
    return spec


async def may_upload(platform: Platform, actor: Actor, project_id: str) -> None:
    """Raise unless the actor may upload packages to the project: checked before any byte is read."""
    async with platform.db.read() as session:
        await require_role(session, actor, project_id, Role.developer)


async def upload_package(
    platform: Platform, actor: Actor, project_id: str, archive: BinaryIO | bytes
) -> Package:
    """Store an archive as a package of the project (a new revision if its name exists).

    ``archive`` is read, staged and checked in a worker thread, so it may be a stream that
    blocks (a request body being received)."""
    limit = platform.settings.max_package_bytes
    try:
        staged = await asyncio.to_thread(blobs.stage, platform, archive, limit)
    except OverflowError:
        raise TooLarge(
            f"the archive is larger than the package limit of {limit} bytes",
            field="archive",
            limit=limit,
        ) from None
    try:
        spec = await asyncio.to_thread(read_archive, staged.path)
    except BaseException:
        staged.discard()
        raise
    if spec.name in platform.plugins.packages:
        staged.discard()
        raise Conflict(f"package {spec.name!r} is provided by a plugin; choose another name")
    async with platform.db.write() as session:
        await require_role(session, actor, project_id, Role.developer)
        blob_id, _ = await blobs.ensure_blob(session, platform, staged)
        package = await session.scalar(
            select(Package).where(Package.project_id == project_id, Package.name == spec.name)
        )
        if package is None:
            package = Package(
                project_id=project_id, name=spec.name, revision=1, creator=actor.email
            )
            session.add(package)
            action = "created"
        else:
            package.revision += 1
            action = "updated"
        package.description = spec.description or None
        await session.flush()
        session.add(
            PackageRevision(
                package_id=package.id,
                revision=package.revision,
                spec=spec.to_manifest(),
                blob_id=blob_id,
                creator=actor.email,
            )
        )
        await events.record(
            session,
            project_id=project_id,
            resource="package",
            action=action,
            resource_id=package.id,
            actor=actor.email,
            payload={"name": package.name, "revision": package.revision},
        )
    return package


async def _package_in(
    session: AsyncSession, actor: Actor, package_id: str, needed: Role
) -> Package:
    package = await session.get(Package, package_id)
    if package is None:
        raise NotFound("package", package_id)
    await require_role(session, actor, package.project_id, needed)
    return package


async def get_package(platform: Platform, actor: Actor, package_id: str) -> Package:
    async with platform.db.read() as session:
        return await _package_in(session, actor, package_id, Role.annotator)


async def list_packages(platform: Platform, actor: Actor, project_id: str) -> list[Package]:
    """The project's uploaded packages by name (plugin packages: ``platform.plugins.packages``)."""
    async with platform.db.read() as session:
        await require_role(session, actor, project_id, Role.annotator)
        rows = await session.scalars(
            select(Package).where(Package.project_id == project_id).order_by(Package.name)
        )
        return list(rows)


async def revision_spec(session: AsyncSession, package_id: str, revision: int) -> PackageRevision:
    row = await session.get(PackageRevision, (package_id, revision))
    if row is None:
        raise NotFound("package revision", f"{package_id}@{revision}")
    return row


async def package_source(
    platform: Platform, actor: Actor, package_id: str, revision: int
) -> PackageSpec:
    async with platform.db.read() as session:
        await _package_in(session, actor, package_id, Role.annotator)
        return PackageSpec.from_manifest((await revision_spec(session, package_id, revision)).spec)


async def deployable(
    session: AsyncSession, platform: Platform, project_id: str, name: str, revision: int | None
) -> Deployable:
    """The package ``name`` as the project sees it: a plugin's, else the project's upload at
    ``revision`` (default latest)."""
    plugin = platform.plugins.packages.get(name)
    if plugin is not None:
        if revision is not None:
            raise InvalidInput(
                f"package {name!r} comes from a plugin and has no revisions", field="revision"
            )
        return Deployable(plugin)
    package = await session.scalar(
        select(Package).where(Package.project_id == project_id, Package.name == name)
    )
    if package is None:
        raise NotFound("package", name)
    wanted = package.revision if revision is None else revision
    row = await revision_spec(session, package.id, wanted)
    return Deployable(PackageSpec.from_manifest(row.spec), package.id, wanted)


async def delete_package(platform: Platform, actor: Actor, package_id: str) -> None:
    """Delete a package and its revisions; refused while a service runs any revision of it."""
    async with platform.db.write() as session:
        package = await _package_in(session, actor, package_id, Role.developer)
        used = await session.scalar(
            select(func.count()).select_from(Service).where(Service.package_id == package_id)
        )
        if used:
            raise Conflict(
                f"package {package.name!r} is deployed by {used} service(s); delete them first"
            )
        await session.delete(package)
        await events.record(
            session,
            project_id=package.project_id,
            resource="package",
            action="deleted",
            resource_id=package.id,
            actor=actor.email,
            payload={"name": package.name},
        )
