"""SHA-256 of files, computed once per process while the file stays the same (its path, size, mtime and inode)."""
from __future__ import annotations

import hashlib
import os

_DIGESTS: dict[tuple, str] = {}


def stamp(path: str | os.PathLike) -> tuple:
    """What tells a file's versions apart within a process (a file replaced by another has a new inode, even with
    the same size and mtime): what a verdict about the file may be remembered by."""
    stat = os.stat(path)
    return os.path.realpath(path), stat.st_size, stat.st_mtime_ns, stat.st_ino


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes."""
    key = stamp(path)
    if key not in _DIGESTS:
        with open(path, "rb") as handle:
            _DIGESTS[key] = hashlib.file_digest(handle, "sha256").hexdigest()
    return _DIGESTS[key]
