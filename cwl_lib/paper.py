"""The paper's published numbers (Tables I-IV of ``../shared/paper.txt``), transcribed once and checked against
the text by ``tests/test_paper_tables.py``.

Tables I-II: ``{(arch, dataset, strategy): {shots: (mean, std)}}``, accuracy in [0, 1] over 10 repeats. Table II
repeats Table I's VGG-16 ``freeze`` rows as printed (Chest X-ray 5-shot std: 0.003 there, 0.030 in Table I; one is
a typo). Table III: ``{(arch, strategy): {(dataset, protocol): mAP}}`` in percent (``freeze`` is "Original /
Freeze"). Table IV: VGG-16 on Kvasir, one dict per tau (``None``: unpruned; ``None`` values: the paper's "-").
"""
from __future__ import annotations

import pandas as pd

SHOTS = (1, 3, 5, 10)


def _row(*cells: tuple[float, float]) -> dict[int, tuple[float, float]]:
    return dict(zip(SHOTS, cells))


TABLE_I: dict[tuple[str, str, str], dict[int, tuple[float, float]]] = {
    ("vgg16", "mit67", "freeze"): _row((0.065, 0.013), (0.178, 0.017), (0.243, 0.013), (0.381, 0.022)),
    ("vgg16", "mit67", "freeze+cwl"): _row((0.118, 0.010), (0.236, 0.021), (0.301, 0.024), (0.411, 0.014)),
    ("vgg16", "kvasir", "freeze"): _row((0.262, 0.047), (0.399, 0.044), (0.531, 0.030), (0.623, 0.026)),
    ("vgg16", "kvasir", "freeze+cwl"): _row((0.294, 0.050), (0.500, 0.041), (0.550, 0.017), (0.677, 0.023)),
    ("vgg16", "chest-xray", "freeze"): _row((0.590, 0.072), (0.650, 0.121), (0.731, 0.030), (0.795, 0.071)),
    ("vgg16", "chest-xray", "freeze+cwl"): _row((0.587, 0.116), (0.688, 0.067), (0.756, 0.020), (0.810, 0.041)),
    ("resnet50", "mit67", "freeze"): _row((0.166, 0.010), (0.316, 0.010), (0.400, 0.010), (0.510, 0.016)),
    ("resnet50", "mit67", "freeze+cwl"): _row((0.170, 0.011), (0.314, 0.021), (0.405, 0.014), (0.501, 0.023)),
    ("resnet50", "kvasir", "freeze"): _row((0.345, 0.032), (0.564, 0.039), (0.653, 0.026), (0.752, 0.033)),
    ("resnet50", "kvasir", "freeze+cwl"): _row((0.356, 0.055), (0.568, 0.065), (0.664, 0.036), (0.759, 0.025)),
    ("resnet50", "chest-xray", "freeze"): _row((0.712, 0.054), (0.696, 0.129), (0.757, 0.065), (0.821, 0.028)),
    ("resnet50", "chest-xray", "freeze+cwl"): _row((0.714, 0.048), (0.689, 0.127), (0.774, 0.049), (0.826, 0.030)),
}

TABLE_II: dict[tuple[str, str, str], dict[int, tuple[float, float]]] = {
    ("vgg16", "mit67", "finetune"): _row((0.058, 0.005), (0.108, 0.011), (0.143, 0.008), (0.259, 0.014)),
    ("vgg16", "mit67", "finetune+cwl"): _row((0.058, 0.007), (0.118, 0.022), (0.158, 0.015), (0.251, 0.020)),
    ("vgg16", "mit67", "freeze"): _row((0.065, 0.013), (0.178, 0.017), (0.243, 0.013), (0.381, 0.022)),
    ("vgg16", "kvasir", "finetune"): _row((0.288, 0.082), (0.464, 0.145), (0.533, 0.001), (0.698, 0.016)),
    ("vgg16", "kvasir", "finetune+cwl"): _row((0.309, 0.132), (0.536, 0.022), (0.590, 0.023), (0.666, 0.001)),
    ("vgg16", "kvasir", "freeze"): _row((0.262, 0.047), (0.399, 0.044), (0.531, 0.030), (0.623, 0.026)),
    ("vgg16", "chest-xray", "finetune"): _row((0.542, 0.118), (0.684, 0.132), (0.672, 0.163), (0.811, 0.027)),
    ("vgg16", "chest-xray", "finetune+cwl"): _row((0.610, 0.086), (0.730, 0.138), (0.691, 0.114), (0.824, 0.031)),
    ("vgg16", "chest-xray", "freeze"): _row((0.590, 0.072), (0.650, 0.121), (0.731, 0.003), (0.795, 0.071)),
}

RETRIEVAL_COLUMNS = tuple((d, p) for d in ("roxford5k", "rparis6k") for p in ("easy", "medium", "hard", "mean"))


def _mAP(*values: float) -> dict[tuple[str, str], float]:
    return dict(zip(RETRIEVAL_COLUMNS, values))


TABLE_III: dict[tuple[str, str], dict[tuple[str, str], float]] = {
    ("vgg16", "freeze"): _mAP(49.37, 37.09, 15.21, 33.89, 60.88, 47.79, 25.16, 44.61),
    ("vgg16", "freeze+cwl"): _mAP(50.70, 37.80, 14.55, 34.35, 62.42, 48.85, 24.33, 45.20),
    ("vgg16", "finetune"): _mAP(41.07, 33.23, 12.78, 29.03, 65.63, 51.58, 27.08, 48.10),
    ("vgg16", "finetune+cwl"): _mAP(49.53, 39.08, 15.30, 34.64, 69.21, 53.26, 27.08, 49.85),
    ("resnet50", "freeze"): _mAP(41.98, 32.99, 13.87, 29.61, 62.51, 46.44, 21.88, 43.61),
    ("resnet50", "freeze+cwl"): _mAP(55.27, 42.35, 16.08, 37.90, 77.43, 56.09, 27.18, 53.57),
    ("resnet50", "finetune"): _mAP(62.95, 51.30, 25.02, 46.42, 82.33, 64.79, 38.93, 62.02),
    ("resnet50", "finetune+cwl"): _mAP(63.19, 51.21, 25.31, 46.57, 82.95, 66.16, 42.52, 63.88),
}

TABLE_IV_SETTING = {"arch": "vgg16", "dataset": "kvasir", "shots": 50}
TABLE_IV: list[dict] = [
    {"tau": None, "acc": 0.904, "ft1": None, "ft30": None, "params": 1.00, "feature_maps": 1.00},
    {"tau": 0.2, "acc": 0.905, "ft1": 0.890, "ft30": 0.909, "params": 0.95, "feature_maps": 0.98},
    {"tau": 0.4, "acc": 0.892, "ft1": 0.888, "ft30": 0.907, "params": 0.85, "feature_maps": 0.96},
    {"tau": 0.8, "acc": 0.492, "ft1": 0.858, "ft30": 0.889, "params": 0.48, "feature_maps": 0.74},
    {"tau": 1.0, "acc": 0.221, "ft1": 0.635, "ft30": 0.825, "params": 0.23, "feature_maps": 0.44},
    {"tau": 1.2, "acc": 0.121, "ft1": 0.533, "ft30": 0.658, "params": 0.01, "feature_maps": 0.16},
]

# Section V-C's text says 45% of parameters, 74% of feature maps, 1.5% accuracy; Table IV's row (tau = 0.8) prints
# 48% of parameters: pages that use the row say so, and use the table's number.
TABLE_IV_TEXT = {"params": 0.45, "feature_maps": 0.74, "accuracy_cost": 0.015}


def classification(arch: str, dataset: str, strategy: str, shots: int) -> tuple[float, float] | None:
    """The paper's (mean, std) for one classification cell, from Table I or II; None when not reported."""
    rows = (table.get((arch, dataset, strategy), {}) for table in (TABLE_I, TABLE_II))
    return next((row[shots] for row in rows if shots in row), None)


def table_frame(table: dict) -> pd.DataFrame:
    """Table I or II as a long DataFrame: arch, dataset, strategy, shots, mean, std."""
    return pd.DataFrame([{"arch": a, "dataset": d, "strategy": s, "shots": k, "mean": m, "std": sd}
                         for (a, d, s), cells in table.items() for k, (m, sd) in cells.items()])
