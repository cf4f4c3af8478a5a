"""Equivalence tests of the Convolution Weighting Layers on real torchvision architectures (random weights).

* all sigmas at 1: the weighted model equals the backbone;
* sigmas trained (or random), then folded: the folded model equals the weighted one, BN in eval mode,
  with the original architecture and state-dict keys;
* in ``freeze+cwl`` the trainable parameters are exactly the sigmas and the new head.
"""
import copy

import pytest
import torch
import torchvision
from torch import nn

from cwl_lib import transfer
from cwl_lib.weighting import (
    ConvWeighting,
    Weighted,
    fold_weighting,
    insert_weighting,
    sigma_parameters,
    sigmas,
    weighted_layers,
)

ARCHS = ("vgg16", "resnet50", "mobilenet_v2")
N_CONVS = {"vgg16": 13, "resnet50": 53, "mobilenet_v2": 52}
pytestmark = pytest.mark.slow


def _randomised(name: str) -> nn.Module:
    """A torchvision model with random weights and non-trivial BN statistics and affine parameters."""
    torch.manual_seed(0)
    model = torchvision.models.get_model(name, weights=None)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return model.eval()


@pytest.fixture(scope="module", params=ARCHS)
def arch(request):
    return request.param, _randomised(request.param)


def _x(seed=1, n=2, size=64):
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def test_a_weighting_layer_after_every_convolution(arch):
    name, model = arch
    weighted = insert_weighting(copy.deepcopy(model))
    layers = weighted_layers(weighted)
    assert len(layers) == N_CONVS[name] == sum(isinstance(m, nn.Conv2d) for m in model.modules())
    for site, w in layers.items():
        assert isinstance(w.weighting, ConvWeighting)
        assert torch.equal(w.weighting.sigma, torch.ones_like(w.weighting.sigma))
    if name != "vgg16":  # BN-equipped: every scale sits after the BN that normalises its conv
        assert all(isinstance(w.layer, nn.BatchNorm2d) for w in layers.values())
    else:
        assert all(isinstance(w.layer, nn.Conv2d) for w in layers.values())


def test_sigmas_at_one_equal_the_backbone(arch):
    _, model = arch
    x = _x()
    with torch.no_grad():
        ref = model(x)
        out = insert_weighting(copy.deepcopy(model)).eval()(x)
    torch.testing.assert_close(out, ref, rtol=0, atol=0)


def test_random_sigmas_fold_into_the_same_function_and_keys(arch):
    _, model = arch
    weighted = insert_weighting(copy.deepcopy(model)).eval()
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in sigma_parameters(weighted):
            p.copy_(torch.empty(p.shape).uniform_(-1.5, 1.5, generator=g))
    x = _x()
    with torch.no_grad():
        before = weighted(x)
        folded = fold_weighting(weighted)
        after = folded(x)
    # batch statistics of a few values per channel amplify rounding: a looser, still tight, tolerance
    torch.testing.assert_close(after, before, rtol=1e-3, atol=1e-3 * before.abs().max().item())
    assert not any(isinstance(m, (Weighted, ConvWeighting)) for m in folded.modules())
    ref_sd, new_sd = model.state_dict(), folded.state_dict()
    assert list(new_sd) == list(ref_sd)
    assert all(new_sd[k].shape == ref_sd[k].shape for k in ref_sd)
    assert type(folded) is type(model)


def test_trained_sigmas_fold_exactly_and_freeze_cwl_trains_only_sigmas_and_head(arch):
    name, model = arch
    prepared = transfer.prepare(copy.deepcopy(model), "freeze+cwl", num_classes=4)
    sigma_ids = {id(p) for p in sigma_parameters(prepared)}
    sigma_names = {n for n, p in prepared.named_parameters() if id(p) in sigma_ids}
    assert all(n.endswith(".1.sigma") for n in sigma_names)  # Weighted(layer, ConvWeighting)
    expected = set(sigma_names)
    expected |= {f"{transfer.classifier_name(prepared)}.{n}" for n, _ in transfer.head(prepared).named_parameters()}
    assert set(transfer.trainable_names(prepared)) == expected
    assert len(sigma_names) == N_CONVS[name]
    frozen = {n: p.detach().clone() for n, p in prepared.named_parameters() if not p.requires_grad}
    buffers = {n: b.clone() for n, b in prepared.named_buffers()}

    torch.manual_seed(0)
    x = _x(seed=5, n=8, size=32)
    y = torch.arange(8) % 4
    result = transfer.train(prepared, lambda epoch: [(x, y)], "freeze+cwl", lr=0.05, epochs=3)
    assert result.steps == 3
    learned = sigmas(prepared)
    assert any(not torch.allclose(s, torch.ones_like(s)) for s in learned.values()), "sigmas did not train"
    # frozen weights and BN running statistics untouched
    for n, p in prepared.named_parameters():
        if n in frozen:
            assert torch.equal(p, frozen[n]), n
    for n, b in prepared.named_buffers():
        assert torch.equal(b, buffers[n]), n

    xt = _x(seed=6)
    with torch.no_grad():
        before = prepared.eval()(xt)
        after = fold_weighting(prepared)(xt)
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-4 * before.abs().max().item())


def test_fold_matches_in_train_mode_for_bn_sites():
    # The scale acts after normalisation, so folding into gamma and beta also holds with batch statistics.
    model = _randomised("mobilenet_v2")
    weighted = insert_weighting(model)
    with torch.no_grad():
        for p in sigma_parameters(weighted):
            p.uniform_(0.5, 1.5)
    x = _x(n=4, size=64)
    ref_model = copy.deepcopy(weighted).train()
    with torch.no_grad():
        torch.manual_seed(0)  # the same dropout mask in both runs
        before = ref_model(x)
        folded = fold_weighting(weighted).train()
        torch.manual_seed(0)
        after = folded(x)
    # batch statistics of a few values per channel amplify rounding: a looser, still tight, tolerance
    torch.testing.assert_close(after, before, rtol=1e-3, atol=1e-3 * before.abs().max().item())


def test_insert_twice_is_refused_and_a_model_without_conv_too():
    model = insert_weighting(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()))
    with pytest.raises(ValueError, match="fold_weighting"):
        insert_weighting(model)
    with pytest.raises(ValueError, match="no convolution"):
        insert_weighting(nn.Sequential(nn.Flatten(), nn.Linear(3 * 64 * 64, 2)))


def test_conv_feeding_two_layers_keeps_its_scale_on_the_conv():
    class Fork(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.bn = nn.BatchNorm2d(4)
            self.side = nn.Conv2d(4, 4, 1)

        def forward(self, x):
            y = self.conv(x)
            return self.bn(y) + self.side(y)

    model = insert_weighting(Fork().eval())
    assert list(weighted_layers(model)) == ["conv", "side"]  # not "bn": the side branch needs the scale too


@pytest.mark.parametrize("arch", ARCHS)
def test_fused_forward_equals_the_feature_map_product_in_value_and_gradient(arch):
    """Weighted scales the layer's weights; multiplying the feature map must give the same function and
    the same gradients for every parameter, sigmas included, at random sigmas."""
    torch.manual_seed(1)
    # a small head: VGG-16's 120M-weight classifier in float64 would only slow the test down
    model = transfer.replace_classifier(_randomised(arch), 10)
    model = insert_weighting(model.eval(), torch.zeros(1, 3, 32, 32)).double()
    with torch.no_grad():
        for p in sigma_parameters(model):
            p.uniform_(0.2, 2.0)
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    results = []
    for fused in (True, False):
        Weighted.fused = fused
        try:
            model.zero_grad()
            out = model(x)
            out.square().mean().backward()
        finally:
            Weighted.fused = True
        results.append((out.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}))
    (a, grads_a), (b, grads_b) = results
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    assert grads_a.keys() == grads_b.keys() and any("sigma" in n for n in grads_a)
    for name in grads_a:
        torch.testing.assert_close(grads_a[name], grads_b[name], rtol=1e-7, atol=1e-10, msg=lambda m: f"{name}: {m}")


def test_fused_layers_still_run_their_hooks_and_train_mode_statistics():
    model = insert_weighting(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 2, 1)))
    seen = []
    conv = weighted_layers(model)["3"].layer
    conv.register_forward_hook(lambda m, i, o: seen.append(tuple(o.shape)))
    model.train()(torch.randn(2, 3, 6, 6))
    assert seen == [(2, 2, 4, 4)]
    bn = weighted_layers(model)["1"].layer
    assert int(bn.num_batches_tracked) == 1 and not torch.equal(bn.running_mean, torch.zeros(4))


def test_frozen_batch_norms_fold_into_their_convolutions_as_the_same_network(arch):
    """A frozen-BN strategy trains the folded network: same outputs, same sigma gradients, the same CWL names
    once mapped back, for VGG-16 (nothing to fold), ResNet-50 and MobileNetV2."""
    name, model = arch
    torch.manual_seed(3)
    plain = transfer.prepare(copy.deepcopy(model), "freeze+cwl", 5)
    torch.manual_seed(3)
    folded = transfer.prepare(copy.deepcopy(model), "freeze+cwl", 5, fold_bn=True)
    pairs = transfer.folded_batch_norms(folded)
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert len(pairs) == n_bn and not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    with torch.no_grad():  # random scales, so that a CWL placed wrongly would show
        for net in (plain, folded):
            gen = torch.Generator().manual_seed(5)
            for site, w in sorted(transfer.rename_sigmas_of(net).items()):
                w.weighting.sigma.copy_(torch.rand(w.weighting.sigma.shape, generator=gen) + 0.5)
    x = _x(n=3)
    out_plain, out_folded = plain.eval()(x), folded.eval()(x)
    torch.testing.assert_close(out_folded, out_plain, rtol=1e-4, atol=1e-4)
    out_plain.square().sum().backward()
    out_folded.square().sum().backward()
    grads = lambda net: {n: w.weighting.sigma.grad for n, w in transfer.rename_sigmas_of(net).items()}  # noqa: E731
    g_plain, g_folded = grads(plain), grads(folded)
    assert set(g_plain) == set(g_folded) == set(transfer.learned_sigmas(plain)) == set(transfer.learned_sigmas(folded))
    for site in g_plain:  # float32 rounding of a different summation order: compared as vectors
        gap = torch.linalg.vector_norm(g_folded[site] - g_plain[site])
        assert gap <= 1e-3 * torch.linalg.vector_norm(g_plain[site]) + 1e-6, site
    assert [p.requires_grad for p in folded.parameters()].count(True) == len(g_plain) + 2  # sigmas, head W and b


def test_folding_is_refused_for_a_strategy_that_trains_batch_norm():
    with pytest.raises(ValueError, match="cannot be folded"):
        transfer.prepare(_randomised("resnet18"), "bn-affine", 5, fold_bn=True)
