"""Validity gates: whether a run can test a claim at all, measured from the run's own records.

A verdict read from a run too small to show an effect reads as a refutation, so a claim whose gate fails
(:class:`Gate`: a measured value, its limits, what the claim needs) reads "not testable by this run" with the
measured reason, never "not supported". Each gate's function says what it measures.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from .display import fmt
from .tables import chosen_runs

SIGMA_FLOOR = 0.05  # CWL acted: a typical scale moved by 5% of its initial value (else freeze+CWL is freeze)
LOSS_FRACTION, FLAT_SHARE, CONVERGED_SHARE = 0.1, 0.1, 0.75
BRACKETED_SHARE = 0.5
MAP_CEILING = 75.0  # mAP points: room for a better descriptor to show
MOVED_FRACTION = 0.5  # of ln C, where a new classifier starts
CHANCE_LEVEL = 0.05  # one-sided level of the test against chance


@dataclass(frozen=True)
class Gate:
    """One condition a run must meet for a claim to be testable: ``measured`` within [``low``, ``high``]."""

    name: str  # short: "CWL acted"
    measured: float | None  # None: the records do not hold what it needs (``missing`` says what)
    low: float | None  # None: no lower limit
    high: float | None  # None: no upper limit
    what: str  # what ``measured`` is
    need: str  # what the claim needs, for the reason of a failed gate
    decimals: int = 2
    missing: str = ""

    @property
    def passed(self) -> bool:
        m = self.measured
        return (m is not None and math.isfinite(m) and (self.low is None or m >= self.low)
                and (self.high is None or m <= self.high))

    def _value(self, v: float) -> str:
        return fmt(v, decimals=self.decimals)

    def limits(self) -> str:
        low, high = (None if v is None else self._value(v) for v in (self.low, self.high))
        if low is not None and high is not None:
            return f"{low} to {high}"
        return f">= {low}" if low is not None else f"<= {high}" if high is not None else "-"

    def text(self) -> str:
        """The ledger's gates column: name, measured value, limits, pass or fail."""
        if self.measured is None:
            return f"{self.name}: not measured ({self.missing}), fail"
        return f"{self.name}: {self._value(self.measured)} (needs {self.limits()}), {'pass' if self.passed else 'fail'}"

    def reason(self) -> str:
        if self.measured is None:
            return f"{self.what} is not recorded ({self.missing}); the claim needs {self.need}"
        return (f"{self.what} is {self._value(self.measured)} where {self.limits()} is needed: "
                f"the claim needs {self.need}")


def failed(gates) -> list[Gate]:
    return [g for g in gates if not g.passed]


def summary(gates) -> str:
    return "; ".join(g.text() for g in gates) or "-"


# --------------------------------------------------------------------------- classification (03)
def cwl_acted(chosen: pd.DataFrame, strategy: str) -> Gate:
    """The median |sigma - 1| (``sigma_shift``) of ``strategy``'s runs in ``chosen`` (at their chosen rates)."""
    what = f"the median over {strategy}'s chosen runs of the mean |sigma - 1|"
    need = "CWLs that act (scales that training moved away from 1)"
    runs = chosen[chosen["strategy"] == strategy]
    if "sigma_shift" not in runs or runs["sigma_shift"].isna().all():
        return Gate("CWL acted", None, SIGMA_FLOOR, None, what, need, missing="records without sigma_shift")
    return Gate("CWL acted", float(runs["sigma_shift"].median()), SIGMA_FLOOR, None, what, need, decimals=3)


def run_converged(quartiles, classes: int) -> bool:
    """Final loss at most LOSS_FRACTION x ln C, or the last quarter took at most FLAT_SHARE of the decrease."""
    first, *_, three_quarters, final = (float(v) for v in quartiles)
    if not all(math.isfinite(v) for v in (first, three_quarters, final)):
        return False
    if final <= LOSS_FRACTION * math.log(classes):
        return True
    drop = first - final
    return drop > 0 and three_quarters - final <= FLAT_SHARE * drop


def converged(frame: pd.DataFrame, strategies) -> Gate:
    """The share of the compared runs, at their chosen rates, that converged: at least CONVERGED_SHARE."""
    what = "the share of the compared runs (at their chosen rates) whose training converged"
    need = "training that converged (a flattened loss curve)"
    runs = chosen_runs(frame, strategies)
    if "loss_quartiles" not in runs or runs["loss_quartiles"].isna().any():
        return Gate("training converged", None, CONVERGED_SHARE, None, what, need,
                    missing="records without loss_quartiles")
    ok = [run_converged(q, c) for q, c in zip(runs["loss_quartiles"], runs["classes"])]
    return Gate("training converged", float(np.mean(ok)), CONVERGED_SHARE, None, what, need)


def bracketed_share(frame: pd.DataFrame, strategy: str) -> float:
    """The share of ``strategy``'s cells whose best mean rate is inside the grid, or at an edge no more than one
    standard error (paired over repeats) ahead of the best inside rate; a grid of under three rates: 0."""
    f = frame[frame["strategy"] == strategy]
    grid = sorted(f["lr"].unique())
    if len(grid) < 3:
        return 0.0
    inside = []
    for _, cell in f.groupby(["dataset", "arch", "shots"]):
        wide = cell.pivot_table(index="repeat", columns="lr", values="accuracy")
        mean = wide.mean()
        best = mean.idxmax()
        if grid[0] < best < grid[-1]:
            inside.append(True)
            continue
        diff = (wide[best] - wide[mean[grid[1:-1]].idxmax()]).dropna()
        se = diff.std(ddof=1) / math.sqrt(len(diff)) if len(diff) > 1 else 0.0
        inside.append(bool(diff.mean() <= se))
    return float(np.mean(inside))


def grid_brackets(frame: pd.DataFrame, strategies) -> Gate:
    """The lower :func:`bracketed_share` of the strategies compared: at least BRACKETED_SHARE."""
    shares = {s: bracketed_share(frame, s) for s in strategies}
    worst = min(shares, key=shares.get)
    what = (f"the share of cells whose best learning rate is inside the grid ({worst}, the lower of "
            f"{', '.join(shares)}; {len(frame.loc[frame['strategy'] == worst, 'lr'].unique())} rates)")
    return Gate("grid brackets the best rate", shares[worst], BRACKETED_SHARE, None, what,
                "learning rates tuned to an optimum inside the grid")


# --------------------------------------------------------------------------- retrieval (04)
def headroom(frame: pd.DataFrame, baseline: str = "freeze") -> Gate:
    """The baseline's largest Medium mAP over (dataset, backbone): at most MAP_CEILING."""
    what = f"the largest Medium mAP of the untrained {baseline} baseline over (dataset, backbone)"
    need = "a benchmark with headroom above the pretrained descriptor"
    base = frame[frame["strategy"] == baseline]
    if base.empty:
        return Gate("headroom", None, None, MAP_CEILING, what, need, missing=f"no {baseline} run")
    worst = base.groupby(["dataset", "arch"])["medium"].mean().max()
    return Gate("headroom", float(worst), None, MAP_CEILING, what, need, decimals=1)


def loss_moved(chosen: pd.DataFrame) -> Gate:
    """The median final loss / ln C of the trained runs at their chosen rates: at most MOVED_FRACTION."""
    what = "the median final training loss / ln C of the trained runs at their chosen rates"
    need = "a transfer that moved the training loss"
    if "final_loss" not in chosen or chosen["final_loss"].isna().all():
        return Gate("loss moved", None, None, MOVED_FRACTION, what, need, missing="records without final_loss")
    ratio = chosen["final_loss"].astype(float) / np.log(chosen["classes"].astype(float))
    return Gate("loss moved", float(ratio.median()), None, MOVED_FRACTION, what, need)


# --------------------------------------------------------------------------- pruning (05)
def operating_point(kept: float | None, low: float, high: float, what: str) -> Gate:
    """The row a claim reads keeps a share ``kept`` of the parameters in [low, high] (None: no such row)."""
    need = f"a threshold keeping {fmt(100 * low, decimals=0)}% to {fmt(100 * high, decimals=0)}% of the parameters"
    return Gate("operating point", kept, low, high, what, need, missing="no threshold of this run qualifies")


def chance_bound(classes: int, n: int) -> float:
    """The least accuracy on ``n`` test images that a one-sided binomial test at CHANCE_LEVEL puts above 1/C."""
    return (int(stats.binom.ppf(1 - CHANCE_LEVEL, n, 1 / classes)) + 1) / n


def above_chance(accuracy: float | None, classes: int | None, n: int | None, what: str) -> Gate:
    need = "networks above chance where the claim is read"
    if accuracy is None or not classes or not n:
        return Gate(f"{what} above chance", None, 0.0, None, f"the accuracy of {what}", need,
                    missing="no accuracy, class count or test size")
    return Gate(f"{what} above chance", float(accuracy), chance_bound(int(classes), int(n)), None,
                f"the accuracy of {what} ({n} test images, {classes} classes)", need, decimals=3)


def finetuning_keeps(change: float | None, low: float, ft: str) -> Gate:
    """The finetuning ``ft`` changes the unpruned network's accuracy by ``change``: at least ``low`` (negative)."""
    return Gate(f"{ft} keeps the unpruned network", change, low, None,
                f"the accuracy change of the unpruned network after the same {ft}",
                f"a finetuning whose first epochs cost the unpruned network at most {fmt(-100 * low, decimals=0)} "
                f"points (else {ft} measures the finetuning's disruption, not a recovery)", decimals=3,
                missing="the unpruned network's finetuning diverged, or it was not finetuned")


def untrained(rows: pd.DataFrame, trained: str, floor: float) -> pd.DataFrame:
    """The rows under ``floor`` after the finetuning ``trained``; a diverged one (NaN) counts as untrained."""
    return rows[~(pd.to_numeric(rows[trained], errors="coerce") >= floor)]


def collapse_beyond(rows: pd.DataFrame, trained: str, floor: float | None, kept: float | None) -> Gate:
    """The thresholds at chance after ``trained`` keep fewer parameters than the row read (share ``kept``): one
    that keeps more and still stays at chance is a broken run."""
    at = untrained(rows, trained, floor) if floor is not None else rows.iloc[:0]
    ft = trained.replace("ft", "FT@")
    taus = ", ".join(f"{t:g}" for t in sorted(at["tau"].astype(float)))
    name = f"tau {taus} at chance after {ft}" if taus else f"no threshold at chance after {ft}"
    what = f"the largest share of parameters kept by a threshold at chance after {ft}"
    need = "pruned networks that collapse only where they keep fewer parameters than the row read"
    if floor is None or kept is None:
        return Gate(name, None, None, kept, what, need, missing="no chance bound or no row read")
    return Gate(name, float(at["params"].max()) if len(at) else 0.0, None, kept, what, need)


__all__ = ["Gate", "failed", "summary", "chosen_runs", "cwl_acted", "run_converged", "converged", "bracketed_share",
           "grid_brackets", "headroom", "loss_moved", "operating_point", "chance_bound", "above_chance", "untrained",
           "collapse_beyond", "finetuning_keeps", "SIGMA_FLOOR", "LOSS_FRACTION", "FLAT_SHARE", "CONVERGED_SHARE",
           "BRACKETED_SHARE", "MAP_CEILING", "MOVED_FRACTION", "CHANCE_LEVEL"]
