"""The "paper | this run" tables of the study pages (cwl_lib.studies.setting) and Fig. 3's layer roles."""
import pandas as pd
import pytest

from cwl_lib import profiles
from cwl_lib.studies import BY_NOTEBOOK, setting
from cwl_lib.studies import pruning as pruning_study


@pytest.mark.parametrize("notebook", sorted(BY_NOTEBOOK))
def test_paper_profile_is_the_papers_setting(notebook):
    frame = BY_NOTEBOOK[notebook].setting(profiles.parameters("paper", notebook))
    assert set(frame["here"]) == {setting.SAME}
    assert setting.sentence(frame) == "This run is the paper's setting."


@pytest.mark.parametrize("notebook", sorted(BY_NOTEBOOK))
@pytest.mark.parametrize("profile", ["smoke", "laptop"])
def test_offline_profiles_name_their_stand_ins(notebook, profile):
    p = profiles.parameters(profile, notebook)
    frame = BY_NOTEBOOK[notebook].setting(p)
    first = frame.iloc[0]  # the dataset(s): every offline profile replaces the paper's
    assert first["here"] == setting.STAND_IN and first["this run"] == setting.text(p.get("datasets", p.get("dataset")))
    text = setting.sentence(frame)
    assert text.startswith("This run is a stand-in") and first["this run"] in text
    # a value the paper does not give is never shown as the paper's
    for label, row in frame.iterrows():
        fields = BY_NOTEBOOK[notebook].Parameters.model_fields.values()
        stated = next(f.json_schema_extra["stated"] for f in fields if f.json_schema_extra["label"] == label)
        assert row["paper"].startswith(setting.NOT_STATED) != stated


def test_one_changed_setting_is_counted_not_spelled():
    p = profiles.parameters("paper", "03_classification", {"steps": 3})
    text = setting.sentence(BY_NOTEBOOK["03_classification"].setting(p))
    assert text == "This run is a stand-in for the paper's experiment: 1 of the 12 settings below differs."


def test_mobilenet_roles_from_torchvision_names():
    layers = pd.DataFrame({"layer": ["features.0.0", "features.1.conv.0.0", "features.1.conv.1", "features.2.conv.0.0",
                                     "features.2.conv.1.0", "features.2.conv.2", "features.18.0"],
                           "kind": ["conv3x3", "depthwise", "conv1x1", "conv1x1", "depthwise", "conv1x1", "conv1x1"]})
    roles = pruning_study.layer_roles(layers, "mobilenet_v2")
    assert list(roles) == ["stem", "depthwise", "projection", "expansion", "depthwise", "projection", "last"]
    assert list(pruning_study.layer_roles(layers, "vgg16")) == list(layers["kind"])
