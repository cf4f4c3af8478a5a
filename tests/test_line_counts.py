"""scripts/line_counts.py puts every module of cwl_lib in exactly one group, so its totals cover the package."""
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _script():
    spec = importlib.util.spec_from_file_location("line_counts", ROOT / "scripts" / "line_counts.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_module_is_in_exactly_one_group_and_the_totals_add_up():
    lc = _script()
    grouped = [m for members in lc.GROUPS.values() for m in members]
    assert sorted(grouped) == lc.modules()  # none left out, none named twice, none that is not there
    total = sum(len(p.read_text().splitlines()) for p in (ROOT / "cwl_lib").rglob("*.py"))
    assert sum(lc.counts().values()) == total


def test_code_lines_leave_out_blank_and_comment_lines_only():
    lc = _script()
    every = lc.counts()
    code = lc.counts(code_only=True)
    assert all(0 < code[g] < every[g] for g in every)
    text = (ROOT / "cwl_lib" / "runtime.py").read_text().splitlines()
    kept = [l for l in text if l.strip() and not l.lstrip().startswith("#")]
    assert len(lc._lines("runtime", True)) == len(kept) < len(text)
