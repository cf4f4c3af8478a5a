"""The built book reads the same offline: typeset math, loaded figures, no repr, bar or traceback.

The browser tests open pages from file:// in headless Chromium with every host unresolvable, so a
page that needs a CDN fails here as it would for a reader without a network.
"""
import base64

import pytest
from book_pages import INSTALL_HINT, chromium, facts, pages, problems, start

from cwl_lib import reproduce

PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")
CLEAN = {"url": "page.html", "math": 2, "math_typeset": 2, "mjx": 2, "mathjax_loaded": True, "images": 1,
         "broken_images": [], "text": "The weights σ of torch.tensor-free prose: 0.12 after 2 epochs."}


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    found = chromium()
    if found is None:
        pytest.skip(INSTALL_HINT)
    session = start(*found, tmp_path_factory.mktemp("chromium-profile"))
    yield session
    session.quit()


def test_a_clean_page_has_no_problems():
    assert problems(CLEAN) == []


@pytest.mark.parametrize("change, says", [
    ({"math_typeset": 1}, "1 of 2 formulas not typeset"),
    ({"mathjax_loaded": False, "math_typeset": 0}, "MathJax did not load"),
    ({"text": r"the weights \(\sigma_k\) of"}, "raw TeX"),
    ({"text": "$$x = 1$$"}, "raw TeX"),
    ({"text": "np.float64(2.0) minutes of training"}, "numpy or torch repr"),
    ({"text": "mean np.int64(3)"}, "numpy or torch repr"),
    ({"text": "loss tensor(0.5000)"}, "numpy or torch repr"),
    ({"text": "runs:  35%|███▌      | 25/72 [00:03<00:06,  7.1it/s]"}, "progress-bar dump"),
    ({"text": "Traceback (most recent call last):\n  File"}, "traceback"),
    ({"broken_images": ["../_images/fig.png"]}, "image not loaded: ../_images/fig.png"),
])
def test_each_rule_names_the_page_and_the_fault(change, says):
    found = problems({**CLEAN, **change})
    assert len(found) == 1 and found[0].startswith("page.html: ") and says in found[0], found


def test_the_browser_sees_every_fault_of_a_broken_page(browser, tmp_path):
    (tmp_path / "dot.png").write_bytes(PNG)
    page = tmp_path / "broken.html"
    page.write_text("""<!doctype html><html><head><meta charset="utf-8">
      <script defer src="https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js"></script></head><body>
      <p>The weights <span class="math notranslate nohighlight">\\(\\sigma_k\\)</span> of each channel.</p>
      <p>It took np.float64(2.0) minutes of training.</p>
      <pre>runs:  35%|███▌      | 25/72 [00:03&lt;00:06,  7.10it/s]</pre>
      <pre>Traceback (most recent call last):</pre>
      <div class="cell_input"><pre>x = torch.tensor(0.5)</pre></div>
      <img src="dot.png"><img src="missing.png"></body></html>""", encoding="utf-8")
    found = "\n".join(problems(facts(browser, page.as_uri())))
    for says in ("has 1 formulas but MathJax did not load", "raw TeX", "numpy or torch repr",
                 "progress-bar dump", "traceback", "image not loaded: missing.png"):
        assert says in found, found
    assert "dot.png" not in found and "torch.tensor" not in found  # a loaded image, code in a code cell


def test_every_page_of_the_smoke_book_reads_clean_offline(browser, smoke_book):
    seen = [facts(browser, page.as_uri()) for page in pages(smoke_book)]
    assert {s["url"].rsplit("/", 2)[-2] + "/" + s["url"].rsplit("/", 1)[-1] for s in seen} >= {
        "notebooks/01_kronecker.html", "book/reproduce.html"}
    # the rules above only mean something if the pages do have typeset math and figures
    assert sum(s["mjx"] for s in seen) > 0 and sum(s["math"] for s in seen) > 0 and sum(s["images"] for s in seen) > 0
    found = [p for s in seen for p in problems(s)]
    assert not found, "\n".join(found)


def test_the_built_book_loads_nothing_from_the_network(smoke_book):
    assert reproduce.remote_assets(smoke_book) == []
    assert (smoke_book / "_static" / "mathjax" / "tex-chtml.js").exists()
    assert 'src="../_static/mathjax/tex-chtml.js"' in (smoke_book / "notebooks" / "01_kronecker.html").read_text()


def test_remote_assets_finds_what_a_page_would_fetch(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "page.html").write_text(
        '<script src="https://cdn.example.org/m.js"></script><link rel="stylesheet" href="//fonts.example.org/f.css">'
        '<link rel="canonical" href="https://example.org/page.html"><img src="http://example.org/a.png">'
        '<a href="https://example.org/read-more">a link a reader follows</a><script src="../_static/local.js"></script>')
    assert reproduce.remote_assets(tmp_path) == [
        "sub/page.html: https://cdn.example.org/m.js", "sub/page.html: //fonts.example.org/f.css",
        "sub/page.html: http://example.org/a.png"]
