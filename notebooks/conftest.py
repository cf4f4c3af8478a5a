"""nbval's session: the notebooks run in book order and write their results under one fresh folder, so page
06 reads the records that 03-05 wrote before it in the same session (as ``cwl refresh`` does), never old ones."""
import os
import shutil
import tempfile

import pytest

from cwl_lib import paths, profiles


def pytest_configure(config):
    if paths.SESSION_ENV in os.environ:  # a folder chosen by whoever runs nbval
        # absolute: the kernels run in notebooks/, where a relative folder would be another one
        os.environ[paths.SESSION_ENV] = os.path.abspath(os.environ[paths.SESSION_ENV])
        return
    scratch = paths.project_root() / "_build" / "scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    config.cwl_session = tempfile.mkdtemp(prefix="nbval-", dir=scratch)
    os.environ[paths.SESSION_ENV] = config.cwl_session  # the kernels inherit it


def pytest_unconfigure(config):
    folder = getattr(config, "cwl_session", None)
    if folder:
        shutil.rmtree(folder, ignore_errors=True)
        os.environ.pop(paths.SESSION_ENV, None)


def pytest_collection_modifyitems(config, items):
    # a page run without its sources would fail every check of its numbers, far from the reason
    if not getattr(config, "cwl_session", None):
        return
    order = list(dict.fromkeys(item.path.stem for item in items))
    for i, name in enumerate(order):
        missing = [nb for nb in profiles.READS.get(name, ()) if nb not in order[:i]]
        if missing:
            raise pytest.UsageError(f"{name} reads the records that {', '.join(missing)} write before it in the "
                                    "same session: collect them too (pytest --nbval-lax notebooks)")
