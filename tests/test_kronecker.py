"""Section III-A: the rearrangement R(A), Theorem 1 and the rank-k Kronecker approximation."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cwl_lib import kronecker as K

SETTINGS = settings(max_examples=25, deadline=None)
dims = st.integers(min_value=1, max_value=5)
dtypes = st.sampled_from([torch.float32, torch.float64])


def _tol(dtype):
    return 1e-4 if dtype == torch.float32 else 1e-10


def _randn(*shape, dtype=torch.float64, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


@SETTINGS
@given(m1=dims, n1=dims, m2=dims, n2=dims, dtype=dtypes, seed=st.integers(0, 2**16))
def test_rearranged_kronecker_product_is_the_outer_product_of_vecs(m1, n1, m2, n2, dtype, seed):
    B = _randn(m1, n1, dtype=dtype, seed=seed)
    C = _randn(m2, n2, dtype=dtype, seed=seed + 1)
    R = K.rearrange(torch.kron(B, C), (m1, n1), (m2, n2))
    assert R.shape == (m1 * n1, m2 * n2)
    torch.testing.assert_close(R, torch.outer(B.reshape(-1), C.reshape(-1)), rtol=0, atol=0)


@SETTINGS
@given(m1=dims, n1=dims, m2=dims, n2=dims, batch=st.integers(0, 2), seed=st.integers(0, 2**16))
def test_rearrange_is_a_permutation_undone_by_unrearrange(m1, n1, m2, n2, batch, seed):
    A = _randn(*([2] * batch), m1 * m2, n1 * n2, seed=seed)
    R = K.rearrange(A, (m1, n1), (m2, n2))
    assert torch.equal(K.unrearrange(R, (m1, n1), (m2, n2)), A)
    assert torch.equal(R.reshape(*R.shape[:-2], -1).sort(-1).values, A.reshape(*A.shape[:-2], -1).sort(-1).values)


@SETTINGS
@given(m1=dims, n1=dims, m2=dims, n2=dims, dtype=dtypes, seed=st.integers(0, 2**16))
def test_theorem1_the_two_frobenius_norms_agree(m1, n1, m2, n2, dtype, seed):
    A = _randn(m1 * m2, n1 * n2, dtype=dtype, seed=seed)
    B = _randn(m1, n1, dtype=dtype, seed=seed + 1)
    C = _randn(m2, n2, dtype=dtype, seed=seed + 2)
    assert K.theorem1_gap(A, B, C).item() <= _tol(dtype)


@SETTINGS
@given(m1=dims, n1=dims, m2=dims, n2=dims, dtype=dtypes, batch=st.integers(0, 2), seed=st.integers(0, 2**16),
       data=st.data())
def test_rank_k_error_is_the_tail_of_the_singular_values(m1, n1, m2, n2, dtype, batch, seed, data):
    rank = data.draw(st.integers(1, min(m1 * n1, m2 * n2)))
    A = _randn(*([3] * batch), m1 * m2, n1 * n2, dtype=dtype, seed=seed)
    B, C = K.nearest_kronecker(A, (m1, n1), (m2, n2), rank=rank)
    assert B.shape == (*A.shape[:-2], rank, m1, n1) and C.shape == (*A.shape[:-2], rank, m2, n2)
    assert B.dtype == dtype and C.dtype == dtype
    measured, predicted = K.kronecker_errors(A, (m1, n1), (m2, n2), [rank])
    scale = torch.linalg.matrix_norm(A).unsqueeze(-1)
    assert ((measured - predicted).abs() / scale).max().item() <= 10 * _tol(dtype)
    # and the SVD solution is no worse than the rank-1 solution nor than any random Kronecker product
    Br, Cr = _randn(m1, n1, dtype=dtype, seed=seed + 5), _randn(m2, n2, dtype=dtype, seed=seed + 6)
    worse = torch.linalg.matrix_norm(A - torch.kron(Br, Cr))
    assert (measured[..., 0] <= worse * (1 + 10 * _tol(dtype))).all()


@SETTINGS
@given(m1=dims, n1=dims, m2=dims, n2=dims, seed=st.integers(0, 2**16))
def test_full_rank_sum_rebuilds_any_matrix_and_rank1_recovers_a_kronecker_product(m1, n1, m2, n2, seed):
    A = _randn(m1 * m2, n1 * n2, seed=seed)
    full = K.max_kronecker_rank((m1, n1), (m2, n2))
    torch.testing.assert_close(K.kron_sum(*K.nearest_kronecker(A, (m1, n1), (m2, n2), rank=full)), A)
    P = torch.kron(_randn(m1, n1, seed=seed + 1), _randn(m2, n2, seed=seed + 2))
    B, C = K.nearest_kronecker(P, (m1, n1), (m2, n2), rank=1)
    torch.testing.assert_close(torch.kron(B[0], C[0]), P)


def test_kron_sum_matches_torch_kron_and_batches():
    B, C = _randn(2, 3, 4, 2, seed=1), _randn(2, 3, 2, 5, seed=2)
    out = K.kron_sum(B, C)
    assert out.shape == (2, 8, 10)
    for b in range(2):
        torch.testing.assert_close(out[b], sum(torch.kron(B[b, r], C[b, r]) for r in range(3)))
    torch.testing.assert_close(K.kron_sum(B[0, 0], C[0, 0]), torch.kron(B[0, 0], C[0, 0]))


def test_factors_carry_sqrt_sigma_and_signs_are_deterministic():
    A = _randn(12, 10, seed=3)
    b_shape, c_shape = (3, 2), (4, 5)
    B, C = K.nearest_kronecker(A, b_shape, c_shape, rank=3)
    sigma = K.kronecker_singular_values(A, b_shape, c_shape)[:3]
    torch.testing.assert_close(torch.linalg.vector_norm(B.reshape(3, -1), dim=1), sigma.sqrt())
    torch.testing.assert_close(torch.linalg.vector_norm(C.reshape(3, -1), dim=1), sigma.sqrt())
    B2, C2 = K.nearest_kronecker(-A, b_shape, c_shape, rank=3)  # same subspaces: the sign rule picks one
    torch.testing.assert_close(B2, B)
    torch.testing.assert_close(C2, -C)


def test_bad_shapes_and_ranks_fail_with_a_message():
    A = torch.zeros(6, 6)
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 4, 9\)"):
        K.rearrange(A, (2, 3), (2, 3))
    with pytest.raises(ValueError, match="rank must be between 1 and"):
        K.nearest_kronecker(A, (2, 2), (3, 3), rank=5)
    with pytest.raises(ValueError, match="same leading shape"):
        K.kron_sum(torch.zeros(2, 2, 2), torch.zeros(3, 2, 2))


def test_conv_weight_layout_separates_channels_from_space():
    w = _randn(4, 3, 3, 3, seed=7)
    A, b_shape, c_shape = K.conv_weight_matrix(w)
    torch.testing.assert_close(K.rearrange(A, b_shape, c_shape), w.reshape(12, 9))
    # a weight that is exactly "channel mixing (x) one spatial kernel" is rank 1
    sep = torch.einsum("oi,hw->oihw", _randn(4, 3, seed=8), _randn(3, 3, seed=9))
    A, b_shape, c_shape = K.conv_weight_matrix(sep)
    s = K.kronecker_singular_values(A, b_shape, c_shape)
    assert (s[1:] / s[0]).max() < 1e-12


def test_image_blocks_crop_to_multiples():
    img, b_shape, c_shape = K.image_blocks(torch.zeros(3, 37, 50), 8)
    assert img.shape == (3, 32, 48) and b_shape == (4, 6) and c_shape == (8, 8)
    with pytest.raises(ValueError, match="smaller than one"):
        K.image_blocks(torch.zeros(5, 5), 8)


def test_sample_photo_is_a_real_image_in_unit_range():
    gray = K.sample_photo("camera", size=64)
    color = K.sample_photo("coffee", size=60)
    assert gray.shape == (1, 64, 64) and color.shape == (3, 40, 60)
    assert gray.dtype == torch.float64 and 0 <= color.min() and color.max() <= 1 and gray.std() > 0.1
    with pytest.raises(ValueError, match="no sample image"):
        K.sample_photo("not_an_image")


def test_approximations_from_one_svd_match_nearest_kronecker():
    A = _randn(2, 12, 20, seed=9)
    approx = K.kronecker_approximations(A, (3, 4), (4, 5), [1, 3, 12])
    for k, a in zip([1, 3, 12], approx):
        torch.testing.assert_close(a, K.kron_sum(*K.nearest_kronecker(A, (3, 4), (4, 5), rank=k)))
    torch.testing.assert_close(approx[-1], A)
