"""Pruning by |sigma| < tau: the pruned network equals the masked one, is smaller, and reloads from a plan."""
from __future__ import annotations

import functools

import pytest
import torch
import torchvision
from torch import nn

from cwl_lib import pruning, transfer
from cwl_lib.weighting import insert_weighting, weighted_layers

TAU = 0.6
ARCHS = ("vgg16", "resnet50", "mobilenet_v2")
NUM_CLASSES = 5


def _randomise(model: nn.Module, gen: torch.Generator) -> nn.Module:
    """Random sigmas in [0, 2) and non-trivial BN statistics, so that no channel is trivially zero."""
    with torch.no_grad():
        for w in weighted_layers(model).values():
            w.weighting.sigma.copy_(torch.rand(w.weighting.sigma.shape, generator=gen) * 2)
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_(torch.randn(c, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(c, generator=gen) + 0.5)
                m.weight.copy_(1 + 0.2 * torch.randn(c, generator=gen))
                m.bias.copy_(0.2 * torch.randn(c, generator=gen))
    return model.eval()


def _build(arch: str) -> nn.Module:
    torch.manual_seed(0)
    model = transfer.prepare(torchvision.models.get_model(arch, weights=None), "freeze+cwl", NUM_CLASSES)
    return _randomise(model, torch.Generator().manual_seed(1))


@functools.lru_cache(maxsize=None)
def _pruned(arch: str):
    model = _build(arch)
    pruned, plan = pruning.prune(model, TAU)
    return arch, model, pruned, plan


@pytest.fixture(params=ARCHS)
def case(request):
    return _pruned(request.param)


def _zero_below(model: nn.Module, tau: float) -> nn.Module:
    """The paper's rule written directly: every sigma under tau becomes 0."""
    import copy

    out = copy.deepcopy(model)
    with torch.no_grad():
        for w in weighted_layers(out).values():
            s = w.weighting.sigma
            s[s.abs() < tau] = 0.0
    return out


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return torch.allclose(a, b, rtol=1e-4, atol=1e-4 * float(b.abs().max()))


def test_pruned_equals_masked_unpruned(case):
    arch, model, pruned, plan = case
    assert not plan["rescued"], "random sigmas in [0, 2) should leave every layer above min_channels"
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        want = _zero_below(model, TAU)(x)
        got = pruned.eval()(x)
        unmasked = model(x)
    assert _close(got, want), f"{arch}: pruned output differs from the masked unpruned model"
    assert not _close(unmasked, want), "masking must change the output, or the test proves nothing"


def test_pruned_is_smaller_and_keeps_cwls(case):
    arch, model, pruned, plan = case
    assert pruning.count_parameters(pruned) < pruning.count_parameters(model)
    assert sum(p.numel() for p in pruned.parameters()) < sum(p.numel() for p in model.parameters())
    # every surviving sigma is either >= tau or zeroed (coupled channel kept by another member)
    for name, w in weighted_layers(pruned).items():
        s = w.weighting.sigma.detach().abs()
        assert bool(((s >= TAU) | (s == 0)).all()), name
    # the input model is left alone
    assert any(bool((w.weighting.sigma.abs() < TAU).any()) for w in weighted_layers(model).values())


def test_residual_channels_removed_only_when_all_members_are_below():
    _, model, pruned, plan = _pruned("resnet50")
    s = {n: w.weighting.sigma.detach() for n, w in weighted_layers(model).items()}
    members = ["layer1.0.bn3", "layer1.0.downsample.1", "layer1.1.bn3", "layer1.2.bn3"]
    all_below = torch.stack([s[m].abs() < TAU for m in members]).all(0)
    expected_kept = (~all_below).nonzero().flatten().tolist()
    for m in members:
        assert plan["kept"][m] == expected_kept
    assert pruned.get_submodule("layer2.0.conv1").in_channels == len(expected_kept)
    assert pruned.get_submodule("layer1.1.conv1").in_channels == len(expected_kept)


def test_save_and_load_with_plain_state_dict_and_plan(case, tmp_path):
    arch, model, pruned, plan = case
    path = tmp_path / "pruned.pt"
    torch.save({"state_dict": pruned.state_dict(), "plan": plan}, path)
    blob = torch.load(path, weights_only=True)
    torch.manual_seed(3)  # a different random init: only the loaded weights may explain equal outputs
    fresh = transfer.prepare(torchvision.models.get_model(arch, weights=None), "freeze+cwl", NUM_CLASSES)
    pruning.apply_plan(fresh, blob["plan"])
    fresh.load_state_dict(blob["state_dict"])
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(fresh.eval()(x), pruned.eval()(x))


def test_all_below_tau_layer_keeps_its_largest_sigmas():
    model = _build("vgg16")
    layer = "features.2"
    sigma = weighted_layers(model)[layer].weighting.sigma
    with torch.no_grad():
        sigma.copy_(torch.linspace(0.01, 0.3, sigma.numel()).flip(0))
    pruned, plan = pruning.prune(model, 0.5, min_channels=3)
    kept_sigma = weighted_layers(pruned)[layer].weighting.sigma.detach()
    assert pruned.get_submodule(layer + ".0").out_channels == 3
    assert torch.equal(kept_sigma, sigma.detach()[:3])  # the three largest, unchanged
    assert pruned.get_submodule("features.5.0").in_channels == 3
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.isfinite(pruned.eval()(x)).all()


def test_round_to_keeps_multiples_and_the_largest_sigmas():
    _, model, pruned1, _ = _pruned("vgg16")
    pruned8, plan8 = pruning.prune(model, TAU, round_to=8)
    s = {n: w.weighting.sigma.detach().abs() for n, w in weighted_layers(model).items()}
    for name, kept in plan8["kept"].items():
        n_above = int((s[name] >= TAU).sum())
        assert len(kept) % 8 == 0 and n_above <= len(kept) < n_above + 8, name
        # the channels kept are the largest |sigma| of the layer
        assert sorted(kept) == sorted(torch.argsort(-s[name], stable=True)[:len(kept)].tolist()), name
    assert pruning.count_parameters(pruned1) <= pruning.count_parameters(pruned8)


def test_bad_input_is_refused_with_a_reason():
    plain = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    with pytest.raises(ValueError, match="no Convolution Weighting Layers"):
        pruning.prune(plain, 0.5)
    weighted = insert_weighting(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 2, 3)))
    for tau in (0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="tau"):
            pruning.prune(weighted, tau)
    with pytest.raises(ValueError, match="min_channels"):
        pruning.prune(weighted, 0.5, min_channels=0)
    with pytest.raises(ValueError, match="round_to"):
        pruning.prune(weighted, 0.5, round_to=0)


def test_compression_counts_what_was_removed():
    model = insert_weighting(nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 3, padding=1)))
    with torch.no_grad():
        weighted_layers(model)["0"].weighting.sigma.copy_(torch.tensor([1.0, 0.1] * 4))
    pruned, _ = pruning.prune(model, 0.5, example_input=torch.zeros(1, 3, 8, 8))
    comp = pruning.compression(model, pruned, (3, 8, 8))
    first = comp.layers.set_index("layer").loc["0"]
    assert (first.channels_before, first.channels_after) == (8, 4)
    # conv 0: 4 of 8 filters (3*3*3 weights + 1 bias each); conv 2: 4 of 8 input channels, bias intact
    assert comp.params == pytest.approx((4 * 28 + 4 * 4 * 9 + 4) / (8 * 28 + 4 * 8 * 9 + 4))
    assert comp.features == pytest.approx((4 * 64 + 4 * 64) / (8 * 64 + 4 * 64))


def test_l1_hook_adds_the_penalty_gradient():
    model = insert_weighting(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()))
    sigma = weighted_layers(model)["0"].weighting.sigma
    with torch.no_grad():
        sigma.copy_(torch.tensor([0.5, -0.5, 1.0, 2.0]))
    x = torch.randn(2, 3, 5, 5)
    model(x).sum().backward()
    plain = sigma.grad.clone()
    sigma.grad = None
    with pruning.l1_on_sigmas(model, 0.1):
        model(x).sum().backward()
    assert torch.allclose(sigma.grad - plain, torch.tensor([0.1, -0.1, 0.1, 0.1]))
    sigma.grad = None
    (model(x).sum() + 0.1 * pruning.sigma_l1(model)).backward()
    assert torch.allclose(sigma.grad - plain, torch.tensor([0.1, -0.1, 0.1, 0.1]))


def test_recalibration_sets_each_batch_norm_to_the_statistics_of_its_new_inputs():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 2, 1), nn.BatchNorm2d(2)).eval()
    with torch.no_grad():
        net[1].running_mean.fill_(5.0)
        net[1].running_var.fill_(9.0)
    batches = [torch.randn(5, 3, 6, 6) for _ in range(3)]
    assert pruning.recalibrate_batch_norm(net, batches) == 2
    first = torch.cat([net[0](x) for x in batches]).detach()
    # the cumulative average of the batches' means and unbiased variances, every batch counting the same
    means = torch.stack([net[0](x).detach().mean((0, 2, 3)) for x in batches]).mean(0)
    torch.testing.assert_close(net[1].running_mean, means, rtol=1e-5, atol=1e-6)
    assert net[1].momentum == 0.1 and not net.training and net[1].num_batches_tracked == 3
    assert torch.allclose(net[1].running_var, first.var((0, 2, 3)), rtol=0.2)  # batch-wise, not pooled, variances
    assert pruning.recalibrate_batch_norm(nn.Sequential(nn.Conv2d(3, 2, 1)), batches) == 0
    with pytest.raises(ValueError, match="no batch"):
        pruning.recalibrate_batch_norm(net, [])


def test_a_pruned_network_whose_signal_died_is_found_and_revived_by_recalibration():
    from cwl_lib.studies import pruning as study

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(8, 3)).eval()
    images = torch.randint(0, 255, (12, 3, 8, 8), dtype=torch.uint8)
    data = study.Data(test=None, images=images, labels=torch.zeros(12, dtype=torch.long), classes=3)
    assert not study.dead(net, data, 8, "cpu")
    with torch.no_grad():  # statistics of channels that are gone: every ReLU stays shut
        net[1].running_mean.fill_(1e3)
    assert study.dead(net, data, 8, "cpu")
    pruning.recalibrate_batch_norm(net, [transfer.preprocess(images, 8)])
    assert not study.dead(net, data, 8, "cpu")
