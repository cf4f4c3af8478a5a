"""The scalars of Sections III-IV that notebooks 01 and 02 measure, kept for page 06's claims ledger.

Each writes ``<results_dir>/measures.json`` (:func:`write`): its parameters and named measures, the names
:class:`cwl_lib.claims.Inputs` reads. Page 06 reads ``<root>/<notebook>/measures.json`` back (:func:`read`) only
when it was recorded under the parameters the page expects, so no verdict mixes settings.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from .paths import atomic_write
from .profiles import determining

FILE = "measures.json"
VERSION = 1
NOTEBOOKS = ("01_kronecker", "02_convolution_svd")


def _plain(value):
    """JSON-safe copy: numpy and torch values as Python numbers and lists, NaN as None."""
    return json.loads(json.dumps(value, default=lambda v: v.tolist()),
                      parse_constant=lambda c: None if c == "NaN" else float(c))


def _compared(params: Mapping[str, Any]) -> dict:
    return determining(dict(params), ignore=("device",))  # measures of any device are the same setting


def write(out_dir: str | Path, notebook: str, params: Mapping[str, Any], measures: Mapping[str, Any]) -> Path:
    """Write ``measures`` of ``notebook`` run under ``params`` to ``out_dir/measures.json``; returns the path."""
    body = {"version": VERSION, "notebook": notebook, "parameters": _compared(params), "measures": _plain(measures)}
    text = json.dumps(body, indent=1, allow_nan=False)
    return atomic_write(Path(out_dir) / FILE, lambda tmp: tmp.write_text(text))


def read(root: str | Path, notebook: str, params: Mapping[str, Any]) -> tuple[dict, str]:
    """The measures ``notebook`` recorded in ``root/notebook/measures.json`` under ``params``, and ``""``;
    or ``{}`` and the reason they cannot be used (no file, unreadable, recorded under other parameters)."""
    path = Path(root) / notebook / FILE
    if not path.is_file():
        return {}, (f"{notebook}/{FILE} is not in the results folder this page reads (`cwl reproduce --profile "
                    f"{params.get('profile', 'smoke')} --only {notebook}` writes it)")
    try:
        body = json.loads(path.read_text())
        measures, recorded = dict(body["measures"]), dict(body["parameters"])
    except (ValueError, KeyError, TypeError) as err:
        return {}, f"{notebook}/{FILE} is unreadable ({type(err).__name__}: {err})"
    wanted = _compared(params)
    differ = sorted(k for k in set(wanted) | set(recorded) if wanted.get(k) != recorded.get(k))
    if differ:
        return {}, f"{notebook}/{FILE} was recorded under other parameters ({', '.join(differ)} differ)"
    return measures, ""
