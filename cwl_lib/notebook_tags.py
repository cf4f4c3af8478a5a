"""Jupyter Book tags that keep a notebook's machinery out of the reader's way, never out of reach.

A page of the book is for the paper's reader; some cells of a notebook are there for whoever reruns or
tests it. Those cells stay in the notebook (a reader who opens the ``.ipynb`` or the page's source still
sees them); the book shows them behind a toggle or not at all:

* the ``parameters`` cell, the cell papermill injects after it (tag ``injected-parameters``), and the
  cell that resolves the parameters and checks the data (``parameters.resolve`` / ``require_notebook``):
  ``hide-cell``, a toggle that opens input and output;
* the nbval check cells (first line ``# NBVAL_CHECK_OUTPUT``): ``remove-cell``. nbval compares them
  (it ignores these tags); in the book their lines would only say "ok" under the references' own
  parameters, or "not checked: no reference" under any other profile.

:func:`apply` tags a notebook in memory, :func:`missing` says what a notebook lacks (the unit tests
assert nothing is missing from a committed notebook), :func:`tag_file` rewrites a file only when a tag
was added. ``cwl refresh`` and the book's staging (:func:`cwl_lib.reproduce.stage_book`, which also
reaches the injected cell of every executed copy) apply them; ``python -m cwl_lib.notebook_tags
notebooks/*.ipynb`` applies them without executing anything, e.g. after editing a notebook by hand.
"""
from __future__ import annotations

import sys
from pathlib import Path

import nbformat

HIDE, REMOVE = "hide-cell", "remove-cell"
CHECK_MARK = "# NBVAL_CHECK_OUTPUT"
PARAMETERS, INJECTED = "parameters", "injected-parameters"
# The calls that make a cell the notebook's set-up cell (resolve the parameters, stop on absent data).
SETUP_CALLS = ("parameters.resolve(", "require_notebook(")


def _tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def wanted(cell) -> str | None:
    """The tag this cell needs for the book, or None when it is part of what the reader reads."""
    if cell.get("cell_type") != "code":
        return None
    source = cell.get("source", "")
    source = "".join(source) if isinstance(source, list) else source
    if source.lstrip().startswith(CHECK_MARK):
        return REMOVE
    tags = _tags(cell)
    if PARAMETERS in tags or INJECTED in tags or any(call in source for call in SETUP_CALLS):
        return HIDE
    return None


def missing(nb) -> list[tuple[int, str]]:
    """``(cell index, tag)`` for every machinery cell of ``nb`` that lacks its tag."""
    out = []
    for i, cell in enumerate(nb["cells"]):
        tag = wanted(cell)
        if tag and tag not in _tags(cell):
            out.append((i, tag))
    return out


def apply(nb) -> int:
    """Add the missing tags to ``nb`` in place (other tags are kept); how many were added."""
    added = missing(nb)
    for i, tag in added:
        cell = nb["cells"][i]
        cell.setdefault("metadata", {})["tags"] = [*_tags(cell), tag]
    return len(added)


def tag_file(path: str | Path) -> int:
    """Tag the notebook at ``path``, writing it back only when a tag was added; how many were added."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    nb = nbformat.reads(text, as_version=4)
    added = apply(nb)
    if added:
        # papermill writes no final newline, nbformat.write one: keep the file's own, so the diff is the tags
        ending = "\n" if text.endswith("\n") else ""
        path.write_text(nbformat.writes(nb).rstrip("\n") + ending, encoding="utf-8")
    return added


def main(argv: list[str] | None = None) -> int:
    paths = argv if argv is not None else sys.argv[1:]
    if not paths:
        print("usage: python -m cwl_lib.notebook_tags NOTEBOOK.ipynb ...", file=sys.stderr)
        return 2
    for p in paths:
        print(f"{p}: {tag_file(p)} tags added")
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["HIDE", "REMOVE", "CHECK_MARK", "wanted", "missing", "apply", "tag_file"]
