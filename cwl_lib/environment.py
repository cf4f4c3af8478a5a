"""The locked environment: ``requirements.lock`` (``make lock``) names every package and digest the book is built
with; ``scripts/setup.sh`` leaves :data:`STAMP` saying which lock it installed. :func:`summary` goes into every
record's provenance. Stdlib only: ``scripts/lock.sh`` runs it with the system Python.
"""
from __future__ import annotations

import hashlib
import json
import sys
import tomllib
from pathlib import Path

LOCK = "requirements.lock"
STAMP = ".cwl-lock"  # in the environment's prefix: the lock digest it was installed from, or "resolved"
HEADER = "# pyproject-dependencies: "  # the line of the lock that holds pyproject_digest() when it was written


def _root() -> Path:
    return Path(__file__).resolve().parent.parent


def pyproject_digest(pyproject: str | Path | None = None) -> str:
    """SHA-256 of what the lock is made from: pyproject's Python range, dependencies and dev extra."""
    project = tomllib.loads(Path(pyproject or _root() / "pyproject.toml").read_text())["project"]
    what = {"python": project["requires-python"], "dependencies": sorted(project["dependencies"]),
            "dev": sorted(project["optional-dependencies"]["dev"])}
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()


def lock_digest(lock: str | Path | None = None) -> str | None:
    """SHA-256 of the lock file (None when the checkout has none, e.g. an installed copy)."""
    path = Path(lock or _root() / LOCK)
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def installed_from(prefix: str | Path | None = None) -> str | None:
    """The lock digest scripts/setup.sh installed into this environment, "resolved", or None."""
    try:
        return (Path(prefix or sys.prefix) / STAMP).read_text().strip() or None
    except OSError:
        return None


def summary() -> dict:
    """The provenance fields: the lock's digest, and whether this environment was installed from that lock."""
    digest, stamp = lock_digest(), installed_from()
    if stamp is None:
        how = "not installed by scripts/setup.sh"
    elif stamp == "resolved":
        how = "resolved from pyproject.toml's ranges, not installed from the lock"
    elif stamp == digest:
        how = "installed from this lock"
    else:
        how = f"installed from another lock (sha256 {stamp[:12]}), not this one"
    return {"lock_sha256": digest, "environment": how}


if __name__ == "__main__":  # scripts/lock.sh: python3 cwl_lib/environment.py pyproject-digest
    if sys.argv[1:] == ["pyproject-digest"]:
        print(pyproject_digest())
    elif sys.argv[1:] == ["lock-digest"]:
        print(lock_digest())
    else:
        sys.exit("usage: environment.py pyproject-digest | lock-digest")
