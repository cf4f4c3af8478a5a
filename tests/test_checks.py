"""The notebooks' regression checks: references, tolerances, and nbval failing when a number moves."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cwl_lib import checks as C
from cwl_lib.paths import project_root

PARAMS = {"profile": "smoke", "seed": 0, "shots": [1, 2], "results_dir": "/tmp/x"}


@pytest.fixture
def refs(tmp_path, monkeypatch):
    monkeypatch.setenv(C.DIR_ENV, str(tmp_path))
    monkeypatch.delenv(C.MODE_ENV, raising=False)
    return tmp_path


def record(refs, monkeypatch, values: dict, params=PARAMS):
    monkeypatch.setenv(C.MODE_ENV, "record")
    rec = C.Checks("nb", params)
    for name, (value, kind) in values.items():
        rec.exact(name, value) if kind == "exact" else rec.near(name, value, kind)
    monkeypatch.delenv(C.MODE_ENV)
    return json.loads((refs / "nb.json").read_text())


def test_recorded_values_are_checked_within_their_tolerance(refs, monkeypatch, capsys):
    stored = record(refs, monkeypatch, {"runs": (20, "exact"), "accuracy freeze 1 shot": (0.48, "trained"),
                                        "strategies": (["freeze", "freeze+cwl"], "exact")})
    assert stored["values"]["accuracy freeze 1 shot"] == 0.48 and "results_dir" not in stored["parameters"]
    recorded_lines = capsys.readouterr().out

    same = C.Checks("nb", {**PARAMS, "results_dir": "elsewhere"})  # where results go is not a parameter of the check
    assert same.reference is not None
    tol = C.TOLERANCES["trained"].absolute
    assert same.exact("runs", 20)
    assert same.near("accuracy freeze 1 shot", 0.48 + 0.9 * tol, "trained")
    assert same.exact("strategies", ("freeze", "freeze+cwl"))
    assert capsys.readouterr().out == recorded_lines  # the committed output is what any passing machine prints

    moved = C.Checks("nb", PARAMS)
    assert not moved.near("accuracy freeze 1 shot", 0.48 + 0.1, "trained")
    assert not moved.exact("runs", 19)
    assert not moved.exact("strategies", ["freeze"])
    assert moved.failures == ["accuracy freeze 1 shot", "runs", "strategies"]
    out = capsys.readouterr().out
    assert "accuracy freeze 1 shot: FAIL, 0.58 is not within ± 0.05 of 0.48" in out
    assert out.count("FAIL") == 3


def test_a_reference_applies_only_to_its_parameters_and_device(refs, monkeypatch, capsys):
    record(refs, monkeypatch, {"accuracy": (0.5, "trained")})
    capsys.readouterr()
    for other in (C.Checks("nb", {**PARAMS, "shots": [1, 3]}), C.Checks("nb", PARAMS, device="cuda")):
        assert other.reference is None
        assert other.near("accuracy", 0.9, "trained")
    assert capsys.readouterr().out.count("0.9 (not checked: no reference for these parameters)") == 2


def test_an_unknown_quantity_fails_and_names_the_refresh_command(refs, monkeypatch, capsys):
    record(refs, monkeypatch, {"accuracy": (0.5, "trained")})
    checks = C.Checks("nb", PARAMS)
    assert not checks.near("new quantity", 1.0, "trained")
    assert "run `cwl refresh nb`" in capsys.readouterr().out
    with pytest.raises(ValueError, match="checked twice"):
        checks.near("new quantity", 1.0, "trained")
    with pytest.raises(TypeError, match="must be a number"):
        checks.near("a flag", True, "trained")


def test_bounds_and_properties_hold_without_references(refs, capsys):
    checks = C.Checks("nb", PARAMS)
    assert checks.below("identity gap", 1e-15, 1e-12) and not checks.below("identity gap 2", 1e-9, 1e-12)
    assert checks.true("monotone", True) and not checks.true("monotone 2", 0)
    assert checks.failures == ["identity gap 2", "monotone 2"]
    assert "identity gap 2: FAIL, 1e-09 is not below 1e-12" in capsys.readouterr().out


@pytest.mark.parametrize("value, text", [(0.48, "0.48"), (55.12345, "55.1234"), (3.0, "3"), (20, "20"),
                                         (-0.00001, "-1e-05"), (0.0005, "0.0005"), (4.710453250713085e-16, "4.71e-16"),
                                         (5e-05, "5e-05"), (float("nan"), "nan"), ([1, 2], "[1, 2]")])
def test_a_checked_value_prints_four_decimals_trimmed_or_four_digits_below_a_thousandth(value, text):
    assert C._show(value) == text


def test_every_tolerance_states_why_and_catches_a_deliberate_error():
    for name, tol in C.TOLERANCES.items():
        assert tol.why and len(tol.why) < 120, name
    for name in ("trained", "fraction"):
        assert not C.TOLERANCES[name].holds(0.5 + 0.1, 0.5), name  # a change of 0.1 in accuracy is caught
    assert not C.TOLERANCES["map"].holds(50.0 + 10.0, 50.0)  # ten mAP points are caught


def test_every_notebook_has_a_reference_for_its_smoke_parameters():
    from cwl_lib import profiles

    for name in profiles.NOTEBOOKS:
        stored = json.loads((project_root() / "notebooks" / "references" / f"{name}.json").read_text())
        expected = {k: v for k, v in profiles.parameters("smoke", name).items() if k not in profiles.WHERE}
        assert stored["parameters"] == json.loads(json.dumps(expected)), name
        assert stored["device"] == "cpu" and stored["values"], name


def test_nbval_fails_when_a_reference_moves_beyond_its_tolerance(tmp_path):
    """A deliberately wrong number in a notebook's reference file makes nbval fail on that notebook."""
    src = project_root() / "notebooks"
    refs = tmp_path / "refs"
    shutil.copytree(src / "references", refs)
    stored = json.loads((refs / "01_kronecker.json").read_text())
    name = next(k for k in stored["values"] if k.startswith("photograph relative error"))
    stored["values"][name] += 0.1
    (refs / "01_kronecker.json").write_text(json.dumps(stored))
    env = {**os.environ, C.DIR_ENV: str(refs)}
    env.pop(C.MODE_ENV, None)
    run = subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env", "-p", "no:cacheprovider",
                          "-vv", str(src / "01_kronecker.ipynb")], capture_output=True, text=True, env=env,
                         cwd=tmp_path, timeout=600)
    assert run.returncode != 0, run.stdout[-2000:]
    assert f"{name}: FAIL" in run.stdout


def test_a_notebook_scratch_folder_is_inside_the_checkout_and_gone_when_its_process_ends():
    code = "from cwl_lib.paths import results_dir; p = results_dir('', 'smoke'); (p / 'r.json').write_text('1'); print(p)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    folder = Path(out)
    assert folder.is_relative_to(project_root() / "_build" / "scratch")
    assert not folder.exists()
