"""Page 06: every cell of Tables I-IV, the paper's value beside ours (from the records of 03-05 under the same
profile and seed; other settings are counted and left out), CWL against its baseline, the records behind each of
our numbers, and the claims ledger. Ours is the *same experiment* only on the paper's dataset and backbone (Table
IV: also images per class and finetuning epochs); else a *stand-in*, with no difference (the ledger compares it
through effects). Strategies, image counts and thresholds are never substituted: one we did not run is "not run".
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pandas as pd

from . import claims, display, measures, paper, parameters, profiles, smallcnn, strategies, tables
from . import effects as E
from .paths import project_root
from .records import Store
from .studies import BY_NOTEBOOK, classification, pruning as pruning_study, retrieval as retrieval_study
from .studies import setting as run_setting
from .claims import SEP
from .studies.setting import SAME, STAND_IN

SOURCES = {"I": "03_classification", "II": "03_classification", "III": "04_retrieval", "IV": "05_pruning"}
FRAMES = {"03_classification": classification.frame, "04_retrieval": retrieval_study.frame,
          "05_pruning": pruning_study.table}
# CWL against its baseline, per table
PAIRS = {t: [(b, strategies.with_cwl(b).name) for b in bases]
         for t, bases in (("I", ["freeze"]), ("II", ["finetune"]), ("III", ["freeze", "finetune"]))}
NOT_RUN = "not run"
SECTION3 = ("01_kronecker", "02_convolution_svd")  # the notebooks whose measures the ledger reads (Sections III-IV)


def compared_configs(notebook: str, params: dict) -> list:
    """The runs of ``notebook`` this page compares with the paper: all of 03 and 04; of 05 the paper's method at
    its finetuning (not our L1 variant, Network Slimming or Fig. 3's other backbones)."""
    study = BY_NOTEBOOK[notebook]
    configs = study.configs(params)
    if study is pruning_study:
        method = pruning_study.variants(params)[pruning_study.PAPER]
        configs = [c for c in configs if pruning_study.variant_of(c, params) == pruning_study.PAPER
                   and c.finetune_epochs == method["finetune_epochs"]]
    return configs


@dataclass
class Source:
    """One notebook's records as this page reads them."""

    notebook: str
    folder: Path  # the notebook's results folder; its records are in ``folder / "runs"``
    params: dict  # that notebook's parameters under this page's profile
    expected: list[str]  # record keys of its grid
    records: list[dict]  # the grid's records found
    other: int  # records of other settings in the same store, left out
    failed: int  # runs of its grid that failed twice (``runs/failed/<key>.json``), left out of the tables

    def __post_init__(self):
        self.found = len({r["key"] for r in self.records})
        self.status = "complete" if self.found == len(self.expected) else "partial" if self.found else NOT_RUN
        self.tables = ", ".join(t for t, nb in SOURCES.items() if nb == self.notebook)

    @cached_property
    def frame(self) -> pd.DataFrame | None:
        """The study's results (Table IV for 05) that cells, tests and claims all read; None without records."""
        return FRAMES[self.notebook](self.records) if self.records else None


def store_of(folder: str | Path) -> Store:
    return Store(Path(folder) / "runs")


def load(notebook: str, folder: str | Path, params: dict) -> Source:
    """The records of ``notebook``'s compared runs under ``params`` found in ``folder`` (nothing is created)."""
    expected = list(dict.fromkeys(BY_NOTEBOOK[notebook].key(c) for c in compared_configs(notebook, params)))
    wanted, store = set(expected), store_of(folder)
    every = store.records()
    found = [r for r in every if r["key"] in wanted]
    failed = sum(f["key"] in wanted for f in store.failures())
    return Source(notebook, Path(folder), params, expected, found, len(every) - len(found), failed)


def sources_root(results_root: str, results_dir: str, profile: str) -> Path:
    """Where 03-05 wrote their records: ``results_root``; else the folder holding this page's ``results_dir``
    (notebooks of one run write side by side); else ``results/<profile>/``, where ``cwl reproduce`` writes."""
    if results_root:
        return Path(results_root).expanduser()
    if results_dir:
        return Path(results_dir).expanduser().parent
    return project_root() / "results" / profile


def _common(seed: int, device: str, data_root: str) -> dict:
    return {"seed": seed, "device": device, "data_root": data_root}


def gather(profile: str, root: str | Path, *, seed: int = 0, device: str = "auto",
           data_root: str = "") -> dict[str, Source]:
    """Notebook -> :class:`Source` for 03-05 under ``profile``, read from ``root/<notebook>``."""
    return {nb: load(nb, Path(root) / nb, profiles.parameters(profile, nb, _common(seed, device, data_root)))
            for nb in dict.fromkeys(SOURCES.values())}


# --------------------------------------------------------------------------- the cells
def _where(frame: pd.DataFrame, select: dict) -> pd.DataFrame:
    return frame[(frame[list(select)] == pd.Series(select)).all(axis=1)] if len(frame) else frame


def _stand_in(wanted: str, ours: list[str], paper_values: set[str]) -> tuple[str | None, bool]:
    """Ours beside the paper's ``wanted``: itself when we ran it, else our first the paper does not use."""
    return (wanted, True) if wanted in ours else (next((o for o in ours if o not in paper_values), None), False)


def _cell(table, row, column, paper_value, ours, *, same, paper_setting, our_setting, select, keys, source,
          repeats=None, paper_std=None, ours_std=None) -> dict:
    ours = float("nan") if ours is None else float(ours)
    ran = not math.isnan(ours)
    return {"table": table, "row": row, "column": column, "paper": paper_value, "paper_std": paper_std,
            "ours": ours, "ours_std": ours_std if ran else None,
            "difference": ours - paper_value if ran and same else float("nan"),  # stand-ins: compared by effects
            "repeats": repeats if ran else 0, "same": same, "status": (SAME if same else STAND_IN) if ran else NOT_RUN,
            "paper_setting": paper_setting, "our_setting": our_setting or "-", "select": select if ran else None,
            "keys": tuple(sorted(keys)) if ran else (), "source": source}


def _table_cells(src: Source, table: str, paper_cells, summ: pd.DataFrame, used: pd.DataFrame) -> list[dict]:
    """Ours beside each paper cell (row, column, arch, dataset, other selection, column of ``summ``, paper mean, std);
    ``used`` holds the runs whose values make ours."""
    datasets, archs = {c[3] for c in paper_cells}, {c[2] for c in paper_cells}
    out = []
    for row, column, arch, dataset, extra, value, paper_value, paper_std in paper_cells:
        our_a, same_a = _stand_in(arch, src.params["archs"], archs)
        our_d, same_d = _stand_in(dataset, src.params["datasets"], datasets)
        select = {"dataset": our_d, "arch": our_a, **extra}
        hit = _where(summ, select)
        found = len(hit) > 0
        out.append(_cell(
            table, row, column, paper_value, hit[value].iloc[0] if found else None, paper_std=paper_std,
            ours_std=hit["std"].iloc[0] if found and "std" in hit else None,
            repeats=int(hit["repeats"].sum()) if found else 0, same=same_d and same_a,
            paper_setting=SEP.join([arch, dataset]), our_setting=SEP.join([our_a, our_d]) if our_a and our_d else None,
            select=select, keys=_where(used, select).get("key", []), source=src.notebook))
    return out


def classification_cells(src: Source) -> list[dict]:
    """Tables I and II, one cell per (paper row, shots)."""
    f = src.frame
    summ, used = (tables.summary(f), tables.chosen_runs(f)) if f is not None else (pd.DataFrame(), pd.DataFrame())
    return [cell for name, table in (("I", paper.TABLE_I), ("II", paper.TABLE_II)) for cell in _table_cells(
        src, name, [(SEP.join([a, d, s]), f"{k} shot", a, d, {"strategy": s, "shots": k}, "mean", mean, std)
                    for (a, d, s), by_shots in table.items() for k, (mean, std) in by_shots.items()], summ, used)]


def retrieval_cells(src: Source) -> list[dict]:
    """Table III, one cell per (paper row, dataset and protocol), mAP in percent."""
    f = src.frame
    t3, chosen = ((retrieval_study.best_lr_table(f), retrieval_study.chosen_runs(f)) if f is not None
                  else (pd.DataFrame(), pd.DataFrame()))
    return _table_cells(src, "III", [(SEP.join([a, s]), SEP.join([d, p]), a, d, {"strategy": s}, p, v, None)
                                     for (a, s), values in paper.TABLE_III.items() for (d, p), v in values.items()],
                        t3, chosen)


PRUNING_COLUMNS = {"acc": "acc", "ft1": "FT@1", "ft30": "FT@30", "params": "#Param", "feature_maps": "#Feat"}


def pruning_cells(src: Source) -> list[dict]:
    """Table IV, one cell per (tau, column), from the records (the study's table rounds); FT@30 stands beside our
    longest finetuning when we ran no 30."""
    study = pruning_study.Config(tau=None, **pruning_study.variants(src.params)[pruning_study.PAPER]).model_dump()
    by_tau = {r["config"]["tau"]: r for r in src.records}
    iv = paper.TABLE_IV_SETTING
    same_setting, paper_setting, our_setting = claims.iv_same(study), claims.iv_setting(iv), claims.iv_setting(study)
    fe = study["finetune_epochs"]
    epochs = {"ft1": 1 if 1 in fe else None, "ft30": 30 if 30 in fe else (max(fe) if fe and max(fe) > 1 else None)}
    out = []
    for prow in paper.TABLE_IV:
        tau, rec = prow["tau"], by_tau.get(prow["tau"])
        for col, label in PRUNING_COLUMNS.items():
            if prow[col] is None:  # the paper prints "-"
                continue
            ps_, os_, same = paper_setting, our_setting, same_setting
            ours = {"feature_maps": "features"}.get(col, col)
            if col in epochs:  # FT@n: n epochs of finetuning, ours may be another n
                e = epochs[col]
                ps_, os_ = claims.iv_setting(iv, label), claims.iv_setting(study, f"FT@{e}") if e else None
                same, ours = same and e == int(col[2:]), f"ft{e}" if e else None
            if rec is None:
                value = None
            elif tau is None:  # the unpruned network keeps everything
                value = rec["unpruned"]["accuracy"] if col == "acc" else 1.0
            else:
                value = rec["row"].get(ours) if ours else None
            out.append(_cell(
                "IV", "unpruned" if tau is None else f"tau = {tau:g}", label, prow[col], value, repeats=1, same=same,
                paper_setting=ps_, our_setting=os_, select={"tau": tau}, keys=[rec["key"]] if rec else [],
                source=src.notebook))
    return out


def cells(sources: dict[str, Source]) -> pd.DataFrame:
    """Every cell of Tables I-IV: paper, ours, difference, status, settings, and the records' keys behind ours."""
    return pd.DataFrame(classification_cells(sources["03_classification"]) + retrieval_cells(sources["04_retrieval"])
                        + pruning_cells(sources["05_pruning"]))


def records_behind(cell, sources: dict[str, Source]) -> list[dict]:
    """Every record of our cell (all learning rates and repeats of its setting); ``cell["keys"]`` make the number."""
    if cell["select"] is None:
        return []
    return [r for r in sources[cell["source"]].records
            if all(r["config"].get(k) == v for k, v in cell["select"].items())]


# --------------------------------------------------------------------------- significance
def _tests(table: str, frame: pd.DataFrame | None, a: str, b: str) -> list[dict]:
    if frame is None or not {a, b} <= set(frame["strategy"]):
        return []
    t = tables.paired_tests(frame, a, b)  # pairs only repeats both strategies ran
    return [{"table": table, "comparison": f"{b} vs {a}", **row} for row in t.to_dict("records") if row["pairs"] > 0]


def significance(sources: dict[str, Source]) -> pd.DataFrame:
    """CWL minus its baseline over paired repeats, per our (dataset, arch, shots); Table III at each strategy's
    chosen learning rate, on the mean of Easy/Medium/Hard mAP; p-values need 2 pairs."""
    cls = sources["03_classification"].frame
    rows = [row for table in ("I", "II") for a, b in PAIRS[table] for row in _tests(table, cls, a, b)]
    if sources["04_retrieval"].frame is not None:
        chosen = retrieval_study.chosen_runs(sources["04_retrieval"].frame)
        pairs = chosen.assign(accuracy=chosen["mean"], shots=0)
        for a, b in PAIRS["III"]:
            rows += [{**r, "shots": None} for r in _tests("III", pairs, a, b)]  # Table III has no shots
    columns = ["table", "comparison", "dataset", "arch", "shots", "pairs", "mean_diff", "wins", "p_ttest", "p_wilcoxon"]
    out = pd.DataFrame(rows, columns=columns)
    out["shots"] = pd.Series([r["shots"] for r in rows], dtype=object)  # ints, None for Table III
    return out


# --------------------------------------------------------------------------- the claims ledger
def _pruning_inputs(src: Source) -> tuple[pd.DataFrame | None, pd.DataFrame | None, dict]:
    """Table IV of the paper's method, its per-layer frame at Fig. 3's threshold, and the study's setting."""
    p = src.params
    study = pruning_study.variants(p)[pruning_study.PAPER]
    setting = {"dataset": study["dataset"], "arch": study["arch"], "shots": study["shots"],
               "n_test": p.get("test_size"), "figure_arch": study["arch"], "figure_tau": p["figure_tau"]}
    if not src.records:
        return None, None, setting
    unpruned = [r for r in src.records if r["config"]["tau"] is None and r.get("correct", {}).get("acc")]
    if unpruned:  # the test images behind each accuracy, as recorded (test_size None means all of them)
        setting["n_test"] = len(unpruned[0]["correct"]["acc"])
        if unpruned[0].get("classes"):
            setting["classes"] = unpruned[0]["classes"]
    recs = list(src.records)
    if not any(r["config"]["tau"] == p["figure_tau"] for r in recs):  # Fig. 3's run outside the study's taus
        fig = pruning_study.Config(**{**study, "finetune_epochs": ()}, tau=p["figure_tau"])
        recs += [r for r in store_of(src.folder).records() if r["key"] == pruning_study.key(fig)]
    return src.frame, pruning_study.layers(recs), setting


def claims_inputs(sources: dict[str, Source], root: str | Path, profile: str, *, seed: int = 0,
                  device: str = "auto", data_root: str = "") -> claims.Inputs:
    """What the claims ledger reads: the results of 03-05, the measures of 01 and 02 under this profile's parameters
    (else the reason, in ``missing``), and the setting."""
    table_iv, layers, pruning_setting = _pruning_inputs(sources["05_pruning"])
    found, missing = {}, {}
    for nb in SECTION3:
        values, why = measures.read(root, nb, profiles.parameters(profile, nb, _common(seed, device, data_root)))
        found.update(values)
        if why:
            missing[nb] = why
    section3 = profiles.parameters(profile, "02_convolution_svd")
    return claims.Inputs(
        classification=sources["03_classification"].frame, retrieval=sources["04_retrieval"].frame,
        pruning=table_iv, pruning_layers=layers, measures=found, missing=missing,
        setting={"profile": profile, "section3": {"arch": section3["arch"], "fig1_dataset": smallcnn.DATASET},
                 "pruning": pruning_setting})


def verdict_counts(ledger: pd.DataFrame) -> dict[str, int]:
    """How many claims of the ledger got each verdict, in the order of :data:`cwl_lib.effects.VERDICTS`."""
    return {v: int((ledger["verdict"] == v).sum()) for v in E.VERDICTS}


def listed(parts: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def verdict_sentence(ledger: pd.DataFrame) -> str:
    """The identities that hold, then how many empirical claims got each verdict (an identity is no evidence)."""
    identities = ledger[ledger["type"] == claims.IDENTITY_TYPE]
    empirical = ledger[ledger["type"] != claims.IDENTITY_TYPE]
    out = []
    if len(identities):
        held = int((identities["verdict"] == E.SUPPORTED).sum())
        out.append(f"{held} of the {len(identities)} numerical identities hold.")
    if len(empirical):
        counts = {v: n for v, n in verdict_counts(empirical).items() if n}
        out.append(f"Of the {len(empirical)} empirical claims, {listed([f'{n} {v}' for v, n in counts.items()])}.")
    return " ".join(out)


#: Each claim in a few words, for the narrow ledger page 06 opens with (its whole text is in the details).
SHORT_CLAIMS = {
    "C1": "Theorem 1: the nearest Kronecker product is a rank-1 SVD of R(A)",
    "C2": "The best sum of k Kronecker products errs by the singular-value tail (Eq. 2)",
    "C3": "A convolution is im2col times the filters, U = R(A) V^T (Eq. 3)",
    "C4": "SVD filters rebuild the input up to the singular-value tail (Eq. 4)",
    "C5": "With orthonormal filters, Eq. 5 is the plain convolution",
    "C6": "Beyond the first layer, filters are nearly orthogonal",
    "C7": "The first layer is the farthest from orthogonal (Fig. 1)",
    "C8": "A CWL with every sigma at 1 is the plain convolution (Eq. 6)",
    "C9": "CWL's gain shrinks as the images per class grow",
    "C10": "freeze+CWL beats freeze (Table I)",
    "C11": "CWL helps VGG-16 more than ResNet-50",
    "C12": "finetune+CWL beats finetune (Table II)",
    "C13": "Finetuning beats freezing on Kvasir and Chest X-ray",
    "C14": "Finetuning does not beat freezing on MIT-67",
    "C15": "CWL improves retrieval over freezing and finetuning (Table III)",
    "C16": "In retrieval, finetuning beats freezing",
    "C17": "Pruning half the parameters costs about 1.5 points (Table IV)",
    "C18": "One epoch of finetuning recovers most of a high compression's loss",
    "C19": "Lower VGG-16 layers lose more filters (Fig. 3)",
}
#: The id of a claim's row in page 06's narrow ledger: what the intro's verdict box links to.
ROW_ANCHOR = "claim-{id}"
#: The fields of a claim the details table gives, in order (columns of :func:`cwl_lib.claims.row`).
LEDGER_DETAILS = ["claim", "paper evidence", "test", "effect", "paper effect", "our effect", "p-value",
                  "detectable effect", "reason", "gates", "match", "our setting", "paper setting",
                  "paper effect in our CI", "note"]


def _gate_line(g) -> str:
    if g.measured is None:
        return f"{g.name} not measured ({g.missing})"
    return f"{g.name} {display.fmt(g.measured, decimals=g.decimals)} (needs {g.limits()})"


def short_reason(ev: claims.Evaluation) -> str:
    """Why a claim got its verdict, in a line: the failed gates and their values, what is missing, or our effect."""
    if ev.verdict == E.NOT_TESTABLE:
        return "failed gate: " + "; ".join(_gate_line(g) for g in ev.gates if not g.passed)
    if ev.verdict == E.NOT_TESTED:
        return ev.reason
    return f"{claims.row(ev)['our effect']}: {ev.reason}"


def verdicts_in_words(evaluations) -> str:
    """The verdicts of some claims, claims with the same verdict and reason together ("C9 and C10 are ...")."""
    groups: dict[tuple[str, str], list[str]] = {}
    for ev in evaluations:
        groups.setdefault((ev.verdict, short_reason(ev)), []).append(ev.claim.id)
    return " ".join(f"{listed(ids)} {'is' if len(ids) == 1 else 'are'} {verdict}: {why}."
                    for (verdict, why), ids in groups.items())


def ledger_summary(evaluations) -> pd.DataFrame:
    """The narrow ledger page 06 opens with: claim id, its few words, verdict, and why."""
    return pd.DataFrame([{"claim": ev.claim.id, "what the paper claims": SHORT_CLAIMS[ev.claim.id],
                          "verdict": ev.verdict, "why": short_reason(ev)} for ev in evaluations])


def ledger_details(ledger: pd.DataFrame) -> pd.DataFrame:
    """Every filled field of every claim, one row per (claim, field): long, and as narrow as its longest word."""
    rows = [{"id": r["id"], "field": f, "value": r[f]} for r in ledger.to_dict("records") for f in LEDGER_DETAILS
            if r[f] not in ("", "-")]
    return pd.DataFrame(rows).set_index(["id", "field"])


def tested(evaluations) -> dict[str, list[str]]:
    """The empirical claims by what this run could do with them: judged, untestable (a gate failed), not tested."""
    out = {"judged": [], "untestable": [], "not tested": []}
    kind = {E.NOT_TESTABLE: "untestable", E.NOT_TESTED: "not tested"}
    for ev in evaluations:
        if ev.claim.type != claims.IDENTITY_TYPE:
            out[kind.get(ev.verdict, "judged")].append(ev.claim.id)
    return out


def stand_ins(profile: str, *, seed: int = 0, device: str = "auto", data_root: str = "") -> pd.DataFrame:
    """Each notebook's setting under ``profile`` beside the paper's, indexed by (notebook, quantity)."""
    common = _common(seed, device, data_root)
    frames = {nb: run_setting.table(parameters.model(nb), profiles.parameters(profile, nb, common))
              for nb in (*SECTION3, *dict.fromkeys(SOURCES.values()))}
    return pd.concat(frames, names=["notebook", "quantity"])


def stand_in_sentences(frame: pd.DataFrame) -> list[str]:
    """One sentence per notebook of :func:`stand_ins`: its setting is the paper's, or what stands in."""
    def sentence(nb, part):
        if nb not in SECTION3:
            return f"{nb}: {run_setting.sentence(part)}"
        chosen = profiles.parameters("paper", nb)["arch"]  # the paper names no setting for Section III
        return (f"{nb}: the paper runs no experiment for Section III's identities, which any input tests; "
                f"this run uses {part.loc['backbone', 'this run']} (the paper profile: {chosen}).")

    return [sentence(nb, frame.loc[nb]) for nb in dict.fromkeys(frame.index.get_level_values(0))]


# --------------------------------------------------------------------------- what the page shows
def view(frame: pd.DataFrame, table: str) -> pd.DataFrame:
    """One paper table as the page shows it, indexed by the paper's row and column."""
    t = frame[frame["table"] == table]
    digits = 1 if table == "III" else 3
    shown = pd.DataFrame({
        "paper row": t["row"], "column": t["column"], "our setting": t["our_setting"],
        "paper": [display.fmt(m, decimals=digits, std=s, na="-") for m, s in zip(t["paper"], t["paper_std"])],
        "ours": [display.fmt(m, decimals=digits, std=s, na="-") if st != NOT_RUN else NOT_RUN
                 for m, s, st in zip(t["ours"], t["ours_std"], t["status"])],
        "ours - paper": [display.fmt(d, decimals=digits, sign=True, na="") if st == SAME else ""
                         for d, st in zip(t["difference"], t["status"])],
        "repeats": [str(n) if n else "" for n in t["repeats"]], "match": t["status"],
    })
    return shown.set_index(["paper row", "column"])


def settings(frame: pd.DataFrame) -> pd.DataFrame:
    """Which of our settings stands beside which paper setting, and whether they are the same experiment."""
    rows = []
    for (table, ps_, os_), g in frame.groupby(["table", "paper_setting", "our_setting"], sort=False):
        verdict = ("no setting of ours" if os_ == "-" else SAME if g["same"].all()
                   else "not the same experiment: a stand-in")
        rows.append({"table": table, "paper setting": ps_, "our setting": os_, "match": verdict,
                     "cells with a number of ours": int((g["status"] != NOT_RUN).sum()), "paper cells": len(g)})
    return pd.DataFrame(rows)


def source_table(sources: dict[str, Source]) -> pd.DataFrame:
    """Each notebook read: its store, how many of its grid's runs are there, what was left out."""
    return pd.DataFrame([{"notebook": s.notebook, "tables": s.tables, "store": str(s.folder),
                          "records of its grid": s.found, "runs in its grid": len(s.expected),
                          "other settings left out": s.other, "status": s.status, "failed twice": s.failed}
                         for s in sources.values()])


def fill_command(notebook: str, folder: str | Path, profile: str) -> str:
    """The command that runs ``notebook``'s grid under ``profile`` into ``folder``."""
    command = f"cwl reproduce --profile {profile} --only {notebook}"
    default = sources_root("", "", profile) / notebook  # where `cwl reproduce` writes unless told otherwise
    # `cwl reproduce -p results_dir DIR` writes each notebook into DIR/<notebook>
    return command if Path(folder).resolve() == default.resolve() else f"{command} -p results_dir {Path(folder).parent}"


def instructions(sources: dict[str, Source], profile: str) -> list[str]:
    """For each incomplete source, what is missing and the command that fills it."""
    return [
        f"Table{'s' if ',' in s.tables else ''} {s.tables}: {s.folder} holds {s.found} of the {len(s.expected)} "
        f"records of the {profile} grid of {s.notebook}; run `{fill_command(s.notebook, s.folder, profile)}` "
        "(it keeps the runs already recorded), then this page again. Until then those cells read 'not run'."
        + (f" {s.failed} of its runs failed twice: their errors are in {s.folder / 'runs' / 'failed'}, and the "
           "rerun tries them again." if s.failed else "")
        for s in sources.values() if s.status != "complete"
    ]


PROVENANCE_COLUMNS = ["tables", "our cell", "records used", "records of the cell", "keys used", "profile", "seed",
                      "run_seed", "code_version", "device", "torch", "store"]
# the fields of a number's records that provenance lists: what, where, when and with what they were made
_MADE = {"keys used": lambda r: r["key"], "seed": lambda r: r["config"].get("seed"),
         "run_seed": lambda r: r.get("run_seed", "-"), "device": lambda r: r.get("device", "-"),
         "torch": lambda r: r.get("torch", "-"),
         "code_version": lambda r: r.get("code_version") or r.get("code") or "-"}


def provenance(frame: pd.DataFrame, sources: dict[str, Source], profile: str) -> pd.DataFrame:
    """One row per number of ours (listed once, with every table it is in): the records behind it and where, when
    and with what they were made."""
    rows: dict[tuple, dict] = {}
    for c in frame[frame["status"] != NOT_RUN].to_dict("records"):
        ident = (c["source"], json.dumps(c["select"], sort_keys=True))
        if ident in rows:
            rows[ident]["tables"] = ", ".join(dict.fromkeys(rows[ident]["tables"].split(", ") + [c["table"]]))
            continue
        every = records_behind(c, sources)
        used = [r for r in every if r["key"] in c["keys"]]
        rows[ident] = {"tables": c["table"], "our cell": SEP.join(f"{k}={v}" for k, v in c["select"].items()),
                       "records used": len(used), "records of the cell": len(every), "profile": profile,
                       "store": str(sources[c["source"]].folder),
                       **{name: ", ".join(sorted({str(get(r)) for r in used})) for name, get in _MADE.items()}}
    return pd.DataFrame(list(rows.values()), columns=PROVENANCE_COLUMNS)


def records_table(cell, sources: dict[str, Source]) -> pd.DataFrame:
    """The records behind one cell: key, whether its value makes the number, and its provenance."""
    return pd.DataFrame([{"key": r["key"], "used": r["key"] in cell["keys"], "lr": r["config"].get("lr"),
                          "repeat": r["config"].get("repeat"), "run_seed": r.get("run_seed"),
                          "code_version": r.get("code_version") or r.get("code"), "device": r.get("device"),
                          "torch": r.get("torch"), "finished": r.get("finished")}
                         for r in records_behind(cell, sources)])


def check(frame: pd.DataFrame, sig: pd.DataFrame, checks) -> None:
    """The lines nbval compares: counts exactly, our numbers and mean differences within their tolerance."""
    counts = headline(frame, sig)
    for name in ("n_paper_cells", "n_ours", "n_same", "n_stand_in", "n_not_run", "n_compared"):
        checks.exact(name, counts[name])
    ours = frame[frame["status"] != NOT_RUN].drop_duplicates(["table", "our_setting", "column"])
    for c in ours.to_dict("records"):
        kind = "map" if c["table"] == "III" else "fraction" if c["column"] in ("#Param", "#Feat") else "trained"
        checks.near(f"{c['table']} | {c['our_setting']} | {c['column']}", c["ours"], kind)
    for s in sig.to_dict("records"):
        shots = "" if s["shots"] is None else f" {s['shots']} shot"
        name = f"{s['table']} | {s['comparison']} | {s['dataset']} {s['arch']}{shots}"
        checks.exact(f"{name}: pairs", s["pairs"])
        checks.near(f"{name}: mean difference", s["mean_diff"], "map" if s["table"] == "III" else "trained")


def headline(frame: pd.DataFrame, sig: pd.DataFrame) -> dict:
    """Rounded counts and figures for the prose."""
    tested = sig[sig["pairs"] >= 2]
    return {
        "n_paper_cells": len(frame), "n_ours": int((frame["status"] != NOT_RUN).sum()),
        "n_same": int((frame["status"] == SAME).sum()), "n_stand_in": int((frame["status"] == STAND_IN).sum()),
        "n_not_run": int((frame["status"] == NOT_RUN).sum()), "n_compared": len(sig), "n_tested": len(tested),
        "n_cwl_better": int((sig["mean_diff"] > 0).sum()),
        "n_sig_better": int(((tested["p_ttest"] < 0.05) & (tested["mean_diff"] > 0)).sum()),
        "n_sig_worse": int(((tested["p_ttest"] < 0.05) & (tested["mean_diff"] < 0)).sum()),
        "max_pairs": int(sig["pairs"].max()) if len(sig) else 0,
    }
