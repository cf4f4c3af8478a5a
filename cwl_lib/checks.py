"""Regression checks of the notebooks that hold on any machine.

A checked cell (``# NBVAL_CHECK_OUTPUT``, compared by nbval) prints one line per quantity, made by a
:class:`Checks` object: the quantity's name, its reference value, the tolerance and ``ok``, or ``FAIL``
with the value found. ``exact`` compares structure and counts, ``near`` a number from training or a
floating-point reduction within a named tolerance, ``below`` and ``true`` an identity or property that
holds on every machine (no reference). The measured value itself is printed only when it fails, so the line is the same
on every machine where the check holds, and nbval fails exactly when a check does.

Reference values live in ``notebooks/references/<notebook>.json``, one file per notebook, written by
``cwl refresh`` (which runs the notebooks with ``CWL_CHECKS=record``); a change of reference is a
readable diff of that file. A reference applies only to the parameters (and device type) it was
recorded with: under any other parameters (the ``laptop`` profile, a ``-p`` override, a GPU) the cell
prints the measured values, marked as not checked.

Every tolerance is a named entry of :data:`TOLERANCES`, with the one line that justifies it.
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
        if self.absolute == 0 and self.relative == 0:
            return "exact"
        if self.relative == 0:
            return f"± {self.absolute:g}"
        if self.absolute == 0:
            return f"± {self.relative:g} rel."
        return f"± {self.absolute:g} + {self.relative:g} rel."


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


def reference_dir() -> Path:
    env = os.environ.get(DIR_ENV)
    return Path(env) if env else project_root() / "notebooks" / "references"


def _plain(value):
    """JSON-safe copy of a parameter value (tuples as lists, numpy scalars as Python numbers)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    return value


def _number(value) -> float:
    value = _plain(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"a checked quantity must be a number, got {value!r}")
    return float(value)


def _show(value) -> str:
    """A checked value as its line prints it. The check compares the stored value at full precision; the line
    shows it to four decimals, or below 1e-3 (where four decimals keep one digit at most) to four significant digits."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return json.dumps(value)
    if isinstance(value, float) and value and abs(value) < 1e-3:
        return fmt(value, sig=4, trim=True, plain=True)
    return fmt(value, decimals=4, trim=True, na="nan")


class Checks:
    """The checks of one notebook run: ``checks.near(name, value, "trained")``, ``checks.exact(...)``.

    ``parameters`` are the notebook's parameters (where its results and data live is left out), and
    ``device`` the type of device it ran on; a reference applies only to the same two.
    """

    def __init__(self, notebook: str, parameters: dict, device: str = "cpu"):
        self.notebook = notebook
        self.key = {"parameters": determining(parameters),
                    "device": str(device)}
        self.path = reference_dir() / f"{notebook}.json"
        self.recording = os.environ.get(MODE_ENV) == "record"
        self.values: dict[str, float] = {}
        self.failures: list[str] = []
        stored = json.loads(self.path.read_text()) if self.path.is_file() else None
        self.reference = stored["values"] if stored and {k: stored.get(k) for k in self.key} == self.key else None

    @property
    def active(self) -> bool:
        """Whether values are compared with references (not recording, and recorded for these parameters)."""
        return not self.recording and self.reference is not None

    def _compare(self, name: str, value, shown: str, tol: Tolerance, same) -> bool:
        if name in self.values:
            raise ValueError(f"{self.notebook}: the quantity {name!r} is checked twice")
        self.values[name] = value
        if self.recording:  # the line a check against this very value prints, as the committed output
            self._write()
            print(f"{name}: {shown} {tol.text()} ok")
            return True
        if self.reference is None:
            print(f"{name}: {shown} (not checked: no reference for these parameters)")
            return True
        if name not in self.reference:
            return self._fail(name, f"no reference value (run `cwl refresh {self.notebook}`)")
        ref = self.reference[name]
        if same(value, ref):
            print(f"{name}: {_show(ref)} {tol.text()} ok")
            return True
        return self._fail(name, f"{shown} is not within {tol.text()} of {_show(ref)} ({tol.why})")

    def _fail(self, name: str, why: str) -> bool:
        self.failures.append(name)
        print(f"{name}: FAIL, {why}")
        return False

    def near(self, name: str, value, tolerance: str) -> bool:
        """A number from training or a floating-point reduction, within the named tolerance."""
        tol = TOLERANCES[tolerance]
        value = _number(value)
        return self._compare(name, value, _show(value), tol,
                             lambda v, ref: tol.holds(v, float(ref)) or (v != v and ref != ref))

    def exact(self, name: str, value) -> bool:
        """Structure and counts (a number, a string, a list of them): equal to the reference."""
        value = _plain(value)
        return self._compare(name, value, _show(value), TOLERANCES["exact"], lambda v, ref: v == ref)

    def below(self, name: str, value, bound: float) -> bool:
        """An error that must stay under a bound on every machine (an identity's, say): no reference."""
        value = _number(value)
        if value < bound:
            print(f"{name}: below {bound:g} ok")
            return True
        return self._fail(name, f"{_show(value)} is not below {bound:g}")

    def true(self, name: str, condition) -> bool:
        """A property that must hold on every machine: no reference."""
        if bool(condition):
            print(f"{name}: ok")
            return True
        return self._fail(name, "does not hold")

    def _write(self) -> None:
        body = {**self.key, "values": self.values}
        atomic_write(self.path, lambda p: p.write_text(json.dumps(body, indent=1, sort_keys=True) + "\n"))


__all__ = ["Checks", "Tolerance", "TOLERANCES", "reference_dir", "MODE_ENV", "DIR_ENV"]
