"""Getting datasets onto the machine."""
from __future__ import annotations

from pathlib import Path

from ..paths import data_root
from .registry import resource


def fetch_fashion_mnist(root: str | Path | None = None) -> Path:
    """Download Fashion-MNIST with torchvision's own downloader (md5-checked) into the data root.

    Offline Debian/Ubuntu users install the ``dataset-fashion-mnist`` package instead.
    """
    from torchvision.datasets import FashionMNIST

    base = data_root(root)
    present = resource("fashion-mnist").locate(base)
    if present is not None:
        return present
    FashionMNIST(str(base), train=True, download=True)
    FashionMNIST(str(base), train=False, download=True)
    return base / "FashionMNIST" / "raw"


FETCHERS = {"fashion-mnist": fetch_fashion_mnist}


def fetch(name: str, root: str | Path | None = None) -> Path:
    resource(name)  # unknown names fail with the list of known ones
    if name not in FETCHERS:
        raise ValueError(f"no downloader for {name!r} yet: {resource(name).fix(data_root(root))}")
    return FETCHERS[name](root)
