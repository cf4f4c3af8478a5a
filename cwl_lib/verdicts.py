"""The verdict box that opens the book: the claims ledger of the run the book was built from, in a screen.

Page 06 writes its ledger (:func:`cwl_lib.claims.ledger`) to ``ledger.csv``; :func:`stage` finds it through the
parameters papermill recorded in the staged page 06, so the box shows exactly that run's ledger (else it says
why there is none), and writes it to ``book/verdicts.html``, which ``book/intro.md`` includes. The box: how many
identities hold, the empirical claims counted by verdict, one line per claim and what stands in for the paper.
"""
from __future__ import annotations

import html
import re
from datetime import datetime
from pathlib import Path

import nbformat
import pandas as pd

from . import claims, comparison, effects
from .comparison import listed
from .studies.setting import SAME

LEDGER_FILE = "ledger.csv"
PAGE = "06_comparison"  # the notebook that writes the ledger
BOX_FILE = "verdicts.html"  # in book/ of the staged sources, next to intro.md
ROW_ANCHOR = comparison.ROW_ANCHOR  # the id of a claim's row in page 06's narrow ledger
# What the stand-in sentence names: the quantities of a study's setting that make it another experiment.
DATASET_ROWS, BACKBONE_ROWS = ("datasets", "dataset"), ("backbones", "backbone")
# A ledger file written up to this long after its page finished is still that run's (file system clocks).
_SLACK_S = 5.0


def _when(text) -> float | None:
    try:
        return datetime.fromisoformat(str(text)).timestamp()
    except (TypeError, ValueError):
        return None


def find_ledger(page: str | Path, notebooks_dir: str | Path) -> tuple[Path | None, str]:
    """The ledger the executed page 06 at ``page`` wrote in its ``results_dir`` (relative to ``notebooks_dir``),
    or None and why; a ledger written outside that run's start and end (a later run's) is not it."""
    nb = nbformat.read(page, as_version=4)
    run = nb.metadata.get("papermill", {})
    folder = (run.get("parameters") or {}).get("results_dir")
    if not folder:
        return None, "page 06 of this book was not run by `cwl reproduce`, so it left no ledger file"
    path = Path(notebooks_dir) / Path(folder).expanduser() / LEDGER_FILE
    if not path.is_file():
        return None, f"page 06 of this book wrote no {LEDGER_FILE} in {path.parent}"
    start, end = _when(run.get("start_time")), _when(run.get("end_time"))
    written = path.stat().st_mtime
    if start is None or end is None or not start - _SLACK_S <= written <= end + _SLACK_S:
        return None, f"{path} was written by another run than the page 06 of this book"
    return path, ""


def read_ledger(path: str | Path) -> pd.DataFrame:
    """A ledger as :func:`cwl_lib.claims.ledger` returned it: every value text, empty cells empty."""
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def identities_label(ledger: pd.DataFrame) -> str:
    """"Identities of Section III", or of every section the ledger's identities come from (C8 is in IV)."""
    ident = ledger[ledger["type"] == claims.IDENTITY_TYPE]
    sections = list(dict.fromkeys(s.split("-")[0] for s in ident["section"])) if len(ident) else ["III"]
    return f"Identities of Section{'s' if len(sections) > 1 else ''} {listed(sections)}"


def counts(ledger: pd.DataFrame) -> dict:
    """``identities``: (held, total, {other verdict: n}); ``empirical``: {verdict: n}, every verdict listed."""
    unknown = sorted(set(ledger["verdict"]) - set(effects.VERDICTS))
    if unknown:
        raise ValueError(f"the ledger has verdicts that cwl_lib.effects.VERDICTS does not list: {unknown}")
    ident = ledger["type"] == claims.IDENTITY_TYPE
    ids = comparison.verdict_counts(ledger[ident])
    held = ids.pop(effects.SUPPORTED)
    return {"identities": (held, int(ident.sum()), {v: n for v, n in ids.items() if n}),
            "empirical": comparison.verdict_counts(ledger[~ident])}


def _values(frame: pd.DataFrame, rows: tuple[str, ...], column: str) -> list[str]:
    picked = frame[frame.index.get_level_values("quantity").isin(rows)]
    found = [v.strip() for cell in picked[column] for v in str(cell).split(",")]
    return list(dict.fromkeys(v for v in found if v))


def stand_in_sentence(profile: str, frame: pd.DataFrame | None = None) -> str:
    """What this profile runs in place of the paper's experiments, in one sentence (from its parameters)."""
    frame = comparison.stand_ins(profile) if frame is None else frame
    studies = frame[~frame.index.get_level_values("notebook").isin(comparison.SECTION3)]
    if (studies["here"] == SAME).all():
        return (f"The {profile} profile runs the paper's own experiments (its datasets, backbones and grid): its "
                "numbers stand beside the paper's as the same experiments.")
    ours, paper = ([_values(studies, rows, column) for rows in (BACKBONE_ROWS, DATASET_ROWS)]
                   for column in ("this run", "paper"))
    differ = int((studies["here"] != SAME).sum())
    if not all(ours + paper):  # a study without these rows: say how much differs instead
        what = f"{differ} of the {len(studies)} settings of the paper's experiments differ"
    else:
        what = (f"it trains {listed(ours[0])} on {listed(ours[1])}, not the paper's {listed(paper[0])} on "
                f"{listed(paper[1])} ({differ} of {len(studies)} settings differ)")
    return f"Stand-in: {what}; its effects are compared with the paper's in direction only."


def _slug(verdict: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", verdict.lower()).strip("-")


def box(ledger: pd.DataFrame, profile: str, stand_in: str, page: str = "../notebooks") -> str:
    """The verdict box as HTML; ``page``: the folder of the notebooks' pages, relative to the page showing it."""
    c = counts(ledger)
    held, total, others = c["identities"]
    rest = "".join(f"; {n} {html.escape(v)}" for v, n in others.items())
    n_emp = sum(c["empirical"].values())
    found = " · ".join(f'<span class="verdict verdict-{_slug(v)}">{n} {html.escape(v)}</span>'
                       for v, n in c["empirical"].items())
    lines = []
    for _, r in ledger.iterrows():
        row_link = f"{page}/{PAGE}.html#{ROW_ANCHOR.format(id=r['id'])}"
        source = f"{page}/{r['source']}.html" if r["source"] else ""
        tested = (f'<a class="verdict-source" href="{html.escape(source)}" title="{html.escape(r["source"])}">'
                  f'page {html.escape(r["source"].split("_", 1)[0])}</a>') if source else ""
        lines.append(
            f'<li class="verdict-line verdict-{r["type"]}" title="{html.escape(r["claim"])} ({html.escape(r["reason"])})">'
            f'<a class="verdict-row" href="{html.escape(row_link)}">{html.escape(r["id"])}</a> '
            f'<span class="verdict verdict-{_slug(r["verdict"])}">{html.escape(r["verdict"])}</span> '
            f'<span class="verdict-claim">{html.escape(r["claim"])}</span> {tested}</li>')
    return "\n".join([
        f'<div class="verdict-box" id="verdict-box" data-profile="{html.escape(profile)}">',
        f'<p class="verdict-title">What this book\'s run finds (profile <code>{html.escape(profile)}</code>)</p>',
        '<ul class="verdict-counts">',
        f'<li><strong>{html.escape(identities_label(ledger))}</strong>: {held} of {total} hold{rest}.</li>',
        f'<li><strong>Empirical claims</strong> ({n_emp}): {found}.</li>',
        '</ul>',
        f'<p class="verdict-stand-in">{html.escape(stand_in)}</p>',
        '<ul class="verdict-lines">', *lines, '</ul>',
        '</div>',
    ])


def absent(profile: str, why: str) -> str:
    return "\n".join([
        f'<div class="verdict-box verdict-box-absent" id="verdict-box" data-profile="{html.escape(profile)}">',
        '<p class="verdict-title">No claims ledger in this build</p>',
        f'<p>{html.escape(why)}. <code>cwl reproduce --profile {html.escape(profile)}</code> runs the notebooks and '
        'builds the book with the verdicts of that run.</p>',
        '</div>',
    ])


def stage(stage_dir: str | Path, profile: str, notebooks_dir: str | Path) -> Path:
    stage_dir = Path(stage_dir)
    path, why = find_ledger(stage_dir / "notebooks" / f"{PAGE}.ipynb", notebooks_dir)
    text = box(read_ledger(path), profile, stand_in_sentence(profile)) if path else absent(profile, why)
    out = stage_dir / "book" / BOX_FILE
    out.write_text(text + "\n", encoding="utf-8")
    return out


__all__ = ["LEDGER_FILE", "BOX_FILE", "ROW_ANCHOR", "find_ledger", "read_ledger", "identities_label", "counts",
           "stand_in_sentence", "box", "absent", "stage"]
