"""One record store for every study: a run's record is ``<key>.json``, :func:`key` hashing the study's name and
the run's whole configuration. Written atomically, so an interrupted grid resumes where it stopped. Beside it:

* ``<key>.<name>.pt``: the record's tensors (read back with ``weights_only=True``); ``shared/``: what several
  runs share;
* ``rejected/`` and ``superseded/``: damaged or foreign files, and older formats' records, moved aside (never
  deleted) and named in a warning; their runs are done again;
* ``failed/<key>.json``: a run that raised twice (not a record: the next run of the grid tries it again);
* ``claims/<key>.lock``: held (``flock``) by the driver running that key; the kernel releases it when it dies.
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


@functools.cache  # once per process: git is slow next to a few-shot run
def _code_and_environment() -> tuple[str, dict]:
    """``git describe --always --dirty`` of the checkout (else the package's version), and the environment."""
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=Path(__file__).resolve().parent.parent,
                             capture_output=True, text=True, timeout=10)
        code = "git:" + out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else None
    except (OSError, subprocess.SubprocessError):
        code = None
    if code is None:
        try:
            code = "cwl_lib " + version("cwl_lib")
        except PackageNotFoundError:
            code = "unknown"
    return code, environment.summary()


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"cpu:{platform.processor() or platform.machine()} x{torch.get_num_threads()} threads"


def timestamp() -> str:
    """Now, in UTC, as records write it (ISO 8601 to the second: such strings sort as times do)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def provenance(device: torch.device) -> dict:
    """Where, when, with which code and locked packages (:mod:`cwl_lib.environment`) a record was made."""
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
        return self.get(key) is not None

    def get(self, key: str) -> dict | None:
        self._sweep()
        return self._read(self.path(key)) if self.path(key).is_file() else None  # _read checks the key

    def supersede(self, key: str, why: str) -> None:
        """Move the record of ``key`` to ``superseded/``, so that its run is done again."""
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

    def claim(self, key: str, *, wait: bool = False) -> Lock | None:
        """Hold ``key`` for this process (``flock``), or None when another holds it; ``wait`` blocks until free."""
        return lock(self.folder / "claims" / f"{key}.lock", wait=wait)

    def fail(self, key: str, study: str, config, error: str, trace: str, attempts: int) -> Path:
        body = {"key": key, "study": study, "config": config_dict(config), "error": error, "traceback": trace,
                "attempts": attempts, "finished": timestamp()}
        return _write_json(self.folder / "failed" / f"{key}.json", body)

    def failure(self, key: str) -> dict | None:
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

    def _read(self, path: Path) -> dict | None:
        """The record in ``path``, or None with the file moved aside, named with the reason."""
        try:
            record = json.loads(path.read_text())
            where, why = _unfit(record, path)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            record, where, why = None, "rejected", f"it is not valid JSON ({err})"
        if why:
            self._move(path, where, why)
            return None
        return record

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
        """Once per store object, move aside every old, damaged or foreign file standing where a record would."""
        if self._swept or not self.folder.is_dir():
            return
        self._swept = True
        for path in sorted(self.folder.glob("*.json")):
            self._read(path)


def _unfit(record, path: Path) -> tuple[str, str | None]:
    """Where a file that is not the record of its file name is moved, and why (None: it is that record)."""
    if not isinstance(record, dict) or not {"key", "config", "version"} <= set(record):
        return "rejected", "it is not a record (no key, config and version)"
    if record["version"] != RECORD_VERSION:
        return "superseded", f"it was written in record format {record['version']}, this code writes {RECORD_VERSION}"
    study, config = record.get("study"), record.get("config")
    if not isinstance(study, str) or not isinstance(config, dict) or not config:
        return "rejected", "it names no study and configuration"
    if record["key"] != path.stem:
        return "rejected", f"it holds the record of {record['key']!r}, not of {path.stem!r}"
    if key(study, config) != record["key"]:
        return "rejected", "its key is not that of its study and configuration (edited, or written by other code)"
    return "rejected", None


def _write_json(path: Path, body: dict) -> Path:
    return atomic_write(path, lambda p: p.write_text(json.dumps(body, indent=1, sort_keys=True)))
