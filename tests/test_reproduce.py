"""The papermill runner: checks data first, injects profile parameters, keeps finished copies."""
import json
import shutil
from pathlib import Path

import nbformat
import pytest

from cwl_lib import cli, profiles, reproduce
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


def test_param_values_are_parsed_as_yaml():
    assert cli._value("3") == 3
    assert cli._value("[1, 5]") == [1, 5]
    assert cli._value("0.001") == 0.001
    assert cli._value("vgg16") == "vgg16"


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


def test_book_builds_from_committed_notebooks(smoke_book):
    html = smoke_book
    index = html / "index.html"
    for name in profiles.NOTEBOOKS:
        assert (html / "notebooks" / f"{name}.html").exists(), name
    assert "book/intro.html" in index.read_text()
    assert "Kronecker" in (html / "book" / "intro.html").read_text()
    assert "Reading and rerunning" in (html / "book" / "intro.html").read_text()


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
