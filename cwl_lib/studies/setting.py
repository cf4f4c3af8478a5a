"""The table near the top of each study page: per labelled parameter, the paper's value, this run's, and whether
ours is the same or a *stand-in*; where the paper states no value (``stated=False``) the cell says so."""
from __future__ import annotations

import pandas as pd

# one spelling for a study page's setting table and for page 06 (comparison and claims import these)
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


#: How a field's ``show`` (:func:`cwl_lib.config.param`) prints its value.
SHOW = {"square": lambda v: f"{v} x {v}", "size": lambda v: f"{v[0]} x {v[1]}"}


def table(model, ours: dict) -> pd.DataFrame:
    """One row per labelled field of ``model`` (``SETTING`` order first): paper's value, this run's, same or not."""
    paper = model.values("paper")
    order = getattr(model, "SETTING", ())
    named = sorted((n for n, f in model.model_fields.items() if (f.json_schema_extra or {}).get("label")),
                   key=lambda n: order.index(n) if n in order else len(order))
    out = []
    for name in named:
        meta = model.model_fields[name].json_schema_extra
        show = SHOW.get(meta["show"], text)
        p, o = (tuple(v) if isinstance(v, list) else v for v in (paper[name], ours[name]))
        paper_text = show(p) if meta["stated"] else f"{NOT_STATED} (paper profile: {show(p)})"
        out.append({"": meta["label"], "paper": paper_text, "this run": show(o), "here": SAME if p == o else STAND_IN})
    return pd.DataFrame(out).set_index("")


def sentence(frame: pd.DataFrame, named: int = 2) -> str:
    """:func:`table`'s frame in one sentence: the dataset and backbone rows spelled out, the others counted."""
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


__all__ = ["SHOW", "SAME", "STAND_IN", "NOT_STATED", "text", "table", "sentence"]
