"""Device choice and seeding, shared by every notebook and experiment."""
from __future__ import annotations

import random

import numpy as np
import torch


def pick_device(device: str = "auto") -> torch.device:
    """``auto`` means the GPU when one is present, else the CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was asked for but no CUDA GPU is visible; use device='cpu' or 'auto'")
    return dev


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a torch generator seeded the same way for samplers."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def tune_for_repeated_shapes(device: torch.device) -> None:
    """Let cuDNN time its convolution algorithms once per input shape and keep the fastest: a grid runs
    the same few shapes thousands of times, so the one-off timing pays back (results stay within
    float rounding of each other, not bitwise equal)."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
