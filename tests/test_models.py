"""Backbones load through torchvision's weights API; the offline MobileNetV2 is real ImageNet."""
import pytest
import torch

from cwl_lib import models


@pytest.fixture(scope="module")
def mobilenet():
    return models.load_backbone("mobilenet_v2").eval()


def _top5(model, image):
    x = models.weights_enum("mobilenet_v2").transforms()(torch.from_numpy(image).permute(2, 0, 1)).unsqueeze(0)
    with torch.no_grad():
        idx = model(x).topk(5).indices[0].tolist()
    categories = models.weights_enum("mobilenet_v2").meta["categories"]
    return [categories[i] for i in idx]


def test_offline_mobilenet_recognises_a_real_photograph(mobilenet):
    import skimage.data

    assert "espresso" in _top5(mobilenet, skimage.data.coffee())
    assert any("cat" in c for c in _top5(mobilenet, skimage.data.chelsea()))


def test_offline_weights_are_placed_in_the_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    placed = models.install_offline_weights()
    assert placed == [tmp_path / "checkpoints" / "mobilenet_v2-b0353104.pth"]
    state = torch.load(placed[0], weights_only=True, map_location="cpu")
    assert state["features.0.0.weight"].shape == (32, 3, 3, 3)
    assert models.install_offline_weights() == []  # already there: nothing copied again


def test_missing_weights_error_says_where_to_put_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(models.WeightsUnavailableError) as err:
        models.load_backbone("resnet50")
    message = str(err.value)
    assert str(tmp_path / "checkpoints" / "resnet50-0676ba61.pth") in message
    assert "https://download.pytorch.org/models/resnet50-0676ba61.pth" in message
    assert models.weights_file("resnet50") is None


def test_random_backbones_need_no_file():
    model = models.load_backbone("vgg16", pretrained=False)
    assert model.classifier[-1].out_features == 1000


def test_unknown_backbone_is_refused():
    with pytest.raises(ValueError, match="unknown backbone"):
        models.load_backbone("not_a_net")


class _RunsCommand:
    """Unpickling this calls os.system: what a replaced weight file can carry."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def _plant(hub, marker, name="resnet50-0676ba61.pth"):
    import pickle

    path = hub / "checkpoints" / name
    path.parent.mkdir(parents=True)
    path.write_bytes(pickle.dumps({"fc.weight": _RunsCommand(marker)}, protocol=2))
    return path


def test_a_planted_pickle_in_the_hub_cache_never_runs(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    marker = tmp_path / "pwned"
    planted = _plant(tmp_path, marker)
    with pytest.raises(models.WeightsIntegrityError) as err:
        models.load_backbone("resnet50")
    assert str(planted) in str(err.value) and "0676ba61" in str(err.value)
    assert not marker.exists()


def test_a_planted_pickle_with_the_right_digest_is_still_not_run(tmp_path, monkeypatch):
    """Were the digest forged, the file is still read with weights_only=True, which refuses code."""
    from cwl_lib.digest import sha256_file

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    marker = tmp_path / "pwned"
    planted = _plant(tmp_path, marker)
    monkeypatch.setitem(models.FULL_SHA256, planted.name, sha256_file(planted))
    with pytest.raises(models.WeightsIntegrityError, match="not a plain file of tensors") as err:
        models.load_backbone("resnet50")
    assert str(planted) in str(err.value)
    assert not marker.exists()


def test_the_offline_weights_pass_their_full_digest():
    path = models.weights_file("mobilenet_v2")
    assert path is not None and models.weights_problem(path) is None
    assert models.known_digest(path.name) == (models.FULL_SHA256[path.name], "its known SHA-256")
