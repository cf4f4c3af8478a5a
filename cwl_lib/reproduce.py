"""``cwl reproduce`` and ``cwl refresh``: run the notebooks with papermill, then build (and publish) the book.

A notebook runs into a partial copy that replaces the executed one (``_build/executed/<profile>/``, or the
committed one for ``cwl refresh``) only when it finishes; a failed run's copy is kept as ``<name>.failed.ipynb``
and named in the one-line error. A run's notices (:mod:`cwl_lib.notices`) are printed when its notebook ends.
The book is built from a staged copy, so the committed notebooks keep their smoke outputs for nbval.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path
from unittest import mock

import nbformat
import papermill as pm
import yaml

from . import checks, environment, notebook_tags, notices, parameters, paths, profiles, verdicts
from .data import MissingDataError
from .data.check import problems
from .kernels import BoundKernelManager
from .parameters import ParameterError
from .paths import project_root

BOOK_FILES = ("_config.yml", "_toc.yml")
BOOK_DIRS = ("book", "benchmarks/results/schedule")  # the second: logs the book includes
HTML_DIR = Path("_build") / "html"  # the built book, relative to the project root
PATHS = ("data_root", "results_dir", "results_root")  # parameters that name folders


class BookBuildError(ValueError):
    """The book build stopped on a Sphinx warning (a bad page, not a bad run: `cwl` reports it plainly)."""


def plan(profile: str, only=None, overrides: dict | None = None) -> dict[str, dict]:
    """Notebook name -> its validated parameters (:class:`ParameterError` before any work); an override goes
    to the notebooks that have a parameter of that name, one that none has is refused."""
    names = [_notebook_name(n) for n in only] if only else list(profiles.NOTEBOOKS)
    # the notebooks run in notebooks/: a relative folder is made absolute here, where the user meant it
    overrides = {k: str(Path(v).expanduser().absolute()) if k in PATHS and isinstance(v, str) and v else v
                 for k, v in (overrides or {}).items()}
    known = {name: profiles.parameters(profile, name) for name in names}
    unknown = sorted(k for k in overrides if not any(k in params for params in known.values()))
    if unknown:
        every = sorted({k for params in known.values() for k in params})
        raise ParameterError(f"no notebook of this run ({', '.join(names)}) has a parameter {', '.join(unknown)}; "
                             f"their parameters are {', '.join(every)}")
    return {name: parameters.validate(name, {**params, **{k: v for k, v in overrides.items() if k in params}})
            for name, params in known.items()}


def passed(params: dict, overrides: dict | None) -> dict:
    """What papermill injects: the profile, the paths and the overrides; the notebook resolves the rest
    from its profile (:func:`cwl_lib.parameters.resolve`), so its page says what was set on the command line."""
    names = ("profile", "results_dir", *(overrides or {}))
    return {k: params[k] for k in dict.fromkeys(names) if k in params}


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
    lines = [f"  - {name}: {row.name} is {row.status} ({row.detail}): {row.fix}" for name, params in runs.items()
             for row in problems(profiles.notebook_requirements(name, params), params.get("data_root") or None)]
    if lines:
        raise MissingDataError(f"the {next(iter(runs.values()))['profile']} profile needs data that is not on this "
                               "machine, or not as it should be; nothing was run:\n" + "\n".join(lines))


def failure_line(err: BaseException) -> str:
    """A notebook's error as one line: the cell and the exception the notebook raised, not papermill's traceback."""
    if isinstance(err, pm.PapermillExecutionError):
        text = " ".join(str(err.evalue).split())
        return f"cell {err.cell_index}: {err.ename}" + (f": {text}" if text else "")
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[-1].strip() if lines else ''}".rstrip(": ")


def _run_notebook(name: str, source: Path, target: Path, failed: Path, kept: str, log, cwd: Path | None = None,
                  **kw) -> None:
    """papermill ``source`` into a partial copy beside ``failed``, moved to ``target`` when it finishes, kept as
    ``failed`` when it does not (``kept`` says what became of the others); notices printed however it ends."""
    partial = failed.with_name(f"{name}.running.ipynb")
    notes = failed.with_name(f"{name}.notices.txt")
    notes.unlink(missing_ok=True)
    try:
        try:  # the kernel, and the Ray workers it starts, inherit the variable
            with mock.patch.dict(os.environ, {notices.ENV: str(notes)}):
                pm.execute_notebook(str(source), str(partial), cwd=str(cwd or source.parent), kernel_name="python3",
                                    kernel_manager_class=BoundKernelManager, **kw)
        finally:
            for line in notices.read(notes):
                log(f"[cwl] {name}: {line}")
            notes.unlink(missing_ok=True)
    except BaseException as err:
        try:
            partial.replace(failed)
            where = f"its partly executed copy is {failed}"
        except OSError:  # FileNotFoundError too: no partial copy was written
            where = None
        if not isinstance(err, Exception):  # an interrupt stays an interrupt
            log(f"[cwl] {name}: stopped; {where or 'nothing was kept'}")
            raise
        raise NotebookFailed(f"{name} failed in {failure_line(err)} ({where or 'no partial copy was written'}; "
                             f"{kept})") from err
    notebook_tags.tag_file(partial)  # the cell papermill injected is hidden like the parameters cell
    shutil.move(partial, target)
    failed.unlink(missing_ok=True)  # an older failure, now superseded


def execute(name: str, params: dict, root: Path, out_dir: Path, log=print) -> Path:
    target = out_dir / f"{name}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    log(f"[cwl] {name}: running with profile {params['profile']} -> {target}")
    start = time.perf_counter()
    _run_notebook(name, root / "notebooks" / f"{name}.ipynb", target, target.with_suffix(".failed.ipynb"),
                  f"finished notebooks are kept under {out_dir}", log, parameters=params, progress_bar=True,
                  log_output=False)
    log(f"[cwl] {name}: done in {time.perf_counter() - start:.0f} s")
    return target


def stage_book(root: Path, profile: str, build_dir: Path) -> Path:
    """A copy of the book sources in which each notebook is its latest executed copy."""
    stage = build_dir / "src"
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    for f in BOOK_FILES:
        shutil.copy2(root / f, stage / f)
    _stage_config(stage / "_config.yml")
    for d in BOOK_DIRS:  # one absent makes the page that includes it fail the build, by name
        if (root / d).is_dir():
            shutil.copytree(root / d, stage / d)
    (stage / "notebooks").mkdir()
    executed = build_dir / "executed" / profile
    for name in profiles.NOTEBOOKS:
        src = executed / f"{name}.ipynb"
        shutil.copy2(src if src.exists() else root / "notebooks" / f"{name}.ipynb", stage / "notebooks" / f"{name}.ipynb")
        # also an executed copy made outside `cwl reproduce` (papermill directly, an older checkout)
        notebook_tags.tag_file(stage / "notebooks" / f"{name}.ipynb")
    verdicts.stage(stage, profile, root / "notebooks")  # the intro's box: the ledger of the staged page 06
    return stage


def _stage_config(path: Path) -> None:
    """The staged ``_config.yml`` with the MyST substitutions ``{{ lock_sha256 }}`` and ``{{ lock_environment }}``
    (:mod:`cwl_lib.environment`), so a reader can tell two books' package sets apart."""
    config = yaml.safe_load(path.read_text()) or {}
    parse = config.setdefault("parse", {})
    extensions = parse.setdefault("myst_enable_extensions", [])
    if "substitution" not in extensions:
        extensions.append("substitution")
    lock = environment.summary()
    parse["myst_substitutions"] = {**(parse.get("myst_substitutions") or {}),
                                   "lock_sha256": lock["lock_sha256"] or "(none: this copy has no requirements.lock)",
                                   "lock_environment": lock["environment"]}
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def build_book(root: Path, profile: str, build_dir: Path, log=print) -> Path:
    stage = stage_book(root, profile, build_dir)
    # Warnings are errors (a page with a broken reference or an unknown role is not published);
    # --keep-going lists them all, --all rebuilds every page so none hides behind an unchanged one.
    cmd = [_tool("jupyter-book"), "build", str(stage), "--path-output", str(build_dir.parent),
           "-W", "--keep-going", "--all"]
    log("[cwl] building the book: " + " ".join(cmd))
    if subprocess.run(cmd).returncode:
        # --keep-going wrote the pages anyway; removed, so that no half-right book gets published
        shutil.rmtree(build_dir / "html", ignore_errors=True)
        raise BookBuildError(
            f"the book was not built: Sphinx reported the warnings listed above (warnings are errors). "
            f"The executed notebooks are kept under {build_dir / 'executed' / profile}.")
    index = build_dir / "html" / "index.html"
    log(f"[cwl] book: {index}")
    return index


class _RemoteAssets(HTMLParser):
    """Collects what a page loads from another host when opened (links a reader follows do not count)."""

    TAGS = {"script", "img", "iframe", "source", "audio", "video", "embed", "link"}
    LINK_RELS = {"stylesheet", "icon", "preload", "modulepreload", "manifest", "prefetch"}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        url = attrs.get("href" if tag == "link" else "src") if tag in self.TAGS else None
        loads = tag != "link" or self.LINK_RELS & set((attrs.get("rel") or "").lower().split())
        if url and loads and url.startswith(("http:", "https:", "//")):
            self.found.append(url)


def remote_assets(html_dir: Path) -> list[str]:
    """``page: url`` for every script, style sheet, image or frame a built page loads from the network."""
    found = []
    for page in sorted(Path(html_dir).rglob("*.html")):
        if page.relative_to(html_dir).parts[0] != "_sources":
            parser = _RemoteAssets()
            parser.found = []
            parser.feed(page.read_text(encoding="utf-8", errors="replace"))
            found += [f"{page.relative_to(html_dir)}: {url}" for url in parser.found]
    return found


class PublishError(RuntimeError):
    """The book was not published; the message says why in one line, and nothing was left behind."""


def _tool(name: str) -> str:
    """A command of this environment (beside its Python), else the one on PATH."""
    exe = Path(sys.executable).parent / name
    return str(exe) if exe.exists() else name


def _git(repo: Path | None, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True)


def publish(html_dir: Path, remote: str = "origin", branch: str = "gh-pages", repo: Path | None = None,
            log=print) -> None:
    """Push a built book to ``branch`` of ``remote`` with ghp-import (``-n``: ``.nojekyll``, or Jekyll hides
    ``_static/``). A book that loads anything from the network is refused (it must read the same offline);
    when the push fails, the local ``branch`` is put back as it was."""
    html_dir = Path(html_dir)
    if not (html_dir / "index.html").exists():
        raise ValueError(f"no built book at {html_dir}; build it first (make book)")
    remote_found = remote_assets(html_dir)
    if remote_found:
        raise ValueError("the book loads files from the network, so it would not read the same offline:\n  "
                         + "\n  ".join(remote_found))
    if _git(repo, "rev-parse", "--git-dir").returncode:
        raise ValueError(f"{Path(repo or '.').resolve()} is not a git repository: publish from the clone whose "
                         "remote receives the book")
    is_name = not any(c in remote for c in "/:") and not Path(remote).exists()
    if is_name and _git(repo, "remote", "get-url", remote).returncode:
        raise ValueError(f"this repository has no git remote named {remote!r}: add it (git remote add {remote} URL), "
                         f"or pass the URL (make publish PAGES_REMOTE=URL)")
    before = _git(repo, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}").stdout.strip()
    cmd = [_tool("ghp-import"), "-n", "-p", "-f", "-r", remote, "-b", branch,
           "-m", "Publish the book", str(html_dir.resolve())]
    log("[cwl] publishing: " + " ".join(cmd))
    done = subprocess.run(cmd, cwd=repo, capture_output=True, text=True)
    if done.returncode:
        _git(repo, "update-ref", *([f"refs/heads/{branch}", before] if before else ["-d", f"refs/heads/{branch}"]))
        said = [line.strip() for line in (done.stderr + done.stdout).splitlines() if line.strip()]
        why = next((line for line in said if line.lower().startswith(("fatal:", "error:"))), said[-1] if said else "")
        raise PublishError(f"the push to {branch} of {remote} failed ({why}); nothing was published, and the local "
                           f"branch {branch} is as it was")
    log(f"[cwl] {html_dir} is on {branch} of {remote}")


def writable(folder: Path, what: str, fix: str = "choose another folder (-p results_dir DIR)") -> None:
    """Create ``folder`` and write a file in it, or raise a one-line OSError (a read-only or full disk found
    now, not after an hour of runs)."""
    probe = folder / f".cwl-write-check-{os.getpid()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"x" * 4096)
    except OSError as err:
        raise OSError(err.errno, f"cannot write the {what} to {folder} ({err.strerror}); free space there, make it "
                      f"writable, or {fix}") from None
    finally:
        with contextlib.suppress(OSError):
            probe.unlink(missing_ok=True)


def reproduce(profile: str, only=None, overrides: dict | None = None, book: bool = True,
              root: Path | None = None, log=print) -> Path | None:
    root = Path(root) if root else project_root()
    build_dir = (root / HTML_DIR).parent
    runs = plan(profile, only, overrides)
    check_data(runs)
    # `-p results_dir DIR` names the folder the notebooks write side by side in, as results/<profile>/ by default:
    # page 06 finds the records of 03-05 beside its own (comparison.sources_root)
    base = Path(overrides["results_dir"]) if (overrides or {}).get("results_dir") else root / "results" / profile
    for name, params in runs.items():  # every folder a run writes, checked before any notebook starts
        params["results_dir"] = str(base.expanduser().absolute() / name)
        writable(Path(params["results_dir"]), "results")
    writable(build_dir / "executed" / profile, "executed notebooks", "run from a writable clone")
    for name, params in runs.items():
        execute(name, passed(params, overrides), root, build_dir / "executed" / profile, log=log)
    return build_book(root, profile, build_dir, log=log) if book else None


def write_parameters_cell(path: Path, name: str) -> bool:
    """Make the notebook's parameters cell its model's smoke values; True when it changed."""
    nb = nbformat.read(path, as_version=4)
    cell = next((c for c in nb.cells if "parameters" in c.metadata.get("tags", [])), None)
    source = parameters.parameters_cell(name)
    if cell is None or cell.source == source:
        return False
    cell.source = source
    nbformat.write(nb, path)
    return True


def refresh(names=None, root: Path | None = None, log=print) -> list[Path]:
    """Re-execute committed notebooks in place (smoke profile), recording the values their checked cells
    compare as the new references (``notebooks/references/``): how nbval's outputs are regenerated.

    A failed one is kept as ``_build/refresh/<name>.failed.ipynb`` (not under ``notebooks/``, where nbval would
    collect it). Results go to ``_build/refresh/results/<name>/`` (:data:`cwl_lib.paths.SESSION_ENV`), emptied
    when that notebook is refreshed, so page 06 reads the records of the last finished refresh of 03-05.
    """
    root = Path(root) if root else project_root()
    work = root / "_build" / "refresh"
    results = work / "results"
    chosen = {_notebook_name(n) for n in (names or profiles.NOTEBOOKS)}
    order = [name for name in profiles.NOTEBOOKS if name in chosen]
    _check_sources(order, results)
    work.mkdir(parents=True, exist_ok=True)
    done = []
    # the kernels inherit both; the environment is restored as it was when the block ends
    with mock.patch.dict(os.environ, {checks.MODE_ENV: "record", paths.SESSION_ENV: str(results)}):
        for name in order:
            path = root / "notebooks" / f"{name}.ipynb"
            log(f"[cwl] refreshing {path}")
            shutil.rmtree(results / name, ignore_errors=True)  # recomputed, never resumed from an older refresh
            source = work / f"{name}.source.ipynb"  # the committed notebook with its generated parameters cell
            shutil.copyfile(path, source)
            write_parameters_cell(source, name)
            try:
                _run_notebook(name, source, path, work / f"{name}.failed.ipynb", "the committed notebook is unchanged",
                              log, cwd=path.parent, progress_bar=False)
            except BaseException:
                shutil.rmtree(results / name, ignore_errors=True)  # no page reads half a grid
                raise
            finally:
                source.unlink(missing_ok=True)
            done.append(path)
    return done


def _check_sources(order: list[str], results: Path) -> None:
    """Refuse, before any kernel starts, a page whose sources neither run before it now nor left records in
    an earlier refresh (it would record references of an empty page)."""
    for i, name in enumerate(order):
        missing = [nb for nb in profiles.READS.get(name, ()) if nb not in order[:i] and not (results / nb).is_dir()]
        if missing:
            raise ValueError(f"{name} reads the records that refreshing {', '.join(missing)} leaves in {results}, "
                             f"and there are none: run `cwl refresh {' '.join([*missing, name])}`")
