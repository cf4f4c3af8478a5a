"""One record store for every study: a run's record is a JSON file named by the key of its config.

:func:`key` is the one key of the project: a hash of the study's name and the run's whole configuration.
A :class:`Store` is a folder of records; it knows keys and records, never a study's config type.

* ``<key>.json``: the record (the config, the results, :func:`provenance`), written atomically, so an
  interrupted grid never leaves half a record and a rerun resumes where it stopped;
* ``<key>.<name>.pt``: tensors a record comes with (learned sigmas, a pruned network), saved with
  ``torch.save`` and read back with ``weights_only=True``;
* ``shared/``: what several runs of a study share (a transferred network that every threshold prunes);
* ``rejected/``: a damaged or foreign file found where a record should be, moved aside (never deleted)
  and named in a warning; its run is done again;
* ``superseded/``: records written by an older version of the record format, moved aside and named
  in a warning the first time the store is opened; their runs are done again, never mixed with new ones;
* ``failed/<key>.json``: a run that raised twice (its error, its traceback, the attempts); it is not a
  record, so tables leave its cell out and the next run of the grid tries it again;
* ``claims/<key>.lock``: held (``flock``) by the driver running that key, so two drivers on one store never
  run a key twice; the kernel releases it when the driver ends, even when it is killed.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import subprocess
import time
from dataclasses import asdict, is_dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch

from . import environment
from .notices import notice
from .paths import Lock, atomic_write, lock

#: Version 2: one key for every study (study name and config); version 1 records used three key rules.
RECORD_VERSION = 2
ATTACHMENTS = "attachments"  # the record field that carries tensors to save beside it


def config_dict(config) -> dict:
    """A config as the JSON its record holds (tuples become lists)."""
    body = asdict(config) if is_dataclass(config) else dict(config)
    return json.loads(json.dumps(body))


def key(study: str, config) -> str:
    """The key of one run: a hash of its study's name and its whole configuration."""
    text = json.dumps({"study": study, "config": config_dict(config)}, sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def code_version() -> str:
    """``git describe --always --dirty`` of the checkout, else the installed package version."""
    here = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=here, capture_output=True,
                             text=True, timeout=10)
        if out.returncode == 0 and out.stdout.strip():
            return "git:" + out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        return "cwl_lib " + version("cwl_lib")
    except PackageNotFoundError:
        return "unknown"


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"cpu:{platform.processor() or platform.machine()} x{torch.get_num_threads()} threads"


def timestamp() -> str:
    """Now, in UTC, as records write it (ISO 8601 to the second: such strings sort as times do)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@functools.cache  # once per process: git is slow next to a few-shot run
def _code_and_environment() -> tuple[str, dict]:
    return code_version(), environment.summary()


def provenance(device: torch.device) -> dict:
    """Where, when, with which code and which locked set of packages a record was made: the fields every
    record of the project holds (``lock_sha256``: the digest of ``requirements.lock``; ``environment``:
    whether this environment was installed from it, :mod:`cwl_lib.environment`)."""
    code, env = _code_and_environment()
    return {"device": device_name(device), "code_version": code, "torch": torch.__version__, **env,
            "finished": timestamp()}


def new_record(study: str, config, device: torch.device, **results) -> dict:
    """A record: its key, study, format version, the whole config, the results and their provenance."""
    return {"version": RECORD_VERSION, "study": study, "key": key(study, config), "config": config_dict(config),
            **results, **provenance(device)}


class Store:
    """A folder of records (see the module docstring); ``Store(folder)`` creates nothing until a write."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self._swept = False

    @property
    def shared(self) -> Path:
        return self.folder / "shared"

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.json"

    def attachment_path(self, key: str, name: str) -> Path:
        return self.folder / f"{key}.{name}.pt"

    def has(self, key: str) -> bool:
        """Whether a valid record of ``key`` is stored (a damaged one is moved aside first)."""
        return self.get(key) is not None

    def get(self, key: str) -> dict | None:
        self._sweep()
        path = self.path(key)
        if not path.is_file():
            return None
        record = self._read(path)
        if record is not None and record.get("key") != key:
            self._reject(path, f"it holds the record of {record.get('key')!r}, not of {key!r}")
            return None
        return record

    def supersede(self, key: str, why: str) -> None:
        """Move the record of ``key`` to ``superseded/`` (named, with ``why``), so that its run is done again."""
        if self.path(key).is_file():
            self._move(self.path(key), "superseded", why)

    def write(self, record: dict) -> None:
        """Store a record; its ``attachments`` (name -> tensors) are saved beside it, first."""
        record = dict(record)
        attachments = record.pop(ATTACHMENTS, None) or {}
        for name, value in attachments.items():
            atomic_write(self.attachment_path(record["key"], name), lambda p, v=value: torch.save(v, p))
        record[ATTACHMENTS] = sorted(attachments)
        _write_json(self.path(record["key"]), record)
        (self.folder / "failed" / f"{record['key']}.json").unlink(missing_ok=True)

    # ----------------------------------------------------------------------- claims and failures
    def claim(self, key: str, *, wait: bool = False) -> Lock | None:
        """Hold ``key`` for this process (an exclusive ``flock`` on ``claims/<key>.lock``), or None when
        another process holds it; ``wait`` blocks until it is free. Release with :meth:`Lock.release`."""
        return lock(self.folder / "claims" / f"{key}.lock", wait=wait)

    def fail(self, key: str, study: str, config, error: str, trace: str, attempts: int) -> Path:
        """Record that the run of ``key`` failed ``attempts`` times (``failed/<key>.json``); not a record."""
        body = {"key": key, "study": study, "config": config_dict(config), "error": error, "traceback": trace,
                "attempts": attempts, "finished": timestamp()}
        return _write_json(self.folder / "failed" / f"{key}.json", body)

    def failure(self, key: str) -> dict | None:
        """The failure recorded for ``key`` (``failed/<key>.json``), if any."""
        try:
            return json.loads((self.folder / "failed" / f"{key}.json").read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return None

    def failures(self) -> list[dict]:
        """The failed runs not since recorded (a later success removes its failure)."""
        folder = self.folder / "failed"
        found = (self.failure(path.stem) for path in sorted(folder.glob("*.json"))) if folder.is_dir() else ()
        return [body for body in found if body is not None and not self.path(body.get("key", "")).is_file()]

    def attachment(self, key: str, name: str):
        path = self.attachment_path(key, name)
        return torch.load(path, map_location="cpu", weights_only=True) if path.is_file() else None

    def records(self) -> list[dict]:
        """Every valid record, by file name; damaged and foreign files are moved aside and named."""
        self._sweep()
        found = (self._read(path) for path in sorted(self.folder.glob("*.json")))
        return [record for record in found if record is not None]

    # ----------------------------------------------------------------------- damaged and old files
    def _read(self, path: Path) -> dict | None:
        try:
            record = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            self._reject(path, f"it is not valid JSON ({err})")
            return None
        if not isinstance(record, dict) or not {"key", "config", "version"} <= set(record):
            self._reject(path, "it is not a record (no key, config and version)")
            return None
        if record["version"] != RECORD_VERSION:
            self._move(path, "superseded", f"it was written in record format {record['version']}, "
                       f"this code writes {RECORD_VERSION}")
            return None
        why = _foreign(record, path)
        if why:
            self._reject(path, why)
            return None
        return record

    def _reject(self, path: Path, why: str) -> None:
        self._move(path, "rejected", why)

    def _move(self, path: Path, where: str, why: str) -> None:
        aside = self.folder / where
        aside.mkdir(parents=True, exist_ok=True)
        target = aside / path.name
        n = 1
        while target.exists():
            target = aside / f"{path.stem}.{n}{path.suffix}"
            n += 1
        os.replace(path, target)
        for extra in self.folder.glob(f"{path.stem}.*.pt"):
            os.replace(extra, aside / extra.name)
        notice(f"results store {self.folder}: {path.name} was moved to {target} because {why}; "
               "its run will be done again", stacklevel=3)

    def _sweep(self) -> None:
        """Once per store object, every file that stands where a record would: an older format's record is
        moved to ``superseded/``, a damaged or foreign one to ``rejected/`` (each named), so that neither a
        table nor a later run meets them, whichever keys its grid has."""
        if self._swept or not self.folder.is_dir():
            return
        self._swept = True
        for path in sorted(self.folder.glob("*.json")):
            self._read(path)


def _foreign(record: dict, path: Path) -> str | None:
    """Why a record-shaped file is not the record of its file name (its key, study and config disagree)."""
    study, config = record.get("study"), record.get("config")
    if not isinstance(study, str) or not isinstance(config, dict) or not config:
        return "it names no study and configuration"
    if record["key"] != path.stem:
        return f"it holds the record of {record['key']!r}, not of {path.stem!r}"
    if key(study, config) != record["key"]:
        return "its key is not that of its study and configuration (edited, or written by other code)"
    return None


def _write_json(path: Path, body: dict) -> Path:
    return atomic_write(path, lambda p: p.write_text(json.dumps(body, indent=1, sort_keys=True)))
