"""Lines of `cwl_lib` per group: the paper's science, machinery, reporting and data handling.

The measure of the "thin library" issue: the science modules stay as they are, the rest should shrink.
Every module belongs to exactly one group (tests/test_line_counts.py fails on a new module left out).
Usage: python scripts/line_counts.py [--markdown]
"""
from __future__ import annotations

import argparse
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "cwl_lib"

GROUPS = {
    "science": ("kronecker", "convolution", "weighting", "transfer", "strategies", "retrieval", "pruning",
                "smallcnn"),
    "studies": ("studies/__init__", "studies/classification", "studies/retrieval", "studies/pruning",
                "studies/context", "studies/setting"),
    "reporting": ("claims", "comparison", "tables", "effects", "display", "checks", "verdicts", "gates",
                  "measures", "paper", "notebook_tags"),
    "machinery": ("__init__", "cli", "config", "profiles", "parameters", "executor", "ray_executor", "ray_splits", "dryrun",
                  "reproduce", "records", "runtime", "environment", "paths", "notices", "digest",
                  "graphed", "kernels", "models"),
    "data": tuple(f"data/{p.stem}" for p in sorted((PACKAGE / "data").glob("*.py"))),
}


def modules() -> list[str]:
    return sorted(p.relative_to(PACKAGE).with_suffix("").as_posix() for p in PACKAGE.rglob("*.py"))


def counts() -> dict[str, int]:
    return {g: sum(len((PACKAGE / f"{m}.py").read_text().splitlines()) for m in ms if (PACKAGE / f"{m}.py").is_file())
            for g, ms in GROUPS.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--markdown", action="store_true", help="a table row per group")
    args = ap.parse_args()
    c = counts()
    rest = sum(n for g, n in c.items() if g != "science")
    for g, n in c.items():
        print(f"| {g} | {n} |" if args.markdown else f"{g:10s} {n:6d}")
    print(f"| all but science | {rest} |" if args.markdown else f"{'not science':10s} {rest:6d}")


if __name__ == "__main__":
    main()
