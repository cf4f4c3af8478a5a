"""SHA-256 of files, computed once per process while the file's size, mtime and inode stay the same."""
from __future__ import annotations

import hashlib
import os

_DIGESTS: dict[tuple, str] = {}


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes."""
    stat = os.stat(path)
    key = (os.path.realpath(path), stat.st_size, stat.st_mtime_ns, stat.st_ino)
    if key not in _DIGESTS:
        with open(path, "rb") as handle:
            _DIGESTS[key] = hashlib.file_digest(handle, "sha256").hexdigest()
    return _DIGESTS[key]
