"""The executor's driver on CPU: failures retried once then recorded, fatal errors at once, two drivers on
one store, a driver killed mid-grid and resumed (the serial backend; tests/test_ray_executor.py runs Ray)."""
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import fake_study
import pytest

from cwl_lib import executor
from cwl_lib.data import MissingDataError
from cwl_lib.records import Store
from cwl_lib.studies import Context

HERE = Path(__file__).resolve().parent


def grid(log, n=4, special=None):
    """``n`` runs; ``special`` maps a run's index to its fields (a failure mode, a sleep)."""
    return [fake_study.Config(i, str(log), **(special or {}).get(i, {})) for i in range(n)]


def test_a_run_that_fails_twice_is_recorded_with_its_error_and_the_grid_goes_on(tmp_path, capsys):
    configs = grid(tmp_path / "log", special={2: {"fail": "always"}})
    store = Store(tmp_path / "store")
    out = executor.run(fake_study, configs, store, Context("cpu"), progress=False)
    assert [r["value"] for r in out] == [0, 1, 9]  # the failed cell is left out, the others are in order
    calls = fake_study.calls(tmp_path / "log")
    assert calls.count(fake_study.key(configs[2])) == 2  # tried once more, then given up
    (failure,) = store.failures()
    assert failure["key"] == fake_study.key(configs[2]) and failure["attempts"] == 2
    assert failure["error"] == "ValueError: run 2 cannot work" and "Traceback" in failure["traceback"]
    printed = capsys.readouterr().out
    assert "3 of 4 runs recorded" in printed and "1 failed" in printed and "run 2 cannot work" in printed


def test_a_record_the_study_calls_outdated_is_moved_aside_and_redone(tmp_path, monkeypatch):
    store = Store(tmp_path / "store")
    configs = grid(tmp_path / "log", n=3)
    executor.run(fake_study, configs, store, Context("cpu"), progress=False)
    stale = fake_study.key(configs[1])
    monkeypatch.setattr(fake_study, "outdated", lambda r: "it lacks a column" if r["key"] == stale else None,
                        raising=False)
    with pytest.warns(Warning, match="it lacks a column"):
        executor.run(fake_study, configs, store, Context("cpu"), progress=False)
    calls = fake_study.calls(tmp_path / "log")
    assert calls.count(stale) == 2 and calls.count(fake_study.key(configs[0])) == 1  # only the outdated one redone
    assert (store.folder / "superseded" / f"{stale}.json").is_file() and store.has(stale)


def test_a_run_that_fails_once_is_retried_and_recorded(tmp_path):
    store = Store(tmp_path / "store")
    configs = grid(tmp_path / "log", special={1: {"fail": "once"}})
    executor.run(fake_study, configs, store, Context("cpu"), progress=False)
    assert fake_study.calls(tmp_path / "log").count(fake_study.key(configs[1])) == 2
    assert store.get(fake_study.key(configs[1]))["value"] == 1 and not store.failures()


def test_a_success_clears_the_failure_of_its_key(tmp_path):
    store = Store(tmp_path / "store")
    config = grid(tmp_path / "log", n=1)[0]
    store.fail(fake_study.key(config), "fake", config, "MemoryError: out", "Traceback ...", 2)
    assert len(store.failures()) == 1
    store.write(fake_study.run_one(config, Context("cpu")))
    assert store.failures() == [] and not (store.folder / "failed" / f"{fake_study.key(config)}.json").exists()


def test_a_failed_run_is_tried_again_by_the_next_run_of_the_grid(tmp_path):
    store = Store(tmp_path / "store")
    configs = grid(tmp_path / "log", special={0: {"fail": "always"}})
    executor.run(fake_study, configs, store, Context("cpu"), progress=False)
    executor.run(fake_study, configs, store, Context("cpu"), progress=False)
    key = fake_study.key(configs[0])
    assert fake_study.calls(tmp_path / "log").count(key) == 4  # two attempts per run of the grid
    assert [f["key"] for f in store.failures()] == [key]


def test_a_broken_setting_stops_the_grid_with_its_first_error(tmp_path):
    configs = grid(tmp_path / "log", n=6, special={i: {"fail": "always"} for i in range(6)})
    with pytest.raises(executor.GridFailed, match="first 3 runs all failed twice.*run 0 cannot work"):
        executor.run(fake_study, configs, Store(tmp_path / "store"), Context("cpu"), progress=False)
    assert len(fake_study.calls(tmp_path / "log")) == 6  # three runs, two attempts each, then stop


def test_missing_data_stops_at_once_with_its_own_message(tmp_path):
    configs = grid(tmp_path / "log", special={0: {"fail": "fatal"}})
    with pytest.raises(MissingDataError, match="cwl fetch"):
        executor.run(fake_study, configs, Store(tmp_path / "store"), Context("cpu"), progress=False)
    assert len(fake_study.calls(tmp_path / "log")) == 1


def test_a_key_another_process_holds_is_waited_for_and_not_run_again(tmp_path):
    store = Store(tmp_path / "store")
    configs = grid(tmp_path / "log", n=3)
    held = store.claim(fake_study.key(configs[1]))
    assert held is not None and store.claim(fake_study.key(configs[1])) is None  # flock is per open file

    def finish_it():  # the other driver writes its record, then lets go
        store.write(fake_study.run_one(configs[1], Context("cpu")))
        held.release()

    import threading
    timer = threading.Timer(0.5, finish_it)
    timer.start()
    out = executor.run(fake_study, configs, store, Context("cpu"), progress=False)
    timer.join()
    assert [r["value"] for r in out] == [0, 1, 4]
    assert sorted(fake_study.calls(tmp_path / "log")) == sorted(fake_study.key(c) for c in configs)  # each once


def _driver(store, log, n, sleep, workers=1, barrier=None):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    args = [str(store), str(log), str(n), str(sleep), str(workers)] + ([str(barrier)] if barrier else [])
    return subprocess.Popen([sys.executable, str(HERE / "fake_driver.py"), *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.parametrize("workers", [1, 2], ids=["serial", "ray"])
def test_two_drivers_on_one_store_run_every_key_once(tmp_path, workers):
    store, log, barrier = tmp_path / "store", tmp_path / "log", tmp_path / "barrier"
    barrier.mkdir()
    a, b = _driver(store, log, 8, 0.3, workers, barrier), _driver(store, log, 8, 0.3, workers, barrier)
    deadline = time.time() + 120
    while len(list(barrier.glob("ready-*"))) < 2 and time.time() < deadline:
        assert a.poll() is None and b.poll() is None, (a.stderr.read() if a.poll() is not None else b.stderr.read())
        time.sleep(0.05)
    (barrier / "go").touch()  # both imported: they start their grids together
    for p in (a, b):
        assert p.wait(timeout=180) == 0, p.stderr.read().decode()
    calls = fake_study.calls(log)
    assert sorted(calls) == sorted(set(calls)) and len(calls) == 8  # no key run twice, none skipped
    assert len(Store(store).records()) == 8
    outputs = [p.stdout.read().decode() for p in (a, b)]
    assert sum(int(re.search(r"(\d+) run now", o)[1]) for o in outputs) == 8
    assert all("run by another driver" in o for o in outputs)  # each saw the other's work


@pytest.mark.parametrize("workers", [1, 2], ids=["serial", "ray"])
def test_a_driver_killed_mid_grid_resumes_without_redoing_a_finished_run(tmp_path, workers):
    store, log = tmp_path / "store", tmp_path / "log"
    first = _driver(store, log, 6, 0.4, workers)
    deadline = time.time() + 120
    while len(list(store.glob("*.json"))) < 2 and time.time() < deadline:
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait()
    finished = {p.stem for p in store.glob("*.json")}
    assert 2 <= len(finished) < 6
    before = len(fake_study.calls(log))
    second = _driver(store, log, 6, 0.4, workers)  # the killed driver's claims went with it
    assert second.wait(timeout=120) == 0, second.stderr.read().decode()
    rerun = fake_study.calls(log)[before:]
    assert not finished & set(rerun)
    assert len(Store(store).records()) == 6 and not Store(store).failures()


def test_a_resumed_grid_whose_first_runs_fail_is_not_taken_for_a_broken_setting(tmp_path):
    store = Store(tmp_path / "store")
    special = {i: {"fail": "always"} for i in range(3)}
    configs = grid(tmp_path / "log", n=6, special=special)
    for c in configs[3:]:  # recorded by an earlier run of the grid
        store.write(fake_study.run_one(c, Context("cpu")))
    out = executor.run(fake_study, configs, store, Context("cpu"), progress=False)
    assert [r["value"] for r in out] == [9, 16, 25] and len(store.failures()) == 3


def test_a_run_that_failed_twice_in_another_driver_is_not_run_again(tmp_path, capsys):
    store = Store(tmp_path / "store")
    configs = grid(tmp_path / "log", n=2)
    key = fake_study.key(configs[1])
    held = store.claim(key)

    def fail_there():  # the other driver gives up on the run, then lets go
        store.fail(key, "fake", configs[1], "ValueError: broken over there", "...", 2)
        held.release()

    import threading
    timer = threading.Timer(0.5, fail_there)
    timer.start()
    out = executor.run(fake_study, configs, store, Context("cpu"), progress=False)
    timer.join()
    assert [r["value"] for r in out] == [0]
    assert fake_study.calls(tmp_path / "log") == [fake_study.key(configs[0])]
    assert "broken over there (in another driver)" in capsys.readouterr().out


def test_an_interrupted_grid_lets_go_of_its_keys_so_this_process_can_rerun_it(tmp_path):
    store = Store(tmp_path / "store")
    configs = grid(tmp_path / "log", n=3)

    calls = []

    def interrupt(config, context):
        calls.append(config)
        raise KeyboardInterrupt

    study = type(fake_study)("interrupting")
    study.__dict__.update({k: getattr(fake_study, k) for k in ("NAME", "key", "order")}, run_one=interrupt)
    with pytest.raises(KeyboardInterrupt):
        executor.run(study, configs, store, Context("cpu"), progress=False)
    claim = store.claim(fake_study.key(configs[0]))  # would be None (held) without the release
    assert claim is not None
    claim.release()
    out = executor.run(fake_study, configs, store, Context("cpu"), progress=False)
    assert [r["value"] for r in out] == [0, 1, 4]
