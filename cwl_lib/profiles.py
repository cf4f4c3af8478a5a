"""The three parameter sets every notebook runs under: ``paper`` (each model's defaults), ``laptop`` (a 2-core
CPU, offline data) and ``smoke`` (seconds per notebook: what the committed notebooks and their parameters cells
hold, so nbval checks the smoke run).
"""
from __future__ import annotations

import json

from .config import PROFILES, WHERE  # noqa: F401 - PROFILES re-exported: cwl's --profile choices
from .data import require, requirements
from .parameters import MODELS, model

NOTEBOOKS = tuple(MODELS)


def determining(params: dict, ignore: tuple[str, ...] = ()) -> dict:
    """The parameters that determine a notebook's results (all but :data:`WHERE` and ``ignore``), sorted and
    JSON-safe: what a stored result is keyed by."""
    kept = {k: params[k] for k in sorted(params) if k not in WHERE and k not in ignore}
    return json.loads(json.dumps(kept, default=lambda v: v.tolist()))

# Notebooks that only read the records of others, written earlier in the same run: they need no data of their own.
READS = {"06_comparison": ("03_classification", "04_retrieval", "05_pruning")}


def parameters(profile: str, notebook: str, overrides: dict | None = None) -> dict:
    """The full parameter set of one notebook under one profile, overrides applied last."""
    return {**model(notebook).values(profile), **(overrides or {})}


def notebook_requirements(notebook: str, params: dict) -> list[str]:
    """Dataset and weight resources one notebook run needs, derived from its parameters."""
    if notebook in READS:
        return []
    datasets = list(params.get("datasets") or ([params["dataset"]] if params.get("dataset") else []))
    archs = list(params.get("archs") or ([params["arch"]] if params.get("arch") else []))
    archs += [a for a in params.get("figure_archs") or () if a not in archs]
    needed = requirements(datasets, archs, pretrained=params.get("pretrained", True))
    return needed + list(model(notebook).REQUIRES)


def require_notebook(notebook: str, **params) -> None:
    """First call of every notebook: stop before any work when its data or weights are absent."""
    require(*notebook_requirements(notebook, params), root=params.get("data_root") or None)
