"""What a notebook's run is, beside the paper's setting: the table each study page shows near its top.

Each row is one quantity (dataset, backbone, image size, epochs, ...): the paper's value, this run's,
and whether ours is the same or a *stand-in*. The paper's column is the ``paper`` profile (the study
module's ``PARAMETERS``, built from its ``Config`` defaults); where the paper itself does not state a
value, the cell says so and gives the value the ``paper`` profile chose, so a reader never takes our
choice for the paper's. Nothing here is typed twice: both columns come from parameters.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import pandas as pd

# One spelling for a quantity here and for a cell or a claim in comparison and claims, which import it, so a study
# page's setting table and page 06 say the same word.
SAME, STAND_IN = "same", "stand-in"
NOT_STATED = "not stated"


@dataclass(frozen=True)
class Row:
    """One quantity of a run: its label, the parameter(s) it reads, how it prints, whether the paper states it."""

    label: str
    read: Callable[[dict], Any]  # parameters -> the value compared and printed
    show: Callable[[Any], str] = None  # value -> text (default: :func:`text`)
    stated: bool = True  # False: the paper gives no value; the paper column names the paper profile's choice


def text(value) -> str:
    """A parameter value as table text: lists joined by commas, None as "all"."""
    if value is None:
        return "all"
    if isinstance(value, (list, tuple)):
        return ", ".join(text(v) for v in value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def square(size) -> str:
    return f"{size} x {size}"


def table(rows: list[Row], paper: dict, ours: dict) -> pd.DataFrame:
    """One line per row: ``paper``, ``this run``, and ``same`` or ``stand-in``."""
    out = []
    for r in rows:
        show = r.show or text
        p, o = r.read(paper), r.read(ours)
        paper_text = show(p) if r.stated else f"{NOT_STATED} (paper profile: {show(p)})"
        out.append({"": r.label, "paper": paper_text, "this run": show(o), "here": SAME if p == o else STAND_IN})
    return pd.DataFrame(out).set_index("")


def sentence(frame: pd.DataFrame, named: int = 2) -> str:
    """One sentence from :func:`table`'s frame: same or stand-in, with its first ``named`` rows spelled out
    (the dataset and the backbone, in every study's table) and a count of the others that differ."""
    changed = frame[frame["here"] == STAND_IN]
    if changed.empty:
        return "This run is the paper's setting."
    spelled = [f"{label}: {row['this run']} for the paper's {row['paper']}"
               for label, row in changed.iloc[:named].iterrows() if label in frame.index[:named]]
    others = len(changed) - len(spelled)
    verb = "differs" if others == 1 else "differ"
    if not spelled:
        return f"This run is a stand-in for the paper's experiment: {others} of the {len(frame)} settings below {verb}."
    tail = f"; {others} more of the {len(frame)} settings below {verb}" if others else ""
    return f"This run is a stand-in for the paper's experiment ({'; '.join(spelled)}{tail})."

__all__ = ["Row", "SAME", "STAND_IN", "NOT_STATED", "text", "square", "table", "sentence"]
