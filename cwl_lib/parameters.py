"""Notebook parameters, checked in one place before any work, by ``cwl reproduce`` and by the notebook.

Notebooks 01, 02 and 06's models are here, the studies' in their modules; :func:`resolve` is what a notebook
calls first, :func:`describe` says where each value came from.
"""
from __future__ import annotations

import ast
from typing import ClassVar, Optional

import skimage.data

from . import paths
from pydantic import ValidationError

from .config import (EXECUTOR, MIN_INPUT, Arch, AtLeast, InputSize, Notebook, OneOf, ParameterError,  # noqa: F401
                     param, plain, rule)
from .studies import BY_NOTEBOOK

PHOTOS = tuple(n for n in ("astronaut", "camera", "coffee", "chelsea", "rocket", "cat") if hasattr(skimage.data, n))
INJECTED = "# Parameters"  # the first line of the cell papermill injects
Layers = Optional[AtLeast(1)]


class Kronecker(Notebook):
    """Notebook 01: Theorem 1 on random matrices, a photograph and a backbone's layers."""

    NOTEBOOK: ClassVar[str] = "01_kronecker"
    REQUIRES: ClassVar[tuple[str, ...]] = ("skimage-photos",)
    arch: Arch = param("vgg16", "the backbone whose layers are factored", label="backbone", stated=False)
    random_trials: int = param(1000, "random shapes Theorem 1 is checked on", ge=1)
    max_factor: int = param(16, "largest side of a random factor", ge=1)
    real_layers: Layers = param(None, "the backbone's layers factored (None: all)")
    photo: OneOf(PHOTOS) = param("astronaut", "the photograph approximated by Kronecker sums")
    photo_size: int = param(512, "its side in pixels", ge=8)
    block: int = param(16, "side of the photograph's blocks", ge=1)
    ranks: list[AtLeast(1)] = param([1, 2, 4, 8, 16, 32, 64, 128], "Kronecker ranks of the photograph",
                                    min_length=1)
    LAPTOP: ClassVar[dict] = {"arch": "mobilenet_v2", "random_trials": 300, "max_factor": 10,
                              "ranks": [1, 2, 4, 8, 16, 32, 64]}
    SMOKE: ClassVar[dict] = {"arch": "mobilenet_v2", "random_trials": 20, "max_factor": 6, "real_layers": 6,
                             "photo": "camera", "photo_size": 128, "block": 8, "ranks": [1, 2, 4, 8, 16]}


class ConvolutionSVD(Notebook):
    """Notebook 02: convolution as a matrix product, its SVD, and a small CNN on MNIST."""

    NOTEBOOK: ClassVar[str] = "02_convolution_svd"
    REQUIRES: ClassVar[tuple[str, ...]] = ("mnist-5k",)
    arch: Arch = param("vgg16", "the backbone whose convolutions are checked", label="backbone", stated=False)
    equiv_layers: Layers = param(None, "convolutions checked against F.conv2d (None: all)")
    input_size: InputSize = param(224, "side of the photograph fed to the backbone")
    photo: OneOf(PHOTOS) = param("coffee", "the photograph of the filter figure")
    photo_size: int = param(400, "its side in pixels", ge=8)
    patch: int = param(4, "side of the patches", ge=1)
    filter_counts: list[AtLeast(1)] = param([3, 6, 12, 24, 36, 48], "filters kept", min_length=1)
    train_size: int = param(4000, "MNIST training images of the small CNN", ge=1)
    test_size: int = param(1000, "MNIST test images", ge=1)
    epochs: int = param(15, "epochs of the small CNN", ge=1)
    cnn_channels: tuple[AtLeast(1), AtLeast(1), AtLeast(1), AtLeast(1)] = param((16, 32, 32, 64),
                                                                              "the small CNN's widths")
    table_layers: Layers = param(None, "layers in the table of singular values (None: all)")
    LAPTOP: ClassVar[dict] = {"arch": "mobilenet_v2", "input_size": 64, "photo_size": 240, "epochs": 4}
    SMOKE: ClassVar[dict] = {"arch": "mobilenet_v2", "equiv_layers": 6, "input_size": 32, "photo_size": 64,
                             "filter_counts": [3, 12, 24, 48], "train_size": 1000, "test_size": 500, "epochs": 2,
                             "table_layers": 6}


class Comparison(Notebook):
    """Notebook 06: the paper's numbers beside this run's, read from the records of 03-05."""

    NOTEBOOK: ClassVar[str] = "06_comparison"
    results_root: str = param("", "the folder holding 03-05's records ('': this session's)")


MODELS: dict[str, type[Notebook]] = {m.NOTEBOOK: m for m in (Kronecker, ConvolutionSVD,
                                                           *(s.Parameters for s in BY_NOTEBOOK.values()),
                                                           Comparison)}


def model(notebook: str) -> type[Notebook]:
    if notebook not in MODELS:
        raise ValueError(f"unknown notebook {notebook!r}; choose one of {', '.join(MODELS)}")
    return MODELS[notebook]


def validate(notebook: str, params: dict) -> dict:
    """``params`` cleaned (text read as what it spells, a single value where a list is expected as a list);
    :class:`ParameterError` names the first bad one."""
    m = model(notebook)
    unknown = sorted(set(params) - set(m.model_fields))
    if unknown:
        raise ParameterError(f"{notebook} has no parameter {', '.join(unknown)}; its parameters are "
                             f"{', '.join(sorted(m.model_fields))}")
    try:
        clean = m.model_validate(params)
    except ValidationError as err:
        name = next((e["loc"][0] for e in err.errors() if e["loc"]), None)
        if name is None:  # a rule over several fields (a model validator) words its own message
            raise ParameterError(f"parameters of {notebook}: {err.errors()[0]['msg']}") from None
        raise ParameterError(f"parameter {name} of {notebook} must be {rule(m.model_fields[name])}; "
                             f"got {params.get(name)!r}") from None
    clean.check(set(params))
    return {k: plain(v) for k, v in clean.model_dump().items() if k in params}


def clean(notebook: str, name: str, value):
    return validate(notebook, {name: value})[name]


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

    A value passed (papermill ``-p``, ``cwl reproduce``) wins, then one edited in the notebook's parameters cell
    (it differs from the cell's smoke value); the others are the profile's that ``profile`` names. An empty
    ``results_dir`` becomes the session's folder, if any (:func:`cwl_lib.paths.session_results_dir`).
    """
    m = model(notebook)
    passed = injected(namespace)
    smoke = m.values("smoke")
    unknown = sorted(passed - set(smoke))
    if unknown:
        raise ParameterError(f"{notebook} has no parameter {', '.join(unknown)}; its parameters are "
                             f"{', '.join(sorted(smoke))}")
    profile = clean(notebook, "profile", namespace.get("profile", "smoke"))
    params = m.values(profile)
    origin = {name: f"{profile} profile" for name in params}
    for name in smoke:
        if name in passed:
            params[name], origin[name] = namespace[name], "passed"
        elif name != "profile" and name in namespace and plain(namespace[name]) != smoke[name]:
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
    for where, label in (("passed", "passed"), ("notebook cell", "set in the notebook's parameters cell")):
        names = [n for n, o in origin.items() if o == where and n != "profile"]
        if names:
            parts.append(f"{label}: " + ", ".join(f"{n}={namespace[n]!r}" for n in names))
    return "; ".join(parts) + f"; every other parameter is the {profile} profile's"


def parameters_cell(notebook: str) -> str:
    """The papermill parameters cell: the smoke values, those of every notebook first, executor options last."""
    m = model(notebook)
    values = m.values("smoke")
    own = [n for n in values if n in m.__annotations__]  # the grid the notebook names, then what runs share
    order = dict.fromkeys(["profile", *Notebook.model_fields, *own, *(n for n in values if n not in EXECUTOR),
                           *EXECUTOR])
    return "\n".join(f"{k} = {values[k]!r}" for k in order if k in values)
