"""Digests of files (SHA-256 by default), each computed once per process while the file is unchanged.

``cwl reproduce``'s pre-check, each notebook's own check and the weight loader hash the same large
files (VGG-16's weights are half a gigabyte); a file is hashed again only when its size, modification
time or inode changes.
"""
from __future__ import annotations

import hashlib
import os

_DIGESTS: dict[tuple, str] = {}


def file_digest(path: str | os.PathLike, algorithm: str = "sha256", chunk: int = 1 << 20) -> str:
    """Hex digest of a file's bytes."""
    stat = os.stat(path)
    key = (os.path.realpath(path), stat.st_size, stat.st_mtime_ns, stat.st_ino, algorithm)
    if key not in _DIGESTS:
        digest = hashlib.new(algorithm)
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(chunk), b""):
                digest.update(block)
        _DIGESTS[key] = digest.hexdigest()
    return _DIGESTS[key]


def sha256_file(path: str | os.PathLike) -> str:
    return file_digest(path, "sha256")
