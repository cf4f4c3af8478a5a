"""The schedule simulation of the dry-run: LPT packing, waiting jobs, packed runs, and the paper profile
projected from the H100 probes kept in benchmarks/results."""
import re
from pathlib import Path

import pytest

from cwl_lib import cli, reproduce
from cwl_lib import dryrun as schedule  # the schedule simulation lives in cwl_lib.dryrun
from cwl_lib.dryrun import Job

RESULTS = Path(__file__).resolve().parent.parent / "benchmarks" / "results"
H100_PROBES = RESULTS / "h100-2026-11-27b" / "dryrun_h100_graphs_b.log"
H100_RETRIEVAL = RESULTS / "h100-2026-11-27" / "gpu_check_retrieval.log"


def jobs(*seconds):
    return [Job(f"j{i}", "s", s) for i, s in enumerate(seconds)]


def test_longest_first_packing_gives_the_known_lpt_schedule():
    # 5, 4, 3, 3, 3 on two slots: LPT puts 5 | 4, 3 | 3 | 3 -> 8 and 10 (the optimum, 9, is not LPT's)
    assert schedule.simulate(jobs(3, 5, 3, 4, 3), 2) == 10
    assert schedule.simulate(jobs(3, 5, 3, 4, 3), 1) == 18
    assert schedule.simulate(jobs(3, 5, 3, 4, 3), 8) == 5  # never below the longest job


def test_a_job_starts_after_the_job_it_waits_for():
    grid = [Job("transfer", "pruning", 10), Job("tau 1", "pruning", 1, "transfer"), Job("tau 2", "pruning", 1, "transfer")]
    assert schedule.simulate(grid, 4) == 11


def test_packed_runs_take_longer_each_unless_packing_gains():
    assert schedule.simulate(jobs(1, 1, 1, 1), 1, per_gpu=2) == 4  # no gain assumed: the same wall time
    assert schedule.simulate(jobs(1, 1, 1, 1), 1, per_gpu=2, throughput={2: 1.6}) == pytest.approx(2.5)
    with pytest.raises(ValueError, match="counts >= 1"):
        schedule.simulate(jobs(1), 0)


def test_the_h100_probes_are_read_back_as_logged():
    text = H100_PROBES.read_text()
    probes = schedule.probes_from_log(text)
    assert len(probes) == 9 and {p.arch for p in probes} == {"vgg16", "resnet50"}
    # each probe line's numbers, as printed (the projection the log printed used the epoch budget of its day)
    first = re.search(r"\[dry-run\]\s+(\w+) (\S+)\s+1 run\(s\) together: setup\s+([\d.]+) s, eval\s+([\d.]+) ms/img, "
                      r"step\s+([\d.]+) ms", text)
    p = next(p for p in probes if (p.arch, p.strategy) == (first[1], first[2]))
    assert (p.setup_s, 1e3 * p.eval_per_image_s, 1e3 * p.step_s) == pytest.approx(tuple(map(float, first.groups()[2:])))
    retrieval = schedule.retrieval_probes_from_log(H100_RETRIEVAL.read_text())
    assert retrieval["vgg16"].images_per_s == 347.1 and retrieval["resnet50"].step_s["finetune+cwl"] == 0.14
    with pytest.raises(ValueError, match="no probe line"):
        schedule.probes_from_log("nothing here")


def test_the_paper_profile_projects_to_at_most_an_hour_on_four_h100s():
    params = reproduce.plan("paper", ["03_classification", "04_retrieval", "05_pruning"], {})
    probes = schedule.probes_from_log(H100_PROBES.read_text())
    grid = (schedule.classification_jobs(probes, params["03_classification"])
            + schedule.retrieval_jobs(schedule.retrieval_probes_from_log(H100_RETRIEVAL.read_text()),
                                      params["04_retrieval"])
            + schedule.pruning_jobs(probes, params["05_pruning"]))
    assert {j.study for j in grid} == {"classification", "retrieval", "pruning"}
    table = schedule.projection(grid).set_index("GPUs")
    hours = table["whole profile (h)"]
    assert list(hours.index) == [1, 2, 4, 8] and hours.is_monotonic_decreasing
    assert hours[4] <= 1.0 < hours[1]
    total = sum(j.seconds for j in grid) / 3600
    assert hours[1] == pytest.approx(total)  # one GPU runs them all, one after another
    assert hours[4] >= total / 4


def test_the_dry_run_command_prints_the_projection_for_one_to_eight_gpus(capsys):
    assert cli.main(["reproduce", "--profile", "paper", "--dry-run", "--probes", str(H100_PROBES),
                     "--retrieval-probes", str(H100_RETRIEVAL)]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if re.match(r"\s+[1248]\s+1\s+\d", line)]
    assert [r[0] for r in rows] == ["1", "2", "4", "8"]
    assert "retrieval alone" in out


def test_the_projection_the_book_shows_is_what_the_code_computes_today(capsys, monkeypatch):
    # book/reproduce.md includes this log; rerun the command of its first line if this fails
    monkeypatch.chdir(RESULTS.parent.parent)
    logged = (RESULTS / "schedule" / "paper_on_h100_probes.log").read_text()
    assert cli.main(["reproduce", "--profile", "paper", "--dry-run", "--probes", str(H100_PROBES.relative_to(RESULTS.parent.parent)),
                     "--retrieval-probes", str(H100_RETRIEVAL.relative_to(RESULTS.parent.parent))]) == 0
    assert capsys.readouterr().out == logged
