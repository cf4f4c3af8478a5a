"""``cwl fetch NAME``: each file is checked against the publisher's SHA-256, one given with ``--expect-sha256``, or
the lock file's pin (with none, the first download is trusted, and said so); archives unpack into a temporary
folder that must have the layout and the paper's counts before it replaces the dataset folder (only with
``--force``), and only then are a first download's digests pinned. A bad file is removed alone.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import urllib.parse
from pathlib import Path

import pooch
import requests
from torchvision.datasets import FashionMNIST

from ..paths import data_root, lock
from . import checksums
from .archives import BrokenArchiveError, UnsafeArchiveError, extract
from .check import DOWNLOADS, dataset_problem, layout_problem
from .registry import SOURCES, RemoteFile, Source, lacking, resource

MIRROR_ENV = "CWL_DATA_MIRROR"


class FetchError(RuntimeError):
    """A dataset could not be fetched; the message says what happened and what to do."""


class ManualDownloadRequired(FetchError):
    """A file sits behind a login or click-through page; the message names the file and where it goes."""


def fetch_fashion_mnist(root: str | Path | None = None) -> Path:
    """Fashion-MNIST through torchvision's md5-checked downloader (offline: Debian's dataset-fashion-mnist)."""
    base = data_root(root)
    present = resource("fashion-mnist").locate(base)
    if present is not None:
        return present
    for train in (True, False):
        FashionMNIST(str(base), train=train, download=True)
    return base / "FashionMNIST" / "raw"


FETCHERS = {"fashion-mnist": fetch_fashion_mnist}


def names() -> list[str]:
    """Every name ``cwl fetch`` accepts besides ``all``."""
    return [*SOURCES, *FETCHERS]


def expand(requested) -> list[str]:
    return list(dict.fromkeys(n for name in requested for n in (names() if name == "all" else [name])))


def parse_expected(name: str, values) -> dict[str, str]:
    """``--expect-sha256`` values (``HEX`` or ``FILE=HEX``) as file name -> lowercase digest for dataset ``name``."""
    out: dict[str, str] = {}
    files = [f.filename for f in SOURCES[name].files] if name in SOURCES else []
    for value in values or ():
        filename, _, digest = value.rpartition("=")
        if not filename:
            if len(files) != 1:
                raise ValueError(f"{name} has {len(files)} files ({', '.join(files) or 'none fetched here'}): "
                                 "give --expect-sha256 FILE=HEX for each")
            filename = files[0]
        digest = digest.strip().lower()
        if filename not in files:
            raise ValueError(f"--expect-sha256 {value}: {name} has no file {filename!r}; its files: {', '.join(files)}")
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ValueError(f"--expect-sha256 {value}: a SHA-256 digest is 64 hexadecimal digits")
        out[filename] = digest
    return out


def fetch(name: str, root: str | Path | None = None, *, mirror: str | None = None, force: bool = False,
          keep_archives: bool = False, progress: bool = True, log=print, expect: dict[str, str] | None = None) -> Path:
    """Make dataset ``name`` present under the data root; its folder. ``expect``: file name -> SHA-256."""
    fix = resource(name).fix(data_root(root))  # unknown names fail with the list of known ones
    if name in FETCHERS:
        try:
            return FETCHERS[name](root)
        except (OSError, RuntimeError) as err:  # torchvision's downloader: URLError, or its md5 failure
            raise FetchError(f"{name}: download failed ({err}); {fix}") from err
    if name not in SOURCES:
        raise ValueError(f"no downloader for {name!r}: {fix}")
    base = data_root(root)
    if base.exists() and not base.is_dir():
        raise FetchError(f"the data root {base} is a file, not a folder; pass --data-root a folder")
    base.mkdir(parents=True, exist_ok=True)
    with _exclusive(base, name):
        return _fetch_source(SOURCES[name], base, mirror, force, keep_archives, progress, log, expect or {})


@contextlib.contextmanager
def _exclusive(base: Path, name: str):
    """One fetch per dataset at a time, so the leftovers of a killed fetch can be cleared safely."""
    held = lock(base / f".{name}.fetch-lock", wait=False)
    if held is None:
        raise FetchError(f"another `cwl fetch {name}` is running on {base}; wait for it to finish")
    try:
        for stale in base.glob(f".{name}.partial-*"):
            shutil.rmtree(stale, ignore_errors=True)
        known = {f.filename for f in SOURCES[name].files}
        for stale in (base / DOWNLOADS / name).glob("tmp*"):  # pooch's unfinished transfers
            if stale.name not in known and stale.is_file():
                stale.unlink()
        yield
    finally:
        held.release()


def _fetch_source(source: Source, base: Path, mirror, force, keep_archives, progress, log, expect) -> Path:
    target = base / source.name
    if target.exists() and not force:
        problem = layout_problem(base, source)
        if problem is None:
            log(f"{source.name}: already present in {target}")
            return target
        raise FetchError(f"{target} exists but {problem}; nothing was changed. Run `cwl fetch {source.name} --force "
                         f"--data-root {base}` to rebuild it (replaced only once a complete copy is ready), or move "
                         "the folder away.")
    files = [(remote, *_obtain(source, remote, base, mirror, progress, log, expect.get(remote.filename)))
             for remote in source.files]
    partial = Path(tempfile.mkdtemp(prefix=f".{source.name}.partial-", dir=base))
    try:
        for remote, path, _digest in files:
            _install(source, remote, path, partial, log)
        absent = lacking(partial, source.layout)
        problem = f"it lacks {', '.join(absent)}" if absent else dataset_problem(source.name, partial)
        if problem:
            raise FetchError(
                f"{source.name}: the downloaded files unpacked into something that is not the paper's dataset: "
                f"{problem}. Nothing was installed and no digest was pinned; "
                f"{_drop_unverified(source, files, base, expect)} Check the source (or mirror) they came from.")
        checksums.write_marker(partial, {remote.filename: digest for remote, _path, digest in files})
        _swap_in(partial, target)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    for remote, path, digest in files:  # only now that the dataset installed: pin what was trusted
        if checksums.recorded(base, source.name, remote.filename) is None and not remote.sha256:
            checksums.record(base, source.name, remote.filename, digest, url_of(source, remote, mirror),
                             path.stat().st_size)
            log(f"{source.name}: pinned sha256 {digest} of {remote.filename} in {checksums.lock_path(base)}")
        if not keep_archives and remote.url is not None:  # a file placed by hand is the user's to delete
            path.unlink(missing_ok=True)
    log(f"{source.name}: installed in {target}")
    return target


def _drop_unverified(source: Source, files, base: Path, expect) -> str:
    """Remove the downloads no digest vouched for, so the next fetch downloads them again; say what was done."""
    dropped, kept = [], []
    for remote, path, _digest in files:
        vouched = remote.sha256 or expect.get(remote.filename) or checksums.recorded(base, source.name, remote.filename)
        if remote.url is not None and not vouched:
            path.unlink(missing_ok=True)
            dropped.append(remote.filename)
        else:
            kept.append(str(path))
    said = [f"the unverified downloads ({', '.join(dropped)}) were removed"] if dropped else []
    if kept:
        said.append(f"kept: {', '.join(kept)} (replace a file placed by hand if it is the wrong one)")
    return "; ".join(said) + "."


def _obtain(source: Source, remote: RemoteFile, base: Path, mirror, progress, log,
            given: str | None = None) -> tuple[Path, str]:
    """The verified local copy of one file and its digest, downloading it when needed."""
    folder = base / DOWNLOADS / source.name
    path = folder / remote.filename
    try:
        want, why = checksums.expected(base, source.name, remote.filename, remote.sha256, given)
    except ValueError as err:
        raise FetchError(f"{source.name}: {err}") from None
    url = url_of(source, remote, mirror)

    def trusted(digest: str) -> tuple[Path, str]:
        if want is None:
            log(f"{source.name}: no digest is published for {remote.filename} and none is pinned or given, so this "
                f"first copy is trusted as it is: sha256 {digest}. It is pinned in {checksums.lock_path(base)} once "
                f"the dataset installs; to check it instead, rerun with --expect-sha256 {remote.filename}=<sha256>.")
        return path, digest

    if path.is_file():
        have = checksums.sha256_file(path)
        if want is None or have == want:
            return trusted(have)
        path.unlink()
        message = f"{path} has sha256 {have}, not {want} ({why}); removed that file"
        if url is None:
            raise FetchError(f"{message}. Download it again: {_manual_step(source, remote, path, base)}")
        log(f"{source.name}: {message}, downloading it again")
    if url is None:
        raise ManualDownloadRequired(
            f"{source.name} cannot be downloaded by a script: {_manual_step(source, remote, path, base)}")
    local = local_file(url)
    if local is not None and not local.is_file():
        raise FetchError(f"{source.name}: the mirror has no file {local} (from {url}); a mirror holds "
                         f"<mirror>/{source.name}/{remote.filename}")
    log(f"{source.name}: {'copying' if local else 'downloading'} {url} -> {path}")
    quiet = pooch.get_logger()
    level = quiet.level
    quiet.setLevel("WARNING")  # pooch's own lines advise its Python API, not this command
    # pooch reads no file:// URL: a mirror on this machine's disk is copied, checked as a download is
    copy = (lambda _url, out, _pooch: shutil.copyfile(local, out)) if local else None
    try:
        pooch.retrieve(url, known_hash=f"sha256:{want}" if want else None, fname=remote.filename, path=folder,
                       progressbar=progress, downloader=copy)
    except ValueError as err:
        if "does not match" not in str(err):  # a URL pooch cannot read (its scheme), not a digest mismatch
            raise FetchError(f"{source.name}: cannot download {url} ({err}); give a mirror as an http(s)://, "
                             "ftp:// or file:// URL, or a folder on this machine") from None
        if local:
            raise FetchError(f"{source.name}: {local} does not match {why} (expected sha256 {want}); nothing was "
                             f"copied. Check the mirror's copy. Detail: {err}") from err
        raise FetchError(  # pooch has deleted its temporary file
            f"{source.name}: the file downloaded from {url} does not match {why} (expected sha256 {want}); it was "
            f"discarded and nothing else changed. If the publisher replaced the file on purpose, delete the entry "
            f"\"{source.name}/{remote.filename}\" from {checksums.lock_path(base)} and run `cwl fetch "
            f"{source.name}` again. Detail: {err}") from err
    except (requests.exceptions.RequestException, OSError) as err:
        if local:
            raise FetchError(f"{source.name}: copying {local} failed ({err}); nothing was kept") from err
        raise FetchError(f"{source.name}: downloading {url} failed ({err}); no partial file was kept. "
                         f"Run `cwl fetch {source.name} --data-root {base}` again to retry.") from err
    finally:
        quiet.setLevel(level)
    return trusted(want or checksums.sha256_file(path))  # pooch checked want


def url_of(source: Source, remote: RemoteFile, mirror: str | None = None) -> str | None:
    """The mirror's ``BASE/<dataset>/<file name>`` when one is set (``--mirror``, ``$CWL_DATA_MIRROR``), else the
    official URL."""
    base = (mirror or os.environ.get(MIRROR_ENV) or "").rstrip("/")
    return f"{base}/{source.name}/{remote.filename}" if base else remote.url


def local_file(url: str) -> Path | None:
    """The file a ``file://`` URL or a plain path names (a mirror on this machine), else None."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "file":
        return Path(urllib.parse.unquote(parsed.path))
    return None if parsed.scheme else Path(url).expanduser()


def _manual_step(source: Source, remote: RemoteFile, path: Path, base: Path) -> str:
    return (f"{source.manual}, put it at {path} (create the folder if needed; keep the file name {remote.filename}), "
            f"then run `cwl fetch {source.name} --data-root {base}`")


def _install(source: Source, remote: RemoteFile, path: Path, partial: Path, log) -> None:
    dest = partial / remote.dest
    if remote.unpack is None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)
        return
    dest.mkdir(parents=True, exist_ok=True)
    log(f"{source.name}: unpacking {remote.filename}")
    base = partial.parent
    try:
        count = extract(path, dest, remote.unpack, flatten=remote.flatten, skip_prefixes=source.skip_prefixes,
                        limits=resource(source.name).limits)
    except (BrokenArchiveError, UnsafeArchiveError) as err:
        path.unlink(missing_ok=True)
        if isinstance(err, UnsafeArchiveError):
            kind, again = "unsafe", "an archive like this is not what the publisher ships: check the source (or mirror)"
        else:
            kind, again = "broken", f"run `cwl fetch {source.name} --data-root {base}` to download it again" \
                if remote.url is not None else _manual_step(source, remote, path, base)
        raise FetchError(f"{source.name}: {err}. The {kind} file {path} was removed; nothing was installed and data "
                         f"already in place is untouched; {again}.") from err
    except OSError as err:  # the machine's fault (a full disk, permissions), not the archive's: keep it
        raise FetchError(f"{source.name}: could not unpack {path} into {partial} ({err}); nothing was installed, the "
                         f"archive is kept; free space or fix permissions under {base} and run `cwl fetch "
                         f"{source.name}` again") from err
    log(f"{source.name}: {count} files from {remote.filename}")


def _swap_in(partial: Path, target: Path) -> None:
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    if target.exists():
        os.rename(target, old / target.name)
    os.rename(partial, target)
    shutil.rmtree(old, ignore_errors=True)
