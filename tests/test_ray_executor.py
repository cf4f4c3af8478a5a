"""The Ray backend on this CPU, two local workers: the smoke grids of 03, 04 and 05 give the serial
executor's records, failures and dead workers are retried once then recorded, and no run is lost."""
import os
from pathlib import Path

import fake_study
import pytest
import ray
import torch

from cwl_lib import executor, ray_executor, reproduce
from cwl_lib.data import MissingDataError
from cwl_lib.records import Store
from cwl_lib.studies import BY_NOTEBOOK, Context

HERE = Path(__file__).resolve().parent
# what differs between two runs of one config by design: where, when, how long
PROVENANCE = {"device", "finished", "code_version", "torch", "seconds", "latency_ratio"}


@pytest.fixture(scope="module")
def local_ray():
    old = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(HERE), old])  # workers import the fake study from here
    ray_executor.start(2)
    yield
    ray.shutdown()
    os.environ["PYTHONPATH"] = old


def _results(record: dict) -> dict:
    out = {k: v for k, v in record.items() if k not in PROVENANCE}
    if isinstance(out.get("row"), dict):
        out["row"] = {k: v for k, v in out["row"].items() if k not in PROVENANCE}
    return out


def _same_tensors(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same_tensors(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same_tensors(x, y) for x, y in zip(a, b))
    return a == b


@pytest.mark.slow
@pytest.mark.parametrize("notebook", ["03_classification", "04_retrieval", "05_pruning"])
def test_two_ray_workers_give_the_one_thread_serial_records_to_the_last_bit(notebook, tmp_path, local_ray):
    params = reproduce.plan("smoke", [notebook], {})[notebook]
    study = BY_NOTEBOOK[notebook]
    configs = study.configs(params)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each Ray task runs: the summation order of a reduction depends on it
    try:
        serial = executor.run(study, configs, Store(tmp_path / "serial"), Context("cpu"), progress=False)
    finally:
        torch.set_num_threads(threads)
    parallel = executor.run(study, configs, Store(tmp_path / "ray"), Context("cpu"), progress=False, workers=2)
    assert [r["key"] for r in parallel] == [r["key"] for r in serial] and len(serial) == len(set(map(study.key, configs)))
    assert {r["device"] for r in parallel} == {r["device"] for r in serial}  # both one thread on this CPU
    for a, b in zip(serial, parallel):
        assert _results(a) == _results(b), a["key"]
        for name in a["attachments"]:
            assert _same_tensors(Store(tmp_path / "serial").attachment(a["key"], name),
                                 Store(tmp_path / "ray").attachment(b["key"], name)), (a["key"], name)


def test_failures_and_a_dead_worker_are_retried_once_then_recorded(tmp_path, local_ray, capsys):
    log = tmp_path / "log"
    special = {1: {"fail": "always"}, 2: {"fail": "once"}, 3: {"fail": "crash"}}
    configs = [fake_study.Config(i, str(log), **special.get(i, {})) for i in range(6)]
    store = Store(tmp_path / "store")
    out = executor.run(fake_study, configs, store, Context("cpu"), progress=False, workers=2)
    assert [r["value"] for r in out] == [0, 4, 16, 25]
    calls = fake_study.calls(log)
    assert {i: calls.count(fake_study.key(configs[i])) for i in range(6)} == {0: 1, 1: 2, 2: 2, 3: 2, 4: 1, 5: 1}
    failed = {f["key"]: f["error"] for f in store.failures()}
    assert failed.keys() == {fake_study.key(configs[1]), fake_study.key(configs[3])}
    assert failed[fake_study.key(configs[1])] == "ValueError: run 1 cannot work"
    assert "died" in failed[fake_study.key(configs[3])].lower() or "crash" in failed[fake_study.key(configs[3])].lower()
    assert len({line.split()[1] for line in log.read_text().splitlines()}) >= 2  # ran in worker processes
    assert str(os.getpid()) not in log.read_text().split()
    assert "4 of 6 runs recorded" in capsys.readouterr().out


def test_a_fatal_error_in_a_worker_stops_the_grid_with_its_own_message(tmp_path, local_ray):
    configs = [fake_study.Config(i, str(tmp_path / "log"), fail="fatal" if i == 0 else "") for i in range(3)]
    with pytest.raises(MissingDataError, match="fetch it with `cwl fetch`") as caught:
        executor.run(fake_study, configs, Store(tmp_path / "store"), Context("cpu"), progress=False, workers=2)
    assert not isinstance(caught.value, ray.exceptions.RayError)  # the message a reader acts on, not Ray's wrapper


def test_a_broken_setting_stops_a_ray_grid_too(tmp_path, local_ray):
    configs = [fake_study.Config(i, str(tmp_path / "log"), fail="always") for i in range(5)]
    with pytest.raises(executor.GridFailed, match="cannot work"):
        executor.run(fake_study, configs, Store(tmp_path / "store"), Context("cpu"), progress=False, workers=2)


def test_auto_asks_the_cluster_and_capacity_never_exceeds_it():
    assert ray_executor.device_for("auto", 4) == "cuda" and ray_executor.device_for("auto", 0) == "cpu"
    assert ray_executor.device_for("cuda:1", 2) == "cuda" and ray_executor.device_for("cpu", 8) == "cpu"
    with pytest.raises(ValueError, match="no GPU"):
        ray_executor.device_for("cuda", 0)
    assert ray_executor.capacity({"CPU": 16, "GPU": 4}, "cuda", 0.25) == 16
    assert ray_executor.capacity({"CPU": 16, "GPU": 4}, "cuda", 1.0) == 4
    assert ray_executor.capacity({"CPU": 6, "GPU": 4}, "cuda", 0.25) == 6  # one CPU per worker too
    assert ray_executor.capacity({"CPU": 2}, "cpu", 1.0) == 2


def _counted_split(name, input_size, data_root):
    """A small split whose every decoding is logged in ``data_root`` (a file), so a test can count them."""
    from cwl_lib.data.classification import ImageSet, Split

    with open(data_root, "a") as log:
        log.write(f"{os.getpid()}\n")
    images = torch.arange(4 * 3 * input_size * input_size, dtype=torch.int64).remainder(251).to(torch.uint8)
    images = images.reshape(4, 3, input_size, input_size)
    part = ImageSet(images, torch.tensor([0, 1, 0, 1]), ["a", "b"])
    return Split(name, part, part)


def test_workers_read_one_decoded_copy_of_a_split_from_the_object_store(tmp_path, local_ray):
    log = tmp_path / "decoded"
    registry = ray.remote(num_cpus=0)(ray_executor.SplitRegistry).remote()
    load = ray_executor.SharedSplits(_counted_split, registry)

    @ray.remote(num_cpus=1)
    def read(loader):
        split = loader("toy", 128, str(log))  # 196 KB: above the size Ray keeps in a process instead of the store
        where = split.train.images.data_ptr()
        for line in Path("/proc/self/maps").read_text().splitlines():  # the mapping that holds the images
            fields = line.split(maxsplit=5)  # address range, permissions, offset, device, inode, path
            low, high = (int(x, 16) for x in fields[0].split("-"))
            if low <= where < high:
                return fields[5] if len(fields) == 6 else "", split.train.images.sum().item()
        return "", split.train.images.sum().item()

    try:
        got = ray.get([read.remote(load) for _ in range(4)])
    finally:
        ray.kill(registry)
    assert len(log.read_text().splitlines()) == 1  # decoded once, by the registry
    assert {total for _, total in got} == {int(_counted_split("toy", 128, os.devnull).train.images.sum())}
    # each worker's images lie in the object store's shared memory, not in a copy of their own
    assert all(mapped.startswith("/dev/shm") for mapped, _ in got), got


def test_a_split_that_cannot_be_decoded_raises_its_own_error_in_the_worker(tmp_path, local_ray):
    registry = ray.remote(num_cpus=0)(ray_executor.SplitRegistry).remote()
    load = ray_executor.SharedSplits(_counted_split, registry)
    try:
        with pytest.raises(FileNotFoundError):
            load("toy", 8, str(tmp_path / "no-such-folder" / "log"))
        assert load("toy", 8, str(tmp_path / "log")).train.images.shape == (4, 3, 8, 8)  # the next caller decodes
    finally:
        ray.kill(registry)


def test_a_running_ray_head_passes_the_address_check_and_the_session_stays_in_the_checkout(local_ray):
    from cwl_lib.paths import project_root

    executor.check_ray_address(ray.get_runtime_context().gcs_address, timeout=10)
    session = Path(ray._private.worker._global_node.get_session_dir_path())
    assert session.is_relative_to(project_root() / "_build" / "ray")


def test_a_checkout_too_deep_for_rays_sockets_gets_a_short_folder_removed_at_exit(tmp_path, monkeypatch):
    monkeypatch.setattr(ray_executor, "project_root", lambda: tmp_path / ("d" * 120))
    folder, remove = ray_executor.temp_dir()
    try:
        assert remove and len(str(folder)) <= ray_executor._SOCKET_ROOM
    finally:
        folder.rmdir()
