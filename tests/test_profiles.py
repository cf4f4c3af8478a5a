"""Each notebook's typed parameter model is the single place of its parameters and profiles; the committed
notebooks hold smoke, as the model generates it."""
import ast
import json
from pathlib import Path

import pytest

from cwl_lib import config, parameters, profiles
from cwl_lib.reproduce import write_parameters_cell

NB_DIR = Path(__file__).resolve().parent.parent / "notebooks"


def _parameters_cell(name):
    nb = json.loads((NB_DIR / f"{name}.ipynb").read_text())
    cells = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1, f"{name}: exactly one cell must be tagged 'parameters'"
    values = {}
    for node in ast.parse("".join(cells[0]["source"])).body:
        assert isinstance(node, ast.Assign), f"{name}: the parameters cell holds plain assignments only"
        values[node.targets[0].id] = ast.literal_eval(node.value)
    return values


@pytest.mark.parametrize("name", profiles.NOTEBOOKS)
def test_notebook_parameters_cell_is_the_smoke_profile(name):
    assert _parameters_cell(name) == profiles.parameters("smoke", name)


@pytest.mark.parametrize("name", profiles.NOTEBOOKS)
def test_the_committed_parameters_cell_is_the_generated_one(name):
    # `cwl refresh` writes it (cwl_lib.reproduce.write_parameters_cell); a hand edit fails here
    nb = json.loads((NB_DIR / f"{name}.ipynb").read_text())
    cell = next(c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", []))
    assert "".join(cell["source"]) == parameters.parameters_cell(name)


def test_write_parameters_cell_rewrites_a_hand_edited_cell(tmp_path):
    path = tmp_path / "01_kronecker.ipynb"
    path.write_text((NB_DIR / "01_kronecker.ipynb").read_text().replace("random_trials = 20", "random_trials = 21"))
    assert _cell_text(path) != parameters.parameters_cell("01_kronecker")
    assert write_parameters_cell(path, "01_kronecker") and _cell_text(path) == parameters.parameters_cell("01_kronecker")
    assert not write_parameters_cell(path, "01_kronecker")


def _cell_text(path):
    nb = json.loads(path.read_text())
    return "".join(next(c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", []))["source"])


@pytest.mark.parametrize("profile", profiles.PROFILES)
@pytest.mark.parametrize("name", profiles.NOTEBOOKS)
def test_every_profile_sets_only_parameters_the_notebook_declares(profile, name):
    # papermill would inject an unknown name silently; the notebook would ignore it
    assert set(profiles.parameters(profile, name)) <= set(_parameters_cell(name))


def test_overrides_apply_last_and_do_not_leak():
    a = profiles.parameters("laptop", "01_kronecker", {"seed": 7})
    b = profiles.parameters("laptop", "01_kronecker")
    assert a["seed"] == 7 and b["seed"] == config.Notebook.model_fields["seed"].default
    assert a["profile"] == "laptop"


def test_unknown_profile_and_notebook_are_refused():
    with pytest.raises(ValueError, match="smoke, laptop, paper"):
        profiles.parameters("huge", "01_kronecker")
    with pytest.raises(ValueError, match="01_kronecker"):
        profiles.parameters("smoke", "99_nothing")


def test_paper_profile_needs_the_paper_datasets_and_backbones():
    needed = set()
    for name in profiles.NOTEBOOKS:
        needed |= set(profiles.notebook_requirements(name, profiles.parameters("paper", name)))
    assert {"mit67", "kvasir", "chest-xray", "roxford5k", "rparis6k"} <= needed
    assert {"weights:vgg16", "weights:resnet50"} <= needed
