"""Lines of `cwl_lib` per group: the paper's science, machinery, reporting and data handling.

The measure of the "thin library" issue: the science modules stay as they are, the rest should shrink.
Every module belongs to exactly one group (tests/test_line_counts.py fails on a new module left out).
Usage: python scripts/line_counts.py [--markdown] [--code]
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


def _lines(module: str, code_only: bool) -> list[str]:
    path = PACKAGE / f"{module}.py"
    lines = path.read_text().splitlines() if path.is_file() else []
    # "code": what the thin-library issue's own count (7,950 then) appears to have measured
    return [l for l in lines if l.strip() and not l.strip().startswith("#")] if code_only else lines


def counts(code_only: bool = False) -> dict[str, int]:
    """Lines per group; ``code_only``: without blank and comment-only lines (docstrings count)."""
    return {g: sum(len(_lines(m, code_only)) for m in ms) for g, ms in GROUPS.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--markdown", action="store_true", help="a table row per group")
    ap.add_argument("--code", action="store_true", help="count neither blank nor comment-only lines")
    args = ap.parse_args()
    c = counts(args.code)
    rest = sum(n for g, n in c.items() if g != "science")
    for g, n in c.items():
        print(f"| {g} | {n} |" if args.markdown else f"{g:10s} {n:6d}")
    print(f"| all but science | {rest} |" if args.markdown else f"{'not science':10s} {rest:6d}")


if __name__ == "__main__":
    main()
