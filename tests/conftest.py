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


@pytest.fixture(scope="session")
def smoke_book(tmp_path_factory):
    """The book built once from the committed (smoke-output) notebooks: its html folder."""
    from pathlib import Path

    from cwl_lib import reproduce

    root = Path(__file__).resolve().parent.parent
    build_dir = tmp_path_factory.mktemp("smoke-book") / "_build"
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
