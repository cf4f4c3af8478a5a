"""The pruning experiment of Section V-C (Table IV, Fig. 3), built on :mod:`cwl_lib.transfer`.

One study: transfer a pretrained backbone to a few-shot training set with CWLs (``freeze+cwl`` by
default, optionally with an L1 penalty on the sigmas: our addition), then for each threshold tau prune
(:func:`cwl_lib.pruning.prune`), evaluate right away, finetune the pruned network (every weight trains,
strategy ``finetune+cwl``) and evaluate after each epoch count listed in ``finetune_epochs`` (FT@1 and
FT@30 in the paper). Each row also holds the kept fractions of parameters and feature maps and the
measured inference time of the pruned network against the unpruned one.

Resuming: with a ``results_dir``, the transferred model and each finished tau are written there (keyed
by a hash of the study), so a stopped study restarts from the first unfinished tau; ``study.json`` holds
the study, the unpruned accuracy and where the run was made, and every tau record its own key.
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from . import experiments, pruning, transfer
from .paths import atomic_write
from .data import classification as cdata
from .runtime import pick_device, seed_everything
from .weighting import sigmas as read_sigmas

RECORD_VERSION = 1


@dataclass(frozen=True)
class Study:
    dataset: str
    arch: str
    shots: int
    taus: tuple[float, ...]
    strategy: str = "freeze+cwl"
    lr: float = 1e-2
    epochs: int = 30
    l1: float = 0.0  # strength of the L1 penalty on the sigmas during transfer (0: the paper's method)
    finetune_epochs: tuple[int, ...] = (1, 30)
    finetune_lr: float = 1e-4
    finetune_bn: str = "frozen"  # "frozen": BN keeps its running statistics while finetuning; "train": updates them
    min_channels: int = 1
    input_size: int = 224
    batch_size: int = 32
    test_size: int | None = None
    seed: int = 0
    pretrained: bool = True
    latency_batch: int = 1
    latency_repeats: int = 10

    def __post_init__(self):
        if not transfer.uses_cwl(self.strategy):
            raise ValueError(f"pruning needs learned sigmas: use a '+cwl' strategy, not {self.strategy!r}")
        if not self.taus or any(t <= 0 for t in self.taus):
            raise ValueError(f"taus must be positive thresholds, got {self.taus!r}")
        if self.finetune_bn not in ("frozen", "train"):
            raise ValueError(f"finetune_bn is 'frozen' or 'train', got {self.finetune_bn!r}")
        if any(int(e) < 1 for e in self.finetune_epochs):
            raise ValueError(f"finetune_epochs are epoch counts >= 1, got {self.finetune_epochs!r}")
        object.__setattr__(self, "taus", tuple(float(t) for t in self.taus))
        object.__setattr__(self, "finetune_epochs", tuple(sorted({int(e) for e in self.finetune_epochs})))

    def key(self) -> str:
        fields = {k: v for k, v in asdict(self).items() if k not in ("taus", "latency_repeats")}
        return hashlib.sha1(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:12]


@dataclass
class StudyResult:
    study: Study
    unpruned: dict  # accuracy and parameter count of the transferred model
    rows: list[dict]  # one per tau
    layers: "pandas.DataFrame"  # noqa: F821  per-layer compression, with a ``tau`` column
    sigmas: dict[str, torch.Tensor]  # the learned sigmas of the transferred model
    model: nn.Module | None = field(default=None, repr=False)

    def frame(self):
        import pandas as pd

        return pd.DataFrame(self.rows)


def run(study: Study, device: str | torch.device = "auto", *, data_root: str | None = None,
        results_dir: str | os.PathLike | None = None, progress: bool = True, split: cdata.Split | None = None,
        backbone: nn.Module | None = None) -> StudyResult:
    """Transfer, then prune at every tau, finetune and measure; see the module docstring."""
    import pandas as pd
    from tqdm.auto import tqdm

    from . import models

    device = pick_device(str(device)) if not isinstance(device, torch.device) else device
    store = Path(results_dir) / f"pruning-{study.key()}" if results_dir else None
    if store is not None:
        store.mkdir(parents=True, exist_ok=True)
    if split is None:
        split = cdata.load(study.dataset, data_root, size=max(study.input_size, 224), progress=progress)
    test = split.test.subset(cdata.stratified_subset_indices(split.test.labels, study.test_size, study.seed))
    train_idx = cdata.few_shot_indices(split.train.labels, study.shots, study.seed)
    images, labels = split.train.images[train_idx], split.train.labels[train_idx]
    size = study.input_size
    if backbone is None:
        backbone = models.load_backbone(study.arch, pretrained=study.pretrained)

    def batches(seed: int):
        return transfer.image_batches(images, labels, study.batch_size, seed, size)

    def accuracy(m: nn.Module) -> float:
        return transfer.evaluate(m, test.images, test.labels, device, size=size)

    def latency_ratio(pruned: nn.Module) -> float:
        t_model, t_pruned = pruning.latencies([model, pruned], (3, size, size), study.latency_batch,
                                              repeats=study.latency_repeats, device=device)
        return t_pruned / t_model

    # --- transfer with CWLs (Algorithm 1), optionally with the L1 penalty
    seed_everything(study.seed)
    model = transfer.prepare(copy.deepcopy(backbone), study.strategy, len(split.classes))
    saved = store / "transferred.pt" if store is not None else None
    if saved is not None and saved.is_file():
        model.load_state_dict(torch.load(saved, map_location="cpu", weights_only=True))
    else:
        with pruning.l1_on_sigmas(model, study.l1):
            transfer.train(model, batches(study.seed), study.strategy, study.lr, study.epochs, device)
        if saved is not None:
            atomic_write(saved, lambda p: torch.save(model.state_dict(), p))
    model.to(device).eval()
    unpruned = {"accuracy": accuracy(model), "parameters": pruning.count_parameters(model)}
    if store is not None:  # the unpruned row of Table IV, read back by cwl_lib.comparison
        head = {"version": RECORD_VERSION, "key": study.key(), "config": asdict(study), "unpruned": unpruned,
                "run_seed": study.seed, **experiments.provenance(device)}
        atomic_write(store / "study.json", lambda p: p.write_text(json.dumps(head, indent=1, sort_keys=True)))
    example = torch.zeros(1, 3, size, size, device=device)

    rows, layer_frames = [], []
    bar = tqdm(study.taus, desc="taus", disable=not progress)
    for tau in bar:
        bar.set_postfix_str(f"tau={tau:g}")
        record = store / f"tau-{tau:g}.json" if store is not None else None
        if record is not None and record.is_file():
            done = json.loads(record.read_text())
            if done.get("version") == RECORD_VERSION:
                rows.append(done["row"])
                layer_frames.append(pd.DataFrame(done["layers"]))
                continue
        pruned, plan = pruning.prune(model, tau, study.min_channels, example_input=example)
        comp = pruning.compression(model, pruned, (3, size, size))
        row = {"tau": tau, "acc": accuracy(pruned), "params": comp.params, "features": comp.features,
               "latency_ratio": latency_ratio(pruned)}
        if study.finetune_epochs:
            for p in pruned.parameters():
                p.requires_grad_(True)  # finetuning: every remaining weight trains
            # transfer.train takes the BatchNorm mode from the strategy's name, and its optimiser groups
            # (head and sigmas at lr, other weights at lr * backbone_lr_factor) are the same for both
            # names once every weight trains: 'freeze+cwl' here means "finetune with frozen BN statistics".
            ft_strategy = "freeze+cwl" if study.finetune_bn == "frozen" else "finetune+cwl"
            wanted = set(study.finetune_epochs)

            def after_epoch(epoch: int, _loss: float, pruned=pruned, row=row) -> None:
                if epoch + 1 in wanted:
                    row[f"ft{epoch + 1}"] = accuracy(pruned)

            seed_everything(study.seed + 1)
            transfer.train(pruned, batches(study.seed + 1), ft_strategy, study.finetune_lr,
                           max(study.finetune_epochs), device, progress=after_epoch)
            for e in study.finetune_epochs:  # a diverged run stops early: report what it reached
                row.setdefault(f"ft{e}", float("nan"))
        layers = comp.layers.assign(tau=tau)
        if record is not None:
            result = {"version": RECORD_VERSION, "key": f"{study.key()}-tau-{tau:g}", "study": study.key(),
                      "row": row, "layers": layers.to_dict("list"), "run_seed": study.seed, **experiments.provenance(device)}
            atomic_write(record, lambda p: p.write_text(json.dumps(result, indent=1, sort_keys=True)))
            pruning.save_pruned(store / f"tau-{tau:g}.pt", pruned, plan)
        rows.append(row)
        layer_frames.append(layers)
    return StudyResult(study, unpruned, rows, pd.concat(layer_frames, ignore_index=True),
                       {k: v.float().cpu() for k, v in read_sigmas(model).items()}, model)


# --------------------------------------------------------------------------- tables and figures
def table_iv(result: StudyResult, paper: list[dict] | None = None):
    """Table IV as a DataFrame: the unpruned row, then one row per tau; ``paper_*`` columns when given.

    Accuracies and kept fractions are rounded to 3 decimals (what nbval compares); the latency ratio is
    left as measured (never print it in a checked cell).
    """
    import pandas as pd

    ft_cols = [f"ft{e}" for e in result.study.finetune_epochs]
    rows = [{"tau": None, "acc": result.unpruned["accuracy"], **{c: None for c in ft_cols},
             "params": 1.0, "features": 1.0, "latency_ratio": 1.0}]
    rows += [{k: r.get(k) for k in ("tau", "acc", *ft_cols, "params", "features", "latency_ratio")}
             for r in result.rows]
    df = pd.DataFrame(rows)
    if paper is not None:
        by_tau = {p["tau"]: p for p in paper}
        df["paper_acc"] = [by_tau.get(t, {}).get("acc") for t in df.tau]
        if len(ft_cols) == 2:
            df["paper_ft1"] = [by_tau.get(t, {}).get("ft1") for t in df.tau]
            df["paper_ft30"] = [by_tau.get(t, {}).get("ft30") for t in df.tau]
        df["paper_params"] = [by_tau.get(t, {}).get("params") for t in df.tau]
        df["paper_features"] = [by_tau.get(t, {}).get("feature_maps") for t in df.tau]
    num = [c for c in df.columns if c not in ("tau", "latency_ratio")]
    df[num] = df[num].astype(float).round(3)
    df["tau"] = df.tau.astype(object).where(df.tau.notna(), "-")
    return df


def figure_layers(layers, arch: str, tau: float):
    """The convolutions Fig. 3 shows: every conv of VGG-16 / MobileNetV2, the 3x3 convs of ResNet-50."""
    sel = layers[(layers.tau == tau) & (layers.kind != "linear")].copy()
    if arch.startswith("resnet"):
        sel = sel[sel.kind == "conv3x3"]
    sel["removed"] = 1.0 - sel.channels_kept
    sel["position"] = range(1, len(sel) + 1)
    return sel


def plot_layer_compression(layers, arch: str, tau: float, ax=None):
    """Fig. 3: fraction of filters removed per convolution (bars in network order), as seaborn draws it."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    sel = figure_layers(layers, arch, tau)
    if ax is None:
        _, ax = plt.subplots(figsize=(max(6, 0.18 * len(sel)), 3.2))
    hue = "kind" if sel.kind.nunique() > 1 else None
    sns.barplot(data=sel, x="position", y="removed", hue=hue, dodge=False, ax=ax)
    ax.set_xlabel("convolution (input to output)")
    ax.set_ylabel("filters removed")
    ax.set_ylim(0, 1)
    ax.set_title(f"{arch}, tau = {tau:g}")
    step = max(1, len(sel) // 20)
    for i, label in enumerate(ax.get_xticklabels()):
        label.set_visible(i % step == 0)
    return ax


def plot_sigmas(sigmas: dict[str, dict[str, torch.Tensor]], taus, ax=None):
    """Histogram of |sigma| over every CWL, one curve per transfer variant, taus as vertical lines."""
    import matplotlib.pyplot as plt
    import pandas as pd
    import seaborn as sns

    frame = pd.concat([pd.DataFrame({"|sigma|": torch.cat([s.abs().flatten() for s in sig.values()]).numpy(),
                                     "transfer": name}) for name, sig in sigmas.items()], ignore_index=True)
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.2))
    sns.histplot(data=frame, x="|sigma|", hue="transfer", element="step", stat="density", common_norm=False,
                 bins=60, ax=ax)
    for t in taus:
        ax.axvline(t, color="grey", lw=0.8, ls="--")
    return ax


def fraction_below(sigmas: dict[str, torch.Tensor], tau: float) -> float:
    """Share of all sigma entries with |sigma| < tau (before the coupling rule and min_channels)."""
    flat = torch.cat([s.abs().flatten() for s in sigmas.values()])
    return float((flat < tau).float().mean())


__all__ = ["Study", "StudyResult", "run", "table_iv", "figure_layers", "plot_layer_compression", "plot_sigmas",
           "fraction_below"]
