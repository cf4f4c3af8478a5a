"""A hyperparameter is one field: added to a study's ``Shared`` model in a scratch copy of the library, it reaches
the parameters cell, the profiles, ``cwl reproduce -p``'s validation, every run's config and record key, and the
page's setting table, with no other edit."""
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIELD = '    new_knob: int = param(7, "a scratch knob", ge=1, label="new knob", stated=False)\n'
PROBE = r'''
from cwl_lib import parameters, profiles
from cwl_lib.studies import classification as study
assert "new_knob = 7" in parameters.parameters_cell("03_classification").splitlines()
p = profiles.parameters("laptop", "03_classification")
assert p["new_knob"] == 7
assert parameters.validate("03_classification", {"new_knob": "9"}) == {"new_knob": 9}
try:
    parameters.validate("03_classification", {"new_knob": 0})
    raise SystemExit("a bad value passed")
except parameters.ParameterError as err:
    assert "parameter new_knob of 03_classification must be an integer >= 1; got 0" == str(err), err
configs = study.configs({**p, "new_knob": 8})
assert configs and all(c.new_knob == 8 for c in configs)
assert study.key(configs[0]) != study.key(study.configs(p)[0])
row = study.setting({**p, "new_knob": 8}).loc["new knob"]
assert row["this run"] == "8" and row["here"] == "stand-in" and row["paper"].startswith("not stated"), row
print("every consumer sees it")
'''


def test_a_field_added_to_shared_reaches_every_consumer(tmp_path):
    shutil.copytree(ROOT / "cwl_lib", tmp_path / "cwl_lib", ignore=shutil.ignore_patterns("__pycache__"))
    module = tmp_path / "cwl_lib" / "studies" / "classification.py"
    text = module.read_text()
    anchor = re.search(r"\n\nclass Config\(Shared, RunConfig\):", text)
    module.write_text(text[:anchor.start()] + "\n" + FIELD + text[anchor.start():])
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "every consumer sees it" in done.stdout


def test_backbone_lr_factor_is_defined_once_per_study():
    # a definition is an annotated name on a line of its own (a field, or a signature's parameter): one field per
    # study, and transfer.train's signature (param_groups and make_optimizer take it without a default)
    defined = {}
    for path in sorted((ROOT / "cwl_lib").rglob("*.py")):
        for line in path.read_text().splitlines():
            if re.match(r"\s*backbone_lr_factor\s*:", line):
                defined.setdefault(path.relative_to(ROOT).as_posix(), []).append(line.strip())
    assert {k: len(v) for k, v in defined.items()} == {"cwl_lib/studies/classification.py": 1,
                                                       "cwl_lib/studies/retrieval.py": 1,
                                                       "cwl_lib/studies/pruning.py": 1,
                                                       "cwl_lib/transfer.py": 1}, defined
