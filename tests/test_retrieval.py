"""MAC descriptors, extraction at original sizes, and the pieces of the retrieval transfer."""
import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from cwl_lib import profiles, transfer
from cwl_lib import retrieval as R
from cwl_lib.studies import Context
from cwl_lib.studies import retrieval as rt
from cwl_lib.transfer import preprocess
from cwl_lib.weighting import insert_weighting, weighted_layers


@pytest.fixture(autouse=True)
def one_thread():
    # these tensors are tiny: a second thread only adds synchronisation, badly so on a busy machine
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_mac_is_the_l2_normalised_spatial_maximum():
    x = torch.randn(3, 5, 7, 4)
    d = R.mac(x)
    ref = x.flatten(2).max(dim=2).values
    assert torch.allclose(d, ref / ref.norm(dim=1, keepdim=True), atol=1e-6)
    assert torch.allclose(d.norm(dim=1), torch.ones(3), atol=1e-6)
    # invariant to where an activation sits and to a global positive scale
    assert torch.allclose(R.mac(torch.roll(x, 2, dims=3)), d, atol=1e-6)
    assert torch.allclose(R.mac(3.0 * x), d, atol=1e-6)
    with pytest.raises(ValueError, match="N x C x H x W"):
        R.mac(torch.zeros(3, 5))


@pytest.mark.parametrize("arch, channels", [("vgg16", 512), ("resnet50", 2048), ("mobilenet_v2", 1280)])
def test_conv_body_ends_at_the_last_convolution(arch, channels):
    model = torchvision.models.get_model(arch, weights=None)
    body = R.conv_body(model)
    assert not isinstance(list(body.children())[-1], nn.MaxPool2d)
    out = body.eval()(torch.zeros(1, 3, 64, 96))
    assert out.shape[1] == channels and out.shape[2] > 1  # spatial maps, not pooled


def _small_cnn():
    return nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 16, 3)).eval()


def test_extraction_at_original_sizes_equals_one_image_at_a_time():
    torch.manual_seed(0)
    body = _small_cnn()
    sizes = [(64, 96), (96, 64), (64, 96), (80, 80), (64, 96)]
    images = [torch.randint(0, 256, (3, h, w), dtype=torch.uint8) for h, w in sizes]
    d = R.extract(body, images, batch_size=2)
    assert d.shape == (5, 16)
    for i in (0, 1, 3):
        with torch.no_grad():
            alone = R.mac(body(preprocess(images[i][None])))  # no resize: its own size
        assert torch.allclose(d[i], alone[0], atol=1e-5)
    lazy = R.extract(body, lambda i: images[i], sizes=sizes, batch_size=3)
    assert torch.allclose(lazy, d, atol=1e-5)


def test_size_groups_batch_only_equal_sizes():
    groups = R.size_groups([(2, 3), (3, 2), (2, 3), (2, 3)], batch_size=2)
    assert sorted(map(sorted, groups)) == [[0, 2], [1], [3]]


def test_descriptor_model_folds_cwls_and_keeps_the_descriptors():
    torch.manual_seed(0)
    model = torchvision.models.mobilenet_v3_small(weights=None).eval()
    insert_weighting(model)
    with torch.no_grad():
        for w in weighted_layers(model).values():
            w.weighting.sigma.uniform_(0.5, 1.5)
    x = preprocess(torch.randint(0, 256, (2, 3, 64, 80), dtype=torch.uint8))
    with torch.no_grad():
        before = R.mac(R.conv_body(model)(x))
        body = R.descriptor_model(model)
        after = R.mac(body(x))
    assert not weighted_layers(model)
    assert torch.allclose(before, after, atol=1e-5)


def test_similarities_and_ranking_agree_with_cosine():
    q = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    db = torch.tensor([[0.0, 1.0], [1.0, 1.0], [3.0, 0.0]])
    s = R.similarities(q, db)
    assert R.rank(s).tolist() == [[2, 1, 0], [0, 1, 2]]
    assert s[0, 1] == pytest.approx(2 ** -0.5)


def test_fixed_size_crops_turn_portraits_and_keep_uint8():
    land = torch.zeros(3, 30, 60, dtype=torch.uint8)
    portrait = torch.zeros(3, 60, 30, dtype=torch.uint8)
    portrait[:, :10] = 255  # the top of a portrait becomes a side after the turn
    out = rt.fixed_size_crops([land, portrait], (64, 48))
    assert out.shape == (2, 3, 48, 64) and out.dtype == torch.uint8
    assert out[1, :, :, :8].float().mean() > 200 or out[1, :, :, -8:].float().mean() > 200
    with pytest.raises(ValueError, match="too small"):
        rt.fixed_size_crops([land], (16, 16))


def test_orientation_batches_are_seeded_and_turn_whole_batches():
    images = torch.randint(0, 256, (6, 3, 32, 48), dtype=torch.uint8)
    labels = torch.arange(6)
    a = list(rt.orientation_batches(images, labels, 3, seed=1)(0))
    b = list(rt.orientation_batches(images, labels, 3, seed=1)(0))
    assert all(torch.equal(x1, x2) and torch.equal(y1, y2) for (x1, y1), (x2, y2) in zip(a, b))
    shapes = set()
    for epoch in range(8):
        for x, y in rt.orientation_batches(images, labels, 3, seed=1)(epoch):
            assert x.dtype == torch.float32 and len(x) == len(y)
            shapes.add(tuple(x.shape[-2:]))
    assert shapes == {(32, 48), (48, 32)}  # landscape and portrait both seen


def _params(**over):
    return {**profiles.parameters("smoke", "04_retrieval"), "datasets": ["d"], "archs": ["a"], "repeats": 2, **over}


def test_grid_runs_freeze_once_and_the_others_per_learning_rate():
    runs = rt.configs(_params(strategies=["freeze", "freeze+cwl", "finetune"], freeze_lrs=[0.01, 0.05],
                              finetune_lrs=[1e-4]))
    by = {}
    for r in runs:
        by.setdefault(r.strategy, set()).add(r.lr)
    assert by == {"freeze": {None}, "freeze+cwl": {0.01, 0.05}, "finetune": {1e-4}}
    assert len(runs) == 2 * (1 + 2 + 1) and len({rt.key(r) for r in runs}) == len(runs)
    with pytest.raises(ValueError, match="Table III has no bn-affine row"):
        rt.configs(_params(strategies=["bn-affine"]))


def _record(strategy, lr, easy, medium, hard, dataset="d", arch="a"):
    config = {"dataset": dataset, "arch": arch, "strategy": strategy, "lr": lr, "repeat": 0}
    return {"key": f"{strategy}-{lr}", "config": config,
            "table": {"easy": easy, "medium": medium, "hard": hard, "mean": (easy + medium + hard) / 3}}


def test_table_iii_picks_the_best_learning_rate_by_mean_map():
    recs = [_record("freeze", None, 50, 40, 10), _record("finetune", 1e-4, 60, 40, 20),
            _record("finetune", 1e-3, 70, 50, 30)]
    t = rt.table(recs).set_index("strategy")
    assert t.loc["finetune", "lr"] == 1e-3 and t.loc["finetune", "easy"] == 70
    assert t.loc["freeze", "lr"] is None or np.isnan(t.loc["freeze", "lr"])
    assert [r["lr"] for r in rt.chosen(recs).to_dict("records") if r["strategy"] == "finetune"] == [1e-3]
    paper = rt.with_paper(rt.table([_record("freeze", None, 50, 40, 10, "roxford5k", "vgg16")])).set_index("strategy")
    assert paper.loc["freeze", "paper_easy"] == pytest.approx(49.37)


def test_one_run_end_to_end_on_a_tiny_tree(tmp_path):
    # random-weight backbone, tiny benchmark: checks the plumbing, not the numbers
    from cwl_lib.data.offline_landmarks import build

    build("offline-landmarks-mini", root=tmp_path)
    torch.manual_seed(0)
    template = torchvision.models.mobilenet_v3_small(weights=None).eval()
    context = Context("cpu", data_root=str(tmp_path), load_model=lambda arch, pretrained: template)
    run = rt.Config("offline-landmarks-mini", "mobilenet_v3_small", "freeze+cwl", 0.01, epochs=1, batch_size=4,
                    train_size=(64, 48), pretrained=False)
    rec = rt.run_one(run, context)
    data = context.memo("retrieval data", run.dataset, lambda: None)
    assert set(rec["map"]) == {"easy", "medium", "hard"}
    assert all(0.0 <= v <= 1.0 for v in rec["map"].values())
    assert len(rec["top"]) == len(data.queries) and len(rec["losses"]) == 1
    assert rec["steps"] == -(-len(data.queries) // run.batch_size) and rec["classes"] == len(data.landmarks) == 4
    assert rec["key"] == rt.key(run) and rec["study"] == "retrieval"
    assert not weighted_layers(template)  # the template was copied, not modified
    row = rt.frame([rec]).iloc[0]
    assert row["first_loss"] == rec["initial_loss"] and row["final_loss"] == rec["losses"][-1]
    assert np.isfinite(row["first_loss"]) and row["steps"] == rec["steps"] and row["classes"] == 4


def test_freeze_repeats_share_the_pretrained_descriptors(tmp_path, monkeypatch):
    from cwl_lib.data.offline_landmarks import build

    build("offline-landmarks-mini", root=tmp_path)
    torch.manual_seed(0)
    template = torchvision.models.mobilenet_v3_small(weights=None).eval()
    context = Context("cpu", data_root=str(tmp_path), load_model=lambda arch, pretrained: template)
    computed = []
    describe = rt._descriptors
    monkeypatch.setattr(rt, "_descriptors", lambda *a: computed.append(a[2].repeat) or describe(*a))
    recs = [rt.run_one(rt.Config("offline-landmarks-mini", "mobilenet_v3_small", "freeze", None, repeat=r,
                                 pretrained=False), context) for r in range(3)]
    assert computed == [0]  # described once, for the first repeat
    assert recs[0]["map"] == recs[1]["map"] == recs[2]["map"] and recs[0]["top"] == recs[2]["top"]
    assert recs[0]["losses"] == [] and recs[0]["initial_loss"] is None and recs[0]["steps"] == 0
    f = rt.frame(recs)
    assert f[["first_loss", "final_loss"]].isna().all().all() and (f["classes"] == 4).all()


def test_initial_loss_of_a_classifier_that_knows_nothing_is_ln_classes():
    torch.manual_seed(0)
    model = torchvision.models.mobilenet_v3_small(weights=None)
    model = transfer.prepare(model, "finetune", 5)
    head = transfer.head(model)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
    images = torch.randint(0, 256, (6, 3, 48, 64), dtype=torch.uint8)
    labels = torch.tensor([0, 1, 2, 3, 4, 0])
    assert rt.initial_loss(model, images, labels, "finetune", "cpu") == pytest.approx(np.log(5), rel=1e-6)
    assert not model.training
    head.bias.data[0] = 3.0  # favours class 0, the label of 2 of the 6 images: the loss rises above ln 5
    expected = (2 * -np.log(np.exp(3) / (np.exp(3) + 4)) + 4 * np.log(np.exp(3) + 4)) / 6
    assert rt.initial_loss(model, images, labels, "finetune", "cpu", batch_size=4) == pytest.approx(expected, rel=1e-5)


def test_frame_carries_what_a_convergence_gate_reads():
    trained = {**_record("finetune", 1e-3, 60, 50, 40), "losses": [2.9, 1.4, 0.6], "initial_loss": 3.2,
               "steps": 24, "classes": 20}
    older = {**_record("finetune+cwl", 1e-3, 60, 50, 40), "losses": [2.7, 0.8], "steps": 16, "classes": 20}
    frozen = {**_record("freeze", None, 50, 40, 30), "losses": [], "initial_loss": None, "steps": 0, "classes": 20}
    f = rt.frame([trained, older, frozen]).set_index("strategy")
    assert f.loc["finetune", ["first_loss", "final_loss", "steps", "classes"]].tolist() == [3.2, 0.6, 24, 20]
    assert f.loc["finetune+cwl", "first_loss"] == 2.7  # a record without the loss before any step: its first epoch
    assert np.isnan(f.loc["freeze", "first_loss"]) and np.isnan(f.loc["freeze", "final_loss"])


def test_offline_runs_carry_the_build_of_their_benchmark():
    from cwl_lib.data import offline_landmarks

    runs = rt.configs(profiles.parameters("laptop", "04_retrieval"))
    assert {r.data_version for r in runs} == {offline_landmarks.version("offline-landmarks")}
    paper = rt.configs(profiles.parameters("paper", "04_retrieval"))
    assert {r.data_version for r in paper} == {""}
