"""SHA-256 digests of files, each computed once per process while the file is unchanged.

``cwl reproduce``'s pre-check, each notebook's own check and the weight loader hash the same large
files (VGG-16's weights are half a gigabyte); a file is hashed again only when its size, modification
time or inode changes.
"""
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
