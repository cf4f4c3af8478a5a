"""What a hostile but fair new user tries: each gets one line that says what to do, or a safe refusal, and
nothing is left outside the checkout but what was asked for."""
import errno
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from test_fetch import KVASIR, make_zip, small  # noqa: F401  (small: a fixture)
from test_reproduce import _notebook, _tiny_project

from cwl_lib import cli, executor, kernels, notices, records, reproduce
from cwl_lib.data import MissingDataError
from cwl_lib.data.fetch import FetchError, fetch
from cwl_lib.parameters import ParameterError

ROOT = Path(__file__).resolve().parent.parent
NO_GPU = pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for a machine without a GPU")


def _one_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    assert len(lines) == 1, text
    return lines[0]


# ----------------------------------------------------------------------------------------- Ray's address
def test_a_ray_address_where_nothing_listens_is_one_line_before_any_notebook(monkeypatch, capsys):
    monkeypatch.setattr(reproduce, "execute", lambda *a, **k: pytest.fail("a notebook ran"))
    code = cli.main(["reproduce", "--profile", "smoke", "--only", "03", "--no-book", "--address", "127.0.0.1:1"])
    line = _one_line(capsys.readouterr().err)
    assert code == 2 and line.startswith("cwl: no Ray cluster answers at 127.0.0.1:1") and "ray start --head" in line


def _listener(reply: bytes | None):
    """A loopback server that answers each connection with ``reply`` (None: never answers); its port."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    held = []

    def serve():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            held.append(conn)
            if reply is not None:
                conn.sendall(reply)

    threading.Thread(target=serve, daemon=True).start()
    return server, server.getsockname()[1]


@pytest.mark.parametrize("reply, said", [(b"SSH-2.0-OpenSSH_9.6\r\n", "not as a Ray cluster"),
                                         (None, "nothing replied within 0.5 s")])
def test_an_address_that_is_not_a_ray_cluster_is_refused(reply, said):
    server, port = _listener(reply)
    try:
        with pytest.raises(ParameterError, match=said):
            executor.check_ray_address(f"127.0.0.1:{port}", timeout=0.5)
    finally:
        server.close()


def test_a_malformed_ray_address_is_refused():
    with pytest.raises(ParameterError, match="expected HOST:PORT"):
        executor.check_ray_address("headnode")


def test_a_grpc_server_passes_the_address_check():
    """An HTTP/2 server's first frame is SETTINGS (type 4): what a Ray head's GCS sends (tests/test_ray_executor
    checks a real one)."""
    server, port = _listener(bytes([0, 0, 0, 4, 0, 0, 0, 0, 0]))
    try:
        executor.check_ray_address(f"127.0.0.1:{port}", timeout=5)
    finally:
        server.close()


# ----------------------------------------------------------------------------------------- parameters
@pytest.mark.parametrize("argv, said", [
    (["-p", "test_size", "99999999"], "test_size of 03_classification must be at most 10,000"),
    (["-p", "data_root", "/nonexistent"], "data_root of 03_classification must be an existing folder"),
    (["--gpus-per-run", "2"], "gpus_per_run of 03_classification must be a number > 0 and <= 1"),
    (["-p", "device", "tpu"], "device of 03_classification must be auto, cpu, cuda or cuda:N"),
])
def test_parameters_a_run_cannot_honour_are_one_line(monkeypatch, capsys, argv, said):
    monkeypatch.setattr(reproduce, "execute", lambda *a, **k: pytest.fail("a notebook ran"))
    assert cli.main(["reproduce", "--profile", "smoke", "--only", "03", "--no-book", *argv]) == 2
    assert said in _one_line(capsys.readouterr().err)


@NO_GPU
@pytest.mark.parametrize("argv, said", [(["-p", "device", "cuda"], "this machine has no CUDA GPU"),
                                        (["--gpus-per-run", "0.5"], "this machine has no GPU")])
def test_gpu_settings_on_a_machine_without_one_are_one_line(monkeypatch, capsys, argv, said):
    monkeypatch.setattr(reproduce, "execute", lambda *a, **k: pytest.fail("a notebook ran"))
    assert cli.main(["reproduce", "--profile", "smoke", "--only", "03", "--no-book", *argv]) == 2
    assert said in _one_line(capsys.readouterr().err)


def test_a_relative_data_root_means_the_folder_the_user_is_in(tmp_path, monkeypatch):
    (tmp_path / "mine").mkdir()
    monkeypatch.chdir(tmp_path)
    runs = reproduce.plan("smoke", ["03"], {"data_root": "mine"})
    assert runs["03_classification"]["data_root"] == str(tmp_path / "mine")


def test_any_torchvision_backbone_is_named_as_data_not_refused_as_unknown():
    with pytest.raises(MissingDataError, match="weights:densenet121 is missing") as err:
        reproduce.check_data(reproduce.plan("smoke", ["03"], {"archs": "[densenet121]"}))
    assert "unknown" not in str(err.value)


# ----------------------------------------------------------------------------------------- folders
def test_a_results_folder_that_cannot_be_written_is_one_line_before_any_notebook(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(reproduce, "execute", lambda *a, **k: pytest.fail("a notebook ran"))
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    assert cli.main(["reproduce", "--profile", "smoke", "--only", "01", "--no-book",
                     "-p", "results_dir", str(blocker / "results")]) == 1
    line = _one_line(capsys.readouterr().err)
    assert "cannot write the results to" in line and "Not a directory" in line


@pytest.mark.parametrize("code, words", [(errno.EROFS, "Read-only file system"), (errno.ENOSPC, "No space left")])
def test_a_read_only_or_full_disk_is_named(tmp_path, monkeypatch, code, words):
    def refuse(self, data):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(Path, "write_bytes", refuse)
    with pytest.raises(OSError) as err:
        reproduce.writable(tmp_path / "results", "results")
    assert words in str(err.value) and "\n" not in str(err.value)


# ----------------------------------------------------------------------------------------- notebooks
def test_a_failed_notebook_is_one_line_and_a_later_success_removes_its_copy(tmp_path):
    root = _tiny_project(tmp_path)
    _notebook(root, "raise RuntimeError('stop here')")
    with pytest.raises(reproduce.NotebookFailed) as err:
        reproduce.reproduce("laptop", only=["01"], book=False, root=root, log=lambda *_: None)
    line = _one_line(str(err.value))
    assert "01_kronecker failed in cell" in line and "RuntimeError: stop here" in line
    failed = root / "_build" / "executed" / "laptop" / "01_kronecker.failed.ipynb"
    assert str(failed) in line and failed.is_file()
    _notebook(root, "print('fine')")
    reproduce.reproduce("laptop", only=["01"], book=False, root=root, log=lambda *_: None)
    assert not failed.exists()


def test_refresh_after_a_failing_cell_is_one_line_and_leaves_nothing_nbval_collects(tmp_path):
    root = _tiny_project(tmp_path)
    _notebook(root, "raise ValueError('broken cell')")
    committed = (root / "notebooks" / "01_kronecker.ipynb").read_text()
    with pytest.raises(reproduce.NotebookFailed) as err:
        reproduce.refresh(["01"], root=root, log=lambda *_: None)
    line = _one_line(str(err.value))
    kept = root / "_build" / "refresh" / "01_kronecker.failed.ipynb"
    assert "ValueError: broken cell" in line and str(kept) in line and kept.is_file()
    assert sorted(p.name for p in (root / "notebooks").glob("*.ipynb") if ".running" in p.name or ".failed" in p.name) == []
    assert (root / "notebooks" / "01_kronecker.ipynb").read_text() == committed


def test_nbval_never_collects_partial_copies():
    out = subprocess.run(["make", "-n", "-C", str(ROOT), "nbval"], capture_output=True, text=True, check=True).stdout
    assert "--ignore-glob='*.running.ipynb'" in out and "--ignore-glob='*.failed.ipynb'" in out


def test_a_record_moved_aside_is_named_on_cwls_terminal(tmp_path):
    root = _tiny_project(tmp_path)
    store = tmp_path / "store"
    store.mkdir()
    (store / "0123456789abcdef.json").write_text("{ not json")
    _notebook(root, f"from cwl_lib.records import Store\nStore({str(store)!r}).records()")
    said = []
    reproduce.reproduce("laptop", only=["01"], book=False, root=root, log=said.append)
    moved = [line for line in said if "0123456789abcdef.json was moved to" in line]
    assert len(moved) == 1 and moved[0].startswith("[cwl] 01_kronecker: results store")


def test_notices_are_written_one_line_each(tmp_path, monkeypatch):
    monkeypatch.setenv(notices.ENV, str(tmp_path / "n.txt"))
    with pytest.warns(notices.CwlWarning):
        notices.notice("first\nsecond line")
    notices.notice("printed already", warn=False)
    assert notices.read(tmp_path / "n.txt") == ["first second line", "printed already"]


@pytest.mark.parametrize("body, why", [
    ({"key": "{stem}", "config": {}, "version": records.RECORD_VERSION, "study": "classification", "accuracy": 0.5},
     "names no study and configuration"),
    ({"key": "{stem}", "config": {"shots": 1}, "version": records.RECORD_VERSION, "study": "classification"},
     "its key is not that of its study and configuration"),
    ({"key": "ffffffffffffffff", "config": {"shots": 1}, "version": records.RECORD_VERSION, "study": "x"},
     "it holds the record of"),
])
def test_a_foreign_record_under_a_new_name_is_moved_aside_when_the_store_opens(tmp_path, body, why):
    store = records.Store(tmp_path)
    stem = "00000000deadbeef"
    (tmp_path / f"{stem}.json").write_text(json.dumps({**body, "key": body["key"].format(stem=stem)}))
    with pytest.warns(notices.CwlWarning, match=why):
        assert store.get("a-key-of-some-grid") is None  # any first use sweeps the folder
    assert (tmp_path / "rejected" / f"{stem}.json").is_file()


def _interrupt_cwl(root: Path, after: Path) -> subprocess.CompletedProcess:
    """Run `cwl reproduce` on ``root`` in its own session, press Ctrl-C once ``after`` exists, return the result."""
    # A terminal's foreground job has Python's Ctrl-C handler; a job a script started in the background (as CI
    # may start the tests) inherits SIGINT ignored, and Python then leaves it ignored: give the child the former.
    code = ("import signal, sys\nsignal.signal(signal.SIGINT, signal.default_int_handler)\n"
            "from pathlib import Path\nfrom cwl_lib import cli, reproduce\n"
            f"reproduce.project_root = lambda: Path({str(root)!r})\n"
            "sys.exit(cli.main(['reproduce', '--profile', 'laptop', '--only', '01', '--no-book']))")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=root, start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        deadline = time.monotonic() + 240
        while not after.exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.1)
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C sends: the whole foreground group
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="signals to a process group")
def test_ctrl_c_prints_one_line_and_no_kernel_traceback(tmp_path):
    root = _tiny_project(tmp_path)
    started = tmp_path / "started"
    _notebook(root, f"import time, pathlib\npathlib.Path({str(started)!r}).touch()\ntime.sleep(300)")
    done = _interrupt_cwl(root, started)
    err = "\n".join(line for line in done.stderr.replace("\r", "\n").splitlines() if "Executing" not in line)
    assert done.returncode == 130
    assert _one_line(err) == "cwl: interrupted; finished notebooks and results are kept, rerun to resume"
    assert "partly executed copy is" in done.stdout


def test_kernel_connection_files_stay_in_the_checkout_and_go_with_their_process(tmp_path):
    folder = kernels.connection_folder()
    assert folder == ROOT / "_build" / "kernels"
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = folder / f"kernel-{gone.stdout.strip()}-000000000000.json"
    stale.write_text("{}")
    mine = folder / f"kernel-{os.getpid()}-000000000000.json"
    mine.write_text("{}")
    try:
        kernels.connection_folder()
        assert not stale.exists() and mine.exists()  # a dead cwl's file is removed, a living one's kept
    finally:
        mine.unlink(missing_ok=True)
    manager = kernels.BoundKernelManager(kernel_name="python3")
    import asyncio
    asyncio.run(manager._async_pre_start_kernel())
    assert Path(manager.connection_file).parent == folder


# ----------------------------------------------------------------------------------------- publish
@pytest.fixture
def git_repo(tmp_path, monkeypatch):
    for who in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{who}_NAME", "cwl tests")
        monkeypatch.setenv(f"GIT_{who}_EMAIL", "tests@cwl.invalid")
    work = tmp_path / "work"
    subprocess.run(["git", "init", "-q", str(work)], check=True)
    monkeypatch.chdir(work)
    html = tmp_path / "html"
    html.mkdir()
    (html / "index.html").write_text("<p>book</p>")
    return work, html


def _branches(work: Path) -> list[str]:
    return subprocess.run(["git", "branch", "--list", "--format=%(refname:short)"], cwd=work, capture_output=True,
                          text=True, check=True).stdout.split()


def test_publish_without_the_remote_is_one_line_and_leaves_no_branch(git_repo, capsys):
    work, html = git_repo
    assert cli.main(["publish", "--html", str(html)]) == 2
    assert "no git remote named 'origin'" in _one_line(capsys.readouterr().err)
    assert _branches(work) == []


def test_a_failed_push_is_one_line_and_the_local_branch_is_put_back(git_repo, tmp_path, capsys):
    work, html = git_repo
    assert cli.main(["publish", "--html", str(html), "--remote", str(tmp_path / "no-such-repo.git")]) == 1
    line = _one_line(capsys.readouterr().err)
    assert "the push to gh-pages of" in line and "nothing was published" in line
    assert _branches(work) == []


# ----------------------------------------------------------------------------------------- fetch
def test_a_file_url_mirror_is_copied_and_checked(empty_data_root, small, tmp_path):  # noqa: F811
    mirror = tmp_path / "mirror"
    (mirror / "kvasir").mkdir(parents=True)
    (mirror / "kvasir" / "kvasir-dataset-v2.zip").write_bytes(make_zip(KVASIR))
    folder = fetch("kvasir", empty_data_root, mirror=mirror.as_uri(), progress=False, log=lambda _m: None)
    assert (folder / "kvasir-dataset-v2/polyps/2.jpg").read_bytes() == b"polyps2"


def test_a_file_url_mirror_without_the_file_names_what_it_lacks(empty_data_root, tmp_path):
    with pytest.raises(FetchError, match="the mirror has no file") as err:
        fetch("kvasir", empty_data_root, mirror=(tmp_path / "empty").as_uri(), progress=False, log=lambda _m: None)
    assert "expected sha256" not in str(err.value)


def test_a_mirror_pooch_cannot_read_is_named_as_such(empty_data_root):
    with pytest.raises(FetchError, match="cannot download gopher://") as err:
        fetch("kvasir", empty_data_root, mirror="gopher://host/base", progress=False, log=lambda _m: None)
    assert "expected sha256" not in str(err.value)
