"""The one atomic-write helper every results store, cache and lock file goes through."""
import pytest

from cwl_lib.paths import atomic_write


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "records" / "run.json"
    atomic_write(target, lambda p: p.write_text("finished"))
    assert target.read_text() == "finished"

    def crash(p):
        p.write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, crash)
    assert target.read_text() == "finished"
    assert sorted(f.name for f in target.parent.iterdir()) == ["run.json"]
