"""Unpacking downloaded tar and zip archives so that nothing lands outside the target folder.

Every member is checked before it is written: absolute names, ``..`` components, links that
resolve outside the folder and device files are refused, and the whole archive is refused with
them (the caller unpacks into a temporary folder and throws it away). Paths are checked after
resolving the links already written, because a lexical check alone is fooled by a link to ``.``
followed by a member under it; and every link is checked again once all are written, because a
link can be harmless when written and point outside once a later link exists (``x -> y/..``,
then ``y -> .``).

What an archive may write is capped (:class:`Limits`): a member whose declared size would take
the total past the cap is refused before a byte of it is written, and the copy stops at the cap
should the data run longer than declared.
"""
from __future__ import annotations

import gzip
import lzma
import os
import stat
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath


class BrokenArchiveError(RuntimeError):
    """The archive cannot be read to its end (truncated, corrupt, or not an archive)."""


class UnsafeArchiveError(RuntimeError):
    """A member would be written outside the target folder, or is a device or other special file."""


@dataclass(frozen=True)
class Limits:
    """How much one archive may write: at most ``max_bytes``, and at most ``max_ratio`` times its own size."""

    max_bytes: int = 8 << 30
    max_ratio: float = 10.0

    def budget(self, archive_size: int) -> int:
        return int(min(self.max_bytes, self.max_ratio * max(archive_size, 1)))


class _Budget:
    """Bytes an archive may still write; refuses a member before writing it when it cannot fit."""

    def __init__(self, archive: Path, limits: Limits):
        self.archive, self.limits = archive, limits
        self.size = archive.stat().st_size
        self.left = limits.budget(self.size)

    def refuse(self, name: str, size: int) -> UnsafeArchiveError:
        used = self.limits.budget(self.size) - self.left
        return UnsafeArchiveError(
            f"{self.archive.name}: member {name!r} would take what it unpacks to {_gib(used + size)}, past the cap "
            f"of {_gib(self.limits.budget(self.size))} for this {_gib(self.size)} archive (at most "
            f"{self.limits.max_ratio:g} times its size and {_gib(self.limits.max_bytes)}): a decompression bomb, "
            "or not the archive the publisher ships")

    def reserve(self, name: str, size: int) -> None:
        if size > self.left:
            raise self.refuse(name, size)
        self.left -= size


def _gib(n: int) -> str:
    return f"{n / (1 << 30):.2f} GiB" if n >= 1 << 30 else f"{n / (1 << 20):.1f} MiB"


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


def _write(source, target: Path, flatten_dest: Path | None, declared: int, budget: _Budget, name: str) -> None:
    """Copy one member, no more than its declared size (already reserved in ``budget``)."""
    if flatten_dest is not None:
        target = flatten_dest / target.name
    target.parent.mkdir(parents=True, exist_ok=True)
    left = declared
    with open(target, "wb") as out:
        while True:
            block = source.read(min(1 << 20, left + 1))
            if not block:
                return
            if len(block) > left:  # longer than its header says: a lie a reader should not follow
                raise budget.refuse(name, declared + len(block))
            out.write(block)
            left -= len(block)


def _extract_tar(archive: Path, dest: Path, flatten: bool, skip_prefixes, budget: _Budget) -> int:
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
                budget.reserve(member.name, member.size)
                handle = tar.extractfile(member)
                _write(handle, target, dest if flatten else None, member.size, budget, member.name)
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


def _extract_zip(archive: Path, dest: Path, flatten: bool, skip_prefixes, budget: _Budget) -> int:
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
            budget.reserve(info.filename, info.file_size)
            with zf.open(info) as handle:  # reading to the end checks the member's CRC
                _write(handle, target, dest if flatten else None, info.file_size, budget, info.filename)
            count += 1
    return count


def links_outside(dest: str | os.PathLike) -> list[str]:
    """Every symbolic link under ``dest`` whose target, resolved now, lies outside ``dest``."""
    dest_real = os.path.realpath(dest)
    bad = []
    for folder, dirs, files in os.walk(dest):  # does not descend into linked folders
        for entry in dirs + files:
            path = os.path.join(folder, entry)
            if os.path.islink(path) and not _inside(dest_real, path):
                bad.append(f"{os.path.relpath(path, dest)} -> {os.readlink(path)}")
    return bad


def extract(archive: str | os.PathLike, dest: str | os.PathLike, kind: str, flatten: bool = False,
            skip_prefixes=(), limits: Limits | None = None) -> int:
    """Unpack ``archive`` (``kind`` "tar" or "zip") into the existing folder ``dest``; the number of files.

    ``limits`` caps what it may write (default :class:`Limits()`). Raises :class:`UnsafeArchiveError`
    or :class:`BrokenArchiveError`; ``dest`` may then hold part of the archive and is the caller's to
    remove.
    """
    archive, dest = Path(archive), Path(dest)
    unpack = {"tar": _extract_tar, "zip": _extract_zip}.get(kind)
    if unpack is None:
        raise ValueError(f"unknown archive kind {kind!r}")
    try:
        count = unpack(archive, dest, flatten, tuple(skip_prefixes), _Budget(archive, limits or Limits()))
    except _BROKEN as err:
        raise BrokenArchiveError(f"{archive.name} is not a complete {kind} archive ({err})") from err
    escaping = links_outside(dest)
    if escaping:
        raise UnsafeArchiveError(f"{archive.name}: once unpacked, links point outside its folder: "
                                 f"{', '.join(escaping[:3])}")
    return count
