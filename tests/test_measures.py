"""measures.json of notebooks 01 and 02: written atomically as plain JSON, read back only under the same parameters."""
import json
import math

import numpy as np
import torch

from cwl_lib import measures, profiles


def test_measures_round_trip_as_plain_numbers(tmp_path):
    params = profiles.parameters("smoke", "02_convolution_svd", {"results_dir": str(tmp_path / "x")})
    path = measures.write(tmp_path / "02_convolution_svd", "02_convolution_svd", params,
                          {"eq3_error": np.float32(2e-7), "deeper_eq5_eq3_sines": torch.tensor([0.1, 0.2]),
                           "fig1_deeper_distances": np.array([0.3, float("nan")]), "cwl_identity_error": 0.0})
    body = json.loads(path.read_text())
    assert body["notebook"] == "02_convolution_svd" and "results_dir" not in body["parameters"]
    assert not list(path.parent.glob(".*.tmp"))
    # the page reads them under the profile's parameters, whatever folder or device the notebook ran with
    found, why = measures.read(tmp_path, "02_convolution_svd", profiles.parameters("smoke", "02_convolution_svd",
                                                                                   {"device": "cpu"}))
    assert why == "" and math.isclose(found["eq3_error"], 2e-7, rel_tol=1e-6)
    assert found["deeper_eq5_eq3_sines"] == [0.10000000149011612, 0.20000000298023224]
    assert found["fig1_deeper_distances"] == [0.3, None]


def test_absent_or_other_measures_give_a_reason(tmp_path):
    params = profiles.parameters("smoke", "01_kronecker")
    found, why = measures.read(tmp_path, "01_kronecker", params)
    assert found == {} and "01_kronecker/measures.json" in why
    measures.write(tmp_path / "01_kronecker", "01_kronecker", params, {"theorem1_gap": 1e-16})
    found, why = measures.read(tmp_path, "01_kronecker", profiles.parameters("laptop", "01_kronecker"))
    assert found == {} and "other parameters" in why and "random_trials" in why
    (tmp_path / "01_kronecker" / "measures.json").write_text("{")
    assert "unreadable" in measures.read(tmp_path, "01_kronecker", params)[1]
