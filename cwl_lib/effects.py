"""Effects with their uncertainty, and the one rule that turns an effect into a verdict.

An :class:`Effect` is what one claim's test measured: an estimate, its 95% interval, a two-sided p-value against
the claim's bound, its number of units, and the minimal detectable effect (MDE: the smallest true distance from the
bound found with 80% power at the two-sided 5% level, given the observed spread). :func:`verdict` is the rule,
:data:`VERDICT_RULE` the same rule in words for the page.
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
    """Mean of paired differences, its t interval, paired t-test p against ``null``, MDE ``(t_{1-alpha/2} +
    t_{power}) se`` (exact power 0.77 at n = 3). One difference: no interval; all equal: zero width, MDE 0."""
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
    """Two-sided Wilcoxon signed-rank p-value against 0 (zeros split between the signs): NaN with fewer than two
    differences, 1 when all are 0."""
    d = np.asarray(diffs, dtype=float).ravel()
    if d.size < MIN_PAIRED:
        return math.nan
    if not d.any():  # scipy has no ranks to sum; no difference at all is no evidence of one
        return 1.0
    return float(stats.wilcoxon(d, zero_method="zsplit").pvalue)


def mcnemar_effect(diffs, unit: str = "test images") -> Effect:
    """Paired right/wrong outcomes of two classifiers as differences in {-1, 0, 1}: the accuracy difference
    ``(k_x - k_y) / n``, McNemar's exact p-value (binomial test of ``k_x`` of the ``k`` discordant units against
    1/2) and the Clopper-Pearson interval of ``k_x / k`` mapped onto the difference (``k / n * (2 [lo, hi] - 1)``,
    which excludes 0 exactly when p < 0.05). Not :func:`paired_effect`: with mostly zeros and few discordant units
    the t interval's normal approximation fails. No MDE (power depends on the discordant rate)."""
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
    """An estimate with standard error ``se`` (normal interval, z-test against ``null``); ``se`` 0 is exact."""
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
    """Spearman's rho of ``y`` against ``x`` with a Fisher-z interval (variance 1.06 / (n - 3), Fieller, Hartley
    and Pearson 1957); the MDE is the smallest detectable |rho|. Needs n >= 5, where even a perfect ordering is
    significant on its own (p = 2 / n!), else (or for constant data) the estimate comes without interval."""
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
    """The verdict of :data:`VERDICT_RULE` for "effect is on ``side`` (+1 above, -1 below) of ``bound``", with
    ``margin`` the smallest effect of interest; no effect, or one without an interval, is "not tested here"."""
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

