"""The ``cwl`` command: reproduce and publish the book, check and fetch data."""
from __future__ import annotations

import argparse
import sys

import yaml

from . import profiles


def _value(text: str):
    """A ``-p NAME VALUE`` value: YAML scalars and lists (``3``, ``0.1``, ``[1, 5]``, ``true``), else the text."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _cmd_reproduce(args) -> int:
    from .reproduce import reproduce

    overrides = {name: _value(value) for name, value in args.param}
    if args.data_root:
        overrides["data_root"] = args.data_root
    if args.dry_run:
        return _dry_run(args.profile, overrides)
    reproduce(args.profile, only=args.only, overrides=overrides, book=not args.no_book)
    return 0


def _dry_run(profile: str, overrides: dict) -> int:
    from .dryrun import dry_run
    from .experiments import device_name
    from .runtime import pick_device

    params = profiles.parameters(profile, "03_classification", overrides)
    device = pick_device(params["device"])
    print(f"[dry-run] {profile} profile, classification grid of Tables I-II, on {device_name(device)}")
    table = dry_run(params, device, batch_runs=params["batch_runs"])
    print(table.groupby(["arch", "strategy"])[["runs", "units", "seconds"]].sum().round(1).to_string())
    total = float(table["seconds"].sum())
    print(f"[dry-run] projected: {int(table['runs'].sum())} runs, {total / 3600:.2f} h on {device_name(device)} "
          "(random weights and synthetic images of the real datasets' class counts and test sizes)")
    return 0


def _cmd_data_check(args) -> int:
    from .data.check import check_all, report
    from .paths import data_root

    root = data_root(args.data_root)
    rows = check_all(root)
    print(report(rows, root))
    return 0 if all(r.status == "present" for r in rows) else 1


def _cmd_fetch(args) -> int:
    from .data.fetch import FetchError, expand, fetch

    failed = []
    for name in expand(args.names):  # one dataset's failure does not stop the others
        try:
            where = fetch(name, args.data_root, mirror=args.mirror, force=args.force,
                          keep_archives=args.keep_archives)
            print(f"{name}: {where}")
        except FetchError as err:
            failed.append(name)
            print(f"cwl fetch {name}: {err}", file=sys.stderr)
    if failed:
        print(f"cwl: not fetched: {', '.join(failed)} (see the messages above)", file=sys.stderr)
    return 1 if failed else 0


def _cmd_refresh(args) -> int:
    from .reproduce import refresh

    refresh(args.notebooks or None)
    return 0


def _cmd_publish(args) -> int:
    import subprocess

    from .paths import project_root
    from .reproduce import HTML_DIR, publish

    try:
        publish(args.html or project_root() / HTML_DIR, remote=args.remote, branch=args.branch)
    except subprocess.CalledProcessError:
        print("cwl publish: ghp-import failed (its message is above); nothing was published", file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cwl", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    rep = sub.add_parser("reproduce", help="run the notebooks under a profile, then build the book")
    rep.add_argument("--profile", choices=profiles.PROFILES, default="laptop")
    rep.add_argument("--only", action="append", metavar="NOTEBOOK",
                     help="run only this notebook (e.g. 03_classification or 03); repeatable")
    rep.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                     help="override a notebook parameter (YAML value); repeatable")
    rep.add_argument("--data-root", default=None, help="folder holding the datasets (default $CWL_DATA_ROOT)")
    rep.add_argument("--no-book", action="store_true", help="execute the notebooks only")
    rep.add_argument("--dry-run", action="store_true",
                     help="time a few runs on synthetic stand-ins of the profile's datasets and project the "
                     "classification grid's total time; runs no notebook")
    rep.set_defaults(func=_cmd_reproduce)

    data = sub.add_parser("data", help="datasets and weights")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    check = data_sub.add_parser("check", help="say, for each dataset and weight file, present, missing or wrong, "
                                "and the command that fixes it (exit status 1 when anything is not present)")
    check.add_argument("--data-root", default=None)
    check.set_defaults(func=_cmd_data_check)

    ref = sub.add_parser("refresh", help="re-execute the committed notebooks in place (smoke profile)")
    ref.add_argument("notebooks", nargs="*")
    ref.set_defaults(func=_cmd_refresh)

    fetch = sub.add_parser("fetch", help="download datasets into the data root, checking their SHA-256")
    fetch.add_argument("names", nargs="+", metavar="NAME",
                       help="mit67, kvasir, chest-xray, roxford5k, rparis6k, fashion-mnist, or all")
    fetch.add_argument("--data-root", default=None, help="folder holding the datasets (default $CWL_DATA_ROOT)")
    fetch.add_argument("--mirror", default=None, metavar="URL",
                       help="fetch every file from URL/<dataset>/<file name> instead of its official host "
                       "(default $CWL_DATA_MIRROR)")
    fetch.add_argument("--force", action="store_true",
                       help="rebuild a dataset folder that exists but is wrong; it is replaced only by a complete copy")
    fetch.add_argument("--keep-archives", action="store_true",
                       help="keep the downloaded archives under <data root>/downloads after unpacking")
    fetch.set_defaults(func=_cmd_fetch)

    pub = sub.add_parser("publish", help="push the built book to a gh-pages branch with ghp-import "
                         "(run from the git repository whose remote receives it)")
    pub.add_argument("--html", default=None, help="the built book (default _build/html)")
    pub.add_argument("--remote", default="origin", help="git remote name or URL (default origin)")
    pub.add_argument("--branch", default="gh-pages", help="branch GitHub Pages serves (default gh-pages)")
    pub.set_defaults(func=_cmd_publish)
    return parser


def main(argv=None) -> int:
    from .data import MissingDataError
    from .models import WeightsUnavailableError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (MissingDataError, WeightsUnavailableError, ValueError) as err:
        print(f"cwl: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # a notebook failed: say where its partial copy is, keep the rest
        if type(err).__name__ != "PapermillExecutionError":
            raise
        print(f"cwl: a notebook failed; finished notebooks are kept under _build/executed/.\n{err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("cwl: interrupted; finished notebooks and results are kept, rerun to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
