"""What a notebook's run is, beside the paper's setting: the table each study page shows near its top.

Each row is one labelled field of the notebook's parameter model (dataset, backbone, image size, epochs,
...): the paper's value (the field's default), this run's, and whether ours is the same or a *stand-in*.
Where the paper itself does not state a value (``stated=False``), the cell says so and gives the value the
``paper`` profile chose, so a reader never takes our choice for the paper's.
"""
from __future__ import annotations

import pandas as pd

# One spelling for a quantity here and for a cell or a claim in comparison and claims, which import it, so a study
# page's setting table and page 06 say the same word.
SAME, STAND_IN = "same", "stand-in"
NOT_STATED = "not stated"


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


#: How a field's ``show`` (:func:`cwl_lib.config.param`) prints its value.
SHOW = {"square": square, "size": lambda v: f"{v[0]} x {v[1]}"}


def table(model, ours: dict) -> pd.DataFrame:
    """One line per labelled field of ``model`` (in its ``SETTING`` order, then the rest): the paper's value (the
    field's default), this run's, and ``same`` or ``stand-in``."""
    paper = model.values("paper")
    order = getattr(model, "SETTING", ())
    named = sorted((n for n, f in model.model_fields.items() if (f.json_schema_extra or {}).get("label")),
                   key=lambda n: order.index(n) if n in order else len(order))
    out = []
    for name in named:
        meta = model.model_fields[name].json_schema_extra
        show = SHOW.get(meta["show"], text)
        p, o = paper[name], ours[name]
        p, o = (tuple(v) if isinstance(v, list) else v for v in (p, o))
        paper_text = show(p) if meta["stated"] else f"{NOT_STATED} (paper profile: {show(p)})"
        out.append({"": meta["label"], "paper": paper_text, "this run": show(o), "here": SAME if p == o else STAND_IN})
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

__all__ = ["SHOW", "SAME", "STAND_IN", "NOT_STATED", "text", "square", "table", "sentence"]
