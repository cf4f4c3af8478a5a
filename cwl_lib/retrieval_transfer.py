"""Table III: transfer to the query images, then MAC retrieval with the trained backbone (Section V-B).

For each (dataset, arch, strategy, learning rate, repeat) one run:

1. the backbone is prepared for the strategy by :func:`cwl_lib.transfer.prepare` (a classifier with one
   output per landmark, CWLs for the ``+cwl`` strategies) and trained by :func:`cwl_lib.transfer.train`
   on the dataset's query images (cropped to their boxes, labels = their landmarks), every image
   resized to one fixed size (1024 x 768 in the paper), with orientation augmentation: each batch is
   turned by 0, 90 or 270 degrees and each image flipped left-right at random, so a network trained on
   landscape crops also sees the portrait photographs of the database;
2. the classifier is removed, the CWLs are folded into their layers, and MAC descriptors of the
   queries and of the whole database are computed at the images' own sizes;
3. the revisited protocol (:func:`cwl_lib.retrieval.revisited_map`) scores the cosine ranking.

``freeze`` trains nothing that MAC uses (its backbone is the pretrained one and its new classifier is
discarded), so it is the MAC baseline of the pretrained network and is computed once, without training.
The learning rate of the other strategies is chosen as in the paper's classification tables: the best
over the grid (here by the mean of the Easy/Medium/Hard mAPs averaged over repeats).

Each run writes one record to a :class:`cwl_lib.experiments.ResultStore` (atomic, resumable), holding
the mAPs, the precisions, the top of each query's ranking (for figures) and the training losses.
"""
from __future__ import annotations

import copy
import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from typing import Iterable

import numpy as np
import torch
import torch.nn.functional as F

from . import transfer
from .retrieval import SETTINGS, descriptor_model, extract, map_table, revisited_map, similarities

RECORD_VERSION = 1
TOP_K = 10  # ranks kept per query in each record, for figures


@dataclass(frozen=True)
class RetrievalRun:
    """Everything that determines one run's result (its hash names the record)."""

    dataset: str
    arch: str
    strategy: str
    lr: float | None  # None for ``freeze``: nothing used by MAC is trained
    repeat: int = 0
    seed: int = 0
    epochs: int = 20
    batch_size: int = 8
    train_size: tuple[int, int] = (1024, 768)  # width x height, as the paper writes it
    backbone_lr_factor: float = 0.1
    pretrained: bool = True

    @property
    def run_seed(self) -> int:
        return 1000 * self.seed + self.repeat

    def key(self) -> str:
        text = json.dumps({"kind": "retrieval", **asdict(self)}, sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()[:16]


def grid(datasets: Iterable[str], archs: Iterable[str], strategies: Iterable[str], freeze_lrs: Iterable[float],
         finetune_lrs: Iterable[float], repeats: int = 1, **common) -> list[RetrievalRun]:
    """The runs of Table III; ``freeze`` once per repeat, the others once per learning rate of their grid."""
    runs = []
    for d in datasets:
        for a in archs:
            for s in strategies:
                transfer.check_strategy(s)
                if s == "bn-affine":
                    raise ValueError("Table III has no bn-affine row; use freeze, freeze+cwl, finetune, finetune+cwl")
                lrs = [None] if s == "freeze" else list(finetune_lrs if transfer.is_finetune(s) else freeze_lrs)
                for lr in lrs:
                    for r in range(repeats):
                        runs.append(RetrievalRun(d, a, s, lr, repeat=r, **common))
    return runs


# --------------------------------------------------------------------------- training data
def fixed_size_crops(crops: list[torch.Tensor], train_size: tuple[int, int]) -> torch.Tensor:
    """uint8 query crops -> one uint8 ``N x 3 x H x W`` tensor at ``train_size`` = (W, H).

    A portrait crop is turned to landscape first (rather than squeezed), then resized bilinearly with
    antialiasing; the orientation augmentation turns it back at random during training.
    """
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
    """A ``batches(epoch)`` source for :func:`cwl_lib.transfer.train` with orientation augmentation.

    Each batch is turned by 0, 90 or 270 degrees (one choice per batch, so it stays one tensor) and each
    image is flipped left-right with probability 1/2; all draws are seeded by (seed, epoch).
    """
    order = transfer.seeded_batches(len(labels), batch_size, seed)

    def batches(epoch: int):
        g = torch.Generator().manual_seed(int(seed) * 7919 + int(epoch) + 1)
        for idx in order(epoch):
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
    """A retrieval dataset decoded once: database and query crops, landmarks, fixed-size training set."""

    name: str
    gnd: list[dict]
    database: list[torch.Tensor]
    queries: list[torch.Tensor]
    labels: torch.Tensor
    landmarks: list[str]
    train_images: dict = field(default_factory=dict)  # train_size -> uint8 tensor

    def training_images(self, train_size) -> torch.Tensor:
        key = tuple(int(v) for v in train_size)
        if key not in self.train_images:
            self.train_images[key] = fixed_size_crops(self.queries, key)
        return self.train_images[key]


def prepare_dataset(name: str, data_root=None, workers: int = 8, progress: bool = True) -> Prepared:
    """Load a revisited-layout dataset and decode all its images once (threads)."""
    from .data.revisited import load_revisited

    ds = load_revisited(name, root=data_root)
    labels, landmarks = ds.query_landmarks()
    if len(landmarks) < 2:
        raise ValueError(f"{name}: its queries name a single landmark; training a classifier needs at least two")
    return Prepared(
        name=name, gnd=ds.gnd,
        database=ds.load_images("database", workers=workers, progress=progress),
        queries=ds.load_images("queries", workers=workers, progress=progress),
        labels=torch.tensor(labels), landmarks=landmarks,
    )


# --------------------------------------------------------------------------- one run
def train_backbone(backbone: torch.nn.Module, run: RetrievalRun, data: Prepared, device) -> tuple[torch.nn.Module, list]:
    """Algorithm 1 on the query images; returns the trained model (in eval mode) and its epoch losses."""
    if run.strategy == "freeze":
        return backbone, []
    model = transfer.prepare(backbone, run.strategy, len(data.landmarks))
    batches = orientation_batches(data.training_images(run.train_size), data.labels, run.batch_size, run.run_seed)
    result = transfer.train(model, batches, run.strategy, run.lr, run.epochs, device,
                            backbone_lr_factor=run.backbone_lr_factor)
    return model, result.losses


def run_one(run: RetrievalRun, template: torch.nn.Module, data: Prepared, device, *,
            extract_batch_size: int = 16, progress: bool = False) -> dict:
    """Train (per the strategy), describe queries and database with MAC, score; a record for the store."""
    from .experiments import provenance
    from .runtime import seed_everything

    device = torch.device(device)
    start = time.perf_counter()
    seed_everything(run.run_seed)  # the new classifier's initialisation
    model, losses = train_backbone(copy.deepcopy(template), run, data, device)
    body = descriptor_model(model)
    q = extract(body, data.queries, device=device, batch_size=extract_batch_size)
    db = extract(body, data.database, device=device, batch_size=extract_batch_size, progress=progress,
                 desc=f"MAC {run.dataset} {run.strategy}")
    scores = similarities(q, db)
    res = revisited_map(scores, data.gnd)
    top = np.argsort(-scores, axis=1, kind="stable")[:, :TOP_K]
    return {
        "key": run.key(), "version": RECORD_VERSION, "config": asdict(run),
        "map": {s: res[s]["map"] for s in SETTINGS},
        "mp@k": {s: {str(k): v for k, v in res[s]["mp@k"].items()} for s in SETTINGS},
        "table": map_table(res),
        "top": top.tolist(), "losses": losses, "descriptor_dim": int(q.shape[1]),
        "classes": len(data.landmarks), "seconds": time.perf_counter() - start,
        "run_seed": run.run_seed, **provenance(device),
    }


def run_grid(runs: list[RetrievalRun], store, device="auto", *, data_root=None, extract_batch_size: int = 16,
             progress: bool = True, log=print) -> None:
    """Every run not yet in ``store``; each dataset is decoded once and each backbone loaded once."""
    from tqdm.auto import tqdm

    from .models import load_backbone
    from .runtime import pick_device

    device = pick_device(device)
    todo = [r for r in runs if not store.has(r)]
    if len(todo) < len(runs):
        log(f"[retrieval] {len(runs) - len(todo)} of {len(runs)} runs already recorded: resuming")
    bar = tqdm(total=len(todo), desc="retrieval runs", disable=not progress)
    for name in dict.fromkeys(r.dataset for r in todo):
        data = prepare_dataset(name, data_root, progress=progress)
        for arch in dict.fromkeys(r.arch for r in todo if r.dataset == name):
            pretrained = {r.pretrained for r in todo if r.dataset == name and r.arch == arch}
            for pre in sorted(pretrained):
                template = load_backbone(arch, pretrained=pre).eval()
                for run in (r for r in todo if r.dataset == name and r.arch == arch and r.pretrained == pre):
                    bar.set_postfix_str(f"{name} {arch} {run.strategy} lr={run.lr}")
                    store.write(run_one(run, template, data, device, extract_batch_size=extract_batch_size))
                    bar.update(1)
    bar.close()


# --------------------------------------------------------------------------- tables
def records_frame(store, runs: list[RetrievalRun] | None = None):
    """One row per recorded run (restricted to ``runs`` when given): config columns plus the mAPs in percent."""
    import pandas as pd

    keys = {r.key() for r in runs} if runs is not None else None
    rows = []
    for rec in store.records():
        if rec.get("config", {}).get("dataset") is None or "table" not in rec:
            continue
        if keys is not None and rec["key"] not in keys:
            continue
        rows.append({**rec["config"], **rec["table"], "key": rec["key"]})
    return pd.DataFrame(rows)


def table_iii(frame):
    """Table III: per (dataset, arch, strategy) the Easy/Medium/Hard/mean mAP (%) at the best learning rate.

    The best rate maximises the mean of the three settings averaged over repeats; values are that
    rate's averages over repeats. Columns ``lr`` (None for freeze) and ``repeats`` say what was chosen.
    """
    import pandas as pd

    if frame.empty:
        raise ValueError("no retrieval run is recorded yet: run the grid first")
    f = frame.copy()
    f["lr_key"] = f["lr"].fillna(-1.0)
    cols = ["easy", "medium", "hard", "mean"]
    by_lr = f.groupby(["dataset", "arch", "strategy", "lr_key"])[cols].mean()
    by_lr["repeats"] = f.groupby(["dataset", "arch", "strategy", "lr_key"]).size()
    best = by_lr.loc[by_lr.groupby(level=[0, 1, 2])["mean"].idxmax()].reset_index()
    best["lr"] = best["lr_key"].where(best["lr_key"] >= 0, None)
    return pd.DataFrame(best[["dataset", "arch", "strategy", "lr", "repeats"] + cols])


def with_paper(table):
    """Table III beside the paper's numbers (``paper_easy`` ...; NaN where the paper has no such cell)."""
    from .paper import TABLE_III

    t = table.copy()
    for p in ("easy", "medium", "hard", "mean"):
        t[f"paper_{p}"] = [TABLE_III.get((a, s), {}).get((d, p), float("nan"))
                           for d, a, s in zip(t["dataset"], t["arch"], t["strategy"])]
    return t


# --------------------------------------------------------------------------- figure
_GRADE_COLOURS = {"easy": "tab:green", "hard": "tab:blue", "junk": "tab:grey", None: "tab:red"}


def grade_of(gnd_entry: dict, index: int) -> str | None:
    for g in ("easy", "hard", "junk"):
        if index in gnd_entry.get(g, ()):
            return g
    return None


def plot_top_ranked(ds, record: dict, queries: Iterable[int], k: int = 5, title: str | None = None):
    """Each chosen query (cropped) followed by its top-``k`` database images, framed by their grade.

    ``ds`` is the :class:`cwl_lib.data.revisited.RevisitedDataset` of the record; only the images shown
    are read from disk.
    """
    import matplotlib.pyplot as plt

    queries = list(queries)
    labels, landmarks = ds.query_landmarks()
    k = min(k, len(record["top"][0]))
    fig, axes = plt.subplots(len(queries), k + 1, figsize=(1.9 * (k + 1), 1.7 * len(queries)), squeeze=False)
    for row, qi in enumerate(queries):
        ax = axes[row][0]
        ax.imshow(ds.query(qi).permute(1, 2, 0).numpy())
        ax.set_title(f"query: {landmarks[labels[qi]]}", fontsize=8)
        for j, di in enumerate(record["top"][qi][:k]):
            ax = axes[row][j + 1]
            ax.imshow(ds.image(di).permute(1, 2, 0).numpy())
            g = grade_of(ds.gnd[qi], di)
            for spine in ax.spines.values():
                spine.set_edgecolor(_GRADE_COLOURS[g])
                spine.set_linewidth(3)
            ax.set_title(f"#{j + 1} {g or 'negative'}", fontsize=8, color=_GRADE_COLOURS[g])
        for ax in axes[row]:
            ax.set_xticks([])
            ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def record_for(store, runs: list[RetrievalRun], dataset: str, arch: str, strategy: str, lr, repeat: int = 0) -> dict:
    """The stored record of one run of ``runs``."""
    for r in runs:
        if (r.dataset, r.arch, r.strategy, r.repeat) == (dataset, arch, strategy, repeat) and (
                r.lr == lr or (r.lr is None and (lr is None or lr != lr))):
            return json.loads(store.path(r.key()).read_text())
    raise KeyError(f"no run of {strategy} on {dataset}/{arch} at lr={lr} in this grid")


__all__ = [
    "RetrievalRun", "grid", "fixed_size_crops", "orientation_batches", "Prepared", "prepare_dataset",
    "train_backbone", "run_one", "run_grid", "records_frame", "table_iii", "with_paper", "grade_of",
    "plot_top_ranked", "record_for",
]
