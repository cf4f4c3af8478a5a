"""The claims ledger: every claim of the paper an experiment can test (:data:`CLAIMS`, paper order), judged on one
run's records by :func:`evaluate` through an *effect* (CWL minus its baseline, a slope, a rank correlation), never raw
accuracies across experiments. Beside ours stands the paper's effect from its tables, on the cells we ran when ours is
the same experiment; a *stand-in* is compared in direction only. The verdict rule is :func:`cwl_lib.effects.verdict`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd

from . import paper, strategies, tables
from . import effects as E
from . import gates as G
from .display import fmt
from .studies.pruning import figure_layers
from .studies.retrieval import chosen_runs
from .studies.setting import SAME, STAND_IN

SEP = " · "
IDENTITY, GENERAL = "identity: any input tests it", "general claim"
PAPER_ARCHS = ("vgg16", "resnet50")
PROTOCOLS = ("easy", "medium", "hard")  # Table III's "mean" is their average, not a further case
FIG3_TAU = 0.8  # Section V-C: Fig. 3 uses tau = 0.8, VGG-16 and ResNet-50 on Kvasir, 50 images per class
CLASSIFICATION_COLUMNS = ("dataset", "arch", "strategy", "shots", "lr", "repeat", "accuracy")
RETRIEVAL_COLUMNS = ("dataset", "arch", "strategy", "lr", "repeat", "easy", "medium", "hard", "mean")
LAYER_COLUMNS = ("layer", "kind", "channels_kept", "tau")
CELLS = ["arch", "dataset", "shots"]
IDENTITY_TYPE, EMPIRICAL_TYPE = "identity", "empirical"
LEDGER_COLUMNS = ("id", "section", "type", "claim", "paper evidence", "test", "source", "effect", "paper effect",
                  "our effect", "p-value", "detectable effect", "verdict", "reason", "gates", "match", "our setting",
                  "paper setting", "paper effect in our CI", "note")


@dataclass(frozen=True)
class Claim:
    """A claim: "``effect`` lies on ``side`` (+1 above, -1 below) of ``bound``", ``margin`` the smallest effect of
    interest beyond it; ``kind`` names the evaluator, ``options`` its arguments; ``decimals`` None: 2 digits."""

    id: str
    section: str
    text: str
    paper_evidence: tuple[str, ...]
    test: str
    source: str
    kind: str
    effect: str
    side: int
    bound: float = 0.0
    margin: float = 0.0
    decimals: int | None = 3
    options: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def type(self) -> str:
        return IDENTITY_TYPE if self.options.get("match") == IDENTITY else EMPIRICAL_TYPE

    @property
    def precision(self) -> dict:
        return {"decimals": self.decimals} if self.decimals is not None else {"sig": 2}


@dataclass(frozen=True)
class PaperEffect:
    """The paper's own effect for a claim, from its tables; ``value`` None where it prints no number."""

    value: float | None
    setting: str
    cells: int = 0
    agree: int = 0  # cells whose own effect is on the claimed side of the bound
    exceptions: tuple[str, ...] = ()
    note: str = ""
    unit: str = "cells"  # what ``cells`` counts


@dataclass(frozen=True, eq=False)
class Evaluation:
    claim: Claim
    verdict: str
    reason: str
    ours: E.Effect | None
    paper: PaperEffect
    match: str  # SAME, STAND_IN, IDENTITY or GENERAL; "" when not tested
    our_setting: str
    note: str = ""
    detail: pd.DataFrame | None = None  # per-cell effects behind ours, where there are cells
    gates: tuple[G.Gate, ...] = ()  # the conditions under which this run can test the claim (cwl_lib.gates)


@dataclass(frozen=True, eq=False)
class Inputs:
    """What a run recorded, as the studies give it (any field missing: the claims needing it are not tested):
    runs of 03 and 04, Table IV of 05 and its per-layer frame, the measures of 01-02 and the run's setting."""

    classification: pd.DataFrame | None = None
    retrieval: pd.DataFrame | None = None
    pruning: pd.DataFrame | None = None
    pruning_layers: pd.DataFrame | None = None
    measures: Mapping[str, Any] = field(default_factory=dict)
    setting: Mapping[str, Any] = field(default_factory=dict)
    missing: Mapping[str, str] = field(default_factory=dict)  # notebook -> why its measures are absent


def _identity(id_, section, text, evidence, test, source, key, tolerance, effect):
    return Claim(id_, section, text, (evidence,), test, source, "measure", effect, side=-1, bound=tolerance,
                 decimals=None, options={"keys": (key,), "reduce": float, "match": IDENTITY})


_ACC = "accuracy, best over learning rates per repeat"
CLAIMS: tuple[Claim, ...] = (
    _identity("C1", "III-A", "Theorem 1 (Van Loan): for any B and C, ||A - B kron C||_F equals "
              "||R(A) - vec(B) vec(C)^T||_F, so the nearest Kronecker product is a rank-1 SVD of R(A).",
              "Theorem 1, Eq. 1 (a proof; no number)",
              "Largest relative gap between the two norms over random matrices of random shapes and the spatial "
              "convolution weights of a pretrained backbone, in float64; supported when below 1e-12.",
              "01_kronecker", "theorem1_gap", 1e-12, "largest relative gap of Eq. 1"),
    _identity("C2", "III-A", "The best sum of k Kronecker products comes from the truncated SVD of R(A) (Eq. 2): "
              "its error is the tail of the singular values.", "Eq. 2 (no number)",
              "Largest |error - sqrt(sum_{i>k} sigma_i^2)| / ||A|| over every rank of real layers and of a "
              "photograph, in float64; supported when below 1e-10.",
              "01_kronecker", "rank_k_gap", 1e-10, "largest relative gap, error vs singular value tail"),
    _identity("C3", "III-B", "A convolution is the im2col matrix of its input times the filter matrix, "
              "U = R(A) V^T (Eq. 3).", "Eq. 3 (no number)",
              "Largest relative difference between R(A) V^T and torch's conv2d over the convolutions of a "
              "pretrained backbone on real activations, at their own and three other stride / padding / "
              "dilation settings, in float32; supported when below 1e-4.",
              "02_convolution_svd", "eq3_error", 1e-4, "largest relative difference to conv2d"),
    _identity("C4", "III-C", "With stride equal to the kernel size, filters taken from the SVD of R(A) rebuild the "
              "input up to the tail of its singular values (Eq. 4).", "Eq. 4 (no number)",
              "Largest |relative rebuild error - tail / ||A||| over the filter counts k, on a photograph, in "
              "float64; supported when below 1e-10.",
              "02_convolution_svd", "svd_tail_gap", 1e-10, "largest gap, rebuild error vs singular value tail"),
    _identity("C5", "III-C", "For orthonormal filters the Gram term of Eq. 5 is the identity, so Eq. 5 gives the "
              "feature maps of the plain convolution (Eq. 3).", "Eq. 5 (no number)",
              "Largest ||U_Eq5 - U_Eq3|| / ||U_Eq3|| with SVD (orthonormal) filters over the filter counts k, "
              "in float64; supported when below 1e-10.",
              "02_convolution_svd", "eq5_eq3_orthogonal", 1e-10, "largest relative difference, Eq. 5 vs Eq. 3"),
    Claim("C6", "III-C", "Beyond the first layer, filters are nearly orthogonal, so the Gram term of Eq. 5 has no "
          "impact there: its feature maps are those of the convolution.",
          ("Section III-C text ('in most situations filters are likely to be naturally orthogonal'; no number)",),
          "Median, over the dense convolutions after the first of the pretrained backbone, of the sine of the "
          "angle between Eq. 5 and Eq. 3 feature maps on real activations (unit-norm filters, stride = kernel); "
          "supported when below 0.1, i.e. maps agreeing to within a tenth of their norm.",
          "02_convolution_svd", "measure", "median sine, Eq. 5 vs Eq. 3 maps, layers after the first", side=-1,
          bound=0.1, options={"keys": ("deeper_eq5_eq3_sines",), "match": GENERAL,
                               "reduce": lambda v: float(np.median(np.asarray(v, dtype=float)))}),
    Claim("C7", "III-C", "The first convolution layer is the farthest from orthogonal (the most redundant filter "
          "bank): its filter covariance is the farthest from the identity.",
          ("Fig. 1: filter covariance of the first four layers of a CNN on MNIST (images; no number)",),
          "Distance from orthogonality (root-mean-square cosine between distinct filters) of the first layer "
          "of a small CNN trained on MNIST minus the largest distance among its next layers; supported when "
          "above 0.", "02_convolution_svd", "measure", "first-layer distance minus the largest deeper one",
          side=1, options={"keys": ("fig1_first_distance", "fig1_deeper_distances"), "match": "fig1",
                           "reduce": lambda first, deeper: float(first) - float(np.max(np.asarray(deeper, float)))}),
    _identity("C8", "IV-A", "A Convolution Weighting Layer with every sigma at 1 is the standard convolution "
              "(Sigma = Id in Eq. 6): inserting CWLs leaves a pretrained network unchanged.", "Eq. 6 (no number)",
              "Largest relative difference between the outputs of a pretrained backbone with CWLs inserted "
              "(sigma = 1) and of the backbone itself, on real images; supported when below 1e-6.",
              "02_convolution_svd", "cwl_identity_error", 1e-6, "largest relative output difference"),
    Claim("C9", "IV-B", "CWL is most useful with the fewest labels: its gain over frozen convolutions shrinks as "
          "the number of images per class grows.",
          ("Section IV-B ('more dedicated to limited training size settings')",
           "Table I: freeze+CWL minus freeze at 1, 3, 5, 10 images per class"),
          "Per repeat, the gain freeze+CWL - freeze (" + _ACC + ") averaged over the (dataset, backbone) cells "
          "is regressed on log2(images per class); the repeats' slopes get a t interval; supported when the "
          "slope is below 0.", "03_classification", "shots_slope",
          "slope of the gain per doubling of images per class (accuracy)", side=-1, decimals=4,
          options={"pair": ("freeze", "freeze+cwl"), "table": "I"}),
    Claim("C10", "V-A", "Convolution Weighting Layers improve over frozen convolutions: freeze+CWL beats freeze.",
          ("Table I: freeze+CWL vs freeze, VGG-16 and ResNet-50 on MIT-67, Kvasir, Chest X-ray, 1-10 shots",),
          "freeze+CWL - freeze (" + _ACC + "), paired by repeat and averaged per repeat over the cells both "
          "ran; supported when above 0; not supported also when below +0.01 (one accuracy point, the "
          "smallest effect of interest).", "03_classification", "classification", "freeze+CWL - freeze (accuracy)",
          side=1, margin=0.01, options={"pair": ("freeze", "freeze+cwl"), "table": "I"}),
    Claim("C11", "V-A", "CWL helps VGG-16 more than ResNet-50, whose BatchNorm and residual connections already "
          "help it generalise.", ("Table I: the VGG-16 rows against the ResNet-50 rows",),
          "Per repeat, the gain freeze+CWL - freeze with VGG-16 minus the same gain with ResNet-50, averaged "
          "over the (dataset, shots) cells both backbones ran; supported when above 0; not supported also "
          "when below +0.01.", "03_classification", "arch_contrast",
          "VGG-16 gain minus ResNet-50 gain (accuracy)", side=1, margin=0.01,
          options={"pair": ("freeze", "freeze+cwl"), "table": "I"}),
    Claim("C12", "V-A", "CWL also improves finetuning: finetune+CWL beats finetune.",
          ("Table II: finetune+CWL vs finetune, VGG-16 on MIT-67, Kvasir, Chest X-ray, 1-10 shots",),
          "finetune+CWL - finetune (" + _ACC + "), paired by repeat and averaged per repeat over the cells "
          "both ran; supported when above 0; not supported also when below +0.01.", "03_classification",
          "classification", "finetune+CWL - finetune (accuracy)", side=1, margin=0.01,
          options={"pair": ("finetune", "finetune+cwl"), "table": "II"}),
    Claim("C13", "V-A", "Finetuning beats frozen convolutions on the medical datasets (Kvasir, Chest X-ray), "
          "which need more adaptation.", ("Table II: finetune vs freeze rows, Kvasir v2 and Chest X-ray",),
          "finetune - freeze (" + _ACC + ") over the Kvasir and Chest X-ray cells, paired by repeat and "
          "averaged per repeat; supported when above 0; not supported also when below +0.01.",
          "03_classification", "classification", "finetune - freeze (accuracy)", side=1, margin=0.01,
          options={"pair": ("freeze", "finetune"), "table": "II", "datasets": ("kvasir", "chest-xray")}),
    Claim("C14", "V-A", "Finetuning does not beat frozen convolutions on MIT-67, which is close to ImageNet.",
          ("Table II: finetune vs freeze rows, MIT-67",),
          "finetune - freeze (" + _ACC + ") over the MIT-67 cells, paired by repeat and averaged per repeat; "
          "supported when below +0.01 (finetuning not ahead by one accuracy point or more), not supported "
          "when above it.", "03_classification", "classification", "finetune - freeze (accuracy)", side=-1,
          bound=0.01, options={"pair": ("freeze", "finetune"), "table": "II", "datasets": ("mit67",)}),
    Claim("C15", "V-B", "CWL improves retrieval over both freezing and finetuning, in all cases.",
          ("Table III: freeze+CWL vs freeze and finetune+CWL vs finetune, VGG-16 and ResNet-50, ROxford5k and "
           "RParis6k, Easy / Medium / Hard",),
          "Mean of the Easy / Medium / Hard mAP (points) of the CWL strategy minus its baseline, each at its "
          "chosen learning rate, paired by repeat and averaged per repeat over the (dataset, backbone, "
          "baseline) cases; supported when above 0; not supported also when below +0.5 points.",
          "04_retrieval", "retrieval", "CWL - baseline (mean mAP, points)", side=1, margin=0.5, decimals=2,
          options={"pairs": (("freeze", "freeze+cwl"), ("finetune", "finetune+cwl"))}),
    Claim("C16", "V-B", "In retrieval, finetuning on the query images beats freezing.",
          ("Table III: finetune vs Original / Freeze rows",),
          "Mean of the Easy / Medium / Hard mAP (points) of finetune minus freeze at their chosen learning rates, "
          "paired by repeat and averaged per repeat over the (dataset, backbone) cases; supported when above 0; "
          "not supported also when below +0.5 points.", "04_retrieval", "retrieval",
          "finetune - freeze (mean mAP, points)", side=1, margin=0.5, decimals=2,
          options={"pairs": (("freeze", "finetune"),)}),
    Claim("C17", "V-C", "Pruning by a moderate threshold costs little accuracy: about half of the parameters go "
          "for about 1.5 points after finetuning.",
          ("Table IV: unpruned accuracy and the tau = 0.8 row (48% of parameters, FT@30)",),
          "At the threshold whose kept parameter fraction is closest to one half (among those keeping 25% to "
          "75%): the unpruned accuracy minus the accuracy after the longest finetuning, the unpruned accuracy "
          "being the better of the unpruned network before and after that same finetuning when the run finetuned "
          "it too (the paper's table has no such row: finetuning alone can lift a network transferred with "
          "frozen filters, and that gain is not pruning's); the interval is from test-set "
          "sampling only (binomial, the two accuracies taken as independent, which overstates the variance of "
          "their paired difference; one study has no repeat); supported when below 0.02.",
          "05_pruning", "pruning_cost", "accuracy lost at half the parameters, after finetuning", side=-1,
          bound=0.02),
    Claim("C18", "V-C", "One epoch of finetuning recovers most of the accuracy lost at high compression.",
          ("Table IV: acc and FT@1 beside the unpruned accuracy at the highest tau",),
          "At the largest threshold whose pruning costs at least 5 accuracy points and whose network the longest "
          "finetuning of the run lifts above chance (a network no finetuning trains says nothing about one epoch), "
          "the recovered fraction (FT@1 - acc) / (unpruned - acc); delta-method interval from test-set sampling, "
          "the three accuracies taken as independent binomials; supported when above 0.5.", "05_pruning", "pruning_recovery",
          "fraction of the pruning loss recovered by one epoch", side=1, bound=0.5),
    Claim("C19", "V-C", "Lower layers of VGG-16 lose more filters to pruning than higher ones.",
          ("Fig. 3 left: filters removed per VGG-16 convolution on Kvasir at tau = 0.8 (bars; no number)",),
          "Spearman correlation between a convolution's position (input to output) and the fraction of its "
          "filters removed at the figure's threshold; Fisher-z interval; supported when below 0.",
          "05_pruning", "layer_depth", "Spearman rho, position vs filters removed", side=-1, decimals=2),
)


# --------------------------------------------------------------------------- formatting
def _count(n: int, unit: str) -> str:
    """``1 repeat``, ``3 repeats``: units are named in the plural."""
    return f"{n} {unit[:-1] if n == 1 and unit.endswith('s') else unit}"


def _names(values) -> str:
    return ", ".join(str(v) for v in sorted(set(values), key=str))


def _effect_text(e: E.Effect | None, claim: Claim) -> str:
    d = claim.precision
    if e is not None and e.method == "exact":
        return f"{fmt(e.estimate, **d)} (exact)"
    if e is None or math.isnan(e.estimate):
        return "-"
    text = fmt(e.estimate, **d, sign=True)
    if not e.has_interval:
        return f"{text}, n = {_count(e.n, e.unit)} (no interval)"
    return f"{text} [{fmt(e.low, **d)}, {fmt(e.high, **d)}], n = {_count(e.n, e.unit)}"


def _paper_text(p: PaperEffect, claim: Claim) -> str:
    if p.value is None:
        return p.note or "no number printed"
    text = fmt(p.value, **claim.precision, sign=True)
    if p.cells:
        text += f" over {p.cells} {p.unit}, {p.agree} on the claimed side"
        if p.exceptions:
            text += " (not: " + "; ".join(p.exceptions) + ")"
    return text + (f"; {p.note}" if p.note else "")


def _reason(verdict: str, e: E.Effect, claim: Claim) -> str:
    d = claim.precision
    bound = fmt(claim.bound, **d)
    what = "the interval lies" if e.method != "exact" else "the value lies"
    if verdict == E.SUPPORTED:
        return f"{what} {'above' if claim.side > 0 else 'below'} {bound}"
    if verdict == E.NOT_SUPPORTED:
        if max(claim.side * (e.low - claim.bound), claim.side * (e.high - claim.bound)) < 0:
            return f"{what} {'below' if claim.side > 0 else 'above'} {bound}"
        target = fmt(claim.bound + claim.side * claim.margin, **d, sign=True)
        return f"{what} short of the smallest effect of interest {target}"
    if verdict == E.INCONCLUSIVE:
        text = f"the interval contains {bound}"
        if e.mde is not None:
            text += (f"; this run could detect a true effect {fmt(e.mde, **d)} away from {bound} "
                     "(80% power, two-sided 5% level)")
        return text
    need = E.MIN_RANKED if e.method.startswith("Spearman") else E.MIN_PAIRED
    return (f"needs at least {need} {e.unit} for an interval (this run: {e.n}); point estimate "
            f"{fmt(e.estimate, **d, sign=True)}")


# --------------------------------------------------------------------------- building evaluations
class _Untested(Exception):
    """An evaluator's early exit: the claim is not tested here; ``args``: reason, paper effect, our setting."""


def _judged(claim, effect, paper_effect, match, our_setting, note="", detail=None, gates=()) -> Evaluation:
    """The rule's verdict on ``effect``, or "not testable by this run" (the reasons) when a gate failed."""
    verdict = E.verdict(effect, claim.side, claim.bound, claim.margin)
    failed = G.failed(gates)
    if failed and (effect is None or verdict != E.NOT_TESTED):
        verdict, reason = E.NOT_TESTABLE, "; ".join(g.reason() for g in failed)
    else:
        reason = _reason(verdict, effect, claim)
    return Evaluation(claim, verdict, reason, effect, paper_effect, match, our_setting, note, detail, tuple(gates))


def _check_columns(frame: pd.DataFrame, columns, what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"the {what} frame lacks the columns {missing}; it needs {list(columns)}")


def _summary(claim: Claim, items: dict, setting: str, label: Callable[[Any, float], str]) -> PaperEffect:
    """The paper's effect over ``items`` (cell -> difference): their mean, and which lie on the claimed side."""
    if not items:
        return PaperEffect(None, setting, note="no cell of the paper's tables")
    values = np.array(list(items.values()), dtype=float)
    agree = [claim.side * (v - claim.bound) > 0 for v in values]
    exceptions = tuple(label(k, v) for (k, v), ok in zip(items.items(), agree) if not ok)
    return PaperEffect(float(values.mean()), setting, len(values), int(sum(agree)), exceptions)


def _restrict(d: pd.DataFrame, paper_cells, keys) -> tuple[pd.DataFrame, bool]:
    """Our cells that are the paper's when there are any (the same experiment), else all ours (a stand-in)."""
    inside = pd.Series(list(zip(*(d[k] for k in keys))), index=d.index).isin(list(paper_cells))
    return (d[inside], True) if inside.any() else (d, False)


def _cell_detail(d: pd.DataFrame, cells: list[str], claim: Claim) -> tuple[pd.DataFrame, str]:
    rows = []
    for key, g in d.groupby(cells):
        e = E.paired_effect(g["diff"].to_numpy())
        rows.append({**dict(zip(cells, key)), "pairs": e.n, "mean_diff": e.estimate,
                     "ci_low": e.low, "ci_high": e.high, "p": e.p})
    detail = pd.DataFrame(rows)
    ahead = int((claim.side * (detail["mean_diff"] - claim.bound) > 0).sum())
    return detail, f"{ahead} of {len(detail)} of our cells on the claimed side on average"


# --------------------------------------------------------------------------- Sections III-IV: measures
def _measure(claim: Claim, inputs: Inputs) -> Evaluation:
    o, s3 = claim.options, dict(inputs.setting.get("section3", {}))
    paper_effect = PaperEffect(None, "-", note="no number printed")
    missing = [k for k in o["keys"] if inputs.measures.get(k) is None]
    if missing:
        why = inputs.missing.get(claim.source)
        raise _Untested(f"{claim.source} recorded no {', '.join(missing)}" + (f": {why}" if why else ""), paper_effect)
    values = [inputs.measures[k] for k in o["keys"]]
    if any(isinstance(v, (list, tuple, np.ndarray)) and len(v) == 0 for v in values):
        raise _Untested(f"{claim.source} measured no layer for {', '.join(o['keys'])}", paper_effect)
    if o["match"] == "fig1":  # the paper's Fig. 1: a CNN it does not describe further, trained on MNIST
        dataset = s3.get("fig1_dataset")
        match = SAME if dataset == "mnist" else STAND_IN if dataset else ""
        our_setting = f"small CNN{SEP}{dataset or '-'}"
        paper_effect = PaperEffect(None, f"a CNN{SEP}mnist", note="Fig. 1: images, no number")
    else:
        match, our_setting = o["match"], f"{claim.source}{SEP}{s3.get('arch', '-')}"
    return _judged(claim, E.exact_effect(o["reduce"](*values)), paper_effect, match, our_setting)


# --------------------------------------------------------------------------- Section V-A: classification
def _paper_cells(claim: Claim) -> dict:
    """(arch, dataset, shots) -> the paper's mean of the pair's second strategy minus its first, Table I or II."""
    (a, b), datasets = claim.options["pair"], claim.options.get("datasets")
    out = {}
    for (arch, ds, strategy), row in (paper.TABLE_I if claim.options["table"] == "I" else paper.TABLE_II).items():
        if strategy != b or (datasets and ds not in datasets):
            continue
        for shots in row:
            pa, pb = paper.classification(arch, ds, a, shots), paper.classification(arch, ds, b, shots)
            if pa and pb:
                out[(arch, ds, shots)] = round(pb[0] - pa[0], 10)  # table cells have 3 decimals
    return out


def _grid_text(cells) -> str:
    cells = list(cells)
    return (f"{_names(c[0] for c in cells)}{SEP}{_names(c[1] for c in cells)}{SEP}shots "
            f"{', '.join(str(s) for s in sorted({c[2] for c in cells}))}")


def _paper_grid(claim: Claim, cells: dict) -> PaperEffect:
    return _summary(claim, cells, _grid_text(cells),
                    lambda c, v: f"{c[0]} {c[1]} {c[2]}-shot {fmt(v, decimals=3, sign=True)}")


def _paired(claim: Claim, inputs: Inputs, cells: dict, paper_of) -> tuple[pd.DataFrame, bool, dict]:
    """The pair's differences b - a per (cell, repeat), best over rates; only the paper's ``cells`` if we ran any
    (then the same experiment, and the paper's cells we ran come back)."""
    (a, b), frame, wanted = claim.options["pair"], inputs.classification, claim.options.get("datasets")

    def untested(why: str) -> _Untested:
        return _Untested(why, paper_of(claim, cells))
    if frame is None or frame.empty:
        raise untested("03_classification recorded no runs")
    _check_columns(frame, CLASSIFICATION_COLUMNS, "classification")
    missing = [s for s in (a, b) if s not in set(frame["strategy"])]
    if missing:
        raise untested(f"this run has no {' or '.join(missing)} runs (it ran {_names(frame['strategy'])})")
    best = tables.best_over_lr(frame[frame["strategy"].isin([a, b])])
    wide = best.pivot_table(index=[*CELLS, "repeat"], columns="strategy", values="accuracy").dropna(subset=[a, b])
    d = (wide[b] - wide[a]).rename("diff").reset_index()
    if wanted:
        d, have = d[d["dataset"].isin(wanted)], set(d["dataset"])
        if d.empty:
            raise untested(f"needs runs on {' or '.join(wanted)} (this run: {_names(have)}); the paper profile "
                           "runs them")
    if d.empty:
        raise untested(f"no repeat ran both {a} and {b}")
    d, same = _restrict(d, cells, CELLS)
    ran = set(zip(*(d[k] for k in CELLS)))
    return d, same, {k: v for k, v in cells.items() if k in ran} if same else cells


def _pair_gates(claim: Claim, inputs: Inputs) -> tuple[G.Gate, ...]:
    """CWL acted (for a strategy that trains CWLs), training converged, each grid brackets its best rate."""
    pair, frame, wanted = claim.options["pair"], inputs.classification, claim.options.get("datasets")
    frame = frame[frame["dataset"].isin(wanted)] if wanted else frame
    out = [G.cwl_acted(tables.chosen_runs(frame, [s]), s) for s in pair if strategies.get(s).cwl]
    return (*out, G.converged(frame, pair), G.grid_brackets(frame, pair))


def _over_cells(claim: Claim, inputs: Inputs, d: pd.DataFrame, cells: list[str], paper_effect: PaperEffect,
                same: bool, setting: str, empty: str) -> Evaluation:
    """A paired t over the repeats that ran every cell of the mean of ``d``'s differences over ``cells``."""
    wide = d.pivot_table(index="repeat", columns=cells, values="diff").dropna()
    our_setting = f"{setting}{SEP}{_count(wide.shape[1], 'cells')}"
    if wide.empty:
        raise _Untested(empty, paper_effect, our_setting)
    detail, note = _cell_detail(d, cells, claim)
    return _judged(claim, E.paired_effect(wide.mean(axis=1).to_numpy()), paper_effect, SAME if same else STAND_IN,
                   our_setting, note, detail, _pair_gates(claim, inputs))


def _classification(claim: Claim, inputs: Inputs) -> Evaluation:
    d, same, cells = _paired(claim, inputs, _paper_cells(claim), _paper_grid)
    return _over_cells(claim, inputs, d, CELLS, _paper_grid(claim, cells), same,
                       _grid_text(zip(*(d[k] for k in CELLS))), "no repeat ran every cell")


def _slope(shots, gains) -> float:
    return float(np.polyfit(np.log2(np.asarray(shots, dtype=float)), np.asarray(gains, dtype=float), 1)[0])


def _paper_slope(claim: Claim, cells: dict) -> PaperEffect:
    """The slope of the paper's gain averaged over its (backbone, dataset) rows; which rows' own slopes agree."""
    frame = pd.DataFrame([(*k, v) for k, v in cells.items()], columns=[*CELLS, "diff"])
    if frame["shots"].nunique() < 2:
        return PaperEffect(None, _grid_text(cells), note="fewer than two numbers of images per class")
    by_row = {k: _slope(g["shots"], g["diff"]) for k, g in frame.groupby(["arch", "dataset"])}
    mean = frame.groupby("shots")["diff"].mean()
    s = _summary(claim, by_row, _grid_text(cells), lambda k, v: f"{k[0]} {k[1]} {fmt(v, decimals=3, sign=True)}")
    return replace(s, value=_slope(mean.index, mean.to_numpy()), note="slope of the gain averaged over the rows",
                   unit="(backbone, dataset) rows")


def _shots_slope(claim: Claim, inputs: Inputs) -> Evaluation:
    d, same, cells = _paired(claim, inputs, _paper_cells(claim), _paper_slope)
    paper_effect, our_setting = _paper_slope(claim, cells), _grid_text(zip(*(d[k] for k in CELLS)))
    if d["shots"].nunique() < 2:
        raise _Untested("needs at least two numbers of images per class", paper_effect, our_setting)
    wide = d.pivot_table(index="repeat", columns=["shots", "arch", "dataset"], values="diff").dropna()
    if wide.empty:
        raise _Untested("no repeat ran every cell", paper_effect, our_setting)
    by_shots = wide.T.groupby(level="shots").mean().T  # repeat x shots: gain averaged over (arch, dataset)
    slopes = [_slope(by_shots.columns, row) for row in by_shots.to_numpy()]
    gains = ", ".join(f"{s}: {fmt(v, decimals=3, sign=True)}" for s, v in by_shots.mean().items())
    return _judged(claim, E.paired_effect(slopes), paper_effect, SAME if same else STAND_IN, our_setting,
                   f"mean gain per shots: {gains}", by_shots.assign(slope=slopes).reset_index(),
                   _pair_gates(claim, inputs))


def _arch_contrast(claim: Claim, inputs: Inputs) -> Evaluation:
    cells = _paper_cells(claim)
    both = {(ds, k): v - cells[("resnet50", ds, k)] for (arch, ds, k), v in cells.items()
            if arch == "vgg16" and ("resnet50", ds, k) in cells}

    def paper_effect(_, keep=None) -> PaperEffect:
        items = {k: v for k, v in both.items() if not keep or k in keep}
        return _summary(claim, items, f"vgg16 vs resnet50{SEP}{_names(k[0] for k in items)}",
                        lambda k, v: f"{k[0]} {k[1]}-shot {fmt(v, decimals=3, sign=True)}")

    d, _, _ = _paired(claim, inputs, {}, paper_effect)
    if not set(PAPER_ARCHS) <= set(d["arch"]):
        raise _Untested(f"needs runs of both vgg16 and resnet50 (this run: {_names(d['arch'])}); the paper "
                        "profile runs both", paper_effect(claim))
    wide = d[d["arch"].isin(PAPER_ARCHS)].pivot_table(index=["dataset", "shots", "repeat"], columns="arch",
                                                      values="diff").dropna()
    contrast, same = _restrict((wide["vgg16"] - wide["resnet50"]).rename("diff").reset_index(), both,
                               ["dataset", "shots"])
    keep = set(zip(contrast["dataset"], contrast["shots"])) if same else None
    return _over_cells(claim, inputs, contrast, ["dataset", "shots"], paper_effect(claim, keep), same,
                       f"vgg16 vs resnet50{SEP}{_names(contrast['dataset'])}",
                       "no repeat ran every cell with both backbones")


# --------------------------------------------------------------------------- Section V-B: retrieval
def _paper_retrieval(claim: Claim, keep=None) -> PaperEffect:
    items, label = {}, {}
    for a, b in claim.options["pairs"]:
        for arch in PAPER_ARCHS:
            for (dataset, protocol), vb in paper.TABLE_III[(arch, b)].items():
                if protocol not in PROTOCOLS or (keep is not None and (arch, dataset) not in keep):
                    continue
                va = paper.TABLE_III[(arch, a)][(dataset, protocol)]
                items[(arch, dataset, protocol, b)] = round(vb - va, 10)
                label[(arch, dataset, protocol, b)] = (f"{arch} {dataset} {protocol}: {b} {fmt(vb, decimals=2)} vs {a} "
                                                       f"{fmt(va, decimals=2)}")
    setting = f"{_names(k[0] for k in items)}{SEP}{_names(k[1] for k in items)}{SEP}Easy, Medium, Hard"
    return _summary(claim, items, setting, lambda k, v: label[k])


def _retrieval(claim: Claim, inputs: Inputs) -> Evaluation:
    frame, pairs = inputs.retrieval, claim.options["pairs"]
    if frame is None or frame.empty:
        raise _Untested("04_retrieval recorded no runs", _paper_retrieval(claim))
    _check_columns(frame, RETRIEVAL_COLUMNS, "retrieval")
    ran = set(frame["strategy"])
    usable = [(a, b) for a, b in pairs if {a, b} <= ran]
    if not usable:
        need = _names({s for p in pairs for s in p} - ran)
        raise _Untested(f"this run has no {need} runs (it ran {_names(ran)})", _paper_retrieval(claim))
    chosen, parts = chosen_runs(frame), []
    for a, b in usable:
        wide = chosen[chosen["strategy"].isin([a, b])].pivot_table(
            index=["arch", "dataset", "repeat"], columns="strategy", values=["mean", *PROTOCOLS]).dropna()
        parts.append(pd.DataFrame({p: wide[(p, b)] - wide[(p, a)] for p in ("mean", *PROTOCOLS)}).rename(
            columns={"mean": "diff"}).reset_index().assign(baseline=a))
    d = pd.concat(parts, ignore_index=True)
    if d.empty:
        raise _Untested("no repeat ran both strategies of a pair", _paper_retrieval(claim))
    d, same = _restrict(d, {(ar, ds) for ar in PAPER_ARCHS for ds, _ in paper.RETRIEVAL_COLUMNS}, ["arch", "dataset"])
    paper_effect = _paper_retrieval(claim, set(zip(d["arch"], d["dataset"])) if same else None)
    cases = ["arch", "dataset", "baseline"]
    wide = d.pivot_table(index="repeat", columns=cases, values="diff").dropna()
    if wide.empty:  # a pairing across cases that no single repeat ran would compare other samples
        raise _Untested("no repeat ran every (dataset, backbone, baseline) case", paper_effect)
    our_setting = (f"{_names(d['arch'])}{SEP}{_names(d['dataset'])}{SEP}against {_names(d['baseline'])}{SEP}"
                   f"{_count(wide.shape[1], 'cases')}")
    by_protocol = d.groupby(cases)[list(PROTOCOLS)].mean().stack()
    ahead = int((claim.side * (by_protocol - claim.bound) > 0).sum())
    note = (f"ahead in {ahead} of {len(by_protocol)} (dataset, backbone, baseline, protocol) cases, on average "
            "over repeats")
    return _judged(claim, E.paired_effect(wide.mean(axis=1).to_numpy()), paper_effect, SAME if same else STAND_IN,
                   our_setting, note, _cell_detail(d, cases, claim)[0], _retrieval_gates(frame, chosen, usable, d))


def _retrieval_gates(frame, chosen, pairs, d) -> tuple[G.Gate, ...]:
    """Headroom above the baseline, a training loss that moved, and CWLs that acted, on the cases compared."""
    cases = set(zip(d["arch"], d["dataset"]))
    frame, chosen = (f[[c in cases for c in zip(f["arch"], f["dataset"])]] for f in (frame, chosen))
    compared = {s for p in pairs for s in p}
    trained = chosen[chosen["strategy"].isin([s for s in compared if not strategies.get(s).cacheable])]
    acted = [G.cwl_acted(chosen, s) for s in sorted(compared) if strategies.get(s).cwl]
    return (G.headroom(frame), G.loss_moved(trained), *acted)


# --------------------------------------------------------------------------- Section V-C: pruning
def _unpruned_row(frame: pd.DataFrame) -> tuple[pd.Series | None, pd.DataFrame, list[int]]:
    """The unpruned row, the pruned rows (numeric tau), and the finetuning lengths N of the ``ft<N>`` columns."""
    _check_columns(frame, ("tau", "acc", "params"), "pruning")
    tau = pd.to_numeric(frame["tau"], errors="coerce")  # None, NaN or "-": the unpruned row
    lengths = sorted(int(c[2:]) for c in frame.columns if c.startswith("ft") and c[2:].isdigit())
    numeric = ["acc", "params", *(f"ft{n}" for n in lengths)]
    unpruned, rows = (f.assign(**{c: pd.to_numeric(f[c], errors="coerce") for c in numeric})
                      for f in (frame[tau.isna()], frame[tau.notna()]))
    return (unpruned.iloc[0] if len(unpruned) else None), rows.assign(tau=tau[tau.notna()].astype(float)), lengths


def _paper_table_iv() -> tuple[float, pd.DataFrame]:
    """The paper's Table IV read as ours is: its unpruned accuracy and its pruned rows."""
    first, rows, _ = _unpruned_row(pd.DataFrame(paper.TABLE_IV).rename(columns={"feature_maps": "features"}))
    return float(first["acc"]), rows


#: The kept shares of parameters where C17 ("about half") and C18 ("high compression", the paper's rows from
#: tau = 0.8 on keep 48% and less) are read.
HALF_WINDOW, HIGH_WINDOW = (0.25, 0.75), (0.0, 0.5)
#: The least accuracy a pruning must cost for C18 to read its recovery; also the most that one epoch of the same
#: finetuning may cost the unpruned network, or FT@1 would measure the finetuning's own disruption.
RECOVERY_LOSS = 0.05


def _half_params(unpruned: float, rows: pd.DataFrame, ft: str):
    """The row keeping closest to half the parameters (25% to 75%), its loss after finetuning ``ft``."""
    near = rows[rows["params"].between(*HALF_WINDOW) & rows[ft].notna()]
    if near.empty:
        return None, None
    row = near.loc[(near["params"] - 0.5).abs().idxmin()]
    return row, unpruned - float(row[ft])


def _recovery_row(unpruned: float, rows: pd.DataFrame, trained: str | None = None, floor: float | None = None):
    """The largest tau costing at least 5 points (and above ``floor`` after ``trained``), the share FT@1 recovers
    there, and the taus skipped."""
    hit = rows[(unpruned - rows["acc"] >= RECOVERY_LOSS) & rows["ft1"].notna()] if "ft1" in rows else rows.iloc[:0]
    skipped = []
    if trained is not None and floor is not None:
        low = hit[trained] < floor
        skipped = sorted(float(t) for t in hit.loc[low, "tau"])
        hit = hit[~low]
    if hit.empty:
        return None, None, skipped
    row = hit.loc[hit["tau"].idxmax()]
    return row, (float(row["ft1"]) - float(row["acc"])) / (unpruned - float(row["acc"])), skipped


def iv_setting(s: Mapping, *extra: str) -> str:
    """A Table IV setting in words: ``backbone · dataset · N per class``, then ``extra``."""
    return SEP.join([f"{s.get('arch', '-')}", f"{s.get('dataset', '-')}", f"{s.get('shots', '-')} per class", *extra])


def iv_same(s: Mapping) -> bool:
    """Whether ``s`` has Table IV's backbone, dataset and shots (its finetuning length is the caller's to compare)."""
    return all(s.get(k) == paper.TABLE_IV_SETTING[k] for k in ("arch", "dataset", "shots"))


def _table_iv(inputs: Inputs, paper_effect: PaperEffect, ft: Callable[[list], int | None],
              paper_ft: int) -> tuple:
    """Our Table IV (unpruned row, pruned rows, finetuning lengths), SAME or STAND_IN, our setting, and the test
    images, classes and chance bound (None without them)."""
    if inputs.pruning is None or inputs.pruning.empty:
        raise _Untested("05_pruning recorded no Table IV rows", paper_effect)
    first, rows, lengths = _unpruned_row(inputs.pruning)
    s, ours = dict(inputs.setting.get("pruning", {})), ft(lengths)
    same = iv_same(s) and ours == paper_ft
    n, classes = s.get("n_test"), s.get("classes")
    chance = (n, classes, G.chance_bound(int(classes), int(n)) if classes and n else None)
    return first, rows, lengths, SAME if same else STAND_IN, iv_setting(s, *([f"FT@{ours}"] if ours else [])), chance


def _pruning_gates(window, where: str, unpruned: float, row, rows: pd.DataFrame, ft: str, which: str,
                   chance: tuple) -> tuple[G.Gate, ...]:
    """The row read keeps a share in ``window``; it and the unpruned network are above chance; none keeping more
    is at chance."""
    n, classes, floor = chance
    return (G.operating_point(None if row is None else float(row["params"]), *window,
                              f"the share of parameters kept at {where}"),
            G.above_chance(unpruned, classes, n, "the unpruned network"),
            G.above_chance(None if row is None else float(row[ft]), classes, n,
                           f"{which} after {ft.replace('ft', 'FT@')}"),
            *(() if row is None or floor is None else (G.collapse_beyond(rows, ft, floor, float(row["params"])),)))


def _interval_needs_n(estimate: float, paper_effect: PaperEffect, our_setting: str) -> _Untested:
    return _Untested(f"needs the number of test images (setting pruning.n_test) for an interval; point estimate "
                     f"{fmt(estimate, decimals=3)}", paper_effect, our_setting)


def _binomial_var(acc: float, n: int) -> float:
    return acc * (1 - acc) / n


def _pruning_cost(claim: Claim, inputs: Inputs) -> Evaluation:
    prow, ploss = _half_params(*_paper_table_iv(), "ft30")
    paper_effect = PaperEffect(ploss, iv_setting(paper.TABLE_IV_SETTING, "FT@30"), note=f"tau {prow['tau']:g}, "
                               f"{round(100 * prow['params'])}% of the parameters kept")
    first, rows, lengths, match, our_setting, chance = _table_iv(
        inputs, paper_effect, lambda lengths: lengths[-1] if lengths else None, 30)
    if first is None or not lengths:
        raise _Untested("needs the unpruned row and a finetuned column (ft<N>)", paper_effect)
    ft, n = f"ft{lengths[-1]}", chance[0]
    acc, after = float(first["acc"]), float(first.get(ft, float("nan")))
    # pruning is charged against the better of the unpruned network before and after the same finetuning
    unpruned, same = max(acc, after) if math.isfinite(after) else acc, f"the same FT@{lengths[-1]}"
    if not math.isfinite(after):
        reference = f"unpruned {fmt(acc, decimals=3)} (no accuracy after {same} recorded)"
    elif after > acc:
        reference = f"unpruned {fmt(after, decimals=3)} after {same} ({fmt(acc, decimals=3)} before)"
    else:
        reference = f"unpruned {fmt(acc, decimals=3)} ({fmt(after, decimals=3)} after {same})"
    row, loss = _half_params(unpruned, rows, ft)
    gates = _pruning_gates(HALF_WINDOW, "the threshold closest to half of the parameters", acc, row, rows, ft,
                           "the pruned network", chance)
    if row is None:
        return _judged(claim, None, paper_effect, "", our_setting, gates=gates)
    if not n:
        raise _interval_needs_n(loss, paper_effect, our_setting)
    note = (f"tau {row['tau']:g}, {round(100 * row['params'])}% of the parameters kept: "
            f"{fmt(float(row[ft]), decimals=3)} after FT@{lengths[-1]} against {reference}")
    se = math.sqrt(_binomial_var(unpruned, n) + _binomial_var(float(row[ft]), n))
    effect = E.normal_effect(loss, se, int(n), "test images", "binomial, test set", null=claim.bound)
    return _judged(claim, effect, paper_effect, match, our_setting, note, gates=gates)


def _pruning_recovery(claim: Claim, inputs: Inputs) -> Evaluation:
    prow, pfrac, _ = _recovery_row(*_paper_table_iv())
    paper_effect = PaperEffect(pfrac, iv_setting(paper.TABLE_IV_SETTING, "FT@1"), note=f"tau {prow['tau']:g}")
    first, rows, lengths, match, our_setting, chance = _table_iv(
        inputs, paper_effect, lambda lengths: 1 if 1 in lengths else None, 1)
    if first is None or 1 not in lengths:
        raise _Untested(f"needs the unpruned row and FT@1 (this run finetuned for {lengths} epochs)", paper_effect,
                        our_setting)
    unpruned, last, (n, _, floor) = float(first["acc"]), f"ft{lengths[-1]}", chance
    row, frac, skipped = _recovery_row(unpruned, rows, last, floor)
    gates = _pruning_gates(HIGH_WINDOW, "the largest threshold read", unpruned, row, rows, last,
                           "that pruned network", chance)
    u_ft1 = float(first.get("ft1", float("nan")))
    if math.isfinite(u_ft1) or rows["ft1"].notna().any():  # no unpruned FT@1 beside pruned ones: not measured
        gates += (G.finetuning_keeps(u_ft1 - unpruned if math.isfinite(u_ft1) else None, -RECOVERY_LOSS, "FT@1"),)
    if row is None:
        return _judged(claim, None, paper_effect, "", our_setting, gates=gates)
    if not n:
        raise _interval_needs_n(frac, paper_effect, our_setting)
    acc, ft1 = float(row["acc"]), float(row["ft1"])
    var = (_binomial_var(ft1, n) + frac ** 2 * _binomial_var(unpruned, n)
           + (1 - frac) ** 2 * _binomial_var(acc, n)) / (unpruned - acc) ** 2  # delta method
    effect = E.normal_effect(frac, math.sqrt(var), int(n), "test images", "delta method, test set",
                             null=claim.bound)
    note = (f"tau {row['tau']:g} ({round(100 * row['params'])}% of the parameters kept): {fmt(acc, decimals=3)} after "
            f"pruning, {fmt(ft1, decimals=3)} after one epoch, {fmt(unpruned, decimals=3)} unpruned")
    if math.isfinite(u_ft1):  # the recovered share counts what one epoch gives any network, as the paper's does
        note += (f" ({fmt(u_ft1, decimals=3)} after the same epoch: finetuning alone moves it by "
                 f"{fmt(u_ft1 - unpruned, decimals=3, sign=True)})")
    if skipped:
        note += (f"; tau {', '.join(f'{t:g}' for t in skipped)} skipped: at chance even after FT@{lengths[-1]}, a "
                 "network no finetuning of this run can train")
    return _judged(claim, effect, paper_effect, match, our_setting, note, gates=gates)


def _layer_depth(claim: Claim, inputs: Inputs) -> Evaluation:
    p = paper.TABLE_IV_SETTING
    paper_effect = PaperEffect(None, iv_setting({**p, "arch": "vgg16"}, f"tau {FIG3_TAU:g}"),
                               note="Fig. 3: bars, no number")
    layers, s = inputs.pruning_layers, dict(inputs.setting.get("pruning", {}))
    if layers is None or layers.empty:
        raise _Untested("05_pruning recorded no per-layer compression", paper_effect)
    _check_columns(layers, LAYER_COLUMNS, "pruning layers")
    arch, tau = s.get("figure_arch") or s.get("arch"), s.get("figure_tau")
    if arch is None or tau is None:
        raise _Untested("the setting names no figure_arch and figure_tau", paper_effect)
    our_setting = iv_setting({**s, "arch": arch}, f"tau {tau:g}")
    at_tau = np.isclose(layers["tau"].astype(float), float(tau))
    if not at_tau.any():
        raise _Untested(f"no per-layer record at tau {tau:g}", paper_effect, our_setting)
    sel = figure_layers(layers[at_tau].assign(tau=float(tau)), arch, float(tau))
    if (sel["removed"] == 0).all():
        raise _Untested(f"tau {tau:g} removes no filter in any layer", paper_effect, our_setting)
    effect = E.rank_correlation(sel["position"], sel["removed"])
    if math.isnan(effect.estimate):
        raise _Untested("every layer lost the same fraction of its filters: no ordering to test", paper_effect,
                        our_setting)
    same = (arch, s.get("dataset"), s.get("shots"), float(tau)) == ("vgg16", p["dataset"], p["shots"], FIG3_TAU)
    note = f"{len(sel)} convolutions; filters removed first / last: {fmt(sel['removed'].iloc[0], decimals=2)} / " \
           f"{fmt(sel['removed'].iloc[-1], decimals=2)}"
    return _judged(claim, effect, paper_effect, SAME if same else STAND_IN, our_setting, note,
                   sel[["position", "layer", "kind", "removed"]].reset_index(drop=True))


# --------------------------------------------------------------------------- the ledger
EVALUATORS: dict[str, Callable[[Claim, Inputs], Evaluation]] = {f.__name__[1:]: f for f in (
    _measure, _classification, _shots_slope, _arch_contrast, _retrieval, _pruning_cost, _pruning_recovery,
    _layer_depth)}


def evaluate(claim: Claim, inputs: Inputs) -> Evaluation:
    """Test one claim on a run's records; "not tested here" with the reason where they cannot test it."""
    try:
        return EVALUATORS[claim.kind](claim, inputs)
    except _Untested as e:
        reason, paper_effect, our_setting = (*e.args, "-")[:3]
        return Evaluation(claim, E.NOT_TESTED, reason, None, paper_effect, "", our_setting)


def _in_ci(ev: Evaluation) -> str:
    if ev.match != SAME or ev.paper.value is None or ev.ours is None or not ev.ours.has_interval:
        return ""
    return "yes" if ev.ours.low <= ev.paper.value <= ev.ours.high else "no"


def row(ev: Evaluation) -> dict[str, str]:
    """One ledger row, every value a string; ``detectable effect``: at 80% power, two-sided 5%."""
    c, e = ev.claim, ev.ours
    mde = "" if e is None or e.mde is None or not math.isfinite(e.mde) else fmt(e.mde, **c.precision)
    return {
        "id": c.id, "section": c.section, "type": c.type, "claim": c.text,
        "paper evidence": "; ".join(c.paper_evidence), "test": c.test, "source": c.source, "effect": c.effect,
        "paper effect": _paper_text(ev.paper, c), "our effect": _effect_text(e, c),
        "p-value": fmt(e.p if e else None, decimals=3, below=0.001, na="-"),
        "detectable effect": mde, "verdict": ev.verdict, "reason": ev.reason, "gates": G.summary(ev.gates),
        "match": ev.match, "our setting": ev.our_setting, "paper setting": ev.paper.setting,
        "paper effect in our CI": _in_ci(ev), "note": ev.note,
    }


def gates_table(evaluations) -> pd.DataFrame:
    """The gates of some evaluated claims, one row each (``claim, gate, measured, needs, passed``)."""
    rows = [{"claim": ev.claim.id, "gate": g.name,
             "measured": "not recorded" if g.measured is None else fmt(g.measured, decimals=g.decimals),
             "needs": g.limits(), "passed": "yes" if g.passed else "no"}
            for ev in evaluations for g in ev.gates]
    return pd.DataFrame(rows, columns=["claim", "gate", "measured", "needs", "passed"])


def ledger(inputs: Inputs, claims: tuple[Claim, ...] = CLAIMS) -> pd.DataFrame:
    """Every claim tested on ``inputs``: one row of text per claim, columns :data:`LEDGER_COLUMNS`."""
    return pd.DataFrame([row(evaluate(c, inputs)) for c in claims], columns=list(LEDGER_COLUMNS))


__all__ = ["Claim", "PaperEffect", "Evaluation", "Inputs", "CLAIMS", "EVALUATORS", "LEDGER_COLUMNS", "gates_table",
           "SAME", "STAND_IN", "IDENTITY", "GENERAL", "evaluate", "row", "ledger"]
