"""Notices a notebook's run owes the terminal of ``cwl reproduce``: records moved aside, runs that failed.

A notebook's stderr goes into the executed notebook, where a reader of the terminal never looks. So
``cwl reproduce`` names a file in ``$CWL_NOTICES`` for each notebook it runs, and :func:`notice` both
warns as usual (the notebook shows it) and appends the text as one line to that file (``O_APPEND``: the
notebook's kernel and the Ray workers of one machine may all write to it); ``cwl reproduce`` prints those
lines when the notebook ends, finished or failed (:func:`read`).
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

ENV = "CWL_NOTICES"


class CwlWarning(UserWarning):
    """A warning of this project about its records, data or weights."""


def notice(text: str, *, stacklevel: int = 2, warn: bool = True) -> None:
    """Warn ``text`` (unless ``warn`` is False: the caller printed it already) and append it, as one line, to
    the notices file of the run, if there is one."""
    if warn:
        warnings.warn(text, CwlWarning, stacklevel=stacklevel + 1)
    path = os.environ.get(ENV)
    if not path:
        return
    line = " ".join(text.split()) + "\n"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)
    except OSError:
        pass  # the notice is still in the notebook; a full or read-only disk is reported by what fails next


def read(path: str | os.PathLike) -> list[str]:
    """The notices written to ``path``, each once, in order."""
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return []
    return [line for line in dict.fromkeys(lines) if line.strip()]
