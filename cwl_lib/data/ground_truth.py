"""The revisited ground-truth file ``gnd_<name>.pkl``: read it safely (a downloaded pickle can run code, so
:mod:`cwl_lib.data.safe_pickle`), check it, write it. A dict of ``imlist``, ``qimlist`` and ``gnd`` (per query
``bbx`` = [x1, y1, x2, y2] and ``easy`` / ``hard`` / ``junk`` database indices).
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from .safe_pickle import UnsafePickleError, load_data_pickle


def _index_list(values, what: str) -> list[int]:
    arr = np.asarray(values if values is not None else [], dtype=np.float64).reshape(-1)
    if arr.size and (np.any(arr != np.round(arr)) or arr.min() < 0):
        raise ValueError(f"{what}: expected non-negative database indices")
    return [int(v) for v in arr]


def validate(raw, path: Path) -> tuple[list[str], list[str], list[dict]]:
    """``(imlist, qimlist, gnd)`` of an unpickled file, with index lists as ints; ValueError naming the flaw."""
    if not isinstance(raw, dict) or not {"imlist", "qimlist", "gnd"} <= set(raw):
        raise ValueError(f"{path} is not a revisited ground-truth file: expected a dict with imlist, qimlist, gnd")
    imlist = [str(x) for x in raw["imlist"]]
    qimlist = [str(x) for x in raw["qimlist"]]
    if len(raw["gnd"]) != len(qimlist):
        raise ValueError(f"{path}: {len(raw['gnd'])} ground-truth entries for {len(qimlist)} queries")
    gnd = []
    for i, g in enumerate(raw["gnd"]):
        if not isinstance(g, dict) or "bbx" not in g:
            raise ValueError(f"{path}: ground truth of query {i} has no bbx")
        entry = {k: _index_list(g.get(k), f"{path}: query {i} {k}") for k in ("easy", "hard", "junk")}
        for k, v in entry.items():
            if v and max(v) >= len(imlist):
                raise ValueError(f"{path}: query {i} lists {k} image {max(v)} beyond the {len(imlist)} images")
        bbx = np.asarray(g["bbx"], dtype=np.float64).reshape(-1)
        if bbx.size < 4 or not np.isfinite(bbx[:4]).all():
            raise ValueError(f"{path}: query {i} has no finite bounding box [x1, y1, x2, y2]")
        entry["bbx"] = [float(v) for v in bbx[:4]]
        gnd.append(entry)
    return imlist, qimlist, gnd


def read(path: str | Path) -> tuple[list[str], list[str], list[dict]]:
    """``(imlist, qimlist, gnd)`` of a ground-truth file, read safely and checked."""
    path = Path(path)
    try:
        raw = load_data_pickle(path)
    except UnsafePickleError as err:
        raise UnsafePickleError(f"{path} is not a plain ground-truth file ({err}); it is not the published one: "
                                "delete it and fetch it again (`cwl fetch roxford5k` / `cwl fetch rparis6k`)") from None
    return validate(raw, path)


def write_gnd(path: str | Path, imlist, qimlist, gnd) -> None:
    """Write a ground-truth file in the published format (plain lists, protocol 2), atomically."""
    path = Path(path)
    plain = {"imlist": list(imlist), "qimlist": list(qimlist),
             "gnd": [{"bbx": [float(v) for v in g["bbx"]],
                      **{k: [int(v) for v in g.get(k, [])] for k in ("easy", "hard", "junk")}} for g in gnd]}
    tmp = path.with_suffix(".partial")
    tmp.write_bytes(pickle.dumps(plain, protocol=2))
    tmp.replace(path)

