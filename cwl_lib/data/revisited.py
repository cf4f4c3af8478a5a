"""Revisited Oxford 5k and Paris 6k (Radenovic et al., CVPR 2018) in their published layout.

``<data_root>/<name>/jpg/<image>.jpg`` plus ``<data_root>/<name>/gnd_<name>.pkl``, a pickle of a dict
with ``imlist`` (database image names), ``qimlist`` (query image names) and ``gnd`` (one dict per
query: ``bbx`` = [x1, y1, x2, y2] of the query object, ``easy``, ``hard``, ``junk`` = database indices).
Queries are their images cropped to ``bbx``. The offline benchmark of the laptop profile
(:mod:`cwl_lib.data.offline_landmarks`) is written in the same layout and read by the same code.

The ground-truth pickle comes from the internet: it is read with the allow-list unpickler of
:mod:`cwl_lib.data.safe_pickle` (plain containers, numbers, strings and numpy arrays; anything else is
refused, since a pickle can otherwise run any code when it is loaded).
"""
from __future__ import annotations

import pickle
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .safe_pickle import UnsafePickleError, load_data_pickle

IMAGE_EXT = ".jpg"


def safe_load_pickle(path: str | Path):
    """Unpickle a downloaded ground-truth file, refusing anything but plain data and numpy arrays."""
    try:
        return load_data_pickle(path)
    except UnsafePickleError as err:
        raise UnsafePickleError(
            f"{path} is not a plain ground-truth file ({err}); it is not the published one: delete it and "
            "fetch it again (`cwl fetch roxford5k` / `cwl fetch rparis6k`)"
        ) from None


def _index_list(values, what: str) -> list[int]:
    arr = np.asarray(values if values is not None else [], dtype=np.float64).reshape(-1)
    if arr.size and (np.any(arr != np.round(arr)) or arr.min() < 0):
        raise ValueError(f"{what}: expected non-negative database indices")
    return [int(v) for v in arr]


@dataclass
class RevisitedDataset:
    """One retrieval benchmark in the revisited layout: names, ground truth and image loading."""

    name: str
    root: Path  # the folder holding jpg/ and gnd_<name>.pkl
    imlist: list[str]
    qimlist: list[str]
    gnd: list[dict]
    _sizes: list[tuple[int, int]] | None = field(default=None, repr=False)

    @property
    def n_db(self) -> int:
        return len(self.imlist)

    @property
    def n_queries(self) -> int:
        return len(self.qimlist)

    def image_path(self, i: int) -> Path:
        return self.root / "jpg" / f"{self.imlist[i]}{IMAGE_EXT}"

    def query_path(self, i: int) -> Path:
        return self.root / "jpg" / f"{self.qimlist[i]}{IMAGE_EXT}"

    def image(self, i: int) -> torch.Tensor:
        """Database image ``i`` as uint8 ``3 x H x W`` at its original size."""
        return read_rgb(self.image_path(i))

    def query(self, i: int) -> torch.Tensor:
        """Query ``i``: its image cropped to ``bbx`` (rounded to whole pixels), uint8 ``3 x h x w``."""
        return crop_bbx(read_rgb(self.query_path(i)), self.gnd[i]["bbx"])

    def image_sizes(self) -> list[tuple[int, int]]:
        """``(H, W)`` of every database image, read from the file headers only."""
        if self._sizes is None:
            from PIL import Image

            sizes = []
            for i in range(self.n_db):
                with Image.open(self.image_path(i)) as im:
                    sizes.append((im.height, im.width))
            self._sizes = sizes
        return self._sizes

    def load_images(self, which: str = "database", workers: int = 4, progress: bool = False) -> list[torch.Tensor]:
        """All database images (or all cropped queries) decoded once, in parallel threads."""
        if which not in ("database", "queries"):
            raise ValueError(f"which must be 'database' or 'queries', got {which!r}")
        n = self.n_db if which == "database" else self.n_queries
        get = self.image if which == "database" else self.query
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            it = pool.map(get, range(n))
            if progress:
                from tqdm.auto import tqdm

                it = tqdm(it, total=n, desc=f"decode {self.name} {which}", leave=False)
            return list(it)

    def query_landmarks(self) -> tuple[list[int], list[str]]:
        """A landmark label per query, from its name without the trailing image number
        (``all_souls_000013`` -> ``all_souls``), and the landmark names in label order."""
        stems = [re.sub(r"_\d+$", "", q) for q in self.qimlist]
        names = sorted(set(stems))
        lookup = {n: i for i, n in enumerate(names)}
        return [lookup[s] for s in stems], names


def read_rgb(path: str | Path) -> torch.Tensor:
    """An image file as uint8 RGB ``3 x H x W`` (EXIF orientation is not applied, as in revisitop)."""
    from PIL import Image

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image {path} is missing: is the dataset unpacked completely?")
    with Image.open(path) as im:
        arr = np.asarray(im.convert("RGB"))
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


def crop_bbx(image: torch.Tensor, bbx) -> torch.Tensor:
    """Crop ``3 x H x W`` to ``bbx`` = [x1, y1, x2, y2] in pixels, rounded as PIL's ``crop`` does."""
    x1, y1, x2, y2 = (int(round(float(v))) for v in bbx)
    h, w = image.shape[-2:]
    x1, y1, x2, y2 = max(0, x1), max(0, y1), min(w, x2), min(h, y2)
    if x2 <= x1 or y2 <= y1:
        raise ValueError(f"bounding box {list(bbx)} is empty inside a {w}x{h} image")
    return image[:, y1:y2, x1:x2].contiguous()


def _validate(raw, path: Path) -> tuple[list[str], list[str], list[dict]]:
    if not isinstance(raw, dict) or not {"imlist", "qimlist", "gnd"} <= set(raw):
        raise ValueError(f"{path} is not a revisited ground-truth file: expected a dict with imlist, qimlist, gnd")
    imlist = [str(x) for x in raw["imlist"]]
    qimlist = [str(x) for x in raw["qimlist"]]
    if len(raw["gnd"]) != len(qimlist):
        raise ValueError(f"{path}: {len(raw['gnd'])} ground-truth entries for {len(qimlist)} queries")
    gnd = []
    for i, g in enumerate(raw["gnd"]):
        if not isinstance(g, dict) or "bbx" not in g:
            raise ValueError(f"{path}: ground truth of query {i} has no bbx")
        entry = {k: _index_list(g.get(k), f"{path}: query {i} {k}") for k in ("easy", "hard", "junk")}
        for k, v in entry.items():
            if v and max(v) >= len(imlist):
                raise ValueError(f"{path}: query {i} lists {k} image {max(v)} beyond the {len(imlist)} images")
        entry["bbx"] = [float(v) for v in np.asarray(g["bbx"], dtype=np.float64).reshape(-1)[:4]]
        gnd.append(entry)
    return imlist, qimlist, gnd


def load_revisited(name: str, root: str | Path | None = None, folder: str | Path | None = None) -> RevisitedDataset:
    """Load ``roxford5k``, ``rparis6k`` or any benchmark in their layout.

    ``folder`` is the dataset's own folder (default ``<data root>/<name>``); it must hold ``jpg/`` and
    ``gnd_<name>.pkl``. The offline benchmark of the laptop profile is built first when absent.
    """
    from ..paths import data_root

    if folder is None:
        from . import offline_landmarks

        if name in offline_landmarks.VARIANTS:
            folder = offline_landmarks.build(name, root)
        else:
            folder = data_root(root) / name
    folder = Path(folder)
    gnd_file = folder / f"gnd_{name}.pkl"
    if not gnd_file.is_file() or not (folder / "jpg").is_dir():
        raise FileNotFoundError(
            f"{name} is not at {folder}: expected {folder / 'jpg'}/ and {gnd_file}. "
            f"Run `cwl fetch {name}` or unpack the dataset there (see `cwl data check`)."
        )
    imlist, qimlist, gnd = _validate(safe_load_pickle(gnd_file), gnd_file)
    return RevisitedDataset(name=name, root=folder, imlist=imlist, qimlist=qimlist, gnd=gnd)


def write_gnd(path: str | Path, imlist, qimlist, gnd) -> None:
    """Write a ground-truth file in the published format (plain lists, protocol 2), atomically."""
    path = Path(path)
    plain = {
        "imlist": list(imlist),
        "qimlist": list(qimlist),
        "gnd": [{"bbx": [float(v) for v in g["bbx"]],
                 **{k: [int(v) for v in g.get(k, [])] for k in ("easy", "hard", "junk")}} for g in gnd],
    }
    tmp = path.with_suffix(".partial")
    tmp.write_bytes(pickle.dumps(plain, protocol=2))
    tmp.replace(path)


__all__ = [
    "UnsafePickleError", "safe_load_pickle", "RevisitedDataset", "read_rgb", "crop_bbx",
    "load_revisited", "write_gnd",
]
