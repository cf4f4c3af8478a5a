"""The intro's verdict box: computed from the ledger of the book's own page 06, never typed."""
import os
import time
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from cwl_lib import claims, comparison, effects, verdicts

ROOT = Path(__file__).resolve().parent.parent


def _ledger(verdict_of: dict[str, str]) -> pd.DataFrame:
    """The ledger of a run with no records, its verdicts replaced by ``verdict_of`` (id -> verdict)."""
    ledger = claims.ledger(claims.Inputs())
    ledger["verdict"] = [verdict_of.get(i, v) for i, v in zip(ledger["id"], ledger["verdict"])]
    return ledger


def test_identities_and_empirical_claims_are_counted_apart_under_every_verdict():
    identities = [c.id for c in claims.CLAIMS if c.options.get("match") == claims.IDENTITY]
    assert identities and len(identities) < len(claims.CLAIMS)
    ledger = _ledger({identities[0]: effects.SUPPORTED, "C10": effects.SUPPORTED, "C12": effects.NOT_SUPPORTED,
                      "C9": effects.NOT_TESTABLE})
    got = verdicts.counts(ledger)
    assert got["identities"] == (1, len(identities), {effects.NOT_TESTED: len(identities) - 1})
    assert list(got["empirical"]) == list(effects.VERDICTS)  # whatever verdicts effects lists, zeros included
    empirical = len(claims.CLAIMS) - len(identities)
    assert got["empirical"] == {**{v: 0 for v in effects.VERDICTS}, effects.SUPPORTED: 1, effects.NOT_SUPPORTED: 1,
                                effects.NOT_TESTABLE: 1, effects.NOT_TESTED: empirical - 3}


def test_the_identities_are_named_by_the_sections_they_come_from():
    ledger = _ledger({})
    assert verdicts.identities_label(ledger) == "Identities of Sections III and IV"  # C8 is Section IV-A's
    assert verdicts.identities_label(ledger[ledger["id"] != "C8"]) == "Identities of Section III"
    assert "Identities of Sections III and IV</strong>" in verdicts.box(ledger, "smoke", "")


def test_a_verdict_the_rule_does_not_know_is_refused():
    with pytest.raises(ValueError, match="does not list"):
        verdicts.counts(_ledger({"C10": "probably"}))


def test_the_box_has_one_line_per_claim_linking_its_row_and_its_notebook():
    ledger = _ledger({"C10": effects.SUPPORTED})
    ledger.loc[ledger["id"] == "C10", "claim"] = "CWL <beats> freeze & more"
    html = verdicts.box(ledger, "laptop", "Stand-in: a sentence.")
    assert html.count('<li class="verdict-line ') == len(ledger)
    assert 'href="../notebooks/06_comparison.html#claim-C10"' in html
    assert 'href="../notebooks/03_classification.html"' in html and "page 03" in html
    assert "CWL &lt;beats&gt; freeze &amp; more" in html and "<beats>" not in html
    assert "profile <code>laptop</code>" in html and "Stand-in: a sentence." in html
    for verdict in effects.VERDICTS:
        assert verdict in html


def test_the_stand_in_sentence_names_what_stands_in_for_the_paper():
    laptop = verdicts.stand_in_sentence("laptop")
    assert laptop.startswith("Stand-in:")
    for name in ("mobilenet_v2", "fashion-mnist", "vgg16", "resnet50", "kvasir", "roxford5k"):
        assert name in laptop
    assert "paper's own experiments" in verdicts.stand_in_sentence("paper")
    frame = comparison.stand_ins("laptop")
    n = (~frame.index.get_level_values("notebook").isin(comparison.SECTION3)).sum()
    assert f"of {n} settings differ" in laptop


def _page_06(tmp_path, results_dir, start, end):
    nb = nbformat.v4.new_notebook()
    nb.metadata["papermill"] = {"parameters": {"profile": "laptop", "results_dir": results_dir},
                                "start_time": start, "end_time": end}
    path = tmp_path / "06_comparison.ipynb"
    nbformat.write(nb, path)
    return path


def _iso(t: float) -> str:
    from datetime import datetime, timezone
    return datetime.fromtimestamp(t, timezone.utc).isoformat()


def test_the_ledger_is_the_one_the_book_s_page_06_wrote_during_its_run(tmp_path):
    notebooks = tmp_path / "notebooks"
    (notebooks / "res").mkdir(parents=True)
    ledger = notebooks / "res" / verdicts.LEDGER_FILE
    claims.ledger(claims.Inputs()).to_csv(ledger, index=False)
    now = time.time()
    # a relative results_dir is where papermill ran the page: in the notebooks folder
    found, why = verdicts.find_ledger(_page_06(tmp_path, "res", _iso(now - 60), _iso(now + 1)), notebooks)
    assert found == ledger and why == ""
    assert verdicts.read_ledger(found).equals(claims.ledger(claims.Inputs()))
    os.utime(ledger, (now + 3600, now + 3600))  # rewritten by a later run of page 06
    found, why = verdicts.find_ledger(_page_06(tmp_path, "res", _iso(now - 60), _iso(now + 1)), notebooks)
    assert found is None and "another run" in why
    found, why = verdicts.find_ledger(_page_06(tmp_path, str(tmp_path / "elsewhere"), _iso(now), _iso(now)), notebooks)
    assert found is None and "wrote no ledger.csv" in why


def test_a_book_of_the_committed_notebooks_says_it_has_no_ledger(tmp_path):
    found, why = verdicts.find_ledger(ROOT / "notebooks" / "06_comparison.ipynb", ROOT / "notebooks")
    assert found is None and "not run by `cwl reproduce`" in why
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "book").mkdir()
    nbformat.write(nbformat.read(ROOT / "notebooks" / "06_comparison.ipynb", 4), tmp_path / "notebooks" / "06_comparison.ipynb")
    text = verdicts.stage(tmp_path, "smoke", ROOT / "notebooks").read_text()
    assert 'id="verdict-box"' in text and "No claims ledger" in text and "cwl reproduce --profile smoke" in text
