"""Two per-query references for the revisited Oxford/Paris protocol (Radenovic et al., CVPR 2018).

* :func:`revisited_map_loop`: the plain loop written the obvious way: for each query, walk down its
  ranking one image at a time, skip ignored images, and add the trapezoid of each positive.
* :func:`revisited_map_revisitop`: ``compute_ap`` / ``compute_map`` of the revisitop reference code
  (filipradenovic/revisitop, python/evaluate.py and example_evaluate.py) step by step: numpy
  within each query, ``np.isin`` to locate the positives and the junk, the positive list taken as
  the concatenation revisitop builds (an image listed twice counts twice in the number of positives).
  Scores become ranks as ``example_evaluate.py`` does when ``ties="revisitop"`` (numpy's default,
  unstable argsort), or with ties broken by the lower index (``ties="stable"``, the library's rule).
* :func:`revisited_map_loop` counts each positive image once (``count_duplicates=False``).

``cwl_lib.retrieval.revisited_map`` is checked against both (tests) and timed against both (benchmarks).
"""
import numpy as np

PROTOCOL = {"easy": (("easy",), ("junk", "hard")), "medium": (("easy", "hard"), ("junk",)),
            "hard": (("hard",), ("junk", "easy"))}


def ap_trapezoid(pos, n_pos):
    ap = 0.0
    for j, r in enumerate(pos):
        p0 = 1.0 if r == 0 else j / r
        p1 = (j + 1) / (r + 1)
        ap += (p0 + p1) / 2.0 / n_pos
    return ap


def one_setting(ranks, gnd, pos_keys, ign_keys, kappas):
    aps, prs = [], []
    for q, g in enumerate(gnd):
        qpos = np.concatenate([np.asarray(g.get(k, []), dtype=np.int64) for k in pos_keys])
        qign = np.concatenate([np.asarray(g.get(k, []), dtype=np.int64) for k in ign_keys])
        if len(qpos) == 0:
            aps.append(np.nan)
            prs.append([np.nan] * len(kappas))
            continue
        row = ranks[q]
        pos = list(np.nonzero(np.isin(row, qpos))[0])
        junk = list(np.nonzero(np.isin(row, qign))[0])
        k = ij = 0
        for ip in range(len(pos)):
            while ij < len(junk) and pos[ip] > junk[ij]:
                k += 1
                ij += 1
            pos[ip] -= k
        aps.append(ap_trapezoid(pos, len(qpos)))
        one_based = np.asarray(pos) + 1
        row_pr = []
        for kappa in kappas:
            kq = min(one_based.max(), kappa) if len(one_based) else 0
            row_pr.append((one_based <= kq).sum() / kq if kq else 0.0)
        prs.append(row_pr)
    aps = np.asarray(aps, dtype=float)
    prs = np.asarray(prs, dtype=float).reshape(len(gnd), len(kappas))
    ok = ~np.isnan(aps)
    return {"map": float(aps[ok].mean()) if ok.any() else float("nan"),
            "mp@k": {k: float(prs[ok, i].mean()) if ok.any() else float("nan") for i, k in enumerate(kappas)},
            "ap": aps, "queries": int(ok.sum())}


def revisitop_ranks(scores):
    """``ranks = np.argsort(-sim, axis=0)`` of revisitop's example, for a Q x N score matrix (rows: queries)."""
    return np.argsort(-np.asarray(scores).T, axis=0).T


def revisited_map_revisitop(scores_or_ranks, gnd, kappas=(1, 5, 10), ties="stable"):
    arr = np.asarray(scores_or_ranks)
    if np.issubdtype(arr.dtype, np.floating):
        ranks = revisitop_ranks(arr) if ties == "revisitop" else np.stack([np.argsort(-row, kind="stable") for row in arr])
    else:
        ranks = arr
    return {s: one_setting(ranks, gnd, p, i, kappas) for s, (p, i) in PROTOCOL.items()}


def _as_ranks(scores_or_ranks):
    arr = np.asarray(scores_or_ranks)
    if np.issubdtype(arr.dtype, np.floating):
        return [np.argsort(-row, kind="stable") for row in arr]
    return list(arr)


def revisited_map_loop(scores_or_ranks, gnd, kappas=(1, 5, 10)):
    ranks = _as_ranks(scores_or_ranks)
    out = {}
    for setting, (pos_keys, ign_keys) in PROTOCOL.items():
        aps, prs = [], []
        for q, g in enumerate(gnd):
            positives = {int(i) for k in pos_keys for i in g.get(k, [])}
            ignored = {int(i) for k in ign_keys for i in g.get(k, [])} - positives
            if not positives:
                continue
            ap, found, r, hit_ranks = 0.0, 0, 0, []
            for image in ranks[q]:
                image = int(image)
                if image in positives:
                    p0 = 1.0 if r == 0 else found / r
                    p1 = (found + 1) / (r + 1)
                    ap += (p0 + p1) / 2.0 / len(positives)
                    found += 1
                    hit_ranks.append(r + 1)
                    r += 1
                elif image not in ignored:
                    r += 1
            aps.append(ap)
            last = hit_ranks[-1] if hit_ranks else 0
            row = []
            for kappa in kappas:
                kq = min(last, kappa)
                row.append(sum(1 for h in hit_ranks if h <= kq) / kq if kq else 0.0)
            prs.append(row)
        out[setting] = {"map": float(np.mean(aps)) if aps else float("nan"),
                        "mp@k": {k: float(np.mean([p[i] for p in prs])) if prs else float("nan")
                                 for i, k in enumerate(kappas)},
                        "queries": len(aps)}
    return out
