"""Ground-truth pickles: whatever a file asks to build is bounded while it is built, not after."""
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from cwl_lib.data.ground_truth import MAX_BUILT_BYTES, UnsafePickleError, load_data_pickle

# list(bytes(2**31 - 1)) in 49 bytes, protocol 2 with Python 2's module names, as a hostile file would be
BOMB = b"\x80\x02c__builtin__\nlist\nc__builtin__\nbytes\nJ\xff\xff\xff\x7f\x85R\x85R."


def _refused(tmp_path, data: bytes, match: str):
    (tmp_path / "gnd.pkl").write_bytes(data)
    with pytest.raises(UnsafePickleError, match=match):
        load_data_pickle(tmp_path / "gnd.pkl")


def test_the_49_byte_bomb_is_refused_within_bounded_memory(tmp_path):
    """Run in a child under an address-space limit, so a regression fails this test (MemoryError) instead of
    taking the machine's memory; the child reports its peak resident memory."""
    assert len(BOMB) == 49
    (tmp_path / "gnd.pkl").write_bytes(BOMB)
    child = textwrap.dedent(f"""
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))
        import torch  # the baseline of a real reader (cwl data check, the notebooks)
        from cwl_lib.data.ground_truth import read
        try:
            read({str(tmp_path / "gnd.pkl")!r})
            print("LOADED")
        except Exception as err:
            print(type(err).__name__, str(err).splitlines()[0])
        # VmHWM: the peak of this program's own memory (ru_maxrss would carry pytest's peak over the fork)
        print("PEAK_KB", next(l.split()[1] for l in open("/proc/self/status") if l.startswith("VmHWM:")))
    """)
    out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=300)
    lines = out.stdout.splitlines()
    assert out.returncode == 0, out.stderr[-2000:]
    assert lines[0].startswith("UnsafePickleError") and "bytes(2,147,483,647)" in lines[0], lines
    assert "fetch it again" in lines[0]
    peak_gb = int(lines[-1].split()[1]) / 1e6
    assert peak_gb < 1.2, f"peak resident memory {peak_gb:.2f} GB"


@pytest.mark.parametrize("expr, match", [
    ("list(bytes(10**9))", "bytes"),
    ("bytes(10**9)", "bytes"),
    ("set(range(10))", "refusing to load builtins.range"),
    ("str([1, 2])", "str is given a list"),
    ("__import__('_codecs').encode('ab' * 10, 'rot13')", "only needs text to latin1"),
    ("__import__('numpy').ndarray((10**10,), 'u1')", "refusing to call numpy.ndarray"),
    ("__import__('numpy')._core.multiarray._reconstruct(__import__('numpy').ndarray, (10**10,), 'u1')", "an array of shape"),
    ("__import__('numpy').dtype('S1')", "only arrays of plain numbers"),
])
def test_each_allowed_callable_is_bounded_before_it_runs(tmp_path, expr, match):
    import _codecs  # noqa: F401  (named by the expressions)

    data = _pickle_call(expr)
    _refused(tmp_path, data, match)


def _pickle_call(expr: str) -> bytes:
    """A pickle that calls what ``expr`` calls at load time, without calling it now (so no gigabyte is built here)."""
    import ast
    tree = ast.parse(expr, mode="eval").body

    class Call:
        def __init__(self, node):
            self.node = node

        def __reduce__(self):
            return (_resolve(self.node.func), tuple(_value(a) for a in self.node.args))

    def _resolve(node):
        return eval(compile(ast.Expression(node), "<expr>", "eval"))  # the callable itself, not called

    def _value(node):
        return Call(node) if isinstance(node, ast.Call) and not _is_plain(node) else \
            eval(compile(ast.Expression(node), "<expr>", "eval"))

    def _is_plain(node):  # __import__(...) and arithmetic are evaluated now; other calls happen at load time
        return isinstance(node.func, ast.Name) and node.func.id == "__import__"

    return pickle.dumps(Call(tree), protocol=2)


def test_many_small_builds_share_one_budget(tmp_path):
    """Each call is small, their sum is not: 70 bytes(1 MB), all kept alive by one list."""
    class Chunk:
        def __reduce__(self):
            return (bytes, (1 << 20,))

    data = pickle.dumps([Chunk() for _ in range((MAX_BUILT_BYTES >> 20) + 6)], protocol=2)
    assert len(data) < 4096
    _refused(tmp_path, data, "past the")


def test_real_shaped_ground_truth_loads_under_every_protocol(tmp_path):
    gnd = {"imlist": [f"img_{i:06d}" for i in range(6400)], "qimlist": [f"q{i}" for i in range(70)],
           "gnd": [{"bbx": np.array([1.0, 2.0, 30.0, 40.0]), "easy": np.arange(3000), "hard": np.arange(2000),
                    "junk": np.arange(500)} for _ in range(70)], "tags": {1, 2}, "raw": b"\x00\xff"}
    for protocol in range(0, 6):
        (tmp_path / "gnd.pkl").write_bytes(pickle.dumps(gnd, protocol=protocol))
        loaded = load_data_pickle(tmp_path / "gnd.pkl")
        assert loaded["imlist"] == gnd["imlist"] and loaded["tags"] == {1, 2} and loaded["raw"] == b"\x00\xff"
        assert np.array_equal(loaded["gnd"][69]["easy"], gnd["gnd"][69]["easy"])


def test_a_truncated_or_garbled_file_is_one_refusal(tmp_path):
    _refused(tmp_path, pickle.dumps({"imlist": ["a"] * 100})[:-7], "not a readable data pickle")
