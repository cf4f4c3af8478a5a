"""Numbers as the book prints them: one formatter, and a ``glue`` that uses it.

A value glued raw reaches the page as its repr (``np.float64(1.1)``, ``tensor(0.5)``) with all its digits: every
number a page shows goes through :func:`fmt` instead, with its precision stated.
"""
from __future__ import annotations

import math
import numbers
import re

from myst_nb import glue as myst_glue

NA = "n/a"
_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def fmt(value, *, decimals: int | None = None, sig: int | None = None, sign: bool = False, std=None,
        below: float | None = None, na: str = NA) -> str:
    """``value`` (a number, 0-d array or tensor; None and NaN print ``na``) with ``decimals`` places or ``sig``
    significant digits: only an integer needs neither, so a page never shows digits nobody chose. ``sign``: ``+``
    before a positive value not rounding to zero; ``std``: ``mean (std)``; ``below``: ``< 0.001`` for a p-value."""
    if decimals is not None and sig is not None:
        raise ValueError("give decimals= or sig=, not both")
    if (decimals is not None and decimals < 0) or (sig is not None and sig < 1):
        raise ValueError(f"decimals must be >= 0 and sig >= 1, got decimals={decimals}, sig={sig}")
    x = _scalar(value)
    if x is None or x != x:
        return na
    if below is not None and x < below:
        return "< " + fmt(below, decimals=decimals, sig=sig)
    if isinstance(x, float) and math.isinf(x):
        text = "∞" if x > 0 else "-∞"
    elif decimals is not None:
        text = _unsigned_zero(f"{x:.{decimals}f}")
    elif sig is not None:
        text = _significant(float(x), sig)
    elif isinstance(x, int):
        text = str(x)
    else:
        raise ValueError(f"state decimals= or sig= to print the non-integer {x!r}")
    if sign and x > 0 and text.strip("0."):
        text = "+" + text
    spread = _scalar(std)
    if spread is not None and spread == spread:
        text += f" ({fmt(spread, decimals=decimals, sig=sig)})"
    return text


def glue(name: str, value, *, decimals: int | None = None, sig: int | None = None, na: str = NA) -> str:
    """Glue ``value`` for ``{glue:text}`name``` as :func:`fmt` prints it (words as they are); return that text."""
    if isinstance(value, str) and (decimals is not None or sig is not None):
        raise TypeError(f"{name!r} is text ({value!r}); decimals= and sig= apply to numbers")
    text = value if isinstance(value, str) else fmt(value, decimals=decimals, sig=sig, na=na)
    myst_glue(name, text, display=False)
    return text


def table(frame, caption: str, formats: dict | None = None, *, index: bool = False, row_ids=None):
    """``frame`` as HTML with a caption, numbers by :func:`fmt` at the precision ``formats`` gives per column
    (``{"gap": {"sig": 1}}``, required for non-integers); ``index`` shows the index (not its names); ``row_ids``
    become the body rows' ids, so a link (``page.html#claim-C9``) lands on a row."""
    import pandas as pd  # only the pages that show tables need pandas

    formats = dict(formats or {})
    unknown = sorted(set(formats) - set(frame.columns))
    if unknown:
        raise KeyError(f"formats for columns the table does not have: {unknown}")
    shown = {}
    for col in frame.columns:
        spec = formats.get(col, {})
        values = frame[col]
        if not spec and pd.api.types.is_float_dtype(values) and not values.dropna().apply(float.is_integer).all():
            raise ValueError(f"column {col!r} holds non-integer numbers: state its precision in formats")
        if spec or pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            shown[col] = lambda v, spec=spec: fmt(v, **spec) if isinstance(v, numbers.Number) or v is None else v
    styler = frame.style.format(shown).set_caption(caption).set_table_attributes('class="cwl-table"')
    styler = styler.hide(axis="index", names=True) if index else styler.hide(axis="index")
    if row_ids is None:
        return styler
    row_ids = [str(i) for i in row_ids]
    if len(row_ids) != len(frame) or len(set(row_ids)) != len(row_ids):
        raise ValueError(f"row_ids needs one distinct id per row ({len(frame)}), got {len(row_ids)}")
    bad = [i for i in row_ids if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", i)]
    if bad:
        raise ValueError(f"row ids must be letters, digits, '-' or '_' (an HTML id a URL fragment can name): {bad[:3]}")
    return AnchoredTable(styler, row_ids)


class AnchoredTable:
    """A table whose body rows carry ids (pandas' Styler gives ids to cells only)."""

    def __init__(self, styler, row_ids: list[str]):
        self.styler, self.row_ids = styler, row_ids

    def _repr_html_(self) -> str:
        head, sep, body = self.styler.to_html().partition("<tbody>")
        ids = iter(self.row_ids)
        return head + sep + re.sub(r"<tr>", lambda _: f'<tr id="{next(ids)}">', body, count=len(self.row_ids))

    to_html = _repr_html_

    def __repr__(self) -> str:
        return f"<table {self.styler.caption!r}: {len(self.row_ids)} rows>"


def _scalar(value):
    """``value`` as ``None``, an ``int`` or a ``float``; anything else is refused."""
    if value is None:
        return None
    if isinstance(value, (bool, str, bytes)):
        raise TypeError(f"not a number: {value!r}; glue words (a truth value too) as text")
    if isinstance(value, numbers.Real):  # numpy numbers too
        return int(value) if isinstance(value, numbers.Integral) else float(value)
    if hasattr(value, "item") and hasattr(value, "shape"):  # arrays, tensors (any device), numpy bools
        if math.prod(value.shape) != 1:
            raise TypeError(f"one number expected, got an array of shape {tuple(value.shape)}")
        return _scalar(value.item())
    try:
        return float(value)  # Decimal
    except (TypeError, ValueError):
        raise TypeError(f"not a number: {value!r}") from None


def _significant(x: float, sig: int) -> str:
    mantissa, power = f"{x:.{sig - 1}e}".split("e")
    exponent = int(power)
    if x != 0 and not -4 <= exponent < 6:  # plain positional notation between 1e-4 and 1e6, not runs of zeros
        return f"{mantissa} × 10{str(exponent).translate(_SUPERSCRIPT)}"
    rounded = float(f"{mantissa}e{exponent}")
    return _unsigned_zero(f"{rounded:.{max(0, sig - 1 - exponent)}f}")


def _unsigned_zero(text: str) -> str:
    """``-0.00`` (a tiny negative number, rounded) prints as ``0.00``."""
    return text[1:] if text.startswith("-") and not text.strip("-0.") else text
