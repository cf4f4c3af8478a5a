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
    """Let cuDNN pick the fastest convolution per input shape: a grid runs a few shapes thousands of times
    (results then agree to float rounding, not bitwise)."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
