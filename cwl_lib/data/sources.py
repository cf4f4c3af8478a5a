"""Where each paper dataset comes from and how its files become the folder the registry checks.

Every URL is the dataset's official host. ``sha256`` is filled only for a digest its publisher
states; none of these hosts publishes one, so the digests are recorded in the data root's lock
file on first download (see :mod:`cwl_lib.data.checksums`).

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


_MIT_IMAGES = "http://groups.csail.mit.edu/vision/LabelMe/NewImages"
_OXFORD = "https://www.robots.ox.ac.uk/~vgg/data"
_REVISITOP = "http://cmp.felk.cvut.cz/revisitop/data/datasets"

SOURCES: dict[str, Source] = {
    s.name: s
    for s in (
        Source(
            "mit67",
            (
                RemoteFile("indoorCVPR_09.tar", f"{_MIT_IMAGES}/indoorCVPR_09.tar", unpack="tar"),
                RemoteFile("TrainImages.txt", "http://web.mit.edu/torralba/www/TrainImages.txt",
                           dest="TrainImages.txt"),
                RemoteFile("TestImages.txt", "http://web.mit.edu/torralba/www/TestImages.txt", dest="TestImages.txt"),
            ),
            layout=("Images", "TrainImages.txt", "TestImages.txt"),
        ),
        Source(
            "kvasir",
            (RemoteFile("kvasir-dataset-v2.zip", "https://datasets.simula.no/downloads/kvasir/kvasir-dataset-v2.zip",
                        unpack="zip"),),
            layout=("kvasir-dataset-v2",),
        ),
        Source(
            "chest-xray",
            (RemoteFile("ChestXRay2017.zip", None, unpack="zip"),),
            layout=("chest_xray/train", "chest_xray/test"),
            manual=f"open {MENDELEY_CHEST_XRAY} (Kermany et al., Mendeley Data, doi:10.17632/rscbjbr9sj.2) "
            "and download ChestXRay2017.zip",
        ),
        Source(
            "roxford5k",
            (
                RemoteFile("oxbuild_images-v1.tgz", f"{_OXFORD}/oxbuildings/oxbuild_images-v1.tgz",
                           unpack="tar", dest="jpg", flatten=True),
                RemoteFile("gnd_roxford5k.pkl", f"{_REVISITOP}/roxford5k/gnd_roxford5k.pkl", dest="gnd_roxford5k.pkl"),
            ),
            layout=("jpg", "gnd_roxford5k.pkl"),
        ),
        Source(
            "rparis6k",
            (
                RemoteFile("paris_1-v1.tgz", f"{_OXFORD}/parisbuildings/paris_1-v1.tgz", unpack="tar", dest="jpg",
                           flatten=True),
                RemoteFile("paris_2-v1.tgz", f"{_OXFORD}/parisbuildings/paris_2-v1.tgz", unpack="tar", dest="jpg",
                           flatten=True),
                RemoteFile("gnd_rparis6k.pkl", f"{_REVISITOP}/rparis6k/gnd_rparis6k.pkl", dest="gnd_rparis6k.pkl"),
            ),
            layout=("jpg", "gnd_rparis6k.pkl"),
        ),
    )
}


def mirror_base(explicit: str | None = None) -> str | None:
    base = explicit or os.environ.get(MIRROR_ENV) or None
    return base.rstrip("/") if base else None


def url_of(source: Source, remote: RemoteFile, mirror: str | None = None) -> str | None:
    """The URL a file is downloaded from: the mirror's copy when one is set, else the official host."""
    base = mirror_base(mirror)
    if base:
        return f"{base}/{source.name}/{remote.filename}"
    return remote.url
