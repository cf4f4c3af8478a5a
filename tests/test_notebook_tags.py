"""Machinery cells carry the Jupyter Book tags that keep them out of the reader's way."""
from pathlib import Path

import nbformat
import pytest
from papermill.parameterize import parameterize_notebook

from cwl_lib import notebook_tags, profiles, reproduce

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _notebook():
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell("profile = 'smoke'\nseed = 0")
    params.metadata["tags"] = ["parameters"]
    setup = nbformat.v4.new_code_cell("params = parameters.resolve('01_kronecker', globals())\n"
                                      "require_notebook('01_kronecker', data_root=data_root)")
    setup.metadata["tags"] = ["remove-stderr"]
    check = nbformat.v4.new_code_cell("# NBVAL_CHECK_OUTPUT\nchecks.exact('n', 1)")
    science = nbformat.v4.new_code_cell("# the check above: NBVAL_CHECK_OUTPUT is only a mark on a first line\nx = 1")
    nb.cells = [nbformat.v4.new_markdown_cell("# Title\n`require_notebook(` in prose"), params, setup,
                science, check]
    for cell in nb.cells:
        cell.metadata.setdefault("tags", [])  # as in a notebook papermill has run (it reads every cell's tags)
    nb.metadata["papermill"] = {}
    return nb


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: p.stem)
def test_every_committed_notebook_has_its_machinery_tagged(path):
    nb = nbformat.read(path, as_version=4)
    assert notebook_tags.missing(nb) == [], (
        f"{path.name}: untagged machinery cells; run `python -m cwl_lib.notebook_tags {path.relative_to(ROOT)}`")
    # the rule found what it is there for: each notebook has a parameters cell, a set-up cell and checks
    kinds = [notebook_tags.wanted(c) for c in nb.cells]
    assert kinds.count(notebook_tags.HIDE) >= 2 and kinds.count(notebook_tags.REMOVE) >= 1, path.name


def test_the_tags_go_on_the_machinery_only_and_keep_the_other_tags():
    nb = _notebook()
    assert notebook_tags.missing(nb) == [(1, "hide-cell"), (2, "hide-cell"), (4, "remove-cell")]
    assert notebook_tags.apply(nb) == 3
    assert [c.metadata.get("tags", []) for c in nb.cells] == [
        [], ["parameters", "hide-cell"], ["remove-stderr", "hide-cell"], [], ["remove-cell"]]
    assert notebook_tags.apply(nb) == 0 and notebook_tags.missing(nb) == []


def test_the_cell_papermill_injects_is_hidden_too():
    nb = parameterize_notebook(_notebook(), {"profile": "laptop"})
    injected = [i for i, c in enumerate(nb.cells) if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1
    notebook_tags.apply(nb)
    assert "hide-cell" in nb.cells[injected[0]].metadata["tags"]


def test_tag_file_rewrites_only_the_tags(tmp_path):
    path = tmp_path / "nb.ipynb"
    text = nbformat.writes(_notebook())  # papermill's form: no final newline
    path.write_text(text)
    assert notebook_tags.tag_file(path) == 3
    tagged = path.read_text()
    assert not tagged.endswith("\n")
    assert notebook_tags.tag_file(path) == 0 and path.read_text() == tagged
    plain = lambda t: [{k: v for k, v in c.items() if k != "metadata"} for c in nbformat.reads(t, 4).cells]
    assert plain(tagged) == plain(text)


def test_the_staged_book_hides_the_injected_cell_of_an_executed_copy(tmp_path):
    executed = tmp_path / "_build" / "executed" / "laptop"
    executed.mkdir(parents=True)
    name = profiles.NOTEBOOKS[0]
    nb = parameterize_notebook(nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", 4), {"profile": "laptop"})
    for cell in nb.cells:  # as papermill would leave a copy made from an untagged notebook
        cell.metadata["tags"] = [t for t in cell.metadata.get("tags", []) if t not in ("hide-cell", "remove-cell")]
    nbformat.write(nb, executed / f"{name}.ipynb")
    stage = reproduce.stage_book(ROOT, "laptop", tmp_path / "_build")
    staged = nbformat.read(stage / "notebooks" / f"{name}.ipynb", 4)
    assert notebook_tags.missing(staged) == []
    assert any({"injected-parameters", "hide-cell"} <= set(c.metadata.get("tags", [])) for c in staged.cells)
