"""The papermill runner: checks data first, injects profile parameters, keeps finished copies."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from cwl_lib import cli, paths, profiles, reproduce
from cwl_lib.data import MissingDataError

ROOT = Path(__file__).resolve().parent.parent


def test_paper_profile_without_data_stops_before_any_work(empty_data_root, tmp_path, capsys):
    code = cli.main(["reproduce", "--profile", "paper", "--no-book"])
    err = capsys.readouterr().err
    assert code == 2
    for name in ("mit67", "kvasir", "chest-xray", "roxford5k", "rparis6k"):
        assert name in err
    assert "cwl fetch kvasir" in err
    assert "nothing was run" in err
    assert not (ROOT / "_build" / "executed" / "paper").exists()


def test_missing_debian_fashion_mnist_names_the_package(empty_data_root):
    from cwl_lib.data import require

    with pytest.raises(MissingDataError, match="apt-get install dataset-fashion-mnist"):
        require("fashion-mnist")


def test_param_values_are_read_as_their_parameters_types():
    runs = reproduce.plan("smoke", only=["03"], overrides={"lr_freeze": "1e-3", "shots": "[1, 5]", "archs": "vgg16",
                                                            "steps": "3", "pretrained": "false"})
    got = runs["03_classification"]
    assert (got["lr_freeze"], got["shots"], got["archs"], got["steps"], got["pretrained"]) == (
        [0.001], [1, 5], ["vgg16"], 3, False)


def test_only_the_profile_paths_and_overrides_are_injected():
    params = reproduce.plan("laptop", only=["03"], overrides={"seed": "3"})["03_classification"]
    params["results_dir"] = "/r"
    assert reproduce.passed(params, {"seed": "3"}) == {"profile": "laptop", "results_dir": "/r", "seed": 3}


def test_plan_accepts_short_names_and_overrides():
    runs = reproduce.plan("laptop", only=["03"], overrides={"seed": 3})
    assert list(runs) == ["03_classification"]
    assert runs["03_classification"]["seed"] == 3
    with pytest.raises(ValueError, match="unknown notebook"):
        reproduce.plan("laptop", only=["99"])


def _tiny_project(tmp_path):
    """A project whose first notebook records the parameters it received."""
    for f in reproduce.BOOK_FILES:
        shutil.copy2(ROOT / f, tmp_path / f)
    shutil.copytree(ROOT / "book", tmp_path / "book")
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks")
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell(
        "\n".join(f"{k} = {v!r}" for k, v in profiles.parameters("smoke", "01_kronecker").items())
    )
    params.metadata["tags"] = ["parameters"]
    record = nbformat.v4.new_code_cell(
        "import json, pathlib\n"
        "pathlib.Path(results_dir, 'seen.json').write_text(json.dumps({'profile': profile, 'seed': seed}))"
    )
    nb.cells = [nbformat.v4.new_markdown_cell("# Tiny"), params, record]
    nbformat.write(nb, tmp_path / "notebooks" / "01_kronecker.ipynb")
    return tmp_path


def test_runner_injects_profile_parameters_and_keeps_the_executed_copy(tmp_path):
    root = _tiny_project(tmp_path)
    reproduce.reproduce("laptop", only=["01"], overrides={"seed": 11}, book=False, root=root, log=lambda *_: None)
    seen = json.loads((root / "results" / "laptop" / "01_kronecker" / "seen.json").read_text())
    assert seen == {"profile": "laptop", "seed": 11}
    executed = root / "_build" / "executed" / "laptop" / "01_kronecker.ipynb"
    assert executed.exists()
    assert not list(executed.parent.glob("*.running.ipynb"))
    # the committed notebook is untouched: it keeps its own (smoke) outputs
    assert "seen.json" in (root / "notebooks" / "01_kronecker.ipynb").read_text()
    assert "injected-parameters" not in (root / "notebooks" / "01_kronecker.ipynb").read_text()


def test_a_results_dir_given_to_reproduce_holds_each_notebooks_folder(tmp_path):
    # so page 06 finds the records of 03-05 beside its own, as under results/<profile>/
    root = _tiny_project(tmp_path)
    reproduce.reproduce("laptop", only=["01"], overrides={"results_dir": str(tmp_path / "r")}, book=False, root=root,
                        log=lambda *_: None)
    assert json.loads((tmp_path / "r" / "01_kronecker" / "seen.json").read_text())["profile"] == "laptop"


def test_book_builds_from_committed_notebooks(smoke_book):
    html = smoke_book
    index = html / "index.html"
    for name in profiles.NOTEBOOKS:
        assert (html / "notebooks" / f"{name}.html").exists(), name
    assert "book/intro.html" in index.read_text()
    assert "Kronecker" in (html / "book" / "intro.html").read_text()
    intro = (html / "book" / "intro.html").read_text()
    # the rerun chapter comes after the science, in a part of its own
    assert "Rerunning this book" in intro
    assert intro.index("06_comparison.html") < intro.index("reproduce.html") < intro.index("bibliography.html")
    assert intro.index("01_kronecker.html") < intro.index("06_comparison.html")


def test_a_book_warning_fails_the_build(tmp_path):
    root = _tiny_project(tmp_path)
    with (root / "book" / "intro.md").open("a") as page:
        page.write("\nSee {ref}`a-label-no-page-defines`.\n")
    with pytest.raises(reproduce.BookBuildError, match="warnings are errors"):
        reproduce.build_book(root, "smoke", root / "_build", log=lambda *_: None)
    assert not (root / "_build" / "html" / "book" / "intro.html").exists()


def test_stderr_never_reaches_a_page(smoke_book):
    """Progress bars and warnings go to stderr: shown while a notebook runs, dropped from the book."""
    committed = (ROOT / "notebooks" / "03_classification.ipynb").read_text()
    assert '"name": "stderr"' in committed  # the committed notebook does hold progress bars
    page = (smoke_book / "notebooks" / "03_classification.html").read_text()
    assert "it/s]" not in page and "TqdmWarning" not in page
    assert "output stderr" not in page


def _notebook(root, *sources):
    """Replace 01_kronecker of a tiny project by a notebook running ``sources`` after the parameters."""
    nb = nbformat.read(root / "notebooks" / "01_kronecker.ipynb", as_version=4)
    nb.cells = nb.cells[:2] + [nbformat.v4.new_code_cell(src) for src in sources]
    nbformat.write(nb, root / "notebooks" / "01_kronecker.ipynb")


def test_a_corrupt_gz_stops_reproduce_before_any_work(empty_data_root, monkeypatch, capsys):
    import gzip

    folder = empty_data_root / "fashion-mnist"
    folder.mkdir()
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                 "t10k-labels-idx1-ubyte.gz"):
        with gzip.open(folder / name, "wb") as handle:
            handle.write(b"\x00\x00\x08\x01" + bytes(4096))
    damaged = bytearray((folder / "train-images-idx3-ubyte.gz").read_bytes())
    damaged[20:40] = bytes(20)  # inside the deflate stream
    (folder / "train-images-idx3-ubyte.gz").write_bytes(bytes(damaged))
    monkeypatch.setattr(reproduce, "execute", lambda *a, **k: pytest.fail("a notebook ran"))
    code = cli.main(["reproduce", "--profile", "laptop", "--only", "03", "--no-book"])
    err = capsys.readouterr().err
    assert code == 2
    assert "03_classification: fashion-mnist is wrong" in err and "train-images-idx3-ubyte.gz" in err
    assert "nothing was run" in err


def test_data_root_must_be_an_existing_folder(tmp_path, capsys):
    missing_root = tmp_path / "nowhere"
    assert cli.main(["reproduce", "--profile", "laptop", "--no-book", "--data-root", str(missing_root)]) == 2
    assert f"--data-root {missing_root} does not exist" in capsys.readouterr().err
    a_file = tmp_path / "file"
    a_file.write_text("x")
    for argv in (["reproduce", "--profile", "laptop"], ["data", "check"]):
        assert cli.main([*argv, "--data-root", str(a_file)]) == 2
        err = capsys.readouterr().err
        assert f"--data-root {a_file} is a file, not a folder" in err and "lock" not in err
        assert len(err.strip().splitlines()) == 1


def test_a_failed_notebook_names_its_partial_copy(tmp_path, capsys):
    root = _tiny_project(tmp_path)
    _notebook(root, "print('before')", "raise RuntimeError('stop here')")
    with pytest.raises(reproduce.NotebookFailed) as err:
        reproduce.reproduce("laptop", only=["01"], book=False, root=root, log=lambda *_: None)
    failed = root / "_build" / "executed" / "laptop" / "01_kronecker.failed.ipynb"
    assert str(failed) in str(err.value) and "stop here" in str(err.value)
    assert failed.is_file() and "before" in failed.read_text()
    assert not list(failed.parent.glob("*.running.ipynb"))


def _alive(pid: int) -> bool:
    """Running, and not a zombie waiting for a parent that is gone."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the kernel's parent-death signal is Linux's")
def test_killing_cwl_stops_its_kernel_at_once(tmp_path):
    root = _tiny_project(tmp_path)
    pid_file = tmp_path / "kernel.pid"
    _notebook(root, f"import os, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\ntime.sleep(120)")
    code = ("from pathlib import Path\nfrom cwl_lib import reproduce\n"
            f"reproduce.reproduce('laptop', only=['01'], book=False, root=Path({str(root)!r}))")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 90
        while not (pid_file.is_file() and pid_file.read_text()):
            assert proc.poll() is None and time.monotonic() < deadline, "the notebook never started"
            time.sleep(0.1)
        kernel = int(pid_file.read_text())
        assert _alive(kernel)
        os.killpg(proc.pid, signal.SIGKILL)  # kill -9 of cwl's process group: the kernel is in its own session
        proc.wait(10)
        gone_by = time.monotonic() + 0.5  # ipykernel's own parent poll would take a second or more
        while _alive(kernel) and time.monotonic() < gone_by:
            time.sleep(0.02)
        assert not _alive(kernel)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        if pid_file.is_file() and pid_file.read_text() and _alive(int(pid_file.read_text())):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)


def test_refresh_gives_page_06_the_records_of_the_last_refresh_of_03_to_05(tmp_path, monkeypatch):
    monkeypatch.delenv(paths.SESSION_ENV, raising=False)
    root = _tiny_project(tmp_path)
    results = root / "_build" / "refresh" / "results"
    quiet = {"root": root, "log": lambda *_: None}
    with pytest.raises(ValueError, match="run `cwl refresh 03_classification 04_retrieval 05_pruning 06_comparison`"):
        reproduce.refresh(["06"], **quiet)  # refused before a kernel starts: it would record an empty page
    nb = nbformat.read(root / "notebooks" / "01_kronecker.ipynb", as_version=4)
    nb.cells = [nbformat.v4.new_code_cell(
        "from pathlib import Path\nfrom cwl_lib import parameters\n"
        "folder = Path(parameters.resolve('03_classification', {'profile': 'smoke'})['results_dir'])\n"
        "folder.mkdir(parents=True, exist_ok=True)\n(folder / 'seen').write_text('03')")]
    nbformat.write(nb, root / "notebooks" / "03_classification.ipynb")
    stale = results / "03_classification" / "stale.json"
    stale.parent.mkdir(parents=True)
    stale.write_text("{}")
    reproduce.refresh(["03"], **quiet)
    assert (results / "03_classification" / "seen").read_text() == "03" and not stale.exists()
    assert paths.SESSION_ENV not in os.environ
    with pytest.raises(ValueError, match="run `cwl refresh 04_retrieval 05_pruning 06_comparison`"):
        reproduce.refresh(["06"], **quiet)


def test_nbval_refuses_page_06_without_the_notebooks_it_reads_before_it():
    def collect(*paths_):
        env = {k: v for k, v in os.environ.items() if k != paths.SESSION_ENV}
        return subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "--collect-only", "-q",
                               "-p", "no:cacheprovider", *paths_], cwd=ROOT, env=env, capture_output=True, text=True)

    alone = collect("notebooks/06_comparison.ipynb")
    assert alone.returncode == pytest.ExitCode.USAGE_ERROR
    assert ("06_comparison reads the records that 03_classification, 04_retrieval, 05_pruning write before it"
            in alone.stderr)
    assert collect("notebooks/03_classification.ipynb", "notebooks/04_retrieval.ipynb", "notebooks/05_pruning.ipynb",
                   "notebooks/06_comparison.ipynb").returncode == 0
