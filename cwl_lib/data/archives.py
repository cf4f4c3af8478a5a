"""Unpacking downloaded tar and zip archives so that nothing lands outside the target folder.

Every member is checked before it is written: absolute names, ``..`` components, links that
resolve outside the folder and device files are refused, and the whole archive is refused with
them (the caller unpacks into a temporary folder and throws it away). Paths are checked after
resolving the links already written, because a lexical check alone is fooled by a link to ``.``
followed by a member under it.
"""
from __future__ import annotations

import gzip
import lzma
import os
import shutil
import stat
import tarfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath


class BrokenArchiveError(RuntimeError):
    """The archive cannot be read to its end (truncated, corrupt, or not an archive)."""


class UnsafeArchiveError(RuntimeError):
    """A member would be written outside the target folder, or is a device or other special file."""


# Read errors that mean the archive's bytes are bad; any other OSError (a full disk) is the machine's.
_BROKEN = (tarfile.ReadError, EOFError, zlib.error, gzip.BadGzipFile, lzma.LZMAError, zipfile.BadZipFile)


def _member_path(name: str, archive: Path) -> PurePosixPath | None:
    """The member's relative path, or None for the archive's root entry; refuses escaping names."""
    text = name.replace("\\", "/")
    if text.startswith("/") or (len(text) > 1 and text[1] == ":"):
        raise UnsafeArchiveError(f"{archive.name}: member {name!r} has an absolute path")
    parts = [p for p in PurePosixPath(text).parts if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchiveError(f"{archive.name}: member {name!r} points outside its folder ('..')")
    return PurePosixPath(*parts) if parts else None


def _inside(dest_real: str, candidate: str) -> bool:
    real = os.path.realpath(candidate)
    return real == dest_real or real.startswith(dest_real + os.sep)


def _target(dest: Path, dest_real: str, rel: PurePosixPath, archive: Path, name: str) -> Path:
    target = dest / rel
    if not _inside(dest_real, str(target)):
        raise UnsafeArchiveError(f"{archive.name}: member {name!r} resolves outside {dest}")
    return target


def _skipped(rel: PurePosixPath, skip_prefixes) -> bool:
    text = rel.as_posix() + "/"
    return any(text.startswith(prefix) for prefix in skip_prefixes)


def _write(source, target: Path, flatten_dest: Path | None) -> None:
    if flatten_dest is not None:
        target = flatten_dest / target.name
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "wb") as out:
        shutil.copyfileobj(source, out, 1 << 20)


def _extract_tar(archive: Path, dest: Path, flatten: bool, skip_prefixes) -> int:
    dest_real = os.path.realpath(dest)
    count = 0
    with tarfile.open(archive, "r:*") as tar:
        for member in tar:
            rel = _member_path(member.name, archive)
            if rel is None or _skipped(rel, skip_prefixes):
                continue
            target = _target(dest, dest_real, rel, archive, member.name)
            if member.isdir():
                if not flatten:
                    target.mkdir(parents=True, exist_ok=True)
            elif member.isfile():
                handle = tar.extractfile(member)
                _write(handle, target, dest if flatten else None)
                count += 1
            elif member.issym() or member.islnk():
                link = member.linkname
                resolved = (target.parent / link) if member.issym() else (dest / link)
                if os.path.isabs(link) or not _inside(dest_real, str(resolved)):
                    raise UnsafeArchiveError(
                        f"{archive.name}: link {member.name!r} -> {link!r} points outside its folder")
                if flatten:  # a flat image folder has no use for links
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                if member.issym():
                    os.symlink(link, target)
                else:
                    os.link(resolved, target)
                count += 1
            else:
                raise UnsafeArchiveError(f"{archive.name}: member {member.name!r} is a device or other special file")
    return count


def _extract_zip(archive: Path, dest: Path, flatten: bool, skip_prefixes) -> int:
    dest_real = os.path.realpath(dest)
    count = 0
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            rel = _member_path(info.filename, archive)
            if rel is None or _skipped(rel, skip_prefixes):
                continue
            target = _target(dest, dest_real, rel, archive, info.filename)
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise UnsafeArchiveError(f"{archive.name}: member {info.filename!r} is a symbolic link")
            if info.is_dir():
                if not flatten:
                    target.mkdir(parents=True, exist_ok=True)
                continue
            with zf.open(info) as handle:  # reading to the end checks the member's CRC
                _write(handle, target, dest if flatten else None)
            count += 1
    return count


def extract(archive: str | os.PathLike, dest: str | os.PathLike, kind: str, flatten: bool = False,
            skip_prefixes=()) -> int:
    """Unpack ``archive`` (``kind`` "tar" or "zip") into the existing folder ``dest``; the number of files.

    Raises :class:`UnsafeArchiveError` or :class:`BrokenArchiveError`; ``dest`` may then hold part of
    the archive and is the caller's to remove.
    """
    archive, dest = Path(archive), Path(dest)
    unpack = {"tar": _extract_tar, "zip": _extract_zip}.get(kind)
    if unpack is None:
        raise ValueError(f"unknown archive kind {kind!r}")
    try:
        return unpack(archive, dest, flatten, tuple(skip_prefixes))
    except _BROKEN as err:
        raise BrokenArchiveError(f"{archive.name} is not a complete {kind} archive ({err})") from err
