"""Algorithm 1: classifier replacement, strategies, modes, parameter groups, training and evaluation."""
import copy

import pytest
import torch
import torchvision
from torch import nn

from cwl_lib import strategies, transfer
from cwl_lib.weighting import sigma_parameters


class Tiny(nn.Module):
    """A torchvision-like CNN: features (conv, BN), global pooling, a two-layer classifier."""

    def __init__(self, classes=10):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                      nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.classifier = nn.Sequential(nn.Dropout(0.5), nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, classes))

    def forward(self, x):
        return self.classifier(self.flatten(self.pool(self.features(x))))


@pytest.mark.parametrize("name,attr,in_features", [
    ("vgg16", "classifier", 25088), ("resnet50", "fc", 2048), ("mobilenet_v2", "classifier", 1280),
    ("densenet121", "classifier", 1024), ("efficientnet_b0", "classifier", 1280),
])
def test_classifier_becomes_one_linear(name, attr, in_features):
    model = transfer.replace_classifier(torchvision.models.get_model(name, weights=None), 7)
    new = getattr(model, attr)
    assert isinstance(new, nn.Linear) and (new.in_features, new.out_features) == (in_features, 7)
    with torch.no_grad():
        assert model.eval()(torch.zeros(1, 3, 64, 64)).shape == (1, 7)


def test_classifier_keeps_shape_layers_before_the_first_linear():
    model = transfer.replace_classifier(torchvision.models.get_model("convnext_tiny", weights=None), 3)
    kinds = [type(m).__name__ for m in model.classifier]
    assert kinds == ["LayerNorm2d", "Flatten", "Linear"]
    with torch.no_grad():
        assert model.eval()(torch.zeros(2, 3, 64, 64)).shape == (2, 3)


def test_unknown_strategy_and_bad_class_count_are_refused():
    with pytest.raises(ValueError, match="freeze, freeze\\+cwl"):
        transfer.prepare(Tiny(), "frozen", 3)
    with pytest.raises(ValueError, match="at least 2"):
        transfer.prepare(Tiny(), "freeze", 1)
    with pytest.raises(ValueError, match="BatchNorm"):
        transfer.prepare(torchvision.models.get_model("vgg11", weights=None), "bn-affine", 3)


@pytest.mark.parametrize("strategy", strategies.NAMES)
def test_trainable_parameters_per_strategy(strategy):
    model = transfer.prepare(Tiny(), strategy, 3)
    names = set(transfer.trainable_names(model))
    head = {"classifier.weight", "classifier.bias"}
    sig = {n for n, p in model.named_parameters() if any(p is s for s in sigma_parameters(model))}
    bn = {n for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d) for n in (f"{n}.weight", f"{n}.bias")}
    everything = {n for n, _ in model.named_parameters()}
    expected = {
        "freeze": head, "freeze+cwl": head | sig, "finetune": everything,
        "finetune+cwl": everything, "bn-affine": head | bn,
    }[strategy]
    assert names == expected
    s = strategies.get(strategy)
    assert bool(sig) == s.cwl
    counts = transfer.trainable_counts(model)
    assert sum(counts.values()) == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert counts["sigma"] == sum(p.numel() for p in sigma_parameters(model))
    groups = {g["name"]: g for g in transfer.param_groups(model, lr=0.01, backbone_lr_factor=0.1)}
    assert sum(len(g["params"]) for g in groups.values()) == len(names)
    assert groups["head"]["lr"] == 0.01
    if "backbone" in groups:
        assert s.finetunes and groups["backbone"]["lr"] == pytest.approx(0.001)
    if "bn" in groups:
        assert groups["bn"]["lr"] == pytest.approx(0.001)
    if "sigma" in groups:
        assert groups["sigma"]["lr"] == 0.01


def test_lr_grids_are_the_papers():
    assert strategies.get("finetune+cwl").lrs == (1e-5, 5e-5, 1e-4, 5e-4, 1e-3)
    assert strategies.get("freeze").lrs == strategies.get("bn-affine").lrs == (1e-3, 5e-3, 1e-2, 5e-2)


def test_frozen_strategies_keep_bn_statistics_and_weights():
    torch.manual_seed(0)
    for strategy in ("freeze", "freeze+cwl", "bn-affine"):
        model = transfer.prepare(Tiny(), strategy, 3)
        before = copy.deepcopy(model.state_dict())
        x, y = torch.randn(6, 3, 8, 8), torch.tensor([0, 1, 2, 0, 1, 2])
        transfer.train(model, lambda e: [(x, y)], strategy, lr=0.01, epochs=2)
        after = model.state_dict()
        trainable = set(transfer.trainable_names(model))
        for k in before:
            if k not in trainable:
                assert torch.equal(before[k], after[k]), (strategy, k)
        assert not model.training
    model = transfer.prepare(Tiny(), "finetune", 3)
    transfer.set_train_mode(model, "finetune", bn_train=True)
    assert all(m.training for m in model.modules())
    transfer.set_train_mode(model, "finetune")
    assert not any(m.training for m in model.modules())
    transfer.set_train_mode(model, "freeze", bn_train=True)
    assert not any(m.training for m in model.modules())


def test_split_head_composes_back_to_the_model():
    model = transfer.prepare(Tiny(), "freeze", 3).eval()
    body, head = transfer.split_head(model)
    x = torch.randn(4, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(head(body(x)), model(x))
    assert transfer.classifier_name(model) == "classifier"  # the original model keeps its head


def test_preprocess_uint8_grey_to_normalised_rgb():
    img = torch.full((2, 1, 28, 28), 255, dtype=torch.uint8)
    x = transfer.preprocess(img, size=32)
    assert x.shape == (2, 3, 32, 32) and x.dtype == torch.float32
    expected = (1 - torch.tensor(transfer.IMAGENET_MEAN)) / torch.tensor(transfer.IMAGENET_STD)
    torch.testing.assert_close(x[0, :, 5, 5], expected)
    with pytest.raises(TypeError, match="uint8"):
        transfer.preprocess(img.float())


def test_seeded_batches_cover_every_index_without_a_batch_of_one():
    order = transfer.seeded_batches(9, 4, seed=3)
    batches = list(order(0))
    assert sorted(torch.cat(batches).tolist()) == list(range(9))
    assert min(len(b) for b in batches) > 1
    assert [b.tolist() for b in order(0)] == [b.tolist() for b in batches]
    assert [b.tolist() for b in order(1)] != [b.tolist() for b in batches]


def _blobs(n_per_class=20, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(classes).repeat_interleave(n_per_class)
    colours = torch.tensor([[220, 30, 30], [30, 220, 30], [30, 30, 220]], dtype=torch.float)[:classes]
    imgs = colours[y].view(-1, 3, 1, 1) + 20 * torch.randn(len(y), 3, 12, 12, generator=g)
    return imgs.clamp(0, 255).to(torch.uint8), y


@pytest.mark.parametrize("strategy", strategies.NAMES)
def test_training_learns_a_separable_task(strategy):
    torch.manual_seed(0)
    images, labels = _blobs()
    model = transfer.prepare(Tiny(), strategy, 3)
    lr = 0.05 if not strategies.get(strategy).finetunes else 0.01
    res = transfer.train(model, transfer.image_batches(images, labels, 16, seed=0), strategy, lr=lr, epochs=15)
    assert res.losses[-1] < res.losses[0]
    test_images, test_labels = _blobs(seed=1)
    assert transfer.evaluate(model, test_images, test_labels, batch_size=7) > 0.9


def test_a_diverging_learning_rate_stops_early_instead_of_crashing():
    model = transfer.prepare(Tiny(), "finetune", 3)
    images, labels = _blobs()
    x = transfer.preprocess(images) * 1e30
    res = transfer.train(model, lambda e: [(x, labels)], "finetune", lr=1e3, epochs=5)
    assert len(res.losses) <= 5
    acc = transfer.evaluate(model, images, labels)
    assert 0.0 <= acc <= 1.0


def test_a_budget_in_steps_is_that_many_optimizer_steps_over_several_epochs():
    torch.manual_seed(0)
    model = transfer.prepare(Tiny(), "freeze+cwl", 3)
    images = torch.randint(0, 255, (7, 3, 8, 8), dtype=torch.uint8)
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0])
    epochs_seen = []
    res = transfer.train(model, transfer.image_batches(images, labels, 3, seed=0), "freeze+cwl", lr=0.01,
                         epochs=None, steps=5, progress=lambda e, loss: epochs_seen.append(e))
    # 7 images in batches of 3 make 2 batches an epoch (the last image joins the second): 5 steps end mid-epoch 3
    assert res.steps == 5 and epochs_seen == [0, 1, 2] and len(res.losses) == 3
    with pytest.raises(ValueError, match="budget"):
        transfer.train(model, lambda e: [], "freeze+cwl", lr=0.01, epochs=None)


@pytest.mark.parametrize("optimizer,cls", [("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW),
                                           ("sgd", torch.optim.SGD)])
def test_each_optimizer_and_its_weight_decay(optimizer, cls):
    model = transfer.prepare(Tiny(), "freeze+cwl", 3)
    opt = transfer.make_optimizer(model, 0.01, 0.1, weight_decay=5e-4, optimizer=optimizer)
    assert type(opt) is cls and all(g["weight_decay"] == 5e-4 for g in opt.param_groups)
    with pytest.raises(ValueError, match="optimizer is one of"):
        transfer.make_optimizer(model, 0.01, 0.1, optimizer="rmsprop")


def test_coupled_weight_decay_shrinks_scales_the_loss_no_longer_moves():
    """Adam normalises the coupled penalty's gradient: a scale with no gradient of its own falls by about the
    learning rate per step, which is what spreads the sigmas under weight decay (page 05)."""
    torch.manual_seed(0)
    x, y = torch.randn(6, 3, 8, 8), torch.tensor([0, 1, 2, 0, 1, 2])
    shifts = {}
    for name, wd in (("none", 0.0), ("coupled", 5e-4)):
        model = transfer.prepare(Tiny(), "freeze+cwl", 3)
        head = transfer.head(model)
        with torch.no_grad():
            head.weight.zero_()  # no gradient reaches the scales: only the penalty moves them
        head.weight.requires_grad_(False)
        transfer.train(model, lambda e: [(x, y)], "freeze+cwl", lr=0.01, epochs=20, weight_decay=wd)
        shifts[name] = float(torch.cat([1 - p.detach() for p in sigma_parameters(model)]).mean())
    assert shifts["none"] == 0.0 and shifts["coupled"] == pytest.approx(20 * 0.01, rel=0.05)
