"""Tables I and II as the paper reports them, ours beside the paper's, with a paired test per cell.

A cell is (dataset, arch, strategy, shots): per repeat the best test accuracy over the learning rates, shown as
``mean (std)`` over repeats (ddof = 1). Two strategies of one repeat share images, head initialisation and batch
order, so they are paired: :func:`paired_tests` gives the paired t-test (with 3 repeats the smallest two-sided
Wilcoxon p is 0.25, so only it can flag a difference) and the Wilcoxon signed-rank test (no normality assumption),
neither corrected for the number of cells.
"""
from __future__ import annotations

import math

import pandas as pd

from . import effects as E
from . import paper
from .display import fmt

CELL = ["dataset", "arch", "strategy", "shots"]


def chosen_runs(frame: pd.DataFrame, strategies=None) -> pd.DataFrame:
    """The runs the tables keep (of ``strategies``, default all): per (dataset, arch, strategy, shots, repeat)
    the one with the best accuracy over learning rates, every column kept."""
    f = frame if strategies is None else frame[frame["strategy"].isin(list(strategies))]
    return f if f.empty else f.loc[f.groupby(CELL + ["repeat"])["accuracy"].idxmax()]


def best_over_lr(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (dataset, arch, strategy, shots, repeat): the best accuracy over learning rates and its lr."""
    if frame.empty:
        raise ValueError("no results to tabulate")
    return chosen_runs(frame)[CELL + ["repeat", "accuracy", "lr"]].reset_index(drop=True)


def summary(frame: pd.DataFrame) -> pd.DataFrame:
    """mean, std (ddof=1) and number of repeats of the best-over-LR accuracy, per cell."""
    return best_over_lr(frame).groupby(CELL)["accuracy"].agg(
        mean="mean", std=lambda s: s.std(ddof=1) if len(s) > 1 else float("nan"), repeats="count").reset_index()


def paired_tests(frame: pd.DataFrame, a: str, b: str) -> pd.DataFrame:
    """Per (dataset, arch, shots): strategy ``b`` minus ``a`` over repeats, Wilcoxon and paired t p-values."""
    best = best_over_lr(frame)
    wide = best.pivot_table(index=["dataset", "arch", "shots", "repeat"], columns="strategy", values="accuracy")
    if a not in wide or b not in wide:
        raise ValueError(f"the results hold no {a!r} or no {b!r} runs")
    wide = wide[[a, b]].dropna()
    rows = []
    for (dataset, arch, shots), g in wide.groupby(level=[0, 1, 2]):
        diff = (g[b] - g[a]).to_numpy()
        e = E.paired_effect(diff)
        rows.append({"dataset": dataset, "arch": arch, "shots": shots, "pairs": e.n,
                     "mean_diff": e.estimate, "wins": int((diff > 0).sum()),
                     "p_wilcoxon": E.signed_rank_p(diff), "p_ttest": math.nan if e.p is None else e.p})
    return pd.DataFrame(rows)


def comparison_table(frame: pd.DataFrame, strategies: list[str], a: str | None = None, b: str | None = None,
                     with_paper: bool = True) -> pd.DataFrame:
    """The paper's layout: rows (arch, dataset, strategy, source: ``ours`` or ``paper``), columns shots, cells
    ``mean (std)``; with ``a`` and ``b`` a row ``p (b vs a)`` of paired t-test / Wilcoxon p-values."""
    summ = summary(frame[frame["strategy"].isin(strategies)])
    rows = []
    shots = sorted(summ["shots"].unique())
    for (dataset, arch), g in summ.groupby(["dataset", "arch"], sort=False):
        def line(strategy, source, text):
            rows.append({"arch": arch, "dataset": dataset, "strategy": strategy, "source": source,
                         **{k: text(k) for k in shots}})

        for strategy in strategies:
            s = g[g["strategy"] == strategy].set_index("shots")
            if s.empty:
                continue
            line(strategy, "ours", lambda k: fmt(s.loc[k, "mean"], decimals=3, std=s.loc[k, "std"], na="-")
                 if k in s.index else "-")
            cells = {k: paper.classification(arch, dataset, strategy, int(k)) for k in shots}
            if with_paper and any(v is not None for v in cells.values()):
                line(strategy, "paper", lambda k: fmt(cells[k][0], decimals=3, std=cells[k][1], na="-")
                     if cells[k] else "-")
        if a and b and {a, b} <= set(g["strategy"]):
            t = paired_tests(frame[(frame["dataset"] == dataset) & (frame["arch"] == arch)], a, b).set_index("shots")
            line(f"p ({b} vs {a})", "t / W", lambda k: f"{fmt(t.loc[k, 'p_ttest'], decimals=2, na='-')} / "
                 f"{fmt(t.loc[k, 'p_wilcoxon'], decimals=2, na='-')}" if k in t.index else "-")
    out = pd.DataFrame(rows)
    return out.set_index(["arch", "dataset", "strategy", "source"]) if not out.empty else out
