"""Parameters are checked in one place, before any work, from `cwl reproduce -p` and from papermill."""
import json
import subprocess
import sys

import nbformat
import pytest

from cwl_lib import parameters as P
from cwl_lib import paths, profiles
from cwl_lib.cli import main
from cwl_lib.paths import project_root

ROOT = project_root()


@pytest.mark.parametrize("profile", profiles.PROFILES)
@pytest.mark.parametrize("name", profiles.NOTEBOOKS)
def test_every_profile_passes_its_own_validation_unchanged(profile, name):
    params = profiles.parameters(profile, name)
    assert P.validate(name, params) == params


# (notebook, parameter, value as typed on a command line, words the one-line error must hold)
BAD = [
    ("03_classification", "steps", "abc", "an integer >= 1"),
    ("03_classification", "shots", "-1", "integers >= 1"),
    ("03_classification", "shots", "[]", "non-empty list"),
    ("03_classification", "lr_freeze", "[0]", "numbers > 0"),
    ("03_classification", "lr_finetune", "-0.1", "numbers > 0"),
    ("03_classification", "backbone_lr_factor", "inf", "a number > 0"),
    ("03_classification", "lr_freeze", "[inf]", "numbers > 0"),
    ("03_classification", "input_size", "3", "integer >= 32"),
    ("03_classification", "strategies", "[freeze]", "must include freeze and freeze+cwl"),
    ("03_classification", "strategies", "[freeze, freeze+cwl, nosuch]", "values from freeze"),
    ("03_classification", "datasets", "[imagenet]", "values from"),
    ("03_classification", "archs", "[vgg17]", "values from"),
    ("04_retrieval", "strategies", "[bn-affine, freeze, freeze+cwl]", "Table III's rows"),
    ("04_retrieval", "train_size", "[3, 3]", "list of 2 integers >= 32"),
    ("04_retrieval", "freeze_lrs", "[0.1, 0]", "numbers > 0"),
    ("05_pruning", "taus", "[-0.1, 0.5]", "numbers > 0"),
    ("05_pruning", "strategy", "freeze", "pruning reads learned sigmas"),
    ("05_pruning", "finetune_epochs", "[0]", "integers >= 1"),
    ("01_kronecker", "photo", "nosuch", "one of"),
    ("02_convolution_svd", "cnn_channels", "[16, 32]", "list of 4"),
]


@pytest.mark.parametrize("notebook,name,value,words", BAD)
def test_a_bad_value_is_one_line_naming_the_parameter_and_its_rule(notebook, name, value, words):
    with pytest.raises(P.ParameterError) as err:
        P.validate(notebook, {name: value})
    message = str(err.value)
    assert "\n" not in message and f"parameter {name} of {notebook}" in message and words in message
    assert "got " in message  # the value as given, so a typo is visible


@pytest.mark.parametrize("value", ["1e-3", "[1e-3]", 0.001, [0.001], "0.001"])
def test_a_learning_rate_is_read_as_a_number_however_it_is_typed(value):
    assert P.clean("03_classification", "lr_freeze", value) == [0.001]


def test_a_partial_set_is_checked_on_its_own_not_against_the_papers_other_values():
    # the paper's datasets include chest-xray (624 test images): a test_size given alone is not held to them
    assert P.validate("03_classification", {"test_size": 1000}) == {"test_size": 1000}
    with pytest.raises(P.ParameterError, match="at most 624, the test images of chest-xray"):
        P.validate("03_classification", {"test_size": 1000, "datasets": ["chest-xray"]})


def test_every_parameter_has_help_text():
    for notebook, model in P.MODELS.items():
        assert not [n for n, f in model.model_fields.items() if not f.description], notebook


def test_an_unknown_name_lists_the_notebooks_parameters():
    with pytest.raises(P.ParameterError, match="has no parameter nosuch; its parameters are .*steps"):
        P.validate("03_classification", {"nosuch": 1})


@pytest.mark.parametrize("args,words", [
    (["-p", "steps", "abc"], "parameter steps of"),
    (["-p", "shots", "-1"], "parameter shots of 03_classification"),
    (["-p", "nosuch", "1"], "has a parameter nosuch"),
    (["-p", "lr_freeze", "[0]"], "parameter lr_freeze"),
    (["-p", "input_size", "3"], "parameter input_size"),
    (["-p", "strategies", "[freeze]"], "must include freeze and freeze+cwl"),
    (["--only", "05", "-p", "taus", "[-1]"], "parameter taus of 05_pruning"),
])
def test_cwl_reproduce_refuses_a_bad_parameter_before_any_work(args, words, tmp_path, monkeypatch, capsys):
    import cwl_lib.reproduce as R

    def no_work(*_a, **_k):
        raise AssertionError("work started despite a bad parameter")

    monkeypatch.setattr(R, "check_data", no_work)
    monkeypatch.setattr(R, "execute", no_work)
    assert main(["reproduce", "--profile", "smoke", "--no-book", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err


class FakeNamespace(dict):
    """A kernel's globals after the parameters cell and, when given, papermill's injected cell."""

    def __init__(self, notebook, injected=None, edited=None):
        super().__init__(profiles.parameters("smoke", notebook))
        self.update(edited or {})
        cells = ["profile = 'smoke'\n..."]
        if injected:
            self.update(injected)
            cells.append("# Parameters\n" + "\n".join(f"{k} = {v!r}" for k, v in injected.items()))
        self["In"] = ["", *cells]


def test_the_profile_named_by_papermill_gives_every_unset_parameter():
    ns = FakeNamespace("03_classification", injected={"profile": "laptop", "steps": 7})
    params = P.resolve("03_classification", ns)
    assert params == {**profiles.parameters("laptop", "03_classification"), "steps": 7}
    assert ns["repeats"] == profiles.parameters("laptop", "03_classification")["repeats"]
    line = P.describe(ns)
    assert line.startswith("profile laptop; passed: steps=7;") and line.endswith("the laptop profile's")


def test_a_value_edited_in_the_parameters_cell_is_kept_and_named():
    ns = FakeNamespace("03_classification", edited={"profile": "laptop", "repeats": 9})
    params = P.resolve("03_classification", ns)
    assert params["repeats"] == 9 and params["steps"] == profiles.parameters("laptop", "03_classification")["steps"]
    assert "set in the notebook's parameters cell: repeats=9" in P.describe(ns)


def test_a_bad_value_passed_by_papermill_is_refused_in_the_notebook():
    ns = FakeNamespace("05_pruning", injected={"taus": "[-1]"})
    with pytest.raises(P.ParameterError, match="taus of 05_pruning") as err:
        P.resolve("05_pruning", ns)
    assert err.value._render_traceback_() == [f"ParameterError: {err.value}"]  # IPython shows this one line
    with pytest.raises(P.ParameterError, match="has no parameter nosuch"):
        P.resolve("05_pruning", FakeNamespace("05_pruning", injected={"nosuch": 1}))


def _head_of(notebook, tmp_path):
    """The notebook's first three cells (title, parameters, resolution) and a cell that prints ``params``."""
    nb = nbformat.read(ROOT / "notebooks" / f"{notebook}.ipynb", as_version=4)
    nb.cells = nb.cells[:3] + [nbformat.v4.new_code_cell("import json; print('PARAMS=' + json.dumps(params))")]
    path = tmp_path / f"{notebook}.ipynb"
    nbformat.write(nb, path)
    return path


def _papermill(path, out, *args):
    return subprocess.run([sys.executable, "-m", "papermill", str(path), str(out), "--cwd", str(ROOT / "notebooks"),
                           *args], capture_output=True, text=True, timeout=300)


def test_papermill_with_profile_laptop_runs_the_laptop_parameters(tmp_path):
    path, out = _head_of("01_kronecker", tmp_path), tmp_path / "out.ipynb"
    done = _papermill(path, out, "-p", "profile", "laptop", "-p", "ranks", "[1, 3]")
    assert done.returncode == 0, done.stderr[-2000:]
    text = "".join(o.get("text", "") for c in nbformat.read(out, as_version=4).cells for o in c.get("outputs", []))
    seen = json.loads(text.split("PARAMS=")[1].splitlines()[0])
    assert seen == {**profiles.parameters("laptop", "01_kronecker"), "ranks": [1, 3]}
    assert "profile laptop; passed: ranks=[1, 3]" in text


def test_papermill_with_a_bad_parameter_fails_with_one_line_naming_it(tmp_path):
    path, out = _head_of("01_kronecker", tmp_path), tmp_path / "out.ipynb"
    done = _papermill(path, out, "-p", "ranks", "[0]")
    assert done.returncode != 0
    assert "ParameterError: parameter ranks of 01_kronecker must be a non-empty list of integers >= 1" in done.stderr
    cells = nbformat.read(out, as_version=4).cells
    errors = [o for c in cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert len(errors) == 1 and len(errors[0].traceback) == 1  # the page shows the one line too


def test_an_empty_results_dir_is_the_notebooks_folder_of_the_session_it_runs_in(monkeypatch, tmp_path):
    monkeypatch.delenv(paths.SESSION_ENV, raising=False)
    assert P.resolve("04_retrieval", FakeNamespace("04_retrieval"))["results_dir"] == ""  # a fresh folder of its own
    monkeypatch.setenv(paths.SESSION_ENV, str(tmp_path))  # nbval's conftest, `cwl refresh`
    ns = FakeNamespace("04_retrieval")
    assert P.resolve("04_retrieval", ns)["results_dir"] == ns["results_dir"] == str(tmp_path / "04_retrieval")
    passed = FakeNamespace("04_retrieval", injected={"results_dir": "/r/04"})
    assert P.resolve("04_retrieval", passed)["results_dir"] == "/r/04"
