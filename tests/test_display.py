"""Glued numbers reach a page formatted: stated precision, never a numpy or torch repr."""
import re
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest
import torch

from cwl_lib import display
from cwl_lib.display import fmt


@pytest.mark.parametrize("value, spec, text", [
    (np.float64(1.1), {"decimals": 1}, "1.1"),
    (np.float32(0.1), {"sig": 3}, "0.100"),
    (torch.tensor(0.5), {"decimals": 3}, "0.500"),
    (torch.tensor([2.25], dtype=torch.float64), {"decimals": 1}, "2.2"),  # round half to even
    (np.array(3.14159), {"sig": 3}, "3.14"),
    (np.int64(20), {}, "20"),
    (torch.tensor(7), {}, "7"),
    (64, {}, "64"),
    (3, {"decimals": 2}, "3.00"),
    (Fraction(1, 3), {"decimals": 3}, "0.333"),
    (Decimal("0.125"), {"sig": 2}, "0.12"),
    (-3.94, {"decimals": 1}, "-3.9"),
    (-0.0004, {"decimals": 2}, "0.00"),
    (1234.5, {"sig": 3}, "1230"),
    (999.6, {"sig": 3}, "1000"),
    (0.000449, {"sig": 2}, "0.00045"),
    (5.23e-16, {"sig": 2}, "5.2 × 10⁻¹⁶"),
    (-2e7, {"sig": 1}, "-2 × 10⁷"),
    (None, {"sig": 2}, "n/a"),
    (float("nan"), {"decimals": 1}, "n/a"),
    (np.float64("nan"), {}, "n/a"),
    (float("inf"), {"sig": 2}, "∞"),
])
def test_fmt(value, spec, text):
    assert fmt(value, **spec) == text


@pytest.mark.parametrize("value, spec, text", [
    # differences and effects: a sign on what is positive once rounded, none on zero
    (0.0123, {"decimals": 3, "sign": True}, "+0.012"),
    (-0.0123, {"decimals": 3, "sign": True}, "-0.012"),
    (0.0004, {"decimals": 3, "sign": True}, "0.000"),
    (-0.0004, {"decimals": 3, "sign": True}, "0.000"),
    (0.0, {"decimals": 3, "sign": True}, "0.000"),
    (1.23e-5, {"sig": 2, "sign": True}, "+1.2 × 10⁻⁵"),
    (float("inf"), {"sig": 2, "sign": True}, "+∞"),
    (None, {"decimals": 3, "sign": True, "na": ""}, ""),
    # cells of Tables I-II: mean (std) at one precision; a missing std is left out, a missing mean is na
    (0.3851, {"decimals": 3, "std": 0.0494}, "0.385 (0.049)"),
    (0.11, {"decimals": 3, "std": 0.0}, "0.110 (0.000)"),
    (0.5, {"decimals": 3, "std": None}, "0.500"),
    (np.float64(0.5), {"decimals": 3, "std": np.float64("nan")}, "0.500"),
    (float("nan"), {"decimals": 3, "std": 0.1, "na": "-"}, "-"),
    (55.0, {"decimals": 1, "std": 1.25}, "55.0 (1.2)"),
    # p-values
    (0.0004, {"decimals": 3, "below": 0.001}, "< 0.001"),
    (0.0, {"decimals": 3, "below": 0.001}, "< 0.001"),
    (0.001, {"decimals": 3, "below": 0.001}, "0.001"),
    (0.4329, {"decimals": 3, "below": 0.001}, "0.433"),
    (None, {"decimals": 3, "below": 0.001, "na": "-"}, "-"),
])
def test_fmt_options(value, spec, text):
    assert fmt(value, **spec) == text


def test_fmt_options_agree_with_the_formats_they_replace():
    """The f-strings that tables, claims and comparison used before print what fmt's options print,
    but for a difference that rounds to zero, which shows no sign now ("0.000", as the claims ledger had it)."""
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.uniform(-1, 1, 500), rng.uniform(0, 100, 500),
                             rng.choice([-1, 1], 200) * 10 ** rng.uniform(-12, -3, 200)])
    for x in values:
        if x >= 0:  # a mean accuracy or mAP and its std
            assert fmt(x, decimals=3, std=x / 7, na="-") == f"{x:.3f} ({x / 7:.3f})"
            assert fmt(x, decimals=2, na="-") == f"{x:.2f}"  # a p-value of Tables I-II
        if round(x, 3):
            assert fmt(x, decimals=3, sign=True, na="") == f"{x:+.3f}"


def test_fmt_na_text_is_the_callers():
    assert fmt(None, na="not run") == "not run"


def test_a_non_integer_must_state_its_precision():
    with pytest.raises(ValueError, match="decimals= or sig="):
        fmt(np.float64(2.0))
    with pytest.raises(ValueError, match="not both"):
        fmt(1.0, decimals=1, sig=1)


@pytest.mark.parametrize("value", [True, np.bool_(False), torch.tensor(True), "0.5", 1j,
                                   np.array([1.0, 2.0]), torch.zeros(2, 2), [1.0], object()])
def test_fmt_refuses_what_is_not_one_real_number(value):
    with pytest.raises(TypeError):
        fmt(value, sig=2)


@pytest.mark.parametrize("value", [np.float64(0.1234), torch.tensor(0.1234), 0.1234, np.float32(0.1234)])
def test_no_repr_survives(value):
    text = fmt(value, sig=2)
    assert text == "0.12"


@pytest.fixture
def shown(monkeypatch):
    """What myst-nb's glue hands to IPython's display, by glued name."""
    from myst_nb.ext import glue as glue_ext

    bundles = {}
    monkeypatch.setattr(glue_ext, "ipy_display", lambda bundle, raw, metadata: bundles.update(
        {metadata["scrapbook"]["name"]: bundle}))
    return bundles


def test_glue_stores_the_formatted_text_that_glue_text_renders(shown):
    from myst_nb.core.variables import format_plain_text

    assert display.glue("minutes", np.float64(1.1234), decimals=1) == "1.1"
    assert display.glue("n_runs", np.int64(20)) == "20"
    assert display.glue("verdict", "lowers") == "lowers"
    plain = {name: b["application/papermill.record/text/plain"] for name, b in shown.items()}
    # myst-nb's {glue:text} role turns the stored text/plain into the page text
    assert {name: format_plain_text(t, "") for name, t in plain.items()} == {
        "minutes": "1.1", "n_runs": "20", "verdict": "lowers"}
    assert not any("np." in t or "tensor" in t for t in plain.values())
    # trailing zeros are part of the stated precision and survive the round trip
    display.glue("acc", 0.5, decimals=3)
    assert format_plain_text(shown["acc"]["application/papermill.record/text/plain"], "") == "0.500"


def test_glue_refuses_a_precision_for_text(shown):
    with pytest.raises(TypeError, match="text"):
        display.glue("verdict", "lowers", decimals=1)
    assert not shown


def test_a_table_is_html_with_its_caption_and_stated_precisions():
    import pandas as pd

    frame = pd.DataFrame({"layer": ["conv1", "conv2"], "k": [16, 32], "gap": [5.3e-16, 1.25e-15],
                          "share": [0.38449, 0.5], "note": [None, "x"]})
    html = display.table(frame, "Two layers, one line.", {"gap": {"sig": 1}, "share": {"decimals": 2}}).to_html()
    assert "<caption>Two layers, one line.</caption>" in html and 'class="cwl-table"' in html
    for text in (">conv1<", ">16<", ">5 × 10⁻¹⁶<", ">1 × 10⁻¹⁵<", ">0.38<", ">0.50<"):
        assert text in html, text
    assert "0.38449" not in html and "row_heading" not in html  # rounded; no index column
    with pytest.raises(ValueError, match="'share'.*state its precision"):
        display.table(frame, "c", {"gap": {"sig": 1}})
    with pytest.raises(KeyError, match="missing"):
        display.table(frame, "c", {"missing": {"sig": 1}})


def test_a_table_gives_its_rows_the_ids_a_link_can_name():
    import pandas as pd

    frame = pd.DataFrame({"claim": ["C1", "C2", "C10"], "verdict": ["supported", "not tested here", "inconclusive"]})
    html = display.table(frame, "Three claims.", row_ids=[f"claim-{c}" for c in frame["claim"]])._repr_html_()
    body = html.split("<tbody>", 1)[1]
    assert list(re.findall(r'<tr id="([^"]+)">', body)) == ["claim-C1", "claim-C2", "claim-C10"]
    assert 'id="claim-' not in html.split("<tbody>", 1)[0]  # the header row gets none
    assert body.index('id="claim-C2"') < body.index(">not tested here<") < body.index('id="claim-C10"')
    with pytest.raises(ValueError, match="one distinct id per row"):
        display.table(frame, "c", row_ids=["a", "a", "b"])
    with pytest.raises(ValueError, match="HTML id"):
        display.table(frame, "c", row_ids=["ok", "not ok", "x"])


def test_a_table_shown_with_its_index_has_one_header_row():
    import pandas as pd

    frame = pd.DataFrame({"paper": ["vgg16", "10"], "this run": ["mobilenet_v2", "2"]},
                         index=pd.Index(["backbones", "repeats"], name="quantity"))
    html = display.table(frame, "Setting.", index=True).to_html()
    head = html.split("<tbody>", 1)[0]
    assert head.count("<tr>") == 1 and ">quantity<" not in html and ">backbones<" in html
