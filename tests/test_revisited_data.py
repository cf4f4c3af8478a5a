"""Revisited Oxford/Paris loaders: the published layout, the safe ground-truth reader, the offline benchmark."""
import os
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from cwl_lib.data import offline_landmarks, require
from cwl_lib.data.revisited import UnsafePickleError, crop_bbx, load_revisited, write_gnd


class _RunsCommand:
    """Unpickling this calls os.system: the attack a downloaded pickle can carry."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _fake_tree(root, name="roxford5k", sizes=((30, 40), (40, 30), (30, 40)), queries=(("all_souls_000013", 0),
                                                                                     ("ashmolean_000007", 1))):
    folder = root / name
    (folder / "jpg").mkdir(parents=True)
    imlist = [f"db_{i}" for i in range(len(sizes))]
    for i, (h, w) in enumerate(sizes):
        Image.fromarray(np.full((h, w, 3), 10 * (i + 1), dtype=np.uint8)).save(folder / "jpg" / f"db_{i}.jpg")
    qimlist = []
    for qname, _ in queries:
        img = np.zeros((20, 24, 3), dtype=np.uint8)
        img[5:15, 4:20] = 200  # the object inside the box
        Image.fromarray(img).save(folder / "jpg" / f"{qname}.jpg", quality=100)
        qimlist.append(qname)
    gnd = [{"bbx": [4.0, 5.0, 20.0, 15.0], "easy": [0], "hard": [1], "junk": [2]},
           {"bbx": np.array([3.6, 4.6, 19.6, 14.6]), "easy": np.array([1]), "hard": [], "junk": []}]
    with open(folder / f"gnd_{name}.pkl", "wb") as f:
        pickle.dump({"imlist": imlist, "qimlist": qimlist, "gnd": gnd}, f, protocol=4)
    return folder


def test_loader_reads_the_published_layout_and_crops_queries(tmp_path):
    _fake_tree(tmp_path)
    ds = load_revisited("roxford5k", root=tmp_path)
    assert (ds.n_db, ds.n_queries) == (3, 2)
    assert ds.gnd[0]["easy"] == [0] and ds.gnd[0]["junk"] == [2] and ds.gnd[1]["easy"] == [1]
    q = ds.query(0)
    assert q.dtype == torch.uint8 and tuple(q.shape) == (3, 10, 16)
    assert q.float().mean() > 190  # the crop holds the object, not the black border
    assert tuple(ds.query(1).shape) == (3, 10, 16)  # fractional box rounded like PIL's crop
    assert tuple(ds.image(1).shape) == (3, 40, 30)  # database images keep their own size
    # the landmark comes from the ground truth, not the names: the two queries share image 1 of the three
    # they list (Jaccard 1/3), so they are one landmark, named by the alphabetically first of their stems
    assert ds.query_landmarks() == ([0, 0], ["all_souls"])


def test_a_pickle_that_runs_a_command_is_refused_and_nothing_runs(tmp_path):
    folder = _fake_tree(tmp_path)
    marker = tmp_path / "pwned"
    evil = {"imlist": ["db_0"], "qimlist": ["all_souls_000013"], "gnd": [_RunsCommand(marker)]}
    (folder / "gnd_roxford5k.pkl").write_bytes(pickle.dumps(evil, protocol=2))
    with pytest.raises(UnsafePickleError, match="system"):
        load_revisited("roxford5k", root=tmp_path)
    assert not marker.exists()


def test_missing_dataset_says_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="cwl fetch rparis6k"):
        load_revisited("rparis6k", root=tmp_path)


def test_ground_truth_beyond_the_database_is_refused(tmp_path):
    folder = _fake_tree(tmp_path)
    write_gnd(folder / "gnd_roxford5k.pkl", ["db_0"], ["all_souls_000013"], [{"bbx": [0, 0, 5, 5], "easy": [3]}])
    with pytest.raises(ValueError, match="beyond the 1 images"):
        load_revisited("roxford5k", root=tmp_path)


def test_crop_refuses_an_empty_box():
    with pytest.raises(ValueError, match="empty"):
        crop_bbx(torch.zeros(3, 10, 10, dtype=torch.uint8), [8, 8, 8, 9])


def test_offline_benchmark_is_written_in_the_roxford_layout_and_reused(tmp_path):
    folder = offline_landmarks.build("offline-landmarks-mini", root=tmp_path)
    cfg = offline_landmarks.VARIANTS["offline-landmarks-mini"]
    assert (folder / "jpg").is_dir() and (folder / "gnd_offline-landmarks-mini.pkl").is_file()
    require("offline-landmarks-mini", root=tmp_path)
    ds = load_revisited("offline-landmarks-mini", root=tmp_path)
    n_views = len(cfg.landmarks) * cfg.views_per_landmark
    assert ds.n_db == n_views + cfg.distractors
    assert ds.n_queries == len(cfg.landmarks) * cfg.queries_per_landmark
    labels, names = ds.query_landmarks()
    assert sorted(names) == sorted(cfg.landmarks)
    for q, g in enumerate(ds.gnd):
        listed = g["easy"] + g["hard"] + g["junk"]
        assert len(set(listed)) == len(listed)  # grades are exclusive
        own = names[labels[q]]
        # listed images are views of the query's photograph (its building or a neighbour), never distractors
        city = offline_landmarks.city_of(cfg, own)
        assert all(i < n_views and ds.imlist[i].startswith(city + "_") for i in listed)
        positives = g["easy"] + g["hard"]
        assert positives and all(ds.imlist[i].startswith(own + "_view") for i in positives)
        x1, y1, x2, y2 = g["bbx"]
        h, w = Image.open(ds.query_path(q)).size[::-1]
        assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
    assert sum(len(g["easy"]) for g in ds.gnd) > 0 and sum(len(g["hard"]) for g in ds.gnd) > 0
    stamp = (folder / "meta.json").stat().st_mtime_ns
    assert offline_landmarks.build("offline-landmarks-mini", root=tmp_path) == folder
    assert (folder / "meta.json").stat().st_mtime_ns == stamp  # reused, not rebuilt


@pytest.fixture(scope="module")
def laptop_benchmark(tmp_path_factory):
    root = tmp_path_factory.mktemp("offline")
    offline_landmarks.build("offline-landmarks", root=root)
    return load_revisited("offline-landmarks", root=root)


def test_laptop_benchmark_has_the_size_the_profile_needs(laptop_benchmark):
    ds, cfg = laptop_benchmark, offline_landmarks.VARIANTS["offline-landmarks"]
    labels, names = ds.query_landmarks()
    assert ds.n_queries >= 50 and len(names) == len(cfg.landmarks) >= 16
    assert ds.n_db == len(cfg.landmarks) * cfg.views_per_landmark + cfg.distractors
    # every query has positives under the Medium protocol, and most have an easy one
    assert all(g["easy"] or g["hard"] for g in ds.gnd)
    assert sum(bool(g["easy"]) for g in ds.gnd) >= 0.75 * ds.n_queries


def test_laptop_benchmark_buildings_share_their_photograph_with_a_neighbour(laptop_benchmark):
    """The hard negatives: views of another building of the same photograph, most of them unrelated."""
    ds, cfg = laptop_benchmark, offline_landmarks.VARIANTS["offline-landmarks"]
    labels, names = ds.query_landmarks()
    unrelated, pairs = 0, 0
    for q, g in enumerate(ds.gnd):
        own = names[labels[q]]
        city = offline_landmarks.city_of(cfg, own)
        neighbours = [n for n in cfg.landmarks if n != own and offline_landmarks.city_of(cfg, n) == city]
        assert neighbours
        listed = set(g["easy"] + g["hard"] + g["junk"])
        neighbour_views = [i for i, n in enumerate(ds.imlist) if any(n.startswith(b + "_view") for b in neighbours)]
        negatives = sum(i not in listed for i in neighbour_views)
        assert negatives >= len(neighbour_views) / 2  # a neighbour's views show little of this building
        unrelated, pairs = unrelated + negatives, pairs + len(neighbour_views)
    assert unrelated >= 0.95 * pairs


def test_pretrained_mac_leaves_headroom_on_the_laptop_benchmark(laptop_benchmark):
    """The benchmark's reason to exist: the pretrained MobileNetV2's MAC is well below saturation, so a
    transfer can show a gain (the old one, views of one photograph per landmark, scored 87-92)."""
    from cwl_lib import models
    from cwl_lib.retrieval import conv_body, extract, revisited_map, similarities

    ds = laptop_benchmark
    body = conv_body(models.load_backbone("mobilenet_v2").eval())
    res = revisited_map(similarities(extract(body, ds.load_images("queries")), extract(body, ds.load_images())),
                        ds.gnd)
    assert 0.35 <= res["medium"]["map"] <= 0.65
    assert res["hard"]["map"] < res["medium"]["map"] < res["easy"]["map"] < 0.9


def test_an_occluder_hides_what_it_covers():
    from skimage.transform import AffineTransform

    points = np.array([[5.0, 5.0], [15.0, 5.0], [25.0, 5.0], [35.0, 5.0]])  # source = view coordinates
    same = AffineTransform()
    assert offline_landmarks._visible_fraction(points, same, (10, 30)) == 0.75  # x = 35 is outside the view
    assert offline_landmarks._visible_fraction(points, same, (10, 30), hidden=(10, 0, 20, 10)) == 0.5
    img = np.zeros((30, 40, 3), dtype=np.uint8)
    box = offline_landmarks._occlude(img, np.full((50, 50, 3), 200, dtype=np.uint8), np.random.default_rng(0))
    x1, y1, x2, y2 = box
    assert (img[y1:y2, x1:x2] == 200).all() and img.sum() == 200 * 3 * (x2 - x1) * (y2 - y1)
    assert 0.1 <= (x2 - x1) * (y2 - y1) / (30 * 40) <= 0.4


def test_offline_version_follows_the_build(monkeypatch):
    import dataclasses

    v = offline_landmarks.version("offline-landmarks")
    assert v == offline_landmarks.version("offline-landmarks") and v.startswith(f"v{offline_landmarks.VERSION}-")
    assert v != offline_landmarks.version("offline-landmarks-mini")
    cfg = offline_landmarks.VARIANTS["offline-landmarks"]
    monkeypatch.setitem(offline_landmarks.VARIANTS, "offline-landmarks", dataclasses.replace(cfg, seed=cfg.seed + 1))
    assert offline_landmarks.version("offline-landmarks") != v
    with pytest.raises(ValueError, match="unknown offline benchmark"):
        offline_landmarks.version("roxford5k")


def test_offline_grades_follow_overlap_and_severity():
    g = offline_landmarks.grade
    assert g(0.05, 0.1, False) is None
    assert g(0.3, 0.1, False) == "junk"
    assert g(0.9, 0.1, False) == "easy"
    assert g(0.9, 0.8, False) == "hard" and g(0.9, 0.1, True) == "hard" and g(0.5, 0.1, False) == "hard"


@pytest.mark.parametrize("bbx", [
    [3.2, 4.7, 17.5, 12.5],  # fractional: rounded half to even, as PIL does
    [-5.0, -3.4, 10.0, 8.0],  # leaves the image on the top left
    [20.0, 10.0, 40.6, 33.0],  # leaves it on the bottom right
    [-4, -4, 30, 26],  # larger than the image on every side
    [0.5, 1.5, 2.5, 3.5],
])
def test_crop_is_pils_crop_as_revisitops_python_example_uses(bbx):
    """revisitop's example_process_images.py: ``pil_loader(path).crop(gnd[i]['bbx'])``."""
    rng = np.random.default_rng(0)
    arr = rng.integers(1, 256, size=(20, 24, 3), dtype=np.uint8)
    reference = np.asarray(Image.fromarray(arr).crop(bbx))
    ours = crop_bbx(torch.from_numpy(arr).permute(2, 0, 1), bbx).permute(1, 2, 0).numpy()
    assert ours.shape == reference.shape
    np.testing.assert_array_equal(ours, reference)
    if bbx[0] < 0:
        assert (ours[:, 0] == 0).all()  # padded with black, not clamped


def test_crop_refuses_a_box_far_larger_than_the_image():
    with pytest.raises(ValueError, match="far larger"):
        crop_bbx(torch.zeros(3, 10, 10, dtype=torch.uint8), [0, 0, 1e6, 1e6])
