"""Run a study's configurations into a record store: the one loop every notebook goes through.

A study gives ``key(config)``, ``order(config)`` and ``run_one(config, context) -> record``. Only this driver
writes the store, each record as it comes back, so a stopped grid resumes where it stopped. Runs go in this
process, or on Ray actors (:mod:`cwl_lib.ray_executor`) when ``workers > 1`` or a Ray address is given.
Before a run starts the driver claims its key (``flock``), so two drivers on one store never run a key twice.
A failed run is tried once more, then written to ``failed/<key>.json`` and left out of the tables; when the
first :data:`ABORT_AFTER` runs all fail, the setting is broken and the grid stops.
"""
from __future__ import annotations

import os
import socket
import sys
import time
import traceback
from collections import deque

from tqdm import tqdm

from .data import MissingDataError
from .data.classification import CorruptImageError
from .models import WeightsUnavailableError
from .notices import notice
from .config import EXECUTOR, ParameterError
from .records import Store, timestamp
from .studies.context import Context

#: Seconds a Ray address has to answer before the grid is refused (Ray itself retries for ever).
RAY_CONNECT_TIMEOUT = float(os.environ.get("CWL_RAY_CONNECT_TIMEOUT", "30"))
# An HTTP/2 client preface and an empty SETTINGS frame: a Ray head's GCS (and a Ray client server) speaks
# gRPC over HTTP/2, and answers them with a SETTINGS frame of its own.
_HTTP2_HELLO = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
ATTEMPTS = 2  # a run is tried once more after a failure, then recorded as failed
ABORT_AFTER = 3  # failed runs, none succeeded yet: the setting is broken, stop
#: Errors of the setting, not of a run (absent or damaged data or weights, a bad parameter): they stop the
#: grid at once, unchanged, with the message that says what to do.
FATAL = (MissingDataError, CorruptImageError, WeightsUnavailableError, ParameterError)


class GridFailed(RuntimeError):
    """The first runs all failed twice: the setting, not a run, is broken."""


def check_ray_address(address: str, timeout: float = RAY_CONNECT_TIMEOUT) -> None:
    """Refuse (:class:`ParameterError`) an address where no Ray cluster answers within ``timeout`` seconds."""
    if not address or address in ("auto", "local"):
        return
    where = address.split("://", 1)[1] if "://" in address else address
    host, colon, port = where.rstrip("/").rpartition(":")
    if not colon or not host or not port.isdigit():
        raise ParameterError(f"Ray address {address!r}: expected HOST:PORT (the head's GCS, e.g. 10.0.0.1:6379), "
                             "ray://HOST:PORT or auto")
    fix = "start one there (`ray start --head --port PORT`), or pass the address the head printed"
    tls = os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true")  # then the first bytes are TLS's, not HTTP/2's
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout) as conn:
            if tls:
                return
            conn.sendall(_HTTP2_HELLO)  # create_connection set the timeout for these too
            reply = conn.recv(9)
    except TimeoutError:
        raise ParameterError(f"no Ray cluster answers at {address}: nothing replied within {timeout:g} s; {fix}") from None
    except OSError as err:
        raise ParameterError(f"no Ray cluster answers at {address} ({err.strerror or err}); {fix}") from None
    if len(reply) < 4 or reply[3] != 4:  # the frame's type byte: 4 is SETTINGS
        raise ParameterError(f"{address} answers, but not as a Ray cluster (no gRPC there); {fix}")


def options(params: dict) -> dict:
    """The executor's options among a notebook's parameters (:data:`cwl_lib.config.EXECUTOR`)."""
    return {k: params[k] for k in EXECUTOR if k in params}


def missing(study, configs: list, store: Store) -> list:
    """The configs whose record is not in ``store``, in the study's order, without duplicates; a record the
    study's optional ``outdated(record)`` gives a reason for is moved aside and redone."""
    outdated = getattr(study, "outdated", lambda record: None)
    todo = {}
    for c in configs:
        key = study.key(c)
        record = store.get(key)
        why = outdated(record) if record is not None else None
        if why:
            store.supersede(key, why)
        if record is None or why:
            todo[key] = c
    return sorted(todo.values(), key=study.order)


def error_text(err: BaseException) -> tuple[str, str]:
    """One line naming the error, and its traceback (a Ray error's own text holds the worker's)."""
    shown = err.cause if isinstance(getattr(err, "cause", None), BaseException) else err
    lines = str(shown).strip().splitlines()
    return f"{type(shown).__name__}: {lines[-1] if lines else ''}"[:300], "".join(traceback.format_exception(err))


class Serial:
    """Runs in this process, one at a time."""

    slots = 1

    def __init__(self, study, context: Context):
        self.study, self.context, self.queue = study, context, deque()
        self.submit = self.queue.append

    @property
    def pending(self) -> int:
        return len(self.queue)

    def next_result(self):
        config = self.queue.popleft()
        try:
            return config, self.study.run_one(config, self.context), None
        except Exception as err:  # noqa: BLE001 - any run error is recorded; KeyboardInterrupt still stops
            return config, None, err

    def close(self) -> None:
        pass


def backend_for(study, context: Context, workers: int, ray_address: str, gpus_per_run: float, through_ray=None):
    if not (workers > 1 or bool(ray_address) if through_ray is None else through_ray):
        return Serial(study, context)
    # Ray's crash handler would print a stack dump when papermill stops the kernel with SIGTERM
    os.environ.setdefault("RAY_DISABLE_FAILURE_SIGNAL_HANDLER", "1")
    from .ray_executor import RayBackend  # Ray is imported only when a grid runs through it
    return RayBackend(study, context, workers=workers, address=ray_address, gpus_per_run=gpus_per_run)


def run(study, configs: list, store: Store, context: Context, *, progress: bool = True,
        describe=str, out=None, workers: int = 1, ray_address: str = "", gpus_per_run: float = 1.0,
        through_ray: bool | None = None) -> list[dict]:
    """Run every config not yet recorded; return the records of ``configs`` that exist, in their order.

    ``workers`` > 1 or a ``ray_address`` runs them on Ray workers (on a cluster, 1 means as many as it holds);
    ``through_ray`` forces (True) or forbids (False) Ray. A summary line ends it, naming each failed run.
    """
    out = out or sys.stdout
    if context.shared is None:
        context.shared = store.shared
    todo = missing(study, configs, store)
    keys = dict.fromkeys(map(study.key, configs))
    start = time.perf_counter()
    backend = backend_for(study, context, workers, ray_address, gpus_per_run, through_ray) if todo else None
    counts = {"run": 0, "failed": 0, "other": 0}
    failures: list[tuple[object, str]] = []
    bar = tqdm(total=len(todo), desc=f"{study.NAME} runs", disable=not progress, file=sys.stderr)
    try:
        if todo:
            _drive(study, todo, store, backend, bar, counts, failures, describe, recorded=len(todo) < len(keys))
    finally:
        bar.close()
        if backend is not None:
            backend.close()
    got = {k: store.get(k) for k in keys}
    held = sum(r is not None for r in got.values())
    print(f"{study.NAME}: {held} of {len(keys)} runs recorded, {counts['run']} run now in "
          f"{time.perf_counter() - start:.0f} s, {len(keys) - len(todo)} already recorded, "
          + (f"{counts['other']} run by another driver, " if counts["other"] else "") + f"{counts['failed']} failed",
          file=out)
    for config, error in failures:
        print(f"  failed twice, left out of the tables (failed/{study.key(config)}.json; rerun to retry): "
              f"{describe(config)}: {error}", file=out)
        notice(f"{study.NAME}: {describe(config)} failed twice and is left out of the tables ({error}); its error "
               f"is in {store.folder / 'failed' / study.key(config)}.json, and a rerun tries it again", warn=False)
    return [r for r in map(got.get, map(study.key, configs)) if r is not None]


def _drive(study, todo: list, store: Store, backend, bar, counts: dict, failures: list, describe,
           recorded: bool) -> None:
    queue, deferred, attempts, claims = deque(todo), [], {}, {}
    succeeded = recorded  # runs of this grid already recorded: the setting works, a failure is the run's
    began = timestamp()

    def status():
        bar.set_postfix_str(f"done {counts['run']}, failed {counts['failed']}, left {len(todo) - bar.n}"
                            + (f", {len(deferred)} held by another driver" if deferred else ""))

    def done(key, outcome: str):  # a key settled: recorded here or by another driver, or failed twice
        if key in claims:
            claims.pop(key).release()
        counts[outcome] += 1
        bar.update(1)
        status()

    try:
        while queue or backend.pending or deferred:
            while queue and backend.pending < backend.slots:
                config = queue.popleft()
                key = study.key(config)
                claim = store.claim(key)
                if claim is None:  # another driver runs it now
                    deferred.append(config)
                    status()
                    continue
                claims[key] = claim  # before anything else can raise: the finally below releases it
                if store.has(key):  # another driver finished it since this one looked
                    done(key, "other")
                else:
                    backend.submit(config)
            if not backend.pending:
                if deferred:  # wait for the other driver, then run what it left undone
                    config = deferred.pop(0)
                    key = study.key(config)
                    store.claim(key, wait=True).release()
                    failed = store.failure(key)
                    if store.has(key):
                        done(key, "other")
                    elif failed is not None and failed["finished"] >= began:  # it failed twice over there
                        failures.append((config, failed["error"] + " (in another driver)"))
                        done(key, "failed")
                    else:
                        queue.append(config)
                continue
            config, record, err = backend.next_result()
            key = study.key(config)
            if err is None:
                store.write(record)
                succeeded = True
                done(key, "run")
                continue
            cause = getattr(err, "cause", None)
            if isinstance(cause, FATAL):  # from a Ray worker: its own message, not Ray's wrapper
                raise cause from None
            if isinstance(err, FATAL):
                raise err
            attempts[key] = attempts.get(key, 0) + 1
            line, trace = error_text(err)
            if attempts[key] < ATTEMPTS:
                print(f"{study.NAME}: {describe(config)} failed ({line}); trying it once more", file=sys.stderr)
                backend.submit(config)
                continue
            store.fail(key, study.NAME, config, line, trace, attempts[key])
            failures.append((config, line))
            done(key, "failed")
            if not succeeded and counts["failed"] >= ABORT_AFTER:
                raise GridFailed(f"{study.NAME}: the first {counts['failed']} runs all failed twice, none succeeded; "
                                 f"the first error: {failures[0][1]}\n(full traceback in "
                                 f"{store.folder / 'failed' / (study.key(failures[0][0]) + '.json')})") from err
    finally:  # an error or an interrupt: let go of the keys in flight, so a rerun (even in this kernel) can take them
        for claim in claims.values():
            claim.release()
