"""The ``cwl`` command: reproduce and publish the book, check and fetch data."""
from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

import torch

from . import profiles
from .data import MissingDataError
from .data.check import check_all, report, unmet
from .data.fetch import FetchError, expand, fetch, parse_expected
from . import dryrun
from .dryrun import dry_run
from .executor import check_ray_address
from .models import WeightsUnavailableError
from .paths import data_root, project_root
from .records import device_name
from .reproduce import HTML_DIR, NotebookFailed, PublishError, needs, plan, publish, refresh, reproduce
from .runtime import pick_device


def _existing_folder(value: str | None) -> str | None:
    """``--data-root`` for commands that read data: it must exist and be a folder."""
    if value is None:
        return None
    path = Path(value).expanduser()
    if not path.exists():
        raise ValueError(f"--data-root {value} does not exist; create it (or fetch into it with `cwl fetch NAME "
                         f"--data-root {value}`), or pass the folder that holds the datasets")
    if not path.is_dir():
        raise ValueError(f"--data-root {value} is a file, not a folder; pass the folder that holds the datasets")
    return str(path.resolve())  # the notebooks run in notebooks/: a relative path would mean another folder


def _interrupt(_signum, _frame):
    raise KeyboardInterrupt  # so a terminated run shuts its kernel down and keeps its partial notebook


def _cmd_reproduce(args) -> int:
    overrides = dict(args.param)  # text; cwl_lib.parameters reads each as its parameter's type
    if args.data_root:
        overrides["data_root"] = _existing_folder(args.data_root)
    for option, name in (("workers", "workers"), ("address", "ray_address"), ("gpus_per_run", "gpus_per_run")):
        if getattr(args, option) is not None:  # the notebooks' executor parameters (cwl_lib.executor)
            overrides[name] = getattr(args, option)
    plan(args.profile, args.only, overrides)  # a bad value is named first, in its parameter's words
    # refused before any notebook starts: a Ray address where nothing answers, a GPU share no GPU could give
    if overrides.get("ray_address"):
        check_ray_address(str(overrides["ray_address"]))  # a ParameterError: one line
    elif "gpus_per_run" in overrides and not torch.cuda.is_available():
        raise ValueError(f"--gpus-per-run {overrides['gpus_per_run']}: this machine has no GPU, and no Ray cluster "
                         "was named (--address), so no run would get a share of one; leave it out, or pass "
                         "--address of a cluster with GPUs")
    if args.dry_run:
        return _dry_run(args.profile, overrides, args.probes, args.retrieval_probes, args.packing)
    signal.signal(signal.SIGTERM, _interrupt)
    reproduce(args.profile, only=args.only, overrides=overrides, book=not args.no_book)
    return 0


def _dry_run(profile: str, overrides: dict, probes_log: str | None = None, retrieval_log: str | None = None,
             packing_log: str | None = None) -> int:
    names = ["03_classification", "04_retrieval", "05_pruning"]
    params_of = plan(profile, names, overrides)
    params = params_of["03_classification"]
    if probes_log:
        probes = dryrun.probes_from_log(dryrun.read(probes_log))
        where = f"the probes logged in {probes_log}"
        print(f"[dry-run] {profile} profile, {where}")
    else:
        device = pick_device(params["device"])
        where = device_name(device)
        print(f"[dry-run] {profile} profile, classification grid of Tables I-II, on {where}")
        probes = dry_run(params, device)
    jobs = dryrun.classification_jobs(probes, params)
    table = dryrun.costs(jobs)
    print(table.groupby(["arch", "strategy"])[["runs", "seconds"]].sum().round(1).to_string())
    total = float(table["seconds"].sum())
    print(f"[dry-run] projected: {int(table['runs'].sum())} runs, {total / 3600:.2f} h on {where} "
          "(random weights and synthetic images of the real datasets' class counts and test sizes)")
    jobs += dryrun.pruning_jobs(probes, params_of["05_pruning"])
    if retrieval_log:
        jobs += dryrun.retrieval_jobs(dryrun.retrieval_probes_from_log(dryrun.read(retrieval_log)),
                                        params_of["04_retrieval"])
    else:
        print("[dry-run] retrieval (Table III) is left out: pass --retrieval-probes LOG, a log of "
              "benchmarks/gpu_check_retrieval.py on the same kind of device")
    throughput = dryrun.throughput_from_log(dryrun.read(packing_log)) if packing_log else {}
    per_gpu = sorted({1, *throughput})
    print(f"[dry-run] wall time on K such devices, R runs per device (longest runs first; "
          f"{'packing gains from ' + packing_log if throughput else 'R = 1: packing gains not measured'}):")
    projected = dryrun.projection(jobs, per_gpu=per_gpu, throughput=throughput).round(2)
    if not retrieval_log:
        projected = projected.rename(columns={"whole profile (h)": "Tables I, II, IV (h)"})
    print(projected.to_string(index=False))
    return 0


def _cmd_data_check(args) -> int:
    root = data_root(_existing_folder(args.data_root))
    rows = check_all(root)
    wanted = [args.profile] if args.profile else list(profiles.PROFILES)
    print(report(rows, root, {p: needs(p) for p in wanted}))
    if args.profile:
        return 1 if unmet(rows, needs(args.profile)) else 0
    return 1 if any(r.status == "wrong" for r in rows) else 0


def _cmd_refresh(args) -> int:
    refresh(args.notebooks or None)  # returns the notebooks it refreshed: not an exit status
    return 0


def _cmd_fetch(args) -> int:
    names = expand(args.names)
    if args.expect_sha256 and len(names) != 1:
        raise ValueError("--expect-sha256 pins the files of one dataset: fetch that dataset alone")
    expect = parse_expected(names[0], args.expect_sha256) if args.expect_sha256 else None
    failed = []
    for name in names:  # one dataset's failure does not stop the others
        try:
            where = fetch(name, args.data_root, mirror=args.mirror, force=args.force,
                          keep_archives=args.keep_archives, expect=expect)
            print(f"{name}: {where}")
        except FetchError as err:
            failed.append(name)
            print(f"cwl fetch {name}: {err}", file=sys.stderr)
    if failed:
        print(f"cwl: not fetched: {', '.join(failed)} (see the messages above)", file=sys.stderr)
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cwl", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    rep = sub.add_parser("reproduce", help="run the notebooks under a profile, then build the book")
    rep.set_defaults(func=_cmd_reproduce)
    rep.add_argument("--profile", choices=profiles.PROFILES, default="laptop")
    rep.add_argument("--only", action="append", metavar="NOTEBOOK",
                     help="run only this notebook (e.g. 03_classification or 03); repeatable")
    rep.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                     help="set a notebook parameter (a number, true/false, text or a list such as [1, 5]); checked "
                     "before any work; repeatable")
    rep.add_argument("--data-root", help="folder holding the datasets (default $CWL_DATA_ROOT)")
    rep.add_argument("--no-book", action="store_true", help="execute the notebooks only")
    rep.add_argument("--workers", metavar="N", help="runs at once: 1 (default) runs them in the notebook's process; "
                     "more run on Ray workers on a local Ray instance of N CPUs and this machine's GPUs")
    rep.add_argument("--address", metavar="ADDRESS",
                     help="join this Ray cluster (e.g. auto, or HEAD_IP:6379) instead of starting a local one")
    rep.add_argument("--gpus-per-run", metavar="F",
                     help="share of a GPU each Ray worker holds (0.25 packs four runs on a GPU; default 1)")
    rep.add_argument("--dry-run", action="store_true", help="time a few runs on synthetic stand-ins of the "
                     "profile's datasets and project the classification grid's total time; runs no notebook")
    rep.add_argument("--probes", metavar="LOG", help="with --dry-run: project from the probes of this earlier "
                     "dry-run log instead of probing (benchmarks/results/ holds the H100 ones)")
    rep.add_argument("--retrieval-probes", metavar="LOG",
                     help="with --dry-run: a log of benchmarks/gpu_check_retrieval.py, to project Table III too")
    rep.add_argument("--packing", metavar="LOG", help="with --dry-run: a log of benchmarks/gpu_check_ray.py (runs "
                     "per hour with 1, 2, 4 runs per GPU), to project packed runs")

    data_sub = sub.add_parser("data", help="datasets and weights").add_subparsers(dest="data_command", required=True)
    check = data_sub.add_parser("check", help="say, for each dataset and weight file, present, missing or wrong, "
                                "the command that fixes it, and which profiles have what they need (exit status 1 "
                                "when anything is wrong, or with --profile when that profile's needs are not met)")
    check.set_defaults(func=_cmd_data_check)
    check.add_argument("--data-root")
    check.add_argument("--profile", choices=profiles.PROFILES,
                       help="judge only what this profile needs: exit status 0 when it is all present and sound")

    ref = sub.add_parser("refresh", help="re-execute the committed notebooks in place (smoke profile)")
    ref.set_defaults(func=_cmd_refresh)
    ref.add_argument("notebooks", nargs="*")

    fetch = sub.add_parser("fetch", help="download datasets into the data root, checking their SHA-256")
    fetch.set_defaults(func=_cmd_fetch)
    fetch.add_argument("names", nargs="+", metavar="NAME",
                       help="mit67, kvasir, chest-xray, roxford5k, rparis6k, fashion-mnist, or all")
    fetch.add_argument("--data-root", help="folder holding the datasets (default $CWL_DATA_ROOT)")
    fetch.add_argument("--mirror", metavar="URL", help="fetch every file from URL/<dataset>/<file name> instead of "
                       "its official host (default $CWL_DATA_MIRROR)")
    fetch.add_argument("--force", action="store_true",
                       help="rebuild a dataset folder that exists but is wrong; it is replaced only by a complete copy")
    fetch.add_argument("--keep-archives", action="store_true",
                       help="keep the downloaded archives under <data root>/downloads after unpacking")
    fetch.add_argument("--expect-sha256", action="append", default=[], metavar="[FILE=]HEX",
                       help="the SHA-256 a downloaded file must have (FILE= needed when the dataset has several "
                       "files); without one, and with none published or pinned, the first download is trusted "
                       "and pinned once it installs")

    pub = sub.add_parser("publish", help="push the built book to a gh-pages branch with ghp-import "
                         "(run from the git repository whose remote receives it)")
    pub.set_defaults(func=lambda args: publish(args.html or project_root() / HTML_DIR, remote=args.remote,
                                               branch=args.branch) or 0)
    pub.add_argument("--html", help="the built book (default _build/html)")
    pub.add_argument("--remote", default="origin", help="git remote name or URL (default origin)")
    pub.add_argument("--branch", default="gh-pages", help="branch GitHub Pages serves (default gh-pages)")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (MissingDataError, WeightsUnavailableError, ValueError, NotebookFailed, PublishError, OSError) as err:
        # OSError: a read-only or full disk, a folder that is a file: the system's own words, one line
        print(f"cwl: {err}", file=sys.stderr)
        return 2 if isinstance(err, (MissingDataError, WeightsUnavailableError, ValueError)) else 1
    except KeyboardInterrupt:
        print("cwl: interrupted; finished notebooks and results are kept, rerun to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
