"""The built book reads the same offline: typeset math, loaded figures, no repr, bar or traceback.

The browser tests open pages from file:// in headless Chromium with every host unresolvable, so a
page that needs a CDN fails here as it would for a reader without a network.
"""
import base64
import re

import pytest
from book_pages import INSTALL_HINT, SCREEN, chromium, facts, first_screen, pages, problems, start

from cwl_lib import claims, reproduce, verdicts

PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")
CLEAN = {"url": "page.html", "math": 2, "math_typeset": 2, "mjx": 2, "mathjax_loaded": True, "images": 1,
         "broken_images": [], "text": "The weights σ of torch.tensor-free prose: 0.12 after 2 epochs.\nIt looks ok",
         "wide_tables": [], "pictures": [["../_images/err.png", "Relative error against the number of terms"]]}
# Faults of pages still waiting for their rework: each must still be found, so that an entry leaves this list when
# its page is fixed, and no other page may have them. Every page of the book reads clean today.
NOT_YET: dict[str, tuple[str, ...]] = {}


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
    ({"text": "n_paper_cells: 176 exact ok"}, "a check line of nbval"),
    ({"text": "IV | acc: 0.44 ± 0.05 ok"}, "a check line of nbval"),
    ({"text": "Theorem 1, largest gap: below 1e-12 ok"}, "a check line of nbval"),
    ({"text": "acc: 0.441 (not checked: no reference for these parameters)"}, "a check line of nbval"),
    ({"wide_tables": ["#ledger: 1159 px in a 676 px column"]}, "table wider than its column, #ledger"),
    ({"pictures": [["../_images/f.png", "../_images/f.png"]]}, "figure without alt text: ../_images/f.png"),
    ({"pictures": [["../_images/f.png", " "]]}, "figure without alt text"),
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
      <pre>n_runs: 12 exact ok</pre>
      <article class="bd-article" style="width: 600px; padding: 0 20px">
        <section id="wide"><div style="overflow-x: auto"><table style="width: 900px"><tr><td>x</td></tr></table></div>
        </section><section id="narrow"><table><tr><td>y</td></tr></table></section>
        <div class="tag_full-width"><table style="width: 900px"><tr><td>z</td></tr></table></div>
        <img src="dot.png" alt="A dot"><img src="missing.png"><img src="dot.png" alt="dot.png"></article>
      </body></html>""", encoding="utf-8")
    found = "\n".join(problems(facts(browser, page.as_uri())))
    for says in ("has 1 formulas but MathJax did not load", "raw TeX", "numpy or torch repr",
                 "progress-bar dump", "traceback", "image not loaded: missing.png", "check line of nbval",
                 "table wider than its column, #wide: 900 px in a 600 px column",
                 "figure without alt text: missing.png", "figure without alt text: dot.png"):
        assert says in found, found
    assert "torch.tensor" not in found  # code in a code cell
    assert "#narrow" not in found and found.count("wider than") == 1  # a narrow table, a full-width one


def _name(url: str) -> str:
    return "/".join(url.split("#")[0].rsplit("/", 2)[-2:])


def test_every_page_of_the_smoke_book_reads_clean_offline(browser, smoke_book):
    seen = [facts(browser, page.as_uri()) for page in pages(smoke_book)]
    assert {_name(s["url"]) for s in seen} >= {"notebooks/01_kronecker.html", "book/reproduce.html"}
    # the rules above only mean something if the pages do have typeset math, figures and tables
    assert sum(s["mjx"] for s in seen) > 0 and sum(s["math"] for s in seen) > 0 and sum(s["images"] for s in seen) > 0
    found = [p for s in seen for p in problems(s)]
    waived = [p for p in found if any(kind in p for kind in NOT_YET.get(_name(p.split(": ", 1)[0]), ()))]
    left = sorted(set(found) - set(waived))
    assert not left, "\n".join(left)
    gone = [f"{page}: {kind}" for page, kinds in NOT_YET.items() for kind in kinds
            if not any(_name(p.split(": ", 1)[0]) == page and kind in p for p in waived)]
    assert not gone, "fixed, so take them out of NOT_YET: " + "; ".join(gone)


def test_the_intro_opens_with_the_verdict_box_of_its_run(browser, smoke_book):
    intro = facts(browser, (smoke_book / "book" / "intro.html").as_uri())
    assert intro["viewport"] == list(SCREEN)
    assert first_screen(intro) == []
    # the box of the ledger that the book's page 06 wrote (tests/conftest.py runs it), one line per claim
    ledger = verdicts.read_ledger(smoke_book.parent.parent / "results" / "06_comparison" / verdicts.LEDGER_FILE)
    assert intro["verdict_box"]["lines"] == len(ledger) > 0
    assert "What this book's run finds (profile smoke)" in intro["text"]
    held, total, _ = verdicts.counts(ledger)["identities"]
    assert f"{verdicts.identities_label(ledger)}: {held} of {total} hold" in intro["text"]


def test_each_line_of_the_verdict_box_reaches_its_ledger_row_and_its_notebook(browser, smoke_book):
    links = facts(browser, (smoke_book / "book" / "intro.html").as_uri())["verdict_box"]["links"]
    rows = [u for u in links if "#" in u]
    assert len(rows) >= 2 and len(links) == 2 * len(rows)
    for url in links:
        browser.get(url)
        fragment = url.split("#", 1)[1] if "#" in url else None
        reached = browser.execute_script(
            "const f = arguments[0]; const t = f && document.getElementById(f);"
            "return [!!document.querySelector('article.bd-article'), f ? (t ? t.tagName + ' ' + t.innerText : null) : ''];",
            fragment)
        assert reached[0], f"{url} is not a page of the book"
        if fragment:
            claim = fragment.split("-", 1)[1]
            assert reached[1] and reached[1].startswith(f"TR {claim}"), f"{url}: no row of claim {claim} ({reached[1]})"


def test_page_06_opens_with_the_narrow_ledger_whose_rows_carry_their_own_anchors(smoke_book):
    """The rows the verdict box links to have their ids in the page itself (no script needed to reach them), and
    the ledger is the first table a reader meets there."""
    page = (smoke_book / "notebooks" / "06_comparison.html").read_text()
    article = page[page.index('<article class="bd-article"'):]
    first = article[article.index("<table"):article.index("</table>")]
    ids = re.findall(r'<tr id="(claim-C\d+)"', first)
    assert ids == [verdicts.ROW_ANCHOR.format(id=c.id) for c in claims.CLAIMS]
    assert "The claims ledger of this run" in first and "</th>" in first
    assert len(re.findall(r'<tr id="claim-', page)) == len(claims.CLAIMS)  # one anchor per claim on the page
    assert "Every source holds its whole grid." in page  # it read what 03-05 wrote before it


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
