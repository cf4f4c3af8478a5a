"""Jupyter Book tags that keep a notebook's machinery out of the reader's way, never out of reach.

The parameters cell, papermill's injected cell and the set-up cell get ``hide-cell`` (a toggle); the nbval check
cells (first line ``# NBVAL_CHECK_OUTPUT``) get ``remove-cell``: nbval ignores the tags, and in the book their lines
would only say "ok" or "not checked". ``python -m cwl_lib.notebook_tags notebooks/*.ipynb`` tags files in place.
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
    source = "".join(cell.get("source", ""))  # a list of lines or one string
    if source.lstrip().startswith(CHECK_MARK):
        return REMOVE
    setup = {PARAMETERS, INJECTED} & set(_tags(cell)) or any(call in source for call in SETUP_CALLS)
    return HIDE if setup else None


def missing(nb) -> list[tuple[int, str]]:
    """``(cell index, tag)`` for every machinery cell of ``nb`` that lacks its tag."""
    return [(i, tag) for i, cell in enumerate(nb["cells"]) if (tag := wanted(cell)) and tag not in _tags(cell)]


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
