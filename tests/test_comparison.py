"""The paper-beside-ours page: cells, matching, significance and provenance from synthetic run records."""
import json
import math

import pytest

from cwl_lib import claims, comparison, measures, paper, profiles, records
from cwl_lib import effects as E
from cwl_lib.checks import Checks
from cwl_lib.studies import classification, pruning, retrieval

PROV = {"device": "cpu:test", "code_version": "git:test", "torch": "0.0"}


def _record(study, cfg, **results) -> dict:
    return {"version": records.RECORD_VERSION, "study": study.NAME, "key": study.key(cfg),
            "config": records.config_dict(cfg), **results, **PROV}


def _classification_params(**over):
    base = {"datasets": ["mit67"], "archs": ["vgg16"], "strategies": ["freeze", "freeze+cwl"], "shots": [1, 3],
            "repeats": 3, "lr_freeze": [0.01, 0.05]}
    return profiles.parameters("smoke", "03_classification", {**base, **over})


def _write_classification(folder, params, accuracy):
    """One record per run of the grid, ``accuracy(cfg)`` giving its result (None: not recorded)."""
    store = records.Store(folder / "03_classification" / "runs")
    for cfg in classification.configs(params):
        acc = accuracy(cfg)
        if acc is not None:
            store.write(_record(classification, cfg, accuracy=acc, run_seed=cfg.run_seed))
    return store


def _cell(frame, table, row, column):
    hit = frame[(frame.table == table) & (frame.row == row) & (frame.column == column)]
    assert len(hit) == 1
    return hit.iloc[0]


def _acc(cfg):  # freeze+cwl beats freeze by 0.02 at its better lr; repeats differ
    bonus = 0.02 if cfg.strategy == "freeze+cwl" else 0.0
    return 0.10 + 0.01 * cfg.repeat + (0.03 if cfg.lr == 0.05 else 0.0) + bonus + 0.1 * (cfg.shots == 3)


def test_difference_is_ours_minus_paper_and_ours_is_the_mean_of_the_best_lr_per_repeat(tmp_path):
    params = _classification_params()
    _write_classification(tmp_path, params, _acc)
    src = comparison.load("03_classification", tmp_path / "03_classification", params)
    frame = comparison.cells({"03_classification": src, **_empty_others(tmp_path)})
    c = _cell(frame, "I", "vgg16 · mit67 · freeze+cwl", "3 shot")
    expected = sum(0.10 + 0.01 * r + 0.03 + 0.02 + 0.1 for r in range(3)) / 3
    assert c.ours == pytest.approx(expected)
    assert c.paper == paper.TABLE_I[("vgg16", "mit67", "freeze+cwl")][3][0]
    assert c.difference == pytest.approx(c.ours - c.paper)
    assert c.status == comparison.SAME and c.repeats == 3
    shown = comparison.view(frame, "I").loc[("vgg16 · mit67 · freeze+cwl", "3 shot")]
    assert shown["ours"] == f"{c.ours:.3f} ({c.ours_std:.3f})" and shown["ours - paper"] == f"{c.difference:+.3f}"
    assert shown["paper"] == "{:.3f} ({:.3f})".format(*paper.TABLE_I[("vgg16", "mit67", "freeze+cwl")][3])
    # a paper cell whose shots the grid does not run is not run, never filled from other shots
    assert _cell(frame, "I", "vgg16 · mit67 · freeze", "5 shot").status == comparison.NOT_RUN
    assert math.isnan(_cell(frame, "I", "vgg16 · mit67 · freeze", "5 shot").ours)
    # a paper dataset we did not run, with no stand-in of ours, is not run either
    assert _cell(frame, "I", "vgg16 · kvasir · freeze", "1 shot").status == comparison.NOT_RUN


def test_another_dataset_and_backbone_are_a_stand_in_and_say_so(tmp_path):
    params = _classification_params(datasets=["fashion-mnist"], archs=["mobilenet_v2"])
    _write_classification(tmp_path, params, _acc)
    src = comparison.load("03_classification", tmp_path / "03_classification", params)
    frame = comparison.cells({"03_classification": src, **_empty_others(tmp_path)})
    rows = frame[(frame.table == "I") & (frame.column == "1 shot")]
    assert set(rows.status) == {comparison.STAND_IN}
    assert set(rows.our_setting) == {"mobilenet_v2 · fashion-mnist"}
    shown = comparison.settings(frame)
    assert set(shown[shown.table == "I"]["match"]) == {"not the same experiment: a stand-in"}
    assert "stand-in" in set(comparison.view(frame, "I")["match"])


def test_records_behind_a_cell_are_exactly_those_of_its_config(tmp_path):
    params = _classification_params()
    store = _write_classification(tmp_path, params, _acc)
    # a record of another setting (more steps) for the same dataset, arch, strategy and shots
    other = classification.configs({**params, "steps": 99})[0]
    store.write(_record(classification, other, accuracy=0.99))
    sources = {"03_classification": comparison.load("03_classification", tmp_path / "03_classification", params),
               **_empty_others(tmp_path)}
    assert sources["03_classification"].other == 1
    frame = comparison.cells(sources)
    c = _cell(frame, "I", "vgg16 · mit67 · freeze", "1 shot")
    behind = comparison.records_behind(c, sources)
    wanted = {classification.key(cfg) for cfg in classification.configs(params)
              if (cfg.strategy, cfg.shots) == ("freeze", 1)}
    assert {r["key"] for r in behind} == wanted and len(behind) == 2 * 3  # two lrs, three repeats
    # the number is made of the best lr of each repeat
    used = {r["key"] for r in behind if r["config"]["lr"] == 0.05}
    assert set(c["keys"]) == used
    prov = comparison.provenance(frame, sources, "smoke")
    row = prov[prov["keys used"] == ", ".join(sorted(used))].iloc[0]
    assert (row["records used"], row["records of the cell"]) == (3, 6)
    assert row["tables"] == "I, II"  # freeze rows appear in both tables; listed once
    assert (row["code_version"], row["device"], row["run_seed"]) == ("git:test", "cpu:test", "0, 1, 2")


def _empty_others(tmp_path):
    return {nb: comparison.load(nb, tmp_path / "nothing" / nb, profiles.parameters("smoke", nb))
            for nb in ("04_retrieval", "05_pruning")}


def test_missing_stores_give_not_run_cells_and_the_command_that_fills_them(tmp_path):
    root = tmp_path / "results" / "laptop"
    sources = comparison.gather("laptop", root)
    frame = comparison.cells(sources)
    assert set(frame.status) == {comparison.NOT_RUN}
    assert len(frame) == comparison.headline(frame, comparison.significance(sources))["n_paper_cells"]
    text = "\n".join(comparison.instructions(sources, "laptop"))
    for nb in ("03_classification", "04_retrieval", "05_pruning"):  # the run that writes where this page reads
        assert f"`cwl reproduce --profile laptop --only {nb} -p results_dir {root}`" in text
    assert comparison.significance(sources).empty
    assert comparison.provenance(frame, sources, "laptop").empty
    checks = Checks("06_comparison", {"profile": "laptop"})
    comparison.check(frame, comparison.significance(sources), checks)
    assert set(checks.values) == {"n_paper_cells", "n_ours", "n_same", "n_stand_in", "n_not_run", "n_compared"}
    assert checks.values["n_ours"] == 0 and not checks.failures
    for table in ("I", "II", "III", "IV"):
        assert set(comparison.view(frame, table)["ours"]) == {comparison.NOT_RUN}
    assert not root.exists()  # reading never creates a store


def test_significance_only_where_both_strategies_have_paired_repeats(tmp_path):
    params = _classification_params()

    def acc(cfg):  # freeze+cwl misses repeat 2 at 1 shot and every repeat at 3 shots
        if cfg.strategy == "freeze+cwl" and (cfg.shots == 3 or cfg.repeat == 2):
            return None
        return _acc(cfg)

    _write_classification(tmp_path, params, acc)
    sources = {"03_classification": comparison.load("03_classification", tmp_path / "03_classification", params),
               **_empty_others(tmp_path)}
    sig = comparison.significance(sources)
    assert list(sig.shots) == [1] and list(sig.pairs) == [2]
    assert sig.mean_diff.iloc[0] == pytest.approx(0.02)
    assert list(sig.table) == ["I"]  # no finetuning runs: Table II has nothing to test


def test_one_pair_gives_no_p_value(tmp_path):
    params = _classification_params(repeats=1)
    _write_classification(tmp_path, params, _acc)
    sources = {"03_classification": comparison.load("03_classification", tmp_path / "03_classification", params),
               **_empty_others(tmp_path)}
    sig = comparison.significance(sources)
    assert set(sig.pairs) == {1} and sig.p_ttest.isna().all()
    assert comparison.headline(comparison.cells(sources), sig)["n_tested"] == 0


def test_table_iii_uses_the_chosen_learning_rate(tmp_path):
    params = profiles.parameters("smoke", "04_retrieval", {
        "datasets": ["roxford5k"], "archs": ["vgg16"], "strategies": ["freeze", "freeze+cwl"],
        "freeze_lrs": [0.01, 0.05]})
    store = records.Store(tmp_path / "04_retrieval" / "runs")
    for run in retrieval.configs(params):
        m = 40.0 if run.lr is None else 50.0 if run.lr == 0.05 else 30.0
        table = {"easy": m + 10, "medium": m, "hard": m - 10, "mean": m}
        store.write(_record(retrieval, run, table=table))
    sources = {"04_retrieval": comparison.load("04_retrieval", tmp_path / "04_retrieval", params),
               "03_classification": comparison.load("03_classification", tmp_path / "x",
                                                    profiles.parameters("smoke", "03_classification")),
               "05_pruning": comparison.load("05_pruning", tmp_path / "x", profiles.parameters("smoke", "05_pruning"))}
    frame = comparison.cells(sources)
    c = _cell(frame, "III", "vgg16 · freeze+cwl", "roxford5k · easy")
    paper_value = paper.TABLE_III[("vgg16", "freeze+cwl")][("roxford5k", "easy")]
    assert c.ours == 60.0 and c.difference == pytest.approx(60.0 - paper_value)
    assert c.status == comparison.SAME
    chosen = [r for r in comparison.records_behind(c, sources) if r["key"] in c["keys"]]
    assert [r["config"]["lr"] for r in chosen] == [0.05]
    assert _cell(frame, "III", "vgg16 · freeze", "rparis6k · easy").status == comparison.NOT_RUN
    sig = comparison.significance(sources)
    assert list(sig.pairs) == [1] and sig.mean_diff.iloc[0] == pytest.approx(10.0)


@pytest.mark.parametrize("epochs,ft30_same", [([1, 30], True), ([1, 3], False)])
def test_table_iv_reads_the_study_and_names_a_shorter_finetuning(tmp_path, epochs, ft30_same):
    params = profiles.parameters("paper", "05_pruning", {"finetune_epochs": epochs, "taus": [0.8]})
    store = comparison.store_of(tmp_path / "05_pruning")
    # more digits than the study's rounded table keeps: page 06 prints the records' values
    row = {"tau": 0.8, "acc": 0.5, f"ft{epochs[0]}": 0.6, f"ft{epochs[1]}": 0.70049, "params": 0.4, "features": 0.6}
    by_tau = {c.tau: c for c in comparison.compared_configs("05_pruning", params)}
    assert set(by_tau) == {None, 0.8}
    store.write(_record(pruning, by_tau[None], unpruned={"accuracy": 0.9}))
    store.write(_record(pruning, by_tau[0.8], row=row, layers={}))
    ours = next(c for c in pruning.configs(params) if pruning.variant_of(c, params) == pruning.L1)
    store.write(_record(pruning, ours, row=row, layers={}))  # another study in the same store
    old = store.folder / "0123456789abcdef.json"
    old.write_text(json.dumps({**_record(pruning, by_tau[0.8], row=row), "version": 1, "key": "0123456789abcdef"}))
    with pytest.warns(UserWarning, match="record format 1"):
        src = comparison.load("05_pruning", tmp_path / "05_pruning", params)
    assert not old.exists() and (store.folder / "superseded" / old.name).exists()  # set aside, never mixed in
    src = comparison.load("05_pruning", tmp_path / "05_pruning", params)
    assert (src.status, src.other) == ("complete", 1)
    sources = {"05_pruning": src, **{nb: comparison.load(nb, tmp_path / "x", profiles.parameters("smoke", nb))
                                     for nb in ("03_classification", "04_retrieval")}}
    frame = comparison.cells(sources)
    assert _cell(frame, "IV", "unpruned", "acc").ours == 0.9
    ft30 = _cell(frame, "IV", "tau = 0.8", "FT@30")
    assert ft30.ours == 0.70049
    assert (ft30.status == comparison.SAME) == ft30_same
    if ft30_same:
        assert ft30.difference == pytest.approx(0.70049 - 0.889)
    else:  # a stand-in (FT@3 beside FT@30) has no raw difference
        assert math.isnan(ft30.difference)
    assert ft30.our_setting.endswith(f"FT@{epochs[1]}")
    assert _cell(frame, "IV", "tau = 0.8", "acc").status == comparison.SAME
    assert _cell(frame, "IV", "tau = 0.2", "acc").status == comparison.NOT_RUN
    assert comparison.records_behind(ft30, sources)[0]["key"] == pruning.key(by_tau[0.8])


def test_the_page_reads_the_notebooks_the_profiles_declare_and_needs_no_data():
    assert set(comparison.SOURCES.values()) == set(profiles.READS["06_comparison"])
    for profile in profiles.PROFILES:  # it runs no grid, so it loads no dataset or weights
        assert profiles.notebook_requirements("06_comparison", profiles.parameters(profile, "06_comparison")) == []


def test_sources_are_the_folders_beside_the_page_or_where_cwl_reproduce_writes():
    assert comparison.sources_root("/r", "/x/results/laptop/06_comparison", "laptop") == comparison.Path("/r")
    reproduce_dir = "/x/results/laptop/06_comparison"  # what `cwl reproduce` passes; nbval and refresh alike
    assert comparison.sources_root("", reproduce_dir, "laptop") == comparison.Path("/x/results/laptop")
    default = comparison.project_root() / "results" / "smoke"  # a page run on its own
    assert comparison.sources_root("", "", "smoke") == default
    assert comparison.fill_command("04_retrieval", default / "04_retrieval", "smoke") == (
        "cwl reproduce --profile smoke --only 04_retrieval")


def _write_complete_smoke_sources(root):
    params = {nb: profiles.parameters("smoke", nb) for nb in comparison.SOURCES.values()}
    _write_classification(root, params["03_classification"], _acc)
    store = records.Store(root / "04_retrieval" / "runs")
    for run in retrieval.configs(params["04_retrieval"]):
        store.write(_record(retrieval, run, table={"easy": 60.0, "medium": 50.0, "hard": 40.0, "mean": 50.0}))
    _pruning_store(root / "05_pruning", params["05_pruning"])


def test_complete_sources_are_read_as_written_and_ask_for_no_command(tmp_path):
    root = tmp_path / "results" / "smoke"
    _write_complete_smoke_sources(root)
    sources = comparison.gather("smoke", root)
    assert {nb: s.status for nb, s in sources.items()} == dict.fromkeys(sources, "complete")
    assert comparison.instructions(sources, "smoke") == []
    frame = comparison.cells(sources)
    assert set(frame.table[frame.status != comparison.NOT_RUN]) == {"I", "II", "III", "IV"}
    assert _cell(frame, "III", "vgg16 · freeze", "roxford5k · medium").ours == 50.0
    table = comparison.source_table(sources)
    assert list(table.columns) == ["notebook", "tables", "store", "records of its grid", "runs in its grid",
                                   "other settings left out", "status", "failed twice"]


def test_a_partial_source_names_the_one_command_that_fills_it(tmp_path):
    root = tmp_path / "results" / "smoke"
    _write_complete_smoke_sources(root)
    gone = next((root / "04_retrieval" / "runs").glob("*.json"))
    gone.unlink()
    sources = comparison.gather("smoke", root)
    assert sources["04_retrieval"].status == "partial"
    (line,) = comparison.instructions(sources, "smoke")
    n = len(sources["04_retrieval"].expected)
    assert line.startswith(f"Table III: {root / '04_retrieval'} holds {n - 1} of the {n} records of the smoke grid")
    assert f"run `cwl reproduce --profile smoke --only 04_retrieval -p results_dir {root}`" in line


def test_no_stand_in_row_has_a_difference(tmp_path):
    params = _classification_params(datasets=["fashion-mnist"], archs=["mobilenet_v2"])
    _write_classification(tmp_path, params, _acc)
    frame = comparison.cells({"03_classification": comparison.load("03_classification", tmp_path / "03_classification",
                                                                   params), **_empty_others(tmp_path)})
    stand_ins = frame[frame.status == comparison.STAND_IN]
    assert len(stand_ins) and stand_ins.difference.isna().all()
    assert frame[frame.status == comparison.NOT_RUN].difference.isna().all()
    for table in ("I", "II"):
        shown = comparison.view(frame, table)
        assert (shown.loc[shown["match"] != comparison.SAME, "ours - paper"] == "").all()


def _pruning_store(folder, params, n_test=40):
    """The paper-method study of ``params`` (unpruned row and every tau), written to ``folder``."""
    store = comparison.store_of(folder)
    for cfg in comparison.compared_configs("05_pruning", params):
        if cfg.tau is None:
            store.write(_record(pruning, cfg, unpruned={"accuracy": 0.9}, correct={"acc": "1" * n_test}))
            continue
        fts = {f"ft{e}": 0.88 - 0.1 * cfg.tau for e in cfg.finetune_epochs}
        row = {"tau": cfg.tau, "acc": 0.9 - 0.5 * cfg.tau, **fts, "params": 1 - 0.5 * cfg.tau, "features": 0.8}
        layers = {"layer": [f"c{i}" for i in range(6)], "kind": ["conv3x3"] * 6,
                  "channels_kept": [0.2, 0.3, 0.4, 0.5, 0.6, 0.7], "tau": [cfg.tau] * 6}
        store.write(_record(pruning, cfg, row=row, layers=layers))


def test_claims_inputs_read_the_sources_the_measures_and_the_profile(tmp_path):
    profile = "laptop"
    root = tmp_path / "results" / profile
    cls = profiles.parameters(profile, "03_classification")
    _write_classification(root, cls, _acc)
    pr = profiles.parameters(profile, "05_pruning")
    _pruning_store(root / "05_pruning", pr)
    good = {"theorem1_gap": 3e-16, "rank_k_gap": 1e-15}
    measures.write(root / "01_kronecker", "01_kronecker", profiles.parameters(profile, "01_kronecker"), good)
    sources = comparison.gather(profile, root)
    inputs = comparison.claims_inputs(sources, root, profile)
    assert set(inputs.classification.strategy) == set(cls["strategies"])
    assert inputs.retrieval is None  # 04 ran nothing: its claims read "not tested here"
    assert inputs.measures == good and set(inputs.missing) == {"02_convolution_svd"}
    s = inputs.setting
    assert s["profile"] == profile and s["section3"]["arch"] == profiles.parameters(profile, "02_convolution_svd")["arch"]
    assert s["pruning"] == {"dataset": pr["dataset"], "arch": pr["arch"], "shots": pr["shots"], "n_test": 40,
                            "figure_arch": pr["arch"], "figure_tau": pr["figure_tau"]}
    assert len(inputs.pruning) == 1 + len(pr["taus"]) and set(inputs.pruning_layers.tau) == set(pr["taus"])
    led = claims.ledger(inputs)
    assert len(led) == len(claims.CLAIMS) >= 12
    by_id = led.set_index("id")
    assert by_id.loc["C1", "verdict"] == E.SUPPORTED
    eq3 = by_id.loc["C3"]  # 02 wrote nothing: not tested, and the reason says where it looked
    assert eq3["verdict"] == E.NOT_TESTED and "02_convolution_svd/measures.json" in eq3["reason"]
    assert by_id.loc["C19", "verdict"] != E.NOT_TESTED  # the per-layer frame at Fig. 3's tau
    assert by_id.loc["C15", "verdict"] == E.NOT_TESTED
    counts = comparison.verdict_counts(led)
    assert sum(counts.values()) == len(led)
    sentence = comparison.verdict_sentence(led)
    identities = led[led["type"] == "identity"]
    empirical = led[led["type"] == "empirical"]
    assert len(identities) == 6 and len(identities) + len(empirical) == len(led)
    held = int((identities["verdict"] == E.SUPPORTED).sum())
    assert sentence.startswith(f"{held} of the 6 numerical identities hold. Of the {len(empirical)} empirical claims, ")
    assert f"{comparison.verdict_counts(empirical)[E.NOT_TESTED]} not tested here" in sentence
    # measures of another setting (a -p override) are not read
    other = {**profiles.parameters(profile, "02_convolution_svd"), "epochs": 99}
    measures.write(root / "02_convolution_svd", "02_convolution_svd", other, {"eq3_error": 1e-7})
    again = comparison.claims_inputs(sources, root, profile)
    assert "eq3_error" not in again.measures and "epochs" in again.missing["02_convolution_svd"]


def test_stand_in_tables_name_every_notebook_the_ledger_reads():
    frame = comparison.stand_ins("laptop")
    notebooks = list(dict.fromkeys(frame.index.get_level_values(0)))
    assert notebooks == ["01_kronecker", "02_convolution_svd", "03_classification", "04_retrieval", "05_pruning"]
    assert frame.loc[("05_pruning", "dataset"), "this run"] == profiles.parameters("laptop", "05_pruning")["dataset"]
    sentences = comparison.stand_in_sentences(frame)
    assert len(sentences) == 5 and all("stand-in" in t for t in sentences[2:])
    assert set(comparison.stand_ins("paper")["here"]) == {"same"}


def test_a_run_that_failed_twice_is_counted_and_named_with_where_its_error_is(tmp_path):
    params = _classification_params()
    gone = classification.configs(params)[0]
    store = _write_classification(tmp_path, params, lambda cfg: None if cfg == gone else _acc(cfg))
    store.fail(classification.key(gone), "classification", gone, "OutOfMemoryError: CUDA out of memory", "...", 2)
    src = comparison.load("03_classification", tmp_path / "03_classification", params)
    assert src.failed == 1 and src.status == "partial"
    row = comparison.source_table({"03_classification": src}).iloc[0]
    assert row["failed twice"] == 1 and row["records of its grid"] == len(src.expected) - 1
    (line,) = comparison.instructions({"03_classification": src}, "paper")
    assert "1 of its runs failed twice" in line and str(store.folder / "failed") in line


# --------------------------------------------------------------------------- the ledger as page 06 opens with it
def test_every_claim_has_a_few_words_for_the_narrow_ledger():
    assert list(comparison.SHORT_CLAIMS) == [c.id for c in claims.CLAIMS]
    assert all(0 < len(text) <= 80 for text in comparison.SHORT_CLAIMS.values())


def test_the_narrow_ledger_says_why_in_a_line_naming_a_failed_gate_and_its_value():
    from test_claims import BY_ID, classification, cwl_gain

    frame = classification(cwl_gain(0.05), noise=0.005)
    judged = claims.evaluate(BY_ID["C10"], claims.Inputs(classification=frame))
    still = claims.evaluate(BY_ID["C10"], claims.Inputs(classification=classification(cwl_gain(-0.05), sigma_shift=0.01)))
    absent = claims.evaluate(BY_ID["C11"], claims.Inputs(classification=frame))
    summary = comparison.ledger_summary([judged, still, absent])
    assert list(summary.columns) == ["claim", "what the paper claims", "verdict", "why"]
    assert summary["claim"].tolist() == ["C10", "C10", "C11"]
    assert summary["verdict"].tolist() == [E.SUPPORTED, E.NOT_TESTABLE, E.NOT_TESTED]
    why = summary["why"].tolist()
    assert why[0] == f"{claims.row(judged)['our effect']}: {judged.reason}" and "above" in why[0]
    # the gate's name and measured value, not the paragraph of reasons the full ledger gives
    assert why[1] == "failed gate: CWL acted 0.010 (needs >= 0.050)" and len(why[1]) < len(still.reason)
    assert why[2] == absent.reason


def test_the_ledger_details_give_every_filled_field_of_every_claim():
    from test_claims import _laptop_inputs

    ledger = claims.ledger(_laptop_inputs())
    details = comparison.ledger_details(ledger)
    assert details.index.names == ["id", "field"] and list(details.columns) == ["value"]
    assert list(dict.fromkeys(details.index.get_level_values("id"))) == list(ledger["id"])
    assert not details["value"].isin(["", "-"]).any()
    c10 = details.loc["C10", "value"]
    row = ledger.set_index("id").loc["C10"]
    assert c10["claim"] == row["claim"] and c10["gates"] == row["gates"] and c10["our effect"] == row["our effect"]
    assert set(details.index.get_level_values("field")) <= set(comparison.LEDGER_DETAILS)


def test_tested_sorts_the_empirical_claims_by_what_the_run_could_do():
    from test_claims import BY_ID, classification, cwl_gain

    frame = classification(cwl_gain(0.05), noise=0.005)
    evaluations = [claims.evaluate(BY_ID["C1"], claims.Inputs(measures={"theorem1_gap": 3e-16})),
                   claims.evaluate(BY_ID["C10"], claims.Inputs(classification=frame)),
                   claims.evaluate(BY_ID["C12"], claims.Inputs(classification=frame)),
                   claims.evaluate(BY_ID["C9"], claims.Inputs(classification=classification(cwl_gain(0.0), sigma_shift=0.0)))]
    assert comparison.tested(evaluations) == {"judged": ["C10"], "untestable": ["C9"], "not tested": ["C12"]}


def test_verdicts_in_words_say_a_shared_reason_once():
    from test_claims import BY_ID, LAPTOP, classification, cwl_gain, table_iv

    still = classification(cwl_gain(-0.05), sigma_shift=0.01)
    c9, c10 = (claims.evaluate(BY_ID[i], claims.Inputs(classification=still)) for i in ("C9", "C10"))
    assert comparison.short_reason(c9) == comparison.short_reason(c10)
    words = comparison.verdicts_in_words([c9, c10])
    assert words == f"C9 and C10 are {E.NOT_TESTABLE}: failed gate: CWL acted 0.010 (needs >= 0.050)."
    # a gate with nothing to measure says so, not a limit it was never held to
    light = table_iv(half=(0.95, 0.79, 0.80, 0.80), high=(0.9, 0.78, 0.80, 0.80))
    c17 = claims.evaluate(BY_ID["C17"], claims.Inputs(pruning=light, setting=LAPTOP))
    assert c17.verdict == E.NOT_TESTABLE
    assert comparison.short_reason(c17) == (
        "failed gate: operating point not measured (no threshold of this run qualifies); the pruned network after "
        "FT@3 above chance not measured (no accuracy, class count or test size)")
