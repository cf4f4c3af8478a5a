"""OpenMP wait policy for the laptop profile's small training steps: spinning against passive threads.

Times a frozen-backbone MobileNetV2 step (64 px, batch 10: the laptop classification run's input; the backward
pass stops at the classifier, as in freeze, where freeze+cwl's goes through every layer to its scales) in fresh
processes under each setting, alone and with two such processes at once (what pytest beside a notebook kernel,
or two jobs on one machine, look like). The Makefile keeps torch's default for `make book` (one kernel at a time)
and sets OMP_WAIT_POLICY=PASSIVE for the tests and benchmarks; this prints the ratios behind that choice.
Usage: python benchmarks/bench_openmp.py [--steps 100]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys

STEP = r"""
import time, torch, torchvision
torch.manual_seed(0)
m = torchvision.models.mobilenet_v2(num_classes=10).eval()
for p in m.features.parameters():
    p.requires_grad_(False)
opt = torch.optim.Adam([p for p in m.parameters() if p.requires_grad], 1e-3)
x, y = torch.randn(10, 3, 64, 64), torch.randint(0, 10, (10,))
def step():
    opt.zero_grad(); torch.nn.functional.cross_entropy(m(x), y).backward(); opt.step()
for _ in range(5):
    step()
t = time.perf_counter()
for _ in range(STEPS):
    step()
print((time.perf_counter() - t) / STEPS)
"""
SETTINGS = {"default (spinning)": {}, "OMP_WAIT_POLICY=PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
            "one thread": {"OMP_NUM_THREADS": "1"}}


def timed(env: dict, steps: int, together: int) -> float:
    """Mean step time (s) of ``together`` processes started at once under ``env``."""
    base = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    code = STEP.replace("STEPS", str(steps))
    procs = [subprocess.Popen([sys.executable, "-c", code], env={**base, **env}, stdout=subprocess.PIPE, text=True)
             for _ in range(together)]
    times = [float(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    return sum(times) / len(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=100)
    args = ap.parse_args()
    print(f"{'setting':<26} {'alone (ms)':>11} {'2 at once (ms)':>15}")
    rows = {name: (timed(env, args.steps, 1), timed(env, args.steps, 2)) for name, env in SETTINGS.items()}
    for name, (alone, pair) in rows.items():
        print(f"{name:<26} {1000 * alone:>11.1f} {1000 * pair:>15.1f}")
    spin, passive = rows["default (spinning)"], rows["OMP_WAIT_POLICY=PASSIVE"]
    print(f"passive / spinning, alone: {passive[0] / spin[0]:.2f} (make book keeps spinning where this is above 1)")
    print(f"spinning / passive, two at once: {spin[1] / passive[1]:.1f} (why the tests run passive)")


if __name__ == "__main__":
    main()
