"""`make publish` / `cwl publish`: the built book on a gh-pages branch, as GitHub Pages serves it."""
import subprocess
from pathlib import Path

import pytest

from cwl_lib import cli, reproduce

ROOT = Path(__file__).resolve().parent.parent


def _git(*args, cwd=None) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repos(tmp_path, monkeypatch):
    """A project clone to publish from (the working directory) and a bare repository as its remote."""
    for who in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{who}_NAME", "cwl tests")
        monkeypatch.setenv(f"GIT_{who}_EMAIL", "tests@cwl.invalid")
    remote, work = tmp_path / "remote.git", tmp_path / "work"
    _git("init", "--bare", "-q", str(remote))
    _git("init", "-q", str(work))
    monkeypatch.chdir(work)
    return work, remote


def test_publish_pushes_the_whole_book_to_gh_pages(smoke_book, repos):
    work, remote = repos
    assert cli.main(["publish", "--html", str(smoke_book), "--remote", str(remote)]) == 0
    files = set(_git("ls-tree", "-r", "--name-only", "gh-pages", cwd=remote).split())
    built = {str(p.relative_to(smoke_book)) for p in smoke_book.rglob("*") if p.is_file()}
    assert files == built | {".nojekyll"}
    assert {"index.html", "_static/mathjax/tex-chtml.js", "notebooks/01_kronecker.html"} <= files
    # publishing again adds one commit holding the book as it is now
    assert cli.main(["publish", "--html", str(smoke_book), "--remote", str(remote)]) == 0
    assert _git("rev-list", "--count", "gh-pages", cwd=remote).strip() == "2"


def test_publish_to_another_branch(smoke_book, repos):
    work, remote = repos
    assert cli.main(["publish", "--html", str(smoke_book), "--remote", str(remote), "--branch", "site"]) == 0
    assert _git("branch", "--list", "--format=%(refname:short)", cwd=remote).split() == ["site"]


def test_publish_refuses_a_book_that_needs_the_network(tmp_path, repos, capsys):
    work, remote = repos
    html = tmp_path / "html"
    html.mkdir()
    (html / "index.html").write_text('<script src="https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-chtml.js"></script>')
    assert cli.main(["publish", "--html", str(html), "--remote", str(remote)]) == 2
    assert "index.html: https://cdn.jsdelivr.net" in capsys.readouterr().err
    assert _git("branch", "--list", cwd=remote) == ""


def test_publish_without_a_built_book_says_how_to_build_it(tmp_path, repos, capsys):
    work, remote = repos
    assert cli.main(["publish", "--html", str(tmp_path / "nothing"), "--remote", str(remote)]) == 2
    assert "make book" in capsys.readouterr().err


def test_make_publish_passes_the_remote_and_branch_on():
    out = subprocess.run(["make", "-n", "-C", str(ROOT), "publish", "PAGES_REMOTE=/srv/book.git", "PAGES_BRANCH=site"],
                         check=True, capture_output=True, text=True).stdout
    assert "cwl publish --remote /srv/book.git --branch site" in out


def test_pages_workflow_deploys_what_make_book_builds():
    import yaml

    flow = yaml.safe_load((ROOT / ".github" / "workflows" / "book.yml").read_text())
    trigger = flow.get("on", flow.get(True))  # YAML 1.1 reads a bare `on` key as true
    assert trigger["push"]["branches"] == ["main"]
    build = flow["jobs"]["build"]["steps"]
    assert [s["run"] for s in build if s.get("run") == "make book"] == ["make book"]
    upload = next(s for s in build if s.get("uses", "").startswith("actions/upload-pages-artifact@"))
    assert Path(upload["with"]["path"]) == reproduce.HTML_DIR
    deploy = flow["jobs"]["deploy"]
    assert deploy["needs"] == "build" and deploy["steps"][0]["uses"].startswith("actions/deploy-pages@")
    assert flow["permissions"]["pages"] == "write" and flow["permissions"]["id-token"] == "write"
