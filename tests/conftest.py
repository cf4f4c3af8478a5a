import os

import pytest
import torch

# Deterministic, single-process CPU work keeps test runs repeatable on a 2-core CI machine.
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture
def empty_data_root(tmp_path, monkeypatch):
    """A data root with nothing in it, and no Debian Fashion-MNIST either."""
    from cwl_lib.data import registry

    root = tmp_path / "data"
    root.mkdir()
    monkeypatch.setenv("CWL_DATA_ROOT", str(root))
    monkeypatch.setattr(registry, "DEBIAN_FASHION_MNIST", tmp_path / "no-debian-package")
    return root


def run_page_06(root, base):
    """Page 06 executed as `cwl reproduce --profile smoke` runs it, into ``base``, after 03-05 wrote the records it
    reads into ``base / "results"`` (their executed copies go elsewhere: the book keeps the committed ones); the
    folder of page 06's executed copy.

    ``results_root`` is passed as the folder it defaults to, so the run is the same, but its parameters are
    not those of the committed references: its check cells print "not checked: no reference", as every
    check does under the laptop profile, and the book must leave those lines out.
    """
    from cwl_lib import profiles, reproduce

    results, quiet = base / "results", {"log": lambda *_: None}
    for name, params in reproduce.plan("smoke", list(profiles.READS["06_comparison"])).items():
        params["results_dir"] = str(results / name)
        reproduce.execute(name, reproduce.passed(params, {}), root, base / "sources", **quiet)
    name, overrides = "06_comparison", {"results_root": str(results)}
    params = reproduce.plan("smoke", [name], overrides)[name]
    params["results_dir"] = str(results / name)
    executed = base / "_build" / "executed" / "smoke"
    reproduce.execute(name, reproduce.passed(params, overrides), root, executed, **quiet)
    return executed


@pytest.fixture(scope="session")
def smoke_book(tmp_path_factory):
    """The book built once from the committed (smoke-output) notebooks, with page 06 run afresh (on records of
    03-05 run afresh) so that the intro's verdict box shows the ledger of that run: its html folder."""
    from pathlib import Path

    from cwl_lib import reproduce

    root = Path(__file__).resolve().parent.parent
    base = tmp_path_factory.mktemp("smoke-book")
    run_page_06(root, base)
    build_dir = base / "_build"
    index = reproduce.build_book(root, "smoke", build_dir, log=lambda *_: None)
    assert index == build_dir / "html" / "index.html"
    return build_dir / "html"


@pytest.fixture
def paper_sizes(monkeypatch):
    """``set_sizes(name, train=, test=, ...)``: the image counts a dataset must have in this test.

    The tests' small copies of a dataset stand in for the paper's; the registry's own counts are
    checked by the tests that leave them alone.
    """
    from dataclasses import replace

    from cwl_lib.data import registry

    def set_sizes(name, **sizes):
        entry = registry.RESOURCES[name]
        monkeypatch.setitem(registry.RESOURCES, name, replace(entry, sizes=registry.Sizes(**sizes)))

    return set_sizes
