"""The transfer strategies of Section V (and one baseline the paper lacks), as values.

A :class:`Strategy` says what trains, at which learning-rate grid, and what follows from that: whether
it inserts CWLs, whether BatchNorm statistics may switch to batch statistics, whether the model needs
BatchNorm, whether frozen features can be cached. Every other module reads these fields; a strategy's
name is spelled only in :data:`STRATEGIES` (and in user-facing parameters).

Parameter groups a strategy may train:

``head``      the new classifier (Algorithm 1, step 2), at the run's learning rate;
``sigma``     the CWL scales (step 3), at the run's learning rate;
``bn``        BatchNorm gamma and beta, pretrained, at the lowered rate ``lr * backbone_lr_factor``;
``backbone``  every pretrained weight (BatchNorm's included), at the lowered rate (Algorithm 1, step 1:
              "decreasing the learning rate for convolution layers rather than freezing them").
"""
from __future__ import annotations

from dataclasses import dataclass

HEAD, SIGMA, BN, BACKBONE = "head", "sigma", "bn", "backbone"
GROUPS = (HEAD, SIGMA, BN, BACKBONE)

#: The paper's learning-rate grids (Section V-A-2): finetuning runs, and frozen-convolution runs.
FINETUNE_LRS = (1e-5, 5e-5, 1e-4, 5e-4, 1e-3)
FREEZE_LRS = (1e-3, 5e-3, 1e-2, 5e-2)
LR_GRIDS = {"freeze": FREEZE_LRS, "finetune": FINETUNE_LRS}


@dataclass(frozen=True)
class Strategy:
    name: str
    trains: frozenset  # among GROUPS
    lr_grid: str  # "freeze" or "finetune": the paper's grid this strategy is searched over
    in_paper: bool = True

    def __post_init__(self):
        unknown = set(self.trains) - set(GROUPS)
        if unknown or HEAD not in self.trains:
            raise ValueError(f"strategy {self.name!r}: trains {sorted(self.trains)}, must include {HEAD!r} "
                             f"and only {GROUPS}")
        if self.lr_grid not in LR_GRIDS:
            raise ValueError(f"strategy {self.name!r}: lr_grid must be one of {sorted(LR_GRIDS)}")

    @property
    def cwl(self) -> bool:
        """Inserts Convolution Weighting Layers (and trains their sigmas)."""
        return SIGMA in self.trains

    @property
    def finetunes(self) -> bool:
        """Trains the pretrained weights themselves."""
        return BACKBONE in self.trains

    @property
    def needs_bn(self) -> bool:
        """Trains BatchNorm's affine parameters on their own: refused for a model without BatchNorm."""
        return BN in self.trains and not self.finetunes

    @property
    def may_use_batch_statistics(self) -> bool:
        """BatchNorm may normalise with batch statistics while training (a run's ``bn_train``); the
        strategies that keep the backbone frozen always keep its ImageNet running statistics."""
        return self.finetunes

    @property
    def frozen_batch_norm(self) -> bool:
        """BatchNorm neither trains nor leaves its running statistics: it can be folded into its convolution
        (:func:`cwl_lib.weighting.fold_batch_norms`), which computes the same and trains faster."""
        return BN not in self.trains and not self.finetunes

    @property
    def cacheable(self) -> bool:
        """Only the classifier trains, so the backbone's features can be computed once and reused."""
        return self.trains == frozenset({HEAD})

    @property
    def lrs(self) -> tuple[float, ...]:
        return LR_GRIDS[self.lr_grid]

    def __str__(self) -> str:
        return self.name


def _strategy(name: str, trains: set, lr_grid: str, in_paper: bool = True) -> Strategy:
    return Strategy(name, frozenset(trains), lr_grid, in_paper)


STRATEGIES: dict[str, Strategy] = {s.name: s for s in (
    _strategy("freeze", {HEAD}, "freeze"),
    _strategy("freeze+cwl", {HEAD, SIGMA}, "freeze"),
    _strategy("finetune", {HEAD, BACKBONE}, "finetune"),
    _strategy("finetune+cwl", {HEAD, SIGMA, BACKBONE}, "finetune"),
    # the closest existing per-channel rescaling to a CWL after a BatchNorm (it adds a shift), few
    # parameters like freeze, hence its grid
    _strategy("bn-affine", {HEAD, BN}, "freeze", in_paper=False),
)}
NAMES = tuple(STRATEGIES)
#: What pruning finetunes a pruned network with: every remaining weight, CWLs kept.
FINETUNE_ALL = STRATEGIES["finetune+cwl"]


def get(strategy: str | Strategy) -> Strategy:
    """The registered strategy of this name (a :class:`Strategy` is returned as it is)."""
    if isinstance(strategy, Strategy):
        return strategy
    try:
        return STRATEGIES[strategy]
    except (KeyError, TypeError):
        raise ValueError(f"unknown strategy {strategy!r}; choose one of {', '.join(NAMES)}") from None


def with_cwl(strategy: str | Strategy) -> Strategy:
    """The strategy that trains what ``strategy`` trains, plus CWL sigmas (its paired comparison)."""
    s = get(strategy)
    for other in STRATEGIES.values():
        if other.trains == s.trains | {SIGMA} and other.lr_grid == s.lr_grid:
            return other
    raise ValueError(f"no strategy adds CWLs to {s.name!r}")


__all__ = ["Strategy", "STRATEGIES", "NAMES", "FINETUNE_ALL", "GROUPS", "HEAD", "SIGMA", "BN", "BACKBONE",
           "FINETUNE_LRS", "FREEZE_LRS", "LR_GRIDS", "get", "with_cwl"]
