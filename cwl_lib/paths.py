"""Where the project's folders are: the checkout, its results, its data root."""
from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

DATA_ROOT_ENV = "CWL_DATA_ROOT"
#: Set by a runner of several notebooks (nbval, ``cwl refresh``): the folder under which each notebook with an
#: empty ``results_dir`` writes, so page 06 finds what 03-05 wrote before it.
SESSION_ENV = "CWL_SESSION_RESULTS"


def project_root() -> Path:
    """The checkout holding ``_config.yml``; the working directory when installed elsewhere."""
    here = Path(__file__).resolve().parent.parent
    return here if (here / "_config.yml").exists() else Path.cwd()


def data_root(explicit: str | os.PathLike | None = None) -> Path:
    """The folder every dataset lives under: the argument, else $CWL_DATA_ROOT, else ~/.cache/cwl/data."""
    explicit = explicit or os.environ.get(DATA_ROOT_ENV)
    return Path(explicit).expanduser() if explicit else Path.home() / ".cache" / "cwl" / "data"


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary sibling of ``path``, then rename it into place: no reader sees half a
    file, and a failed write leaves no temporary behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


class Lock:
    """An exclusive ``flock`` held until :meth:`release` or the process ends (even killed)."""

    def __init__(self, fd: int):
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)  # unlocking first: a forked child may share the descriptor
            os.close(self._fd)
            self._fd = None


def lock(path: str | os.PathLike, *, wait: bool = True) -> Lock | None:
    """Lock ``path`` (created if absent); None when ``wait`` is False and another descriptor holds it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BaseException as err:
        os.close(fd)
        if isinstance(err, BlockingIOError):
            return None
        if isinstance(err, OSError):  # e.g. Lustre mounted without -o flock, an NFS without locking
            raise OSError(f"cannot lock {path} ({err}): results must be on a filesystem with flock (a local disk; "
                          "NFS v4; Lustre mounted with -o flock)") from err
        raise
    return Lock(fd)


@contextlib.contextmanager
def file_lock(path: str | os.PathLike):
    """Hold :func:`lock` on ``path`` while the block runs; other processes wait."""
    held = lock(path)
    try:
        yield Path(path)
    finally:
        held.release()


def results_dir(explicit: str | os.PathLike | None, profile: str) -> Path:
    """A notebook's results store; an empty value gives a fresh folder under ``_build/scratch/`` (so such a run
    recomputes rather than resumes), removed when the kernel exits (or left in the checkout if it is killed)."""
    if explicit:
        path = Path(explicit).expanduser()
    else:
        scratch = project_root() / "_build" / "scratch"
        scratch.mkdir(parents=True, exist_ok=True)
        path = Path(tempfile.mkdtemp(prefix=f"cwl-{profile}-", dir=scratch))
        atexit.register(shutil.rmtree, path, True)
    path.mkdir(parents=True, exist_ok=True)
    return path


def session_results_dir(notebook: str) -> str:
    """``$CWL_SESSION_RESULTS/<notebook>`` when a runner set it (:data:`SESSION_ENV`), else ""."""
    root = os.environ.get(SESSION_ENV)
    return str(Path(root) / notebook) if root else ""
