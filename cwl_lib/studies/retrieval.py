"""The retrieval study of Section V-B (Table III): transfer to the query images, then MAC retrieval.

A run trains the backbone to tell the query crops' landmarks apart at one fixed size, each batch turned by 0, 90
or 270 degrees and flipped at random (the database has portrait photographs), then scores MAC descriptors by the
revisited protocol. ``freeze`` trains nothing MAC uses: it is the pretrained baseline, computed once per process.
"""
from __future__ import annotations

import copy
import functools
import math
import time
from dataclasses import dataclass
from itertools import product
from typing import ClassVar, Iterable, Optional

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from .. import records, strategies, transfer
from ..data import RESOURCES, landmarks, offline_landmarks
from ..data.revisited import load_revisited
from ..paper import TABLE_III
from ..retrieval import SETTINGS, descriptor_model, extract, map_table, revisited_map, similarities
from ..runtime import seed_everything
from ..weighting import sigma_shift
from .context import Context
from ..config import MIN_INPUT, Arch, AtLeast, OneOf, Positive, RunConfig, Seeded, Study, param, required_strategies
from .setting import table as setting_table

NAME = "retrieval"
NOTEBOOK = "04_retrieval"
TOP_K = 10  # ranks kept per query in each record, for figures
RETRIEVAL_DATASETS = tuple(n for n, r in RESOURCES.items() if r.layout_kind == "revisited") + tuple(
    offline_landmarks.VARIANTS)
IN_PAPER = tuple(n for n, s in strategies.STRATEGIES.items() if s.in_paper)  # Table III's rows


class Shared(Seeded):
    """What one run shares with notebook 04's parameters; the defaults are the paper's."""

    epochs: int = param(20, "training epochs", ge=1, label="epochs", stated=False)
    batch_size: int = param(8, "query crops per step", ge=1, label="batch size", stated=False)
    train_size: tuple[AtLeast(MIN_INPUT), AtLeast(MIN_INPUT)] = param(
        (1024, 768), "width x height of the training images", label="training size (width x height)", show="size",
        why="width and height of the training images")
    backbone_lr_factor: float = param(0.1, "the pretrained weights' learning rate, x the run's", gt=0)


class Config(Shared, RunConfig):
    """Everything that determines one run's result."""

    POSITIONAL: ClassVar[tuple[str, ...]] = ("dataset", "arch", "strategy", "lr")
    dataset: str
    arch: str
    strategy: str
    lr: Optional[float]  # None when nothing MAC uses is trained (freeze)
    repeat: int = 0
    pretrained: bool = True
    landmark_rule: str = landmarks.RULE  # how query labels are read from the ground truth
    data_version: str = ""  # a generated benchmark's build (offline_landmarks.version); "" for a published set

    @property
    def run_seed(self) -> int:
        return 1000 * self.seed + self.repeat


_st = strategies  # the module, where a field is named strategies


class Parameters(Study, Shared):
    """Notebook 04's parameters; the defaults are the paper's setting (Table III)."""

    NOTEBOOK: ClassVar[str] = "04_retrieval"
    datasets: list[OneOf(RETRIEVAL_DATASETS)] = param(["roxford5k", "rparis6k"], "datasets", min_length=1,
                                                       label="datasets")
    archs: list[Arch] = param(["vgg16", "resnet50"], "ImageNet backbones", min_length=1, label="backbones")
    strategies: list[OneOf(IN_PAPER)] = param(list(IN_PAPER), "Table III's rows run", min_length=1,
                                              why="Table III's rows")
    repeats: int = param(1, "runs per cell", ge=1, label="repeats", stated=False)
    freeze_lrs: list[Positive()] = param(list(_st.FREEZE_LRS), "freeze+cwl's learning rates", min_length=1,
                                         label="learning rates, freeze+cwl")
    finetune_lrs: list[Positive()] = param(list(_st.FINETUNE_LRS), "learning rates of the finetuning strategies",
                                           min_length=1, label="learning rates, finetuning")
    extract_batch_size: int = param(Context.extract_batch_size, "images per descriptor batch", ge=1)
    figure_queries: int = param(3, "queries shown with their top-ranked images", ge=0)
    cpu_threads: int = param(0, "torch threads on a CPU (0: torch's default)", ge=0)

    # the offline stand-in with headroom (pretrained MAC: Medium mAP 55 %; 20 landmarks, 60 queries).
    # 32 Adam steps per run (4 epochs of 8 batches of 8 query crops at 80 x 60: a step's cost is mostly
    # fixed at these sizes, so the budget goes to steps; the final loss is about 0.7 against ln 20 = 3.0),
    # two rates per trained strategy from the paper's grids, 3 repeats for a paired interval: 18 trained
    # runs of 4-6 s, about 100 s in all on 2 cores. One thread: a second made these small steps no faster
    # here (and slower whenever another process was busy)
    LAPTOP: ClassVar[dict] = {
        "archs": ["mobilenet_v2"], "datasets": ["offline-landmarks"], "train_size": [80, 60], "epochs": 4,
        "batch_size": 8, "freeze_lrs": [0.001, 0.005], "finetune_lrs": [0.0005, 0.001], "repeats": 3,
        "cpu_threads": 1}
    # smoke trains sigmas at lower rates than laptop (04: 0.005, 05: 0.003): at 0.01 these few-step runs
    # are chaotic, and another CPU's rounding moved their mAP by 5 points and accuracy by 0.06. 04's rates
    # keep every positive of the mini benchmark at least 1e-3 in cosine similarity from every negative
    # (finetune+cwl at 1e-4 left a gap of 7e-5, one rounding away from a rank swap of 19 Easy mAP points)
    SMOKE: ClassVar[dict] = {
        "archs": ["mobilenet_v2"], "datasets": ["offline-landmarks-mini"], "train_size": [128, 96], "epochs": 2,
        "batch_size": 4, "freeze_lrs": [0.005], "finetune_lrs": [0.00005], "figure_queries": 2, "cpu_threads": 1}
    SETTING: ClassVar[tuple[str, ...]] = ("datasets", "archs", "train_size", "freeze_lrs", "finetune_lrs", "repeats",
                                          "epochs", "batch_size")
    REQUIRED: ClassVar[tuple[str, ...]] = ("freeze", _st.with_cwl("freeze").name)

    def check(self, given) -> None:
        super().check(given)
        required_strategies(self, given)


def configs(p: dict) -> list[Config]:
    """The runs of notebook 04 under its parameters ``p``."""
    lrs = {"freeze": p["freeze_lrs"], "finetune": p["finetune_lrs"]}
    shared = {k: p[k] for k in Shared.model_fields}
    out = []
    for d, a, name in product(p["datasets"], p["archs"], p["strategies"]):
        s = strategies.get(name)
        if not s.in_paper:
            raise ValueError(f"Table III has no {s.name} row; use one of {', '.join(IN_PAPER)}")
        out += [Config(d, a, s.name, None if lr is None else float(lr), repeat=r, data_version=data_version(d),
                       **shared) for lr, r in product([None] if s.cacheable else lrs[s.lr_grid], range(p["repeats"]))]
    return out


def data_version(dataset: str) -> str:
    """A generated benchmark's build, so that a record of an older build is not reused; "" for a published set."""
    return offline_landmarks.version(dataset) if dataset in offline_landmarks.VARIANTS else ""


key = functools.partial(records.key, NAME)
setting = functools.partial(setting_table, Parameters)


def order(config: Config) -> tuple:
    return (config.dataset, config.arch, config.pretrained, config.strategy, config.lr or 0.0, config.repeat)


# --------------------------------------------------------------------------- training data
def fixed_size_crops(crops: list[torch.Tensor], train_size: tuple[int, int]) -> torch.Tensor:
    """uint8 crops as one uint8 tensor at ``train_size`` = (W, H), portrait crops turned to landscape first."""
    w, h = (int(v) for v in train_size)
    if w < 32 or h < 32:
        raise ValueError(f"train_size {train_size} is too small for a CNN (at least 32 x 32)")
    out = torch.empty(len(crops), 3, h, w, dtype=torch.uint8)
    for i, c in enumerate(crops):
        if (c.shape[-2] > c.shape[-1]) != (h > w):
            c = torch.rot90(c, 1, dims=(1, 2))
        x = F.interpolate(c[None].float(), size=(h, w), mode="bilinear", antialias=True, align_corners=False)
        out[i] = x[0].round_().clamp_(0, 255).to(torch.uint8)
    return out


def orientation_batches(images: torch.Tensor, labels: torch.Tensor, batch_size: int, seed: int):
    """A ``batches(epoch)`` source for :func:`cwl_lib.transfer.train`: each batch turned by 0, 90 or 270 degrees
    (one choice per batch), each image flipped left-right with probability 1/2, seeded by (seed, epoch)."""
    order_of = transfer.seeded_batches(len(labels), batch_size, seed)

    def batches(epoch: int):
        g = torch.Generator().manual_seed(int(seed) * 7919 + int(epoch) + 1)
        for idx in order_of(epoch):
            x = images[idx]
            flip = torch.rand(len(idx), generator=g) < 0.5
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
            turn = (0, 1, 3)[int(torch.randint(0, 3, (1,), generator=g))]
            if turn:
                x = torch.rot90(x, turn, dims=(2, 3))
            yield transfer.preprocess(x.contiguous()), labels[idx]

    return batches


# --------------------------------------------------------------------------- one dataset, decoded once
@dataclass
class Prepared:
    """A retrieval dataset decoded once: ground truth, database and query crops, the queries' landmarks."""

    gnd: list[dict]
    database: list[torch.Tensor]
    queries: list[torch.Tensor]
    labels: torch.Tensor
    landmarks: list[str]


def prepare_dataset(name: str, data_root=None, workers: int = 8, progress: bool = True) -> Prepared:
    ds = load_revisited(name, root=data_root)
    labels, names = ds.query_landmarks()
    if len(names) < 2:
        raise ValueError(f"{name}: its queries show a single landmark; training a classifier needs at least two")
    return Prepared(ds.gnd, ds.load_images("database", workers=workers, progress=progress),
                    ds.load_images("queries", workers=workers, progress=progress), torch.tensor(labels), names)


# --------------------------------------------------------------------------- one run
@torch.no_grad()
def initial_loss(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, strategy, device,
                 batch_size: int = 64) -> float:
    """Mean cross-entropy of the uint8 training images (no turn, no flip) through ``model`` before any step, in
    the mode :func:`cwl_lib.transfer.train` trains in: about ``ln(classes)`` with a fresh classifier."""
    device = torch.device(device)
    model.to(device)
    transfer.set_train_mode(model, strategy)
    total = 0.0
    for i in range(0, len(labels), batch_size):
        x = transfer.preprocess(images[i:i + batch_size], device=device)
        y = labels[i:i + batch_size].to(device).long()
        total += float(F.cross_entropy(transfer.full_precision(model(x)), y, reduction="sum"))
    model.eval()
    return total / max(len(labels), 1)


def _descriptors(model: torch.nn.Module, data: Prepared, config: Config, context: Context) -> tuple:
    body = descriptor_model(model)
    q = extract(body, data.queries, device=context.device, batch_size=context.extract_batch_size)
    db = extract(body, data.database, device=context.device, batch_size=context.extract_batch_size,
                 progress=context.progress, desc=f"MAC {config.dataset} {config.strategy}")
    return q, db


def run_one(config: Config, context: Context) -> dict:
    """Train (per the strategy, Algorithm 1 on the query crops), describe queries and database with MAC, score."""
    device = context.device
    data = context.memo("retrieval data", config.dataset,
                        lambda: prepare_dataset(config.dataset, context.data_root, progress=context.progress))
    backbone = context.backbone(config.arch, config.pretrained)
    start = time.perf_counter()
    strategy = strategies.get(config.strategy)
    if strategy.cacheable:  # the pretrained network's MAC: the same for every repeat
        first, losses, steps, shift = None, [], 0, (None, None)
        q, db = context.memo("retrieval pretrained MAC", (config.dataset, config.data_version, config.arch,
                                                          config.pretrained, device.type),
                             lambda: _descriptors(backbone, data, config, context))
    else:
        seed_everything(config.run_seed)  # the new classifier's initialisation
        model = transfer.prepare(copy.deepcopy(backbone), strategy, len(data.landmarks),
                                 fold_bn=strategy.frozen_batch_norm)
        images = context.memo("retrieval crops", (config.dataset, tuple(config.train_size)),
                              lambda: fixed_size_crops(data.queries, config.train_size))
        batches = orientation_batches(images, data.labels, config.batch_size, config.run_seed)
        first = initial_loss(model, images, data.labels, strategy, device)
        result = transfer.train(model, batches, strategy, config.lr, config.epochs, device,
                                backbone_lr_factor=config.backbone_lr_factor)
        losses, steps = result.losses, result.steps
        shift = sigma_shift(transfer.learned_sigmas(model))
        q, db = _descriptors(model, data, config, context)
    scores = similarities(q, db)
    res = revisited_map(scores, data.gnd)
    top = np.argsort(-scores, axis=1, kind="stable")[:, :TOP_K]
    return context.record(
        NAME, config, start, map={s: res[s]["map"] for s in SETTINGS},
        **{"mp@k": {s: {str(k): v for k, v in res[s]["mp@k"].items()} for s in SETTINGS}},
        table=map_table(res), top=top.tolist(), losses=losses, initial_loss=first, steps=steps,
        sigma_shift=shift[0], sigma_shift_max=shift[1], descriptor_dim=int(q.shape[1]), classes=len(data.landmarks),
        run_seed=config.run_seed)


# --------------------------------------------------------------------------- tables
def frame(recs: list[dict]) -> pd.DataFrame:
    """One row per run: config columns, the mAPs in percent, what training did (``first_loss``, ``final_loss``,
    ``steps``, ``classes``: NaN losses for freeze), and its key."""
    return pd.DataFrame([{**r["config"], **r["table"], **_training_columns(r), "key": r["key"]} for r in recs])


def _training_columns(r: dict) -> dict:
    losses = r.get("losses") or []
    first = r.get("initial_loss")
    if first is None:
        first = losses[0] if losses else math.nan
    shift = r.get("sigma_shift")
    return {"first_loss": float(first), "final_loss": float(losses[-1]) if losses else math.nan,
            "sigma_shift": math.nan if shift is None else float(shift),
            "steps": int(r.get("steps") or 0), "classes": int(r["classes"]) if r.get("classes") else math.nan}


def table(recs: list[dict]) -> pd.DataFrame:
    """Table III of the records (:func:`best_lr_table`)."""
    return best_lr_table(frame(recs))


def training_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, arch, strategy, lr) of the :func:`frame` rows that trained: repeats, steps, mean loss before
    and after, the worst final loss, ``ln(classes)`` (a uniform guess's loss) and the mean mAPs (%)."""
    f = runs[runs["final_loss"].notna()] if "final_loss" in runs else runs.iloc[0:0]
    if f.empty:
        return pd.DataFrame(columns=["dataset", "arch", "strategy", "lr", "repeats", "steps", "first_loss",
                                     "final_loss", "worst_final_loss", "ln_classes", "easy", "medium", "hard"])
    g = f.groupby(["dataset", "arch", "strategy", "lr"])
    out = g.agg(repeats=("repeat", "size"), steps=("steps", "max"), first_loss=("first_loss", "mean"),
                final_loss=("final_loss", "mean"), worst_final_loss=("final_loss", "max"),
                classes=("classes", "max"), easy=("easy", "mean"), medium=("medium", "mean"), hard=("hard", "mean"))
    out.insert(out.columns.get_loc("classes"), "ln_classes", np.log(out.pop("classes").astype(float)))
    return out.reset_index()


def best_lr_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Table III from :func:`frame` rows: per (dataset, arch, strategy) the Easy/Medium/Hard/mean mAP (%), means
    over repeats at the rate whose mean is best; ``lr`` (None for freeze) and ``repeats`` say what was chosen."""
    f = runs.copy()
    if f.empty:
        raise ValueError("no retrieval run is recorded yet: run the grid first")
    f["lr_key"] = f["lr"].fillna(-1.0)
    cols = ["easy", "medium", "hard", "mean"]
    by_lr = f.groupby(["dataset", "arch", "strategy", "lr_key"])[cols].mean()
    by_lr["repeats"] = f.groupby(["dataset", "arch", "strategy", "lr_key"]).size()
    best = by_lr.loc[by_lr.groupby(level=[0, 1, 2])["mean"].idxmax()].reset_index()
    best["lr"] = best["lr_key"].where(best["lr_key"] >= 0, None)
    return pd.DataFrame(best[["dataset", "arch", "strategy", "lr", "repeats"] + cols])


def chosen(recs: list[dict]) -> pd.DataFrame:
    """The runs (:func:`frame` rows) at each strategy's chosen learning rate: what Table III averages."""
    return chosen_runs(frame(recs))


def chosen_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``runs`` (:func:`frame`) at each strategy's learning rate of :func:`best_lr_table`."""
    key_cols = ["dataset", "arch", "strategy", "lr_key"]
    t = best_lr_table(runs)
    return runs.assign(lr_key=pd.to_numeric(runs["lr"]).fillna(-1.0)).merge(
        t.assign(lr_key=pd.to_numeric(t["lr"]).fillna(-1.0))[key_cols], on=key_cols)


def with_paper(t: pd.DataFrame) -> pd.DataFrame:
    """Table III beside the paper's numbers (``paper_easy`` ...; NaN where the paper has no such cell)."""
    t = t.copy()
    for p in ("easy", "medium", "hard", "mean"):
        t[f"paper_{p}"] = [TABLE_III.get((a, s), {}).get((d, p), float("nan"))
                           for d, a, s in zip(t["dataset"], t["arch"], t["strategy"])]
    return t


# --------------------------------------------------------------------------- figure
_GRADE_COLOURS = {"easy": "tab:green", "hard": "tab:blue", "junk": "tab:grey", None: "tab:red"}


def plot_top_ranked(ds, record: dict, queries: Iterable[int], k: int = 5, title: str | None = None):
    """Each chosen query of ``ds`` followed by its top-``k`` database images, framed by their grade."""
    queries = list(queries)
    labels, names = ds.query_landmarks()
    k = min(k, len(record["top"][0]))
    fig, axes = plt.subplots(len(queries), k + 1, figsize=(1.9 * (k + 1), 1.7 * len(queries)), squeeze=False)
    for row, qi in enumerate(queries):
        ax = axes[row][0]
        ax.imshow(ds.query(qi).permute(1, 2, 0).numpy())
        ax.set_title(f"query: {names[labels[qi]]}", fontsize=8)
        for j, di in enumerate(record["top"][qi][:k]):
            ax = axes[row][j + 1]
            ax.imshow(ds.image(di).permute(1, 2, 0).numpy())
            g = next((g for g in ("easy", "hard", "junk") if di in ds.gnd[qi].get(g, ())), None)
            for spine in ax.spines.values():
                spine.set_edgecolor(_GRADE_COLOURS[g])
                spine.set_linewidth(3)
            ax.set_title(f"#{j + 1} {g or 'negative'}", fontsize=8, color=_GRADE_COLOURS[g])
        for ax in axes[row]:
            ax.set(xticks=[], yticks=[])
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def record_for(recs: list[dict], dataset: str, arch: str, strategy: str, lr, repeat: int = 0) -> dict:
    """The record of one run among ``recs``."""
    for r in recs:
        c = r["config"]
        if (c["dataset"], c["arch"], c["strategy"], c["repeat"]) == (dataset, arch, strategy, repeat) and (
                c["lr"] == lr or (c["lr"] is None and (lr is None or lr != lr))):
            return r
    raise KeyError(f"no run of {strategy} on {dataset}/{arch} at lr={lr} among these records")

