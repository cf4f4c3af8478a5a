"""Unpacking downloaded tar and zip archives so that nothing lands outside the target folder.

Tar members go through tarfile's ``data`` filter. Added here: ``..`` and absolute names are refused, not
rewritten; what an archive writes is capped (:class:`Limits`) from each member's header before it is written; a
hard link must name a file already unpacked (else tarfile copies its target past the filter and the cap); links
are checked again once all are written (``x -> y/..`` is harmless until ``y -> .``). Zip members are checked
here. Any refusal refuses the whole archive.
"""
from __future__ import annotations

import gzip
import lzma
import os
import shutil
import stat
import sys
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


class _Budget:
    """Bytes an archive may still write, charged from declared sizes (neither reader writes more than a member
    declares: tar's header fixes where the next member starts, zipfile stops there and checks the CRC)."""

    def __init__(self, archive: Path, limits: Limits):
        self.archive, self.limits, self.size = archive, limits, archive.stat().st_size
        self.cap = self.left = int(min(limits.max_bytes, limits.max_ratio * max(self.size, 1)))

    def reserve(self, name: str, size: int) -> None:
        self.left -= size
        if self.left < 0:
            raise UnsafeArchiveError(
                f"{self.archive.name}: member {name!r} would take what it unpacks to {_gib(self.cap - self.left)}, "
                f"past the cap of {_gib(self.cap)} for this {_gib(self.size)} archive (at most "
                f"{self.limits.max_ratio:g} times its size and {_gib(self.limits.max_bytes)}): a decompression "
                "bomb, or not the archive the publisher ships")


def _gib(n: int) -> str:
    return f"{n / (1 << 30):.2f} GiB" if n >= 1 << 30 else f"{n / (1 << 20):.1f} MiB"


# Read errors that mean the archive's bytes are bad; any other OSError (a full disk) is the machine's.
_BROKEN = (tarfile.ReadError, EOFError, zlib.error, gzip.BadGzipFile, lzma.LZMAError, zipfile.BadZipFile)


def _member_path(name: str, archive: Path, skip_prefixes) -> PurePosixPath | None:
    """The member's relative path; None for the archive's root entry and skipped junk; refuses escaping names."""
    text = name.replace("\\", "/")
    if text.startswith("/") or (len(text) > 1 and text[1] == ":"):
        raise UnsafeArchiveError(f"{archive.name}: member {name!r} has an absolute path")
    parts = [p for p in PurePosixPath(text).parts if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchiveError(f"{archive.name}: member {name!r} points outside its folder ('..')")
    rel = PurePosixPath(*parts) if parts else None
    return None if rel is None or (rel.as_posix() + "/").startswith(tuple(skip_prefixes)) else rel


def _inside(dest_real: str, candidate: str) -> bool:
    real = os.path.realpath(candidate)
    return real == dest_real or real.startswith(dest_real + os.sep)


def _extract_tar(archive: Path, dest: Path, flatten: bool, skip_prefixes, budget: _Budget) -> int:
    if not hasattr(tarfile, "data_filter"):  # pyproject allows 3.11.0, which predates the filters
        raise RuntimeError(f"unpacking {archive.name} needs Python 3.11.4 or later (tarfile's extraction "
                           f"filters); this is {sys.version.split()[0]}: upgrade Python, then fetch again")
    count = 0

    def admit(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo | None:
        nonlocal count
        rel = _member_path(member.name, archive, skip_prefixes)
        if rel is None:
            return None
        try:
            member = tarfile.data_filter(member, path)
        except tarfile.FilterError as err:
            raise UnsafeArchiveError(f"{archive.name}: {err}") from None
        if member.isdir() or (flatten and not member.isfile()):  # a flat image folder has no use for links
            return None if flatten else member
        if member.islnk() and not os.path.isfile(os.path.join(path, member.linkname)):
            raise UnsafeArchiveError(f"{archive.name}: hard link {member.name!r} -> {member.linkname!r} names no "
                                     "file unpacked before it")
        # where the file system refuses links, tarfile copies the target: a link is charged its target's size
        target = os.path.join(path if member.islnk() else os.path.join(path, os.path.dirname(member.name)),
                              member.linkname)
        budget.reserve(member.name, member.size if member.isfile() else
                       os.path.getsize(target) if os.path.isfile(target) else 0)
        count += 1
        # mode=None: the umask's permissions, not the publisher's (a 0600 file in a shared data root)
        return member.replace(name=rel.name if flatten else member.name, mode=None, deep=False)

    with tarfile.open(archive, "r:*") as tar:
        for member in tar:  # streamed: extractall would first read a multi-gigabyte archive for its index
            tar.extract(member, dest, filter=admit)
    return count


def _extract_zip(archive: Path, dest: Path, flatten: bool, skip_prefixes, budget: _Budget) -> int:
    dest_real = os.path.realpath(dest)
    count = 0
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            rel = _member_path(info.filename, archive, skip_prefixes)
            if rel is None:
                continue
            target = dest / (rel.name if flatten else rel)
            if not _inside(dest_real, str(target)):
                raise UnsafeArchiveError(f"{archive.name}: member {info.filename!r} resolves outside {dest}")
            if stat.S_ISLNK(info.external_attr >> 16):
                raise UnsafeArchiveError(f"{archive.name}: member {info.filename!r} is a symbolic link")
            if info.is_dir():
                if not flatten:
                    target.mkdir(parents=True, exist_ok=True)
                continue
            budget.reserve(info.filename, info.file_size)
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as handle, open(target, "wb") as out:  # reading to the end checks the CRC
                shutil.copyfileobj(handle, out, 1 << 20)
            count += 1
    return count


def links_outside(dest: str | os.PathLike) -> list[str]:
    """Every symbolic link under ``dest`` whose target, resolved now, lies outside ``dest``."""
    dest_real = os.path.realpath(dest)
    return [f"{os.path.relpath(path, dest)} -> {os.readlink(path)}"
            for folder, dirs, files in os.walk(dest)  # does not descend into linked folders
            for path in (os.path.join(folder, entry) for entry in dirs + files)
            if os.path.islink(path) and not _inside(dest_real, path)]


def extract(archive: str | os.PathLike, dest: str | os.PathLike, kind: str, flatten: bool = False,
            skip_prefixes=(), limits: Limits | None = None) -> int:
    """Unpack ``archive`` ("tar" or "zip") into the existing folder ``dest`` within ``limits``; the number of files.

    Raises :class:`UnsafeArchiveError` or :class:`BrokenArchiveError`, leaving ``dest`` for the caller to remove.
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
