"""``cwl data check``: each dataset and weight file, present / missing / wrong, and what fixes it.

"wrong" means the bytes or the layout are not what a run expects: a dataset folder missing part of
its layout, built from other files than the lock file records, or holding other image counts than
the paper states (:mod:`cwl_lib.data.contents`); a kept download whose digest differs; Fashion-MNIST
files that are not the IDX arrays they should be; a weight file that fails its known digest. A
damaged file is reported on its row, never by a traceback. ``cwl reproduce`` runs the same checks
on what its notebooks need before any work (:func:`problems`), and so does each notebook's first
cell (:func:`require`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .. import models
from ..paths import data_root
from . import checksums
from .contents import dataset_problem
from .fetch import DOWNLOADS, layout_problem
from .registry import RESOURCES, SOURCES, MissingDataError, Resource, resource


@dataclass(frozen=True)
class Row:
    name: str
    status: str  # "present", "missing" or "wrong"
    detail: str  # where it is, or what is wrong
    fix: str  # empty when present


def _kept_downloads_problem(root: Path, name: str) -> str | None:
    for remote in SOURCES[name].files:
        path = root / DOWNLOADS / name / remote.filename
        want, why = checksums.expected(root, name, remote.filename, remote.sha256)
        if want and path.is_file() and checksums.sha256_file(path) != want:
            return f"the kept download {path} fails {why}"
    return None


def _check(res: Resource, root: Path) -> Row:
    if res.name in SOURCES:
        folder = root / res.name
        problem = layout_problem(root, SOURCES[res.name]) if folder.exists() else None
        problem = problem or _kept_downloads_problem(root, res.name)
        if problem:
            return Row(res.name, "wrong", f"{folder}: {problem}", f"cwl fetch {res.name} --force --data-root {root}")
    where = res.locate(root)
    if where is None:
        return Row(res.name, "missing", res.description, res.fix(root))
    problem = models.weights_problem(where) if res.kind == "weights" else dataset_problem(res.name, where, root)
    if problem:
        again = f"cwl fetch {res.name} --force --data-root {root}" if res.name in SOURCES else \
            f"delete the file, then: {res.fix(root)}"
        return Row(res.name, "wrong", problem if res.kind == "weights" else f"{where}: {problem}", again)
    return Row(res.name, "present", str(where), "")


def check_resource(res: Resource, root: Path) -> Row:
    """One row; a failure of the check itself (an unreadable file, a permission) is reported as ``wrong``."""
    try:
        return _check(res, root)
    except Exception as err:  # a report must reach the user whatever the files hold
        return Row(res.name, "wrong", f"checking it failed: {type(err).__name__}: {err}",
                   f"inspect or delete the files of {res.name} under {root}, then: {res.fix(root)}")


def check_all(root: Path) -> list[Row]:
    return [check_resource(res, root) for res in RESOURCES.values()]


def check_names(names, root: Path) -> list[Row]:
    return [check_resource(resource(name), root) for name in dict.fromkeys(names)]


def problems(names, root: str | Path | None = None) -> list[Row]:
    """The rows of ``names`` that are not present (missing or wrong)."""
    return [row for row in check_names(names, data_root(root)) if row.status != "present"]


def require(*names: str, root: str | Path | None = None) -> None:
    """Stop before any work when a needed dataset or weight file is absent or fails its checks."""
    bad = problems(names, root)
    if bad:
        lines = [f"  - {row.name} is {row.status} ({row.detail}): {row.fix}" for row in bad]
        raise MissingDataError(
            "this run needs data that is not on this machine, or not as it should be:\n" + "\n".join(lines)
            + f"\n(data root: {data_root(root)}; set it with --data-root or $CWL_DATA_ROOT)")


def unmet(rows: list[Row], needed) -> list[Row]:
    """The rows among ``needed`` that are not present."""
    by_name = {row.name: row for row in rows}
    return [by_name[name] for name in dict.fromkeys(needed) if by_name[name].status != "present"]


def report(rows: list[Row], root: Path, profiles: dict[str, list[str]] | None = None) -> str:
    """The table of rows, then, for each profile given with the names it needs, whether its needs are met."""
    lines = [f"data root: {root}"]
    for row in rows:
        lines.append(f"  {row.status:<8} {row.name:<22} {row.detail}")
        if row.fix:
            lines.append(f"  {'':<8} {'':<22} fix: {row.fix}")
    bad = [r for r in rows if r.status != "present"]
    lines.append(f"{len(rows) - len(bad)} present, {sum(r.status == 'missing' for r in bad)} missing, "
                 f"{sum(r.status == 'wrong' for r in bad)} wrong")
    for profile, needed in (profiles or {}).items():
        short = unmet(rows, needed)
        lines.append(f"profile {profile}: " + ("needs met" if not short else
                     "needs not met: " + ", ".join(f"{r.name} ({r.status})" for r in short)))
    return "\n".join(lines)
