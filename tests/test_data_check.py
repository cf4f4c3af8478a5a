"""``cwl data check``: present / missing / wrong for every dataset and weight file, and the fix."""
from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path

import pytest

from cwl_lib import cli, models
from cwl_lib.data import MissingDataError, checksums, registry, require
from cwl_lib.data.check import check_all


def _rows(root: Path) -> dict:
    return {row.name: row for row in check_all(root)}


@pytest.fixture
def one_image_kvasir(paper_sizes):
    """The Kvasir these tests install holds one image of one class."""
    paper_sizes("kvasir", train=1, test=0, classes=1, per_class=1)


def _install_kvasir(root: Path, built_from: str = "a" * 64, locked: str = "a" * 64) -> None:
    folder = root / "kvasir/kvasir-dataset-v2/polyps"
    folder.mkdir(parents=True)
    (folder / "0.jpg").write_bytes(b"x")
    checksums.write_marker(root / "kvasir", {"kvasir-dataset-v2.zip": built_from})
    checksums.record(root, "kvasir", "kvasir-dataset-v2.zip", locked, "http://example.invalid/k.zip", 1)


def test_cli_prints_the_fix_command_and_says_which_profiles_can_run(empty_data_root, capsys):
    code = cli.main(["data", "check", "--data-root", str(empty_data_root)])
    out = capsys.readouterr().out
    assert code == 0  # absent data is a state to report, not a failure; only --profile judges it
    paper = next(ln for ln in out.splitlines() if ln.startswith("profile paper: needs not met: "))
    assert all(f"{name} (missing)" in paper for name in ("mit67", "kvasir", "chest-xray", "roxford5k", "rparis6k"))
    assert "fashion-mnist" not in paper  # the paper profile needs its own data only
    assert "profile laptop: needs not met: fashion-mnist (missing)" in out
    assert f"data root: {empty_data_root}" in out
    for name in ("mit67", "kvasir", "roxford5k", "rparis6k"):
        assert f"missing  {name}" in out
        assert f"fix: run `cwl fetch {name} --data-root {empty_data_root}`" in out
    assert f"{empty_data_root}/downloads/chest-xray/ChestXRay2017.zip" in out
    assert "apt-get install dataset-fashion-mnist" in out


def test_everything_present_exits_zero(empty_data_root, monkeypatch, capsys):
    from cwl_lib.data import check

    monkeypatch.setattr(check, "check_resource", lambda res, root: check.Row(res.name, "present", "here", ""))
    assert cli.main(["data", "check"]) == 0
    out = capsys.readouterr().out
    assert "0 missing, 0 wrong" in out
    assert all(f"profile {p}: needs met" in out for p in ("smoke", "laptop", "paper"))


def _fashion_mnist(folder: Path, n_train=6, n_test=4, labels=None) -> None:
    """Small IDX files in Fashion-MNIST's names (the counts of the test stand in for 60,000 / 10,000)."""
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        lab = np.arange(n, dtype=np.uint8) % 10 if labels is None else np.asarray(labels, dtype=np.uint8)
        with gzip.open(folder / f"{prefix}-images-idx3-ubyte.gz", "wb") as handle:
            handle.write(b"\x00\x00\x08\x03" + n.to_bytes(4, "big") + (28).to_bytes(4, "big") * 2 + bytes(n * 784))
        with gzip.open(folder / f"{prefix}-labels-idx1-ubyte.gz", "wb") as handle:
            handle.write(b"\x00\x00\x08\x01" + n.to_bytes(4, "big") + lab.tobytes())


def test_profile_option_exits_zero_when_that_profile_has_what_it_needs(empty_data_root, paper_sizes, capsys):
    paper_sizes("fashion-mnist", train=6, test=4, classes=10)
    _fashion_mnist(empty_data_root / "fashion-mnist")
    assert cli.main(["data", "check", "--profile", "laptop"]) == 0
    assert "profile laptop: needs met" in capsys.readouterr().out
    assert cli.main(["data", "check", "--profile", "paper"]) == 1
    out = capsys.readouterr().out
    assert "profile paper: needs not met: " in out and "mit67 (missing)" in out


@pytest.mark.parametrize("damage", ["flipped", "truncated", "labels"])
def test_corrupt_fashion_mnist_is_reported_not_raised(empty_data_root, paper_sizes, capsys, damage):
    paper_sizes("fashion-mnist", train=6, test=4, classes=10)
    folder = empty_data_root / "fashion-mnist"
    _fashion_mnist(folder, labels=[0, 1, 2, 3, 4, 12] if damage == "labels" else None)
    target = folder / "train-images-idx3-ubyte.gz"
    data = bytearray(target.read_bytes())
    if damage == "flipped":  # inside the deflate stream: gzip raises zlib.error
        for i in range(12, len(data) - 8):
            data[i] ^= 0x5A
        target.write_bytes(bytes(data))
    elif damage == "truncated":
        target.write_bytes(bytes(data[: len(data) // 2]))
    code = cli.main(["data", "check", "--profile", "laptop"])
    out = capsys.readouterr().out
    assert code == 1
    line = next(ln for ln in out.splitlines() if "fashion-mnist" in ln and "wrong" in ln)
    assert ("label 12" in line) if damage == "labels" else ("train-images-idx3-ubyte.gz" in line)


def test_dataset_built_from_other_bytes_than_the_lock_is_wrong_and_stops_a_run(empty_data_root, one_image_kvasir):
    _install_kvasir(empty_data_root)
    assert _rows(empty_data_root)["kvasir"].status == "present"

    checksums.record(empty_data_root, "kvasir", "kvasir-dataset-v2.zip", "b" * 64, None, 1)
    row = _rows(empty_data_root)["kvasir"]
    assert row.status == "wrong"
    assert "records bbbbbbbbbbbb" in row.detail
    assert row.fix == f"cwl fetch kvasir --force --data-root {empty_data_root}"
    with pytest.raises(MissingDataError, match="cwl fetch kvasir"):
        require("kvasir", root=empty_data_root)


def test_broken_layout_is_wrong(empty_data_root):
    (empty_data_root / "roxford5k/jpg").mkdir(parents=True)
    row = _rows(empty_data_root)["roxford5k"]
    assert row.status == "wrong"
    assert "lacks gnd_roxford5k.pkl" in row.detail
    assert "--force" in row.fix


def test_kept_download_failing_its_digest_is_wrong(empty_data_root, one_image_kvasir):
    _install_kvasir(empty_data_root, built_from="c" * 64, locked="c" * 64)
    kept = empty_data_root / "downloads/kvasir/kvasir-dataset-v2.zip"
    kept.parent.mkdir(parents=True)
    kept.write_bytes(b"not the recorded bytes")
    row = _rows(empty_data_root)["kvasir"]
    assert row.status == "wrong" and str(kept) in row.detail


def test_a_kept_download_swapped_for_other_bytes_is_hashed_again(empty_data_root, one_image_kvasir):
    good = b"the recorded bytes, 28 long."
    _install_kvasir(empty_data_root, built_from=hashlib.sha256(good).hexdigest(),
                    locked=hashlib.sha256(good).hexdigest())
    kept = empty_data_root / "downloads/kvasir/kvasir-dataset-v2.zip"
    kept.parent.mkdir(parents=True)
    kept.write_bytes(good)
    assert _rows(empty_data_root)["kvasir"].status == "present"
    # the same size and mtime (a `cp -p`, an rsync -t): a new file, so its digest is computed anew
    swapped = kept.with_name("swap")
    swapped.write_bytes(b"X" * len(good))
    os.utime(swapped, ns=(kept.stat().st_atime_ns, kept.stat().st_mtime_ns))
    os.replace(swapped, kept)
    row = _rows(empty_data_root)["kvasir"]
    assert row.status == "wrong" and str(kept) in row.detail


def test_cwl_refresh_exits_zero_after_refreshing(monkeypatch):
    monkeypatch.setattr(cli, "refresh", lambda names: [Path(f"notebooks/{n}.ipynb") for n in names or ["01"]])
    assert cli.main(["refresh", "01_kronecker"]) == 0


def test_paper_counts_are_the_papers():
    assert registry.paper_sizes("mit67") == registry.Sizes(train=5360, test=1340, classes=67)
    assert registry.paper_sizes("kvasir") == registry.Sizes(train=6000, test=2000, classes=8, per_class=1000)
    assert registry.paper_sizes("chest-xray") == registry.Sizes(train=5216, test=624, classes=2)
    assert registry.paper_sizes("roxford5k") == registry.Sizes(train=4993, test=70)
    assert registry.paper_sizes("rparis6k") == registry.Sizes(train=6322, test=70)


def test_a_count_that_differs_from_the_paper_is_one_clear_line(empty_data_root, paper_sizes):
    paper_sizes("kvasir", train=3, test=1, classes=1, per_class=4)
    _install_kvasir(empty_data_root)
    row = _rows(empty_data_root)["kvasir"]
    assert row.status == "wrong"
    assert "polyps has 1, but the paper's kvasir has 4 of each class" in row.detail
    assert "\n" not in row.detail


def test_fashion_mnist_swapped_for_other_files_of_the_same_size_and_mtime_is_checked_again(empty_data_root,
                                                                                          paper_sizes, tmp_path):
    paper_sizes("fashion-mnist", train=6, test=4, classes=10)
    folder = empty_data_root / "fashion-mnist"
    _fashion_mnist(folder)
    assert _rows(empty_data_root)["fashion-mnist"].status == "present"
    _fashion_mnist(tmp_path / "other", labels=[0, 1, 2, 3, 4, 12])
    name = "train-labels-idx1-ubyte.gz"
    kept, swapped = folder / name, tmp_path / "other" / name
    assert swapped.stat().st_size == kept.stat().st_size  # what a (size, mtime) stamp could not tell apart
    os.utime(swapped, ns=(kept.stat().st_atime_ns, kept.stat().st_mtime_ns))
    os.replace(swapped, kept)
    row = _rows(empty_data_root)["fashion-mnist"]
    assert row.status == "wrong" and "label 12" in row.detail


def test_fashion_mnist_that_is_not_idx_data_is_wrong(empty_data_root):
    folder = empty_data_root / "fashion-mnist"
    folder.mkdir()
    for name in registry.FASHION_MNIST_FILES:
        with gzip.open(folder / name, "wb") as handle:
            handle.write(b"\x00\x00\x08\x03" + (60000).to_bytes(4, "big"))  # right header, no images
    row = _rows(empty_data_root)["fashion-mnist"]
    assert row.status == "wrong" and "is not the 60000-item IDX images file" in row.detail


def test_weight_file_failing_the_digest_prefix_in_its_name_is_wrong(empty_data_root, tmp_path, monkeypatch):
    fake = tmp_path / "vgg16-397923af.pth"
    fake.write_bytes(b"truncated")
    monkeypatch.setattr(models, "cached_weights_path", lambda name: fake)
    row = _rows(empty_data_root)["weights:vgg16"]
    assert row.status == "wrong"
    assert "397923af" in row.detail and "download.pytorch.org" in row.fix


def test_a_corrupt_lock_file_does_not_hide_a_dataset_unpacked_by_hand(empty_data_root, one_image_kvasir):
    folder = empty_data_root / "kvasir/kvasir-dataset-v2/polyps"
    folder.mkdir(parents=True)
    (folder / "0.jpg").write_bytes(b"x")
    (empty_data_root / checksums.LOCK_NAME).write_text("{not json")
    assert registry.missing(["kvasir"], empty_data_root) == []
    _install_kvasir(empty_data_root / "other")  # a dataset with a record is judged against the lock
    (empty_data_root / "other" / checksums.LOCK_NAME).write_text("{not json")
    assert [res.name for res, _fix in registry.missing(["kvasir"], empty_data_root / "other")] == ["kvasir"]
