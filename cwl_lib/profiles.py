"""The three parameter sets every notebook runs under: ``smoke``, ``laptop`` and ``paper``.

``smoke`` equals each notebook's own ``parameters`` cell (a test keeps them equal), so the committed
notebooks, their outputs and nbval all describe the smoke run. ``laptop`` is the offline default of
the main job: a 2-core CPU, real ImageNet MobileNetV2 weights, real offline images. ``paper`` is the
paper's own setting: a GPU, the real datasets, VGG-16 and ResNet-50.
"""
from __future__ import annotations

import copy

from .data import requirements

PROFILES = ("smoke", "laptop", "paper")
NOTEBOOKS = (
    "01_kronecker",
    "02_convolution_svd",
    "03_classification",
    "04_retrieval",
    "05_pruning",
)

# Parameters every notebook accepts; the runner fills results_dir, an empty one means "fresh temp dir".
COMMON = {"profile": "smoke", "seed": 0, "device": "auto", "results_dir": "", "data_root": ""}

# Data a notebook needs beyond its `dataset(s)` and `arch(s)` parameters.
EXTRA_REQUIREMENTS = {
    "01_kronecker": ("skimage-photos",),
    "02_convolution_svd": ("mnist-5k",),
}

_SPECIFIC: dict[str, dict[str, dict]] = {
    "smoke": {
        "01_kronecker": {},
        "02_convolution_svd": {},
        "03_classification": {
            "datasets": ["fashion-mnist"], "archs": ["mobilenet_v2"], "pretrained": True,
            "strategies": ["freeze", "freeze+cwl", "finetune", "finetune+cwl", "bn-affine"],
            "shots": [1, 2], "repeats": 2, "lr_freeze": [0.05], "lr_finetune": [0.001],
            "epochs": 2, "batch_size": 32, "input_size": 32, "test_size": 100,
            "backbone_lr_factor": 0.1, "eval_batch_size": 256,
        },
        "04_retrieval": {},
        "05_pruning": {},
    },
    "laptop": {
        "01_kronecker": {},
        "02_convolution_svd": {},
        "03_classification": {
            "datasets": ["fashion-mnist"], "archs": ["mobilenet_v2"], "pretrained": True,
            "strategies": ["freeze", "freeze+cwl"],
            "shots": [1, 5, 10], "repeats": 3, "lr_freeze": [0.001, 0.005, 0.01, 0.05],
            "lr_finetune": [1e-05, 5e-05, 0.0001, 0.0005, 0.001],
            "epochs": 10, "batch_size": 32, "input_size": 64, "test_size": 800,
            "backbone_lr_factor": 0.1, "eval_batch_size": 250,
        },
        "04_retrieval": {},
        "05_pruning": {},
    },
    "paper": {
        "01_kronecker": {},
        "02_convolution_svd": {},
        "03_classification": {
            "datasets": ["mit67", "kvasir", "chest-xray"],
            "archs": ["vgg16", "resnet50"], "pretrained": True,
            "strategies": ["freeze", "freeze+cwl", "finetune", "finetune+cwl", "bn-affine"],
            "shots": [1, 3, 5, 10], "repeats": 10, "lr_freeze": [0.001, 0.005, 0.01, 0.05],
            "lr_finetune": [1e-05, 5e-05, 0.0001, 0.0005, 0.001],
            "epochs": 30, "batch_size": 32, "input_size": 224, "test_size": None,
            "backbone_lr_factor": 0.1, "eval_batch_size": 256,
        },
        "04_retrieval": {"datasets": ["roxford5k", "rparis6k"], "archs": ["vgg16", "resnet50"]},
        "05_pruning": {"dataset": "kvasir", "arch": "vgg16"},
    },
}


def parameters(profile: str, notebook: str, overrides: dict | None = None) -> dict:
    """The full parameter set of one notebook under one profile, overrides applied last."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    if notebook not in NOTEBOOKS:
        raise ValueError(f"unknown notebook {notebook!r}; choose one of {', '.join(NOTEBOOKS)}")
    params = {**copy.deepcopy(COMMON), "profile": profile}
    params.update(copy.deepcopy(_SPECIFIC[profile][notebook]))
    params.update(overrides or {})
    return params


def notebook_requirements(notebook: str, params: dict) -> list[str]:
    """Dataset and weight resources one notebook run needs, derived from its parameters."""
    datasets = list(params.get("datasets") or ([params["dataset"]] if params.get("dataset") else []))
    archs = list(params.get("archs") or ([params["arch"]] if params.get("arch") else []))
    needed = requirements(datasets, archs, pretrained=params.get("pretrained", True))
    return needed + list(EXTRA_REQUIREMENTS.get(notebook, ()))


def require_notebook(notebook: str, **params) -> None:
    """First call of every notebook: stop before any work when its data or weights are absent."""
    from .data import require

    require(*notebook_requirements(notebook, params), root=params.get("data_root") or None)
