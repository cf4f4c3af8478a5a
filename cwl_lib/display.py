"""Numbers as the book prints them: one formatter, and a ``glue`` that uses it.

A value glued raw reaches the page as its repr (``np.float64(1.1)``, ``tensor(0.5)``) with all its
digits; every number a page shows goes through :func:`fmt` instead, with its precision stated.
"""
from __future__ import annotations

import math
import numbers
import re

from myst_nb import glue as myst_glue

NA = "n/a"
_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")
# Plain positional notation between 1e-4 and 1e6; outside it a page would show runs of zeros.
_SCIENTIFIC_BELOW, _SCIENTIFIC_FROM = -4, 6


def fmt(value, *, decimals: int | None = None, sig: int | None = None, sign: bool = False, std=None,
        below: float | None = None, trim: bool = False, plain: bool = False, na: str = NA) -> str:
    """``value`` as page text: ``decimals`` places, or ``sig`` significant digits.

    Accepts Python and numpy numbers, 0-d (or one-element) arrays and tensors, ``None`` and NaN
    (both print ``na``). An integer needs no precision; any other number must state one, so a page
    never shows digits nobody chose. The options, each for one kind of number a page shows:

    * ``sign``: a difference or an effect, ``+`` before a positive value (not before one that rounds to zero);
    * ``std``: a cell of Tables I-II, ``mean (std)`` at one precision; a missing std (None, NaN) is left out;
    * ``below``: a p-value, ``< 0.001`` for one under ``below=0.001``;
    * ``trim``: a checked value, trailing zeros of the rounded text dropped (``0.48``, ``3``);
    * ``plain``: a checked value too, a power of ten as Python writes it (``4.71e-16``), as the tolerances and
      bounds beside it on its line are.
    """
    if decimals is not None and sig is not None:
        raise ValueError("give decimals= or sig=, not both")
    if decimals is not None and decimals < 0:
        raise ValueError(f"decimals must be >= 0, got {decimals}")
    if sig is not None and sig < 1:
        raise ValueError(f"sig must be >= 1, got {sig}")
    x = _scalar(value)
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return na
    if below is not None and x < below:
        return "< " + fmt(below, decimals=decimals, sig=sig, trim=trim, plain=plain)
    if isinstance(x, float) and math.isinf(x):
        text = "∞" if x > 0 else "-∞"
    elif isinstance(x, int) and decimals is None and sig is None:
        text = str(x)
    elif decimals is None and sig is None:
        raise ValueError(f"state decimals= or sig= to print the non-integer {x!r}")
    elif decimals is not None:
        text = _unsigned_zero(f"{x:.{decimals}f}")
    else:
        text = _significant(float(x), sig, plain)
    if trim:
        text = _trimmed(text)
    if sign and x > 0 and text.strip("0."):
        text = "+" + text
    spread = _scalar(std)
    if spread is not None and not (isinstance(spread, float) and math.isnan(spread)):
        text += f" ({fmt(spread, decimals=decimals, sig=sig, trim=trim, plain=plain)})"
    return text


def glue(name: str, value, *, decimals: int | None = None, sig: int | None = None, na: str = NA) -> str:
    """Glue ``value`` for ``{glue:text}`name``` as :func:`fmt` prints it, and return that text.

    Words (a verdict, a layer name) are glued as they are; anything else must be a number.
    """
    if isinstance(value, str):
        if decimals is not None or sig is not None:
            raise TypeError(f"{name!r} is text ({value!r}); decimals= and sig= apply to numbers")
        text = value
    else:
        text = fmt(value, decimals=decimals, sig=sig, na=na)
    myst_glue(name, text, display=False)
    return text


def table(frame, caption: str, formats: dict | None = None, *, index: bool = False, row_ids=None):
    """``frame`` as a page shows a table: HTML with a one-line caption, each number printed by :func:`fmt`.

    ``formats`` maps a column to the precision its numbers are printed with (``{"gap": {"sig": 1}}``, ``{"acc":
    {"decimals": 3}}``), which is what the data supports; a column of non-integer numbers without one is refused,
    as :func:`fmt` refuses a number without a stated precision. Text, integers and missing values (``n/a``) need
    none. The index is left out unless ``index`` (a frame whose index is its first columns; their names are not
    shown). ``row_ids``, one per row in order, become the ``id`` of each body row, so a link elsewhere
    (``page.html#claim-C9``) lands on it.
    """
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
    # an index shown keeps its labels, not its names: they would take a header row of their own, empty but for them
    styler = styler.hide(axis="index", names=True) if index else styler.hide(axis="index")
    if row_ids is None:
        return styler
    row_ids = [str(i) for i in row_ids]
    if len(row_ids) != len(frame) or len(set(row_ids)) != len(row_ids):
        raise ValueError(f"row_ids needs one distinct id per row ({len(frame)}), got {len(row_ids)}")
    bad = [i for i in row_ids if not _ROW_ID.fullmatch(i)]
    if bad:
        raise ValueError(f"row ids must be letters, digits, '-' or '_' (an HTML id a URL fragment can name): {bad[:3]}")
    return AnchoredTable(styler, row_ids)


_ROW_ID = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")


class AnchoredTable:
    """A table whose body rows carry ids: pandas' Styler gives ids to cells only, so the rendered HTML gets
    them row by row, in order."""

    def __init__(self, styler, row_ids: list[str]):
        self.styler, self.row_ids = styler, row_ids

    def to_html(self) -> str:
        head, sep, body = self.styler.to_html().partition("<tbody>")
        ids = iter(self.row_ids)
        body = re.sub(r"<tr>", lambda _: f'<tr id="{next(ids)}">', body, count=len(self.row_ids))
        return head + sep + body

    def _repr_html_(self) -> str:
        return self.to_html()

    def __repr__(self) -> str:
        return f"<table {self.styler.caption!r}: {len(self.row_ids)} rows>"


def _scalar(value):
    """``value`` as ``None``, an ``int`` or a ``float``; anything else is refused."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise TypeError(f"not a number: {value!r}; glue a word for a truth value")
    if isinstance(value, (str, bytes)):
        raise TypeError(f"not a number: {value!r}; glue() takes text as it is")
    if isinstance(value, numbers.Integral):  # numpy integers too
        return int(value)
    if isinstance(value, numbers.Real):  # numpy floats too
        return float(value)
    if isinstance(value, numbers.Complex):
        raise TypeError(f"not a real number: {value!r}")
    if hasattr(value, "item") and hasattr(value, "shape"):  # arrays, tensors (any device), numpy bools
        if math.prod(value.shape) != 1:
            raise TypeError(f"one number expected, got an array of shape {tuple(value.shape)}")
        return _scalar(value.item())
    try:
        return float(value)  # Decimal
    except (TypeError, ValueError):
        raise TypeError(f"not a number: {value!r}") from None


def _significant(x: float, sig: int, plain: bool = False) -> str:
    mantissa, power = f"{x:.{sig - 1}e}".split("e")
    exponent = int(power)
    if x != 0 and not _SCIENTIFIC_BELOW <= exponent < _SCIENTIFIC_FROM:
        return f"{mantissa}e{power}" if plain else f"{mantissa} × 10{str(exponent).translate(_SUPERSCRIPT)}"
    rounded = float(f"{mantissa}e{exponent}")
    return _unsigned_zero(f"{rounded:.{max(0, sig - 1 - exponent)}f}")


def _trimmed(text: str) -> str:
    """``0.4800`` as ``0.48``, ``3.0000`` as ``3``, ``4.710 × 10⁻¹⁶`` as ``4.71 × 10⁻¹⁶``."""
    number = re.match(r"-?\d+\.\d*", text)
    if number is None:
        return text
    return number.group().rstrip("0").rstrip(".") + text[number.end():]


def _unsigned_zero(text: str) -> str:
    """``-0.00`` (a tiny negative number, rounded) prints as ``0.00``."""
    return text[1:] if text.startswith("-") and not text.strip("-0.") else text
