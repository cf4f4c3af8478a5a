"""``cwl data check``: present / missing / wrong for every dataset and weight file, and the fix."""
from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from cwl_lib import cli, models
from cwl_lib.data import MissingDataError, checksums, registry, require
from cwl_lib.data.check import check_all


def _rows(root: Path) -> dict:
    return {row.name: row for row in check_all(root)}


def _install_kvasir(root: Path, built_from: str = "a" * 64, locked: str = "a" * 64) -> None:
    folder = root / "kvasir/kvasir-dataset-v2/polyps"
    folder.mkdir(parents=True)
    (folder / "0.jpg").write_bytes(b"x")
    checksums.write_marker(root / "kvasir", {"kvasir-dataset-v2.zip": built_from})
    checksums.record(root, "kvasir", "kvasir-dataset-v2.zip", locked, "http://example.invalid/k.zip", 1)


def test_cli_prints_the_fix_command_and_exits_non_zero_for_missing_data(empty_data_root, capsys):
    code = cli.main(["data", "check", "--data-root", str(empty_data_root)])
    out = capsys.readouterr().out
    assert code == 1
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
    assert "0 missing, 0 wrong" in capsys.readouterr().out


def test_dataset_built_from_other_bytes_than_the_lock_is_wrong_and_stops_a_run(empty_data_root):
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


def test_kept_download_failing_its_digest_is_wrong(empty_data_root):
    _install_kvasir(empty_data_root, built_from="c" * 64, locked="c" * 64)
    kept = empty_data_root / "downloads/kvasir/kvasir-dataset-v2.zip"
    kept.parent.mkdir(parents=True)
    kept.write_bytes(b"not the recorded bytes")
    row = _rows(empty_data_root)["kvasir"]
    assert row.status == "wrong" and str(kept) in row.detail


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
    monkeypatch.setattr(models, "cached_weights_path", lambda name, tag=models.WEIGHTS_TAG: fake)
    monkeypatch.setattr(models, "weights_status", lambda name, tag=models.WEIGHTS_TAG: "present")
    row = _rows(empty_data_root)["weights:vgg16"]
    assert row.status == "wrong"
    assert "397923af" in row.detail and "download.pytorch.org" in row.fix
