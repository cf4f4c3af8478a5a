"""SHA-256 pins: ``<data root>/cwl-data.lock.json`` holds the digest of each file's first download that installed
completely (no host publishes one), which later downloads and copies placed by hand must match; copy it to pin
the same bytes elsewhere. Each installed dataset keeps ``.cwl-fetched.json``, the digests it was built from, so a
dataset built from other bytes than the lock names is reported without re-reading gigabytes.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from ..digest import sha256_file  # re-exported: fetch and check hash files as checksums.sha256_file
from ..paths import atomic_write, file_lock

LOCK_NAME = "cwl-data.lock.json"
MARKER_NAME = ".cwl-fetched.json"


def _write_json_atomic(path: Path, data: dict) -> None:
    atomic_write(path, lambda p: p.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n"))


def _read_json(path: Path) -> dict:
    try:
        with open(path) as handle:
            data = json.load(handle)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        raise ValueError(f"{path} is not readable JSON ({err}); move it away to start a new record") from err
    return data if isinstance(data, dict) else {}


def lock_path(root: Path) -> Path:
    return Path(root) / LOCK_NAME


def _pinned(files: dict, dataset: str, filename: str) -> str | None:
    entry = files.get(f"{dataset}/{filename}")
    return entry.get("sha256") if isinstance(entry, dict) else None


def recorded(root: Path, dataset: str, filename: str) -> str | None:
    """The digest the lock file records for one downloaded file, if any."""
    return _pinned(_read_json(lock_path(root)).get("files", {}), dataset, filename)


def record(root: Path, dataset: str, filename: str, digest: str, url: str | None, size: int) -> None:
    path = lock_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    # fetches of different datasets may run at once: serialise the read-modify-write of the lock file
    with file_lock(path.parent / f".{LOCK_NAME}.flock"):
        data = _read_json(path)
        data.setdefault("version", 1)
        data.setdefault("files", {})[f"{dataset}/{filename}"] = {
            "sha256": digest, "url": url, "size": size,
            "recorded": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        _write_json_atomic(path, data)


def expected(root: Path, dataset: str, filename: str, published: str | None,
             given: str | None = None) -> tuple[str | None, str]:
    """The digest a file must have and where that comes from (None: nothing to check against); ``given``, one the
    user vouches for, must agree with the publisher's and the lock's."""
    locked = recorded(root, dataset, filename)
    if given:
        for other, where in ((published, "its publisher states"), (locked, f"{lock_path(root)} pins")):
            if other and other != given:
                raise ValueError(f"--expect-sha256 {given} for {filename} differs from the digest {where} ({other}); "
                                 f"delete the entry \"{dataset}/{filename}\" from {lock_path(root)} to replace a pin")
        return given, "the digest given with --expect-sha256"
    if published:
        return published, "the digest its publisher states"
    if locked:
        return locked, f"the digest recorded in {lock_path(root)}"
    return None, ""


def write_marker(folder: Path, digests: dict[str, str]) -> None:
    _write_json_atomic(Path(folder) / MARKER_NAME, {"version": 1, "built_from": digests})


def installed_problem(root: Path, dataset: str) -> str | None:
    """Why an installed dataset folder is wrong, judged from its record and the lock; None when fine. A folder
    without a record (unpacked by hand) is not judged here, so a corrupt lock file does not hide it."""
    try:
        built_from = _read_json(Path(root) / dataset / MARKER_NAME).get("built_from") or {}
        files = _read_json(lock_path(root)).get("files", {}) if built_from else {}
    except ValueError as err:
        return str(err)
    for filename, digest in built_from.items():
        locked = _pinned(files, dataset, filename)
        if locked and locked != digest:
            return (f"built from {filename} with sha256 {digest[:12]}..., but {lock_path(root)} "
                    f"records {locked[:12]}...")
    return None
