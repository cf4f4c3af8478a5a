"""A damaged or foreign file where a record should be is named, kept aside and its run redone."""
import io
import json

import pytest
from test_classification_study import toy_context, toy_params

from cwl_lib import executor, records
from cwl_lib.studies import classification as study


def test_a_truncated_and_a_foreign_record_are_named_moved_aside_and_rerun(tmp_path, monkeypatch):
    configs = study.configs(toy_params(shots=[1], repeats=1))
    store = records.Store(tmp_path / "runs")
    executor.run(study, configs, store, toy_context(), progress=False, out=io.StringIO())
    truncated, foreign = store.path(study.key(configs[0])), store.path(study.key(configs[1]))
    full = truncated.read_text()
    truncated.write_text(full[: len(full) // 2])
    foreign.write_text(json.dumps({"accuracy": 0.9}))  # valid JSON, not a record

    calls = []
    real = study.run_one
    monkeypatch.setattr(study, "run_one", lambda cfg, ctx: calls.append(cfg) or real(cfg, ctx))
    fresh = records.Store(tmp_path / "runs")
    with pytest.warns(UserWarning) as caught:
        recs = executor.run(study, configs, fresh, toy_context(), progress=False, out=io.StringIO())
    said = " ".join(str(w.message) for w in caught)
    assert truncated.name in said and "not valid JSON" in said
    assert foreign.name in said and "not a record" in said
    rejected = tmp_path / "runs" / "rejected"
    assert (rejected / truncated.name).read_text() == full[: len(full) // 2]  # kept as found, not deleted
    assert (rejected / foreign.name).exists()
    assert sorted(map(study.key, calls)) == sorted([study.key(configs[0]), study.key(configs[1])])
    assert len(recs) == len(configs) and all(r is not None for r in recs)
    assert len(fresh.records()) == len(configs)  # the table has every repeat again
