"""GPU check of Section III: Kronecker factorization and convolution as a matrix product on CUDA tensors.

Random-weight VGG-16 / MobileNetV2 layers and random data. Checks, on the GPU, that
``conv2d_as_matmul`` equals ``F.conv2d`` (fp32; TF32 disabled so the comparison is fp32 against fp32),
that Theorem 1 and the rank-k error identity hold in float64 on batched matrices, that Eq. 5 with SVD
filters rebuilds an image exactly, and that the orthogonality table runs on CUDA weights. Prints the
time of im2col-convolution relative to cuDNN at 224x224. Exits non-zero on a failure.
"""
from __future__ import annotations

import sys
import time

import torch
import torchvision

from cwl_lib import convolution as conv
from cwl_lib import kronecker as K


def _timed(fn, reps=10):
    fn()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(reps):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / reps


def main() -> int:
    if not torch.cuda.is_available():
        print("no CUDA GPU: nothing to check")
        return 0
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    dev = torch.device("cuda")
    print("GPU:", torch.cuda.get_device_name(dev))
    ok = True
    g = torch.Generator(device=dev).manual_seed(0)

    # Theorem 1 and rank-k error, batched float64 on the GPU
    A = torch.randn(8, 12 * 10, 9 * 7, generator=g, device=dev, dtype=torch.float64)
    b, c = (12, 9), (10, 7)
    B, C = torch.randn(8, *b, generator=g, device=dev, dtype=torch.float64), torch.randn(8, *c, generator=g, device=dev, dtype=torch.float64)
    gap = K.theorem1_gap(A, B, C).max().item()
    measured, predicted = K.kronecker_errors(A, b, c, [1, 5, 20, 63])
    rank_gap = ((measured - predicted).abs().max() / A.norm()).item()
    print(f"theorem 1 gap {gap:.1e}, rank-k gap {rank_gap:.1e}")
    ok &= gap < 1e-12 and rank_gap < 1e-10

    # Eq. 5 with SVD filters rebuilds the input exactly with all c*w*h filters
    x = torch.rand(2, 3, 64, 96, generator=g, device=dev, dtype=torch.float64)
    res = conv.kronecker_feature_maps(x, conv.svd_filters(x, 4, 48))
    rebuild = ((res.reconstruction - x).norm() / x.norm()).item()
    print(f"Eq. 5 rebuild error {rebuild:.1e} ({res.method})")
    ok &= rebuild < 1e-10

    for arch in ("vgg16", "mobilenet_v2"):
        torch.manual_seed(0)
        net = torchvision.models.get_model(arch, weights=None).to(dev).eval()
        xin = torch.randn(4, 3, 224, 224, generator=g, device=dev)
        records = conv.capture_conv_io(net, xin, layers=8)
        worst, t_ours, t_ref = 0.0, 0.0, 0.0
        for name, layer, inp, out in records:
            with torch.no_grad():
                ours = conv.conv_layer_as_matmul(layer, inp)
                worst = max(worst, ((ours - out).abs().max() / out.abs().max()).item())
                t_ours += _timed(lambda: conv.conv_layer_as_matmul(layer, inp))
                t_ref += _timed(lambda: layer(inp))
        table = conv.orthogonality_table(net, groups=1)
        print(f"{arch}: {len(records)} layers, max rel diff to cuDNN {worst:.1e}; "
              f"im2col/cuDNN time ratio {t_ours / t_ref:.1f}; orthogonality table rows {len(table)}")
        ok &= worst < 1e-4 and len(table) > 0
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
