"""``cwl reproduce``: run the notebooks under a profile with papermill, then build the book.

Each notebook is executed into ``_build/executed/<profile>/`` (finished copies survive a later
failure, and ``--only`` reruns one notebook while the others keep their last executed copy; a
failed run's partial copy is kept as ``<name>.failed.ipynb`` and named in the error). Before any
notebook runs, every dataset and weight file the run needs is checked as ``cwl data check`` checks
it (presence, counts, headers, digests). Kernels die with the ``cwl`` process
(:mod:`cwl_lib.kernels`). The book is built from a staged copy of the pages and the executed
notebooks, so the committed notebooks keep their smoke outputs for nbval.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import papermill as pm

from . import profiles
from .data import MissingDataError
from .data.check import problems
from .kernels import BoundKernelManager
from .paths import project_root

BOOK_FILES = ("_config.yml", "_toc.yml")
BOOK_DIRS = ("book",)


def plan(profile: str, only=None, overrides: dict | None = None) -> dict[str, dict]:
    """Notebook name -> parameters for this run."""
    names = [_notebook_name(n) for n in only] if only else list(profiles.NOTEBOOKS)
    return {name: profiles.parameters(profile, name, overrides) for name in names}


def _notebook_name(name: str) -> str:
    stem = Path(name).stem
    matches = [nb for nb in profiles.NOTEBOOKS if nb == stem or nb.split("_", 1)[0] == stem]
    if not matches:
        raise ValueError(f"unknown notebook {name!r}; choose one of {', '.join(profiles.NOTEBOOKS)}")
    return matches[0]


class NotebookFailed(RuntimeError):
    """A notebook raised; the message names its partly executed copy."""


def needs(profile: str) -> list[str]:
    """Every dataset and weight file the notebooks of ``profile`` need, with its default parameters."""
    return list(dict.fromkeys(r for name, params in plan(profile).items()
                              for r in profiles.notebook_requirements(name, params)))


def check_data(runs: dict[str, dict]) -> None:
    """Fail before any work, naming every missing or damaged item of every notebook of this run."""
    lines = []
    for name, params in runs.items():
        for row in problems(profiles.notebook_requirements(name, params), params.get("data_root") or None):
            lines.append(f"  - {name}: {row.name} is {row.status} ({row.detail}): {row.fix}")
    if lines:
        raise MissingDataError(
            f"the {next(iter(runs.values()))['profile']} profile needs data that is not on this machine, or not as "
            "it should be; nothing was run:\n" + "\n".join(lines)
        )


def execute(name: str, params: dict, root: Path, out_dir: Path, log=print) -> Path:
    source = root / "notebooks" / f"{name}.ipynb"
    target = out_dir / f"{name}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".running.ipynb")
    log(f"[cwl] {name}: running with profile {params['profile']} -> {target}")
    start = time.perf_counter()
    try:
        pm.execute_notebook(
            str(source), str(partial), parameters=params, cwd=str(source.parent),
            kernel_name="python3", progress_bar=True, log_output=False, kernel_manager_class=BoundKernelManager,
        )
    except BaseException as err:
        failed = _keep_failed(partial, target)
        if not isinstance(err, Exception):  # an interrupt stays an interrupt
            raise
        where = f"its partly executed copy is {failed}" if failed else "no partial copy was written"
        raise NotebookFailed(f"{name} failed; {where}. Finished notebooks are kept under {out_dir}.\n{err}") from err
    partial.replace(target)  # only a finished run replaces the previous executed copy
    log(f"[cwl] {name}: done in {time.perf_counter() - start:.0f} s")
    return target


def _keep_failed(partial: Path, target: Path) -> Path | None:
    if not partial.exists():
        return None
    failed = target.with_suffix(".failed.ipynb")
    partial.replace(failed)
    return failed


def stage_book(root: Path, profile: str, build_dir: Path) -> Path:
    """A copy of the book sources in which each notebook is its latest executed copy."""
    stage = build_dir / "src"
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    for f in BOOK_FILES:
        shutil.copy2(root / f, stage / f)
    for d in BOOK_DIRS:
        shutil.copytree(root / d, stage / d)
    (stage / "notebooks").mkdir()
    executed = build_dir / "executed" / profile
    for name in profiles.NOTEBOOKS:
        src = executed / f"{name}.ipynb"
        shutil.copy2(src if src.exists() else root / "notebooks" / f"{name}.ipynb", stage / "notebooks" / f"{name}.ipynb")
    return stage


def build_book(root: Path, profile: str, build_dir: Path, log=print) -> Path:
    stage = stage_book(root, profile, build_dir)
    jb = Path(sys.executable).parent / "jupyter-book"
    cmd = [str(jb) if jb.exists() else "jupyter-book", "build", str(stage), "--path-output", str(build_dir.parent)]
    log("[cwl] building the book: " + " ".join(cmd))
    subprocess.run(cmd, check=True)
    index = build_dir / "html" / "index.html"
    log(f"[cwl] book: {index}")
    return index


def reproduce(profile: str, only=None, overrides: dict | None = None, book: bool = True,
              root: Path | None = None, log=print) -> Path | None:
    root = Path(root) if root else project_root()
    build_dir = root / "_build"
    runs = plan(profile, only, overrides)
    check_data(runs)
    for name, params in runs.items():
        if not params.get("results_dir"):
            params["results_dir"] = str(root / "results" / profile / name)
        Path(params["results_dir"]).mkdir(parents=True, exist_ok=True)
        execute(name, params, root, build_dir / "executed" / profile, log=log)
    return build_book(root, profile, build_dir, log=log) if book else None


def refresh(names=None, root: Path | None = None, log=print) -> list[Path]:
    """Re-execute committed notebooks in place with their own parameters (the smoke profile).

    This is how the outputs that nbval checks are regenerated after a deliberate change.
    """
    root = Path(root) if root else project_root()
    done = []
    for name in (names or profiles.NOTEBOOKS):
        path = root / "notebooks" / f"{_notebook_name(name)}.ipynb"
        log(f"[cwl] refreshing {path}")
        tmp = path.with_suffix(".running.ipynb")
        pm.execute_notebook(str(path), str(tmp), cwd=str(path.parent), kernel_name="python3", progress_bar=False,
                            kernel_manager_class=BoundKernelManager)
        tmp.replace(path)
        done.append(path)
    return done
