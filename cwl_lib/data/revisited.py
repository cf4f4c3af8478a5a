"""Revisited Oxford 5k and Paris 6k (Radenovic et al., CVPR 2018) in their published layout: ``jpg/<image>.jpg``
and ``gnd_<name>.pkl`` (:mod:`cwl_lib.data.ground_truth`). The offline benchmark is written in the same layout.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from ..paths import data_root
from . import offline_landmarks
from .ground_truth import UnsafePickleError, write_gnd  # noqa: F401 - re-exported with the layout they read
from .ground_truth import read as read_ground_truth
from .landmarks import group_queries


@dataclass
class RevisitedDataset:
    """One retrieval benchmark in the revisited layout: names, ground truth and image loading."""

    name: str
    root: Path  # the folder holding jpg/ and gnd_<name>.pkl
    imlist: list[str]
    qimlist: list[str]
    gnd: list[dict]

    @property
    def n_db(self) -> int:
        return len(self.imlist)

    @property
    def n_queries(self) -> int:
        return len(self.qimlist)

    def image_path(self, i: int) -> Path:
        return self.root / "jpg" / f"{self.imlist[i]}.jpg"

    def query_path(self, i: int) -> Path:
        return self.root / "jpg" / f"{self.qimlist[i]}.jpg"

    def image(self, i: int) -> torch.Tensor:
        """Database image ``i`` as uint8 ``3 x H x W`` at its original size."""
        return read_rgb(self.image_path(i))

    def query(self, i: int) -> torch.Tensor:
        """Query ``i``: its image cropped to ``bbx`` (rounded to whole pixels), uint8 ``3 x h x w``."""
        return crop_bbx(read_rgb(self.query_path(i)), self.gnd[i]["bbx"])

    def load_images(self, which: str = "database", workers: int = 4, progress: bool = False) -> list[torch.Tensor]:
        """All database images (or all cropped queries) decoded once, in parallel threads."""
        if which not in ("database", "queries"):
            raise ValueError(f"which must be 'database' or 'queries', got {which!r}")
        n = self.n_db if which == "database" else self.n_queries
        get = self.image if which == "database" else self.query
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            it = pool.map(get, range(n))
            if progress:
                it = tqdm(it, total=n, desc=f"decode {self.name} {which}", leave=False)
            return list(it)

    def query_landmarks(self) -> tuple[list[int], list[str]]:
        """A landmark label per query and the names in label order (:func:`~cwl_lib.data.landmarks.group_queries`)."""
        return group_queries(self.qimlist, self.gnd)


def read_rgb(path: str | Path) -> torch.Tensor:
    """An image file as uint8 RGB ``3 x H x W`` (EXIF orientation is not applied, as in revisitop)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image {path} is missing: is the dataset unpacked completely?")
    with Image.open(path) as im:
        arr = np.asarray(im.convert("RGB"))
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


def crop_bbx(image: torch.Tensor, bbx) -> torch.Tensor:
    """Crop ``C x H x W`` to ``bbx`` = [x1, y1, x2, y2] as revisitop's Python example does with PIL's ``crop``:
    coordinates rounded half to even, right and bottom edges exclusive, the part outside the image black."""
    x1, y1, x2, y2 = (int(round(float(v))) for v in bbx)
    h, w = image.shape[-2:]
    if x2 <= x1 or y2 <= y1:
        raise ValueError(f"bounding box {list(bbx)} is empty inside a {w}x{h} image")
    if (x2 - x1) * (y2 - y1) > 4 * w * h:  # what PIL's bomb check guards against: a box far larger than the image
        raise ValueError(f"bounding box {list(bbx)} is far larger than its {w}x{h} image: check the ground truth")
    out = image.new_zeros((*image.shape[:-2], y2 - y1, x2 - x1))
    sx1, sy1, sx2, sy2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
    if sx2 > sx1 and sy2 > sy1:
        out[..., sy1 - y1:sy2 - y1, sx1 - x1:sx2 - x1] = image[..., sy1:sy2, sx1:sx2]
    return out


def load_revisited(name: str, root: str | Path | None = None) -> RevisitedDataset:
    """A benchmark in the revisited layout under the data root (the offline ones built first when absent)."""
    folder = offline_landmarks.build(name, root) if name in offline_landmarks.VARIANTS else data_root(root) / name
    gnd_file = folder / f"gnd_{name}.pkl"
    if not gnd_file.is_file() or not (folder / "jpg").is_dir():
        raise FileNotFoundError(f"{name} is not at {folder}: expected {folder / 'jpg'}/ and {gnd_file}. "
                                f"Run `cwl fetch {name}` or unpack the dataset there (see `cwl data check`).")
    imlist, qimlist, gnd = read_ground_truth(gnd_file)
    return RevisitedDataset(name=name, root=folder, imlist=imlist, qimlist=qimlist, gnd=gnd)

