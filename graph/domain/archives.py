"""Zip archives users send (packages, annotation imports): checked before anything reads them."""

from __future__ import annotations

import stat
import zipfile
from pathlib import PurePosixPath

from graph.domain.errors import InvalidInput

__all__ = ["checked_members"]


def checked_members(
    archive: zipfile.ZipFile, *, max_members: int, max_unpacked: int
) -> dict[str, zipfile.ZipInfo]:
    """The archive's files by name, once no name could escape a folder it is unpacked into
    (absolute, ``..``, drive letters, backslashes, symbolic links) and it does not unpack to
    more than ``max_unpacked`` bytes or hold more than ``max_members`` entries (zip bombs)."""
    members = archive.infolist()
    if len(members) > max_members:
        raise InvalidInput(f"the archive has more than {max_members} files", field="archive")
    if sum(m.file_size for m in members) > max_unpacked:
        raise InvalidInput(
            f"the archive unpacks to more than {max_unpacked >> 20} MB", field="archive"
        )
    files = {}
    for member in members:
        path = PurePosixPath(member.filename)
        if (
            member.filename.startswith(("/", "\\"))
            or "\\" in member.filename
            or ".." in path.parts
            or (path.parts and ":" in path.parts[0])
        ):
            raise InvalidInput(
                f"unsafe file name in the archive: {member.filename!r}", field="archive"
            )
        if stat.S_ISLNK(member.external_attr >> 16):
            raise InvalidInput(
                f"the archive holds a symbolic link: {member.filename!r}", field="archive"
            )
        if not member.is_dir():
            files[str(path)] = member
    return files
