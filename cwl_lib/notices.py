"""Notices a notebook's run owes the terminal of ``cwl reproduce`` (records moved aside, runs that failed): its
stderr goes into the executed notebook, so :func:`notice` also appends a line to the file ``$CWL_NOTICES`` names
(``O_APPEND``: kernel and Ray workers write to it), which ``cwl reproduce`` prints when the notebook ends.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

ENV = "CWL_NOTICES"


class CwlWarning(UserWarning):
    """A warning of this project about its records, data or weights."""


def notice(text: str, *, stacklevel: int = 2, warn: bool = True) -> None:
    """Warn ``text`` (unless ``warn`` is False) and append it, as one line, to the run's notices file, if any."""
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
