"""How a paper dataset's files are described: where each comes from and how it becomes the folder.

The entries themselves are in :mod:`cwl_lib.data.registry`. Every URL is the dataset's official
host. ``sha256`` is filled only for a digest its publisher states; none of these hosts publishes
one, so a digest is pinned in the data root's lock file after the first download that installs
cleanly, or given by the user (``cwl fetch --expect-sha256``; see :mod:`cwl_lib.data.checksums`).

A mirror (``cwl fetch --mirror BASE`` or ``$CWL_DATA_MIRROR``) replaces every host by
``BASE/<dataset>/<file name>``: for an institutional copy, and for the tests' loopback server.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

MIRROR_ENV = "CWL_DATA_MIRROR"

MENDELEY_CHEST_XRAY = "https://data.mendeley.com/datasets/rscbjbr9sj/2"


@dataclass(frozen=True)
class RemoteFile:
    filename: str
    url: str | None  # None: no scripted download (a login or click-through wall)
    unpack: str | None = None  # "tar" or "zip"; None places the file as it is
    dest: str = "."  # inside the dataset folder: the file's path, or the folder an archive goes into
    flatten: bool = False  # move every unpacked file straight into ``dest`` (revisitop's jpg/ layout)
    sha256: str | None = None  # only a digest the publisher states


@dataclass(frozen=True)
class Source:
    name: str
    files: tuple[RemoteFile, ...]
    layout: tuple[str, ...]  # paths that must exist in the dataset folder; equal to the registry's
    manual: str = ""  # what a person does by hand, when a file has no scripted download
    skip_prefixes: tuple[str, ...] = field(default=("__MACOSX/",))  # archive junk never installed


def mirror_base(explicit: str | None = None) -> str | None:
    base = explicit or os.environ.get(MIRROR_ENV) or None
    return base.rstrip("/") if base else None


def url_of(source: Source, remote: RemoteFile, mirror: str | None = None) -> str | None:
    """The URL a file is downloaded from: the mirror's copy when one is set, else the official host."""
    base = mirror_base(mirror)
    if base:
        return f"{base}/{source.name}/{remote.filename}"
    return remote.url
