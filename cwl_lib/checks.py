"""Regression checks of the notebooks that hold on any machine.

A checked cell (``# NBVAL_CHECK_OUTPUT``) prints one line per quantity: name, reference value, tolerance and ``ok``,
or ``FAIL`` with the value found, so the line is the same on every machine where the check holds. References
(``notebooks/references/<notebook>.json``, written by ``cwl refresh``) apply only to the parameters and device type
they were recorded with; under others the cell prints the values, marked not checked.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from .display import fmt
from .paths import atomic_write, project_root
from .profiles import determining

MODE_ENV = "CWL_CHECKS"  # "record": write the measured values as the new references
DIR_ENV = "CWL_REFERENCES"  # another folder of reference files (the tests use it)


@dataclass(frozen=True)
class Tolerance:
    absolute: float
    relative: float
    why: str

    def holds(self, value: float, reference: float) -> bool:
        return abs(value - reference) <= self.absolute + self.relative * abs(reference)

    def text(self) -> str:
        parts = [f"{v:g}{unit}" for v, unit in ((self.absolute, ""), (self.relative, " rel.")) if v]
        return "± " + " + ".join(parts) if parts else "exact"


# Spreads quoted below were measured on the smoke notebooks under five CPU numeric configurations of one
# machine: native AVX-512 on 2 threads, 1 thread, ATen's scalar kernels on 1 thread, and oneDNN/MKL held
# to AVX2 and to SSE4 (benchmarks/README.md, "Notebook checks across CPU configurations").
TOLERANCES: dict[str, Tolerance] = {
    "exact": Tolerance(0.0, 0.0, "structure and counts: any change is a change of behaviour"),
    "identity": Tolerance(0.0, 1e-10, "identities of Section III in float64: rounding is ~1e-15 relative"),
    "float32": Tolerance(1e-6, 1e-4, "reductions summed in another order move float32 results by ~1e-7 relative"),
    "trained": Tolerance(0.05, 0.0, "accuracies after few-shot training moved by up to 0.025 across CPU configurations"),
    "map": Tolerance(1.0, 0.0, "mAPs (points) after training on the queries moved by up to 0.12 across CPU configurations"),
    "fraction": Tolerance(0.03, 0.0, "kept fractions after pruning moved by up to 0.009 across CPU configurations"),
}


def _plain(value):
    """JSON-safe copy of a value (tuples as lists, numpy scalars and tensors as Python numbers)."""
    return json.loads(json.dumps(value, default=lambda v: v.item()))


def _number(value) -> float:
    value = _plain(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"a checked quantity must be a number, got {value!r}")
    return float(value)


def _show(value) -> str:
    """A checked value as its line prints it: four decimals, trailing zeros dropped, or below 1e-3 (where four
    decimals keep one digit at most) four significant digits."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return json.dumps(value)
    if isinstance(value, float) and value and abs(value) < 1e-3:
        return f"{value:.4g}"
    text = fmt(value, decimals=4, na="nan")
    return text.rstrip("0").rstrip(".") if "." in text else text


class Checks:
    """The checks of one notebook run on ``parameters`` (where results and data live left out) and ``device``."""

    def __init__(self, notebook: str, parameters: dict, device: str = "cpu"):
        self.notebook = notebook
        self.key = {"parameters": determining(parameters), "device": str(device)}
        self.path = Path(os.environ.get(DIR_ENV) or project_root() / "notebooks" / "references") / f"{notebook}.json"
        self.recording = os.environ.get(MODE_ENV) == "record"
        self.values: dict[str, float] = {}
        self.failures: list[str] = []
        stored = json.loads(self.path.read_text()) if self.path.is_file() else None
        self.reference = stored["values"] if stored and {k: stored.get(k) for k in self.key} == self.key else None

    def _compare(self, name: str, value, tol: Tolerance, same) -> bool:
        if name in self.values:
            raise ValueError(f"{self.notebook}: the quantity {name!r} is checked twice")
        self.values[name] = value
        if self.recording:  # the line a check against this very value prints, as the committed output
            body = {**self.key, "values": self.values}
            atomic_write(self.path, lambda p: p.write_text(json.dumps(body, indent=1, sort_keys=True) + "\n"))
            return self._holds(name, True, f"{_show(value)} {tol.text()} ok")
        if self.reference is None:
            return self._holds(name, True, f"{_show(value)} (not checked: no reference for these parameters)")
        if name not in self.reference:
            return self._holds(name, False, why=f"no reference value (run `cwl refresh {self.notebook}`)")
        ref = self.reference[name]
        return self._holds(name, same(value, ref), f"{_show(ref)} {tol.text()} ok",
                           f"{_show(value)} is not within {tol.text()} of {_show(ref)} ({tol.why})")

    def near(self, name: str, value, tolerance: str) -> bool:
        """A number from training or a floating-point reduction, within the named tolerance."""
        tol = TOLERANCES[tolerance]
        same = lambda v, ref: tol.holds(v, float(ref)) or (v != v and ref != ref)  # noqa: E731
        return self._compare(name, _number(value), tol, same)

    def exact(self, name: str, value) -> bool:
        """Structure and counts (a number, a string, a list of them): equal to the reference."""
        return self._compare(name, _plain(value), TOLERANCES["exact"], lambda v, ref: v == ref)

    def below(self, name: str, value, bound: float) -> bool:
        """An error that must stay under a bound on every machine (an identity's, say): no reference."""
        value = _number(value)
        return self._holds(name, value < bound, f"below {bound:g} ok", f"{_show(value)} is not below {bound:g}")

    def true(self, name: str, condition) -> bool:
        """A property that must hold on every machine: no reference."""
        return self._holds(name, bool(condition), "ok", "does not hold")

    def _holds(self, name: str, held: bool, ok: str = "", why: str = "") -> bool:
        """Print the check's line, ``ok`` or ``FAIL, why``, and count a failure."""
        print(f"{name}: {ok}" if held else f"{name}: FAIL, {why}")
        if not held:
            self.failures.append(name)
        return held
