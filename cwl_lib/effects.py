"""Effects with their uncertainty, and the one rule that turns an effect into a verdict.

An :class:`Effect` is what one claim's test measured: an estimate, its 95% confidence interval, a
two-sided p-value against the claim's bound, how many units it rests on, and the minimal detectable
effect (MDE): the smallest true distance from the bound that the run would have found with 80%
power at the two-sided 5% level, given the spread it observed. Five estimators make them:

* :func:`paired_effect`: differences paired over repeats, t-distribution (:func:`signed_rank_p` adds the
  Wilcoxon p-value of the same differences, for the tables);
* :func:`mcnemar_effect`: paired right/wrong outcomes on one test set, McNemar's exact test;
* :func:`normal_effect`: an estimate with a known standard error (normal approximation);
* :func:`rank_correlation`: Spearman's rho with a Fisher-z interval;
* :func:`exact_effect`: a computation without sampling error (an identity checked numerically).

:func:`verdict` is the rule, :data:`VERDICT_RULE` the same rule in words for the page.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

ALPHA = 0.05  # two-sided level of every interval and test
POWER = 0.80  # power at which the minimal detectable effect is stated
MIN_PAIRED, MIN_RANKED = 2, 5  # fewest units for a paired t interval, for a rank-correlation interval

SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE = "supported", "not supported", "inconclusive"
NOT_TESTABLE, NOT_TESTED = "not testable by this run", "not tested here"
VERDICTS = (SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE, NOT_TESTABLE, NOT_TESTED)

VERDICT_RULE = (
    "Each claim names one effect and the side of a bound the paper puts it on (for example: CWL minus its "
    "baseline above 0; accuracy lost to pruning below 0.02). "
    "**supported**: the 95% confidence interval of our effect lies entirely on the claimed side of the bound. "
    "**not supported**: the interval lies entirely on the other side, or entirely short of the smallest "
    "effect of interest (the bound moved by the claim's margin towards the claimed side), so whatever "
    "effect the run allows is too small to matter; a claim with a margin of 0 is refuted only by the "
    "first condition. "
    "**inconclusive**: neither; the smallest effect the run could have detected (80% power, two-sided "
    "5% level, from the spread it observed) is stated, so a reader knows what it rules out. "
    "**not testable by this run**: the run did not reach the conditions under which it can show the effect "
    "(its validity gates: CWLs that acted, training that converged, a learning-rate grid that brackets its "
    "optimum, a benchmark with headroom, a pruning threshold at the claim's operating point, networks above "
    "chance); the measured value of each failed gate is stated, and the effect, shown for information, is not "
    "judged. "
    "**not tested here**: the run lacks what the test needs (fewer than two paired repeats, a strategy, "
    "dataset or backbone not run, a quantity not recorded); the reason is stated. "
    "A numerical identity (Section III) is a computation without sampling error: its interval is the "
    "measured value itself, compared with the stated tolerance. "
    "Claims are tested one by one, without correction for their number."
)


@dataclass(frozen=True)
class Effect:
    """One measured effect: estimate, 95% interval [low, high], p-value against ``null``, n units, MDE."""

    estimate: float
    low: float
    high: float
    p: float | None  # two-sided, H0: effect == null; None where no test applies
    n: int
    mde: float | None  # smallest |true effect - null| detectable at POWER; None without a spread
    method: str
    unit: str  # what n counts: "repeats", "layers", "test images", ...
    null: float = 0.0

    @property
    def has_interval(self) -> bool:
        return math.isfinite(self.low) and math.isfinite(self.high)


def paired_effect(diffs, null: float = 0.0, unit: str = "repeats") -> Effect:
    """Mean of paired differences, its t interval, the paired t-test p-value and the MDE.

    With ``n`` differences of sample standard deviation ``sd`` (ddof = 1):

    * interval: ``mean +- t_{1-alpha/2, n-1} * sd / sqrt(n)``;
    * p-value: two-sided one-sample t-test of the differences against ``null`` (``scipy.stats.ttest_1samp``,
      the paired t-test when ``null`` is 0);
    * MDE: ``(t_{1-alpha/2, n-1} + t_{power, n-1}) * sd / sqrt(n)``, the usual normal-theory sample-size
      formula with t quantiles (its exact power from the noncentral t is 0.77 at n = 3, 0.80 at n = 10).

    One difference has no spread: the interval is NaN and p and MDE are None (the verdict is then "not
    tested here"). Differences all equal (zero spread, n >= 2) give the zero-width interval at that value,
    p = 1 when it equals ``null`` and 0 otherwise, and MDE 0: the data leave no doubt about the effect.
    """
    d = np.asarray(diffs, dtype=float).ravel()
    if d.size == 0:
        raise ValueError("no paired differences to summarise")
    if np.isnan(d).any():
        raise ValueError("a paired difference is NaN: pair only runs that both finished")
    n, mean = int(d.size), float(d.mean())
    method = "paired t"
    if n < MIN_PAIRED:
        return Effect(mean, math.nan, math.nan, None, n, None, method, unit, null)
    if np.ptp(d) == 0:
        return Effect(float(d[0]), float(d[0]), float(d[0]), 1.0 if d[0] == null else 0.0, n, 0.0, method, unit, null)
    se = float(d.std(ddof=1)) / math.sqrt(n)
    t_crit = float(stats.t.ppf(1 - ALPHA / 2, n - 1))
    p = float(stats.ttest_1samp(d, null).pvalue)
    mde = (t_crit + float(stats.t.ppf(POWER, n - 1))) * se
    return Effect(mean, mean - t_crit * se, mean + t_crit * se, p, n, mde, method, unit, null)


def signed_rank_p(diffs) -> float:
    """Two-sided Wilcoxon signed-rank p-value of paired differences against 0 (``scipy.stats.wilcoxon``, zero
    differences split between the signs, exact for small samples): NaN with fewer than two, 1 when all are 0."""
    d = np.asarray(diffs, dtype=float).ravel()
    if d.size < MIN_PAIRED:
        return math.nan
    if not d.any():  # scipy has no ranks to sum; no difference at all is no evidence of one
        return 1.0
    return float(stats.wilcoxon(d, zero_method="zsplit").pvalue)


def mcnemar_effect(diffs, unit: str = "test images") -> Effect:
    """Paired right (1) / wrong (0) outcomes of two classifiers on the same units, as differences ``x - y`` in
    {-1, 0, 1}: the accuracy difference, McNemar's exact p-value and a 95% interval.

    Only the ``k = k_x + k_y`` discordant units (one classifier right, the other wrong) carry information:

    * estimate: ``(k_x - k_y) / n``, the difference of the two accuracies on the ``n`` units;
    * p-value: two-sided exact binomial test of ``k_x`` out of ``k`` against 1/2 (``scipy.stats.binomtest``);
    * interval: the Clopper-Pearson interval ``[lo, hi]`` of ``k_x / k`` mapped onto the difference,
      ``k / n * (2 [lo, hi] - 1)``. It is conditional on ``k``, and excludes 0 exactly when p < 0.05 (at 1/2
      the binomial is symmetric, so the two-sided p is twice the tail that the interval's bound inverts).

    This is not :func:`paired_effect` on the differences: with three possible values, most of them 0, and
    often a handful of discordant units, the t interval's normal approximation does not hold, while the
    exact test needs none. No MDE is stated (its power depends on the discordant rate, not on a spread).
    No discordant unit gives p = 1 and the zero-width interval at 0, as :func:`paired_effect` does for
    differences all equal.
    """
    d = np.asarray(diffs, dtype=float).ravel()
    if d.size == 0:
        raise ValueError("no paired outcomes to compare")
    if not np.isin(d, (-1, 0, 1)).all():
        raise ValueError("McNemar's test compares right/wrong outcomes: differences must be -1, 0 or 1")
    n, k_x, k_y = int(d.size), int((d == 1).sum()), int((d == -1).sum())
    k, method = k_x + k_y, "McNemar exact"
    if k == 0:
        return Effect(0.0, 0.0, 0.0, 1.0, n, None, method, unit)
    test = stats.binomtest(k_x, k)
    ci = test.proportion_ci(1 - ALPHA)
    scale = k / n
    return Effect((k_x - k_y) / n, scale * (2 * ci.low - 1), scale * (2 * ci.high - 1), float(test.pvalue), n, None,
                  method, unit)


def normal_effect(estimate: float, se: float, n: int, unit: str, method: str, null: float = 0.0) -> Effect:
    """An estimate with standard error ``se``: ``estimate +- z_{1-alpha/2} se``, a z-test against ``null``,
    MDE ``(z_{1-alpha/2} + z_{power}) se``. A zero ``se`` is treated as an exact value."""
    estimate, se = float(estimate), float(se)
    if not (math.isfinite(se) and se >= 0):
        raise ValueError(f"a standard error must be finite and >= 0, got {se}")
    if se == 0:
        return Effect(estimate, estimate, estimate, 1.0 if estimate == null else 0.0, n, 0.0, method, unit, null)
    z = float(stats.norm.ppf(1 - ALPHA / 2))
    p = float(2 * stats.norm.sf(abs(estimate - null) / se))
    mde = (z + float(stats.norm.ppf(POWER))) * se
    return Effect(estimate, estimate - z * se, estimate + z * se, p, n, mde, method, unit, null)


def rank_correlation(x, y, unit: str = "layers") -> Effect:
    """Spearman's rho of ``y`` against ``x``, its p-value (``scipy.stats.spearmanr``) and a Fisher-z interval.

    Interval: ``tanh(atanh(rho) +- z_{1-alpha/2} * sqrt(1.06 / (n - 3)))`` (the variance of Fieller, Hartley
    and Pearson, 1957, for Spearman's rho); MDE: ``tanh((z_{1-alpha/2} + z_{power}) * sqrt(1.06 / (n - 3)))``,
    the smallest |rho| detectable. Needs n >= 5, where even a perfect ordering is significant on its own
    (exact two-sided p = 2 / n! <= 0.017), so an interval that collapses to +-1 at |rho| = 1 claims no more
    than the data do; with fewer, or when ``y`` (or ``x``) is constant so that no ordering exists, the
    estimate is returned without interval (NaN when rho is undefined).
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    n = int(x.size)
    method = "Spearman, Fisher z"
    if n < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return Effect(math.nan, math.nan, math.nan, None, n, None, method, unit)
    res = stats.spearmanr(x, y)
    rho, p = float(res.statistic), float(res.pvalue)
    if n < MIN_RANKED:
        return Effect(rho, math.nan, math.nan, None, n, None, method, unit)
    se = math.sqrt(1.06 / (n - 3))
    z = float(stats.norm.ppf(1 - ALPHA / 2))
    centre = math.atanh(max(-1 + 1e-12, min(1 - 1e-12, rho)))
    mde = math.tanh((z + float(stats.norm.ppf(POWER))) * se)
    return Effect(rho, math.tanh(centre - z * se), math.tanh(centre + z * se), p, n, mde, method, unit)


def exact_effect(value: float, unit: str = "computation") -> Effect:
    """A computed value without sampling error: its interval is the value itself."""
    value = float(value)
    return Effect(value, value, value, None, 1, None, "exact", unit)


def verdict(effect: Effect | None, side: int, bound: float = 0.0, margin: float = 0.0) -> str:
    """The verdict of :data:`VERDICT_RULE` for a claim "effect is on ``side`` (+1 above, -1 below) of ``bound``".

    ``margin`` (>= 0) is the smallest effect of interest, measured from ``bound`` towards the claimed side.
    With the interval mapped onto the claimed side, ``[L, H] = sorted(side * ([low, high] - bound))``:
    supported when ``L > 0``; else not supported when ``H < margin`` (``H < 0`` for a margin of 0); else
    inconclusive. No effect, or one without an interval (one repeat), is "not tested here".
    """
    if side not in (1, -1):
        raise ValueError(f"side is +1 (above the bound) or -1 (below it), got {side!r}")
    if margin < 0:
        raise ValueError(f"margin is a distance >= 0, got {margin}")
    if effect is None or not effect.has_interval:
        return NOT_TESTED
    lo, hi = sorted((side * (effect.low - bound), side * (effect.high - bound)))
    if lo > 0:
        return SUPPORTED
    if hi < margin:  # with margin 0: the whole interval is on the other side of the bound
        return NOT_SUPPORTED
    return INCONCLUSIVE


__all__ = ["ALPHA", "POWER", "MIN_PAIRED", "MIN_RANKED", "SUPPORTED", "NOT_SUPPORTED", "INCONCLUSIVE", "NOT_TESTABLE",
           "NOT_TESTED", "VERDICTS", "VERDICT_RULE", "Effect", "paired_effect", "signed_rank_p", "mcnemar_effect",
           "normal_effect", "rank_correlation", "exact_effect", "verdict"]
