"""An offline stand-in for ROxford5k, built from real photographs that ship with scikit-image / scikit-learn.

What it is: each photograph plays a "landmark". Its database images are synthetic views of that one
photograph: a crop, a rotation (sometimes a 90 degree turn of the camera), a perspective warp, a scale
and a colour change. Queries are other crops of the photograph with a bounding box around the object
of interest. Each (query, view) pair is graded like the revisited datasets: the fraction of the
query's box that the view shows, and how strong the transformation is, decide ``easy`` (most of the
box, mild change), ``hard`` (most of the box, strong change or a turned camera), ``junk`` (a small
part of the box only) or unrelated (nothing of it). Views of other photographs (textures, text,
microscopy, the moon) are distractors. It is NOT a landmark dataset: the views are geometric and
photometric transformations of one picture, far easier to match than photographs of a building
taken years apart, so its mAPs are not comparable with the paper's numbers; it exists so that the
whole retrieval pipeline (loader, training on the queries, MAC, protocol) runs on real pixels offline.

Like the real sets, some queries are named after the "city" rather than their landmark: the second
query of each photograph in ``Config.city_named`` is named after the package the photograph ships in
(``skimage_000002`` instead of ``astronaut_000002``), as ``oxford_002985`` is an All Souls query. The
landmark labels therefore have to come from the ground truth (:mod:`cwl_lib.data.landmarks`), and
the laptop and smoke profiles exercise that rule.

It is written in the ROxford layout (``jpg/`` + ``gnd_<name>.pkl``) under the data root, once,
deterministically from a seed; :func:`build` reuses a folder whose ``meta.json`` matches.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter
from skimage import data
from skimage.transform import ProjectiveTransform, resize, warp
from sklearn.datasets import load_sample_image

from ..paths import data_root
from .ground_truth import write_gnd

VERSION = 4


@dataclass(frozen=True)
class Config:
    landmarks: tuple[str, ...]
    distractor_sources: tuple[str, ...]
    queries_per_landmark: int
    views_per_landmark: int
    distractors: int
    side: int  # long side of every written image, in pixels (the short side is 3/4 of it)
    seed: int = 0
    city_named: tuple[str, ...] = ()  # photographs whose second query is named after their package


_LANDMARKS = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle", "hubble", "china", "flower",
              "camera", "coins", "clock", "immunohistochemistry")
_DISTRACTORS = ("brick", "grass", "gravel", "moon", "page", "text", "cell", "retina")

VARIANTS: dict[str, Config] = {
    "offline-landmarks": Config(_LANDMARKS, _DISTRACTORS, queries_per_landmark=2, views_per_landmark=8,
                                distractors=24, side=160,
                                city_named=("astronaut", "coffee", "motorcycle", "camera", "china", "flower")),
    "offline-landmarks-mini": Config(("astronaut", "coffee", "rocket", "china"), ("brick", "moon", "text"),
                                     queries_per_landmark=2, views_per_landmark=4, distractors=6, side=128,
                                     city_named=("astronaut", "rocket")),
}
_SKLEARN_PHOTOS = ("china", "flower")


def query_name(cfg: Config, landmark: str, k: int, index: int) -> str:
    """Name of the ``k``-th query of ``landmark``, the ``index``-th query of the benchmark."""
    if k == 1 and landmark in cfg.city_named:
        return f"{'sklearn' if landmark in _SKLEARN_PHOTOS else 'skimage'}_{index + 1:06d}"
    return f"{landmark}_{k + 1:06d}"


def photo(name: str) -> np.ndarray:
    """A photograph shipped inside scikit-image or scikit-learn, as uint8 ``H x W x 3``.

    Only images stored in the installed packages are used (some scikit-image samples are downloaded
    lazily and are not available offline).
    """
    if name in _SKLEARN_PHOTOS:
        img = load_sample_image(f"{name}.jpg")
    elif name == "motorcycle":
        img = data.stereo_motorcycle()[0]
    elif name == "hubble":
        img = data.hubble_deep_field()
    else:
        img = getattr(data, name)()
    img = np.asarray(img)
    if img.dtype != np.uint8:
        raise ValueError(f"photograph {name} is not 8-bit")
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return np.ascontiguousarray(img[..., :3])


def _out_shape(side: int, portrait: bool) -> tuple[int, int]:
    short = int(round(side * 3 / 4))
    return (side, short) if portrait else (short, side)


def _view(src: np.ndarray, rng: np.random.Generator, severity: float, out_hw: tuple[int, int],
          turn: int) -> tuple[np.ndarray, "object"]:
    """A transformed view of ``src``; returns the image and the map from view to source coordinates."""
    h0, w0 = src.shape[:2]
    oh, ow = out_hw
    aspect = ow / oh if turn % 2 == 0 else oh / ow  # the crop's aspect before the camera turn
    area = rng.uniform(0.06, 0.8)
    cw = min(w0, np.sqrt(area * w0 * h0 * aspect))
    ch = min(h0, cw / aspect)
    cw = ch * aspect
    cx = rng.uniform(cw / 2, w0 - cw / 2)
    cy = rng.uniform(ch / 2, h0 - ch / 2)
    angle = np.deg2rad(rng.uniform(-12, 12) * severity + 90 * turn)
    corners = np.array([[-cw / 2, -ch / 2], [cw / 2, -ch / 2], [cw / 2, ch / 2], [-cw / 2, ch / 2]])
    corners += rng.uniform(-1, 1, size=(4, 2)) * 0.18 * severity * np.array([cw, ch])  # perspective
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    src_pts = corners @ rot.T + np.array([cx, cy])
    # output corner k shows source corner (k - turn): the camera turned by 90 degrees per step
    src_pts = np.roll(src_pts, turn, axis=0)
    dst_pts = np.array([[0, 0], [ow, 0], [ow, oh], [0, oh]], dtype=float)
    if hasattr(ProjectiveTransform, "from_estimate"):  # scikit-image >= 0.26
        tform = ProjectiveTransform.from_estimate(dst_pts, src_pts)
        ok = bool(tform)
    else:
        tform = ProjectiveTransform()
        ok = tform.estimate(dst_pts, src_pts)
    if not ok:
        raise RuntimeError("degenerate view transform")
    img = warp(src, tform, output_shape=(oh, ow), order=1, mode="reflect", preserve_range=True)
    img = _colour(img / 255.0, rng, severity)
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8), tform


def _colour(img: np.ndarray, rng: np.random.Generator, severity: float) -> np.ndarray:
    if severity > 0.5:  # a blurred, noisy photograph taken from further away
        img = gaussian_filter(img, sigma=(2.5 * (severity - 0.5), 2.5 * (severity - 0.5), 0))
        img = img + rng.normal(0, 0.06 * severity, size=img.shape)
    gains = 1 + rng.uniform(-0.35, 0.35, size=3) * severity  # colour cast
    img = img * gains
    img = np.clip(img, 0, 1) ** np.exp(rng.uniform(-0.6, 0.6) * severity)  # exposure
    if rng.uniform() < 0.5 * severity:  # washed-out colours
        grey = img.mean(axis=2, keepdims=True)
        img = grey + (img - grey) * (1 - severity)
    return img


def _visible_fraction(points_src: np.ndarray, tform, out_hw) -> float:
    """Share of ``points_src`` (source coordinates) that the view shows."""
    oh, ow = out_hw
    xy = tform.inverse(points_src)
    inside = (xy[:, 0] >= 0) & (xy[:, 0] < ow) & (xy[:, 1] >= 0) & (xy[:, 1] < oh)
    return float(inside.mean())


def grade(overlap: float, severity: float, turned: bool) -> str | None:
    """``easy`` / ``hard`` / ``junk`` / None (unrelated) for a view showing ``overlap`` of the query box."""
    if overlap < 0.1:
        return None
    if overlap < 0.4:
        return "junk"
    if overlap >= 0.7 and severity < 0.45 and not turned:
        return "easy"
    return "hard"


def _save_jpg(path: Path, img: np.ndarray) -> None:
    Image.fromarray(img).save(path, quality=92)


def _generate(cfg: Config, folder: Path, name: str) -> None:
    rng = np.random.default_rng(cfg.seed)
    jpg = folder / "jpg"
    jpg.mkdir(parents=True)
    imlist: list[str] = []
    views: list[tuple[int, object, tuple[int, int], float, bool]] = []  # landmark, tform, shape, severity, turned
    queries: list[tuple[int, np.ndarray]] = []  # landmark, box points in source coordinates
    qimlist: list[str] = []
    bbxs: list[list[float]] = []
    for li, lname in enumerate(cfg.landmarks):
        src = photo(lname)
        h0, w0 = src.shape[:2]
        for k in range(cfg.views_per_landmark):
            severity = rng.uniform(0, 0.45) if k % 2 == 0 else rng.uniform(0.45, 1.0)
            turn = int(rng.choice([1, 3])) if (severity > 0.6 and rng.uniform() < 0.5) else 0
            portrait = (turn % 2 == 1) != (rng.uniform() < 0.2)
            shape = _out_shape(cfg.side, portrait)
            img, tform = _view(src, rng, severity, shape, turn)
            fname = f"{lname}_view{k:02d}"
            _save_jpg(jpg / f"{fname}.jpg", img)
            imlist.append(fname)
            views.append((li, tform, shape, severity, turn != 0))
        for k in range(cfg.queries_per_landmark):
            # a query is an upright crop of the photograph, with a box around the "building"
            area = rng.uniform(0.5, 0.9)
            cw, ch = w0 * np.sqrt(area), h0 * np.sqrt(area)
            x0, y0 = rng.uniform(0, w0 - cw), rng.uniform(0, h0 - ch)
            shape = _out_shape(cfg.side, portrait=ch > cw)
            scale_x, scale_y = cw / shape[1], ch / shape[0]
            crop = src[int(y0):int(y0 + ch), int(x0):int(x0 + cw)]
            img = (resize(crop, shape, order=1, anti_aliasing=True, preserve_range=True) + 0.5).astype(np.uint8)
            bw, bh = rng.uniform(0.35, 0.7) * shape[1], rng.uniform(0.35, 0.7) * shape[0]
            bx, by = rng.uniform(0, shape[1] - bw), rng.uniform(0, shape[0] - bh)
            bbx = [round(bx, 1), round(by, 1), round(bx + bw, 1), round(by + bh, 1)]
            gx, gy = np.meshgrid(np.linspace(bbx[0], bbx[2], 24), np.linspace(bbx[1], bbx[3], 24))
            pts = np.stack([x0 + gx.ravel() * scale_x, y0 + gy.ravel() * scale_y], axis=1)
            qname = query_name(cfg, lname, k, len(qimlist))
            _save_jpg(jpg / f"{qname}.jpg", img)
            qimlist.append(qname)
            bbxs.append(bbx)
            queries.append((li, pts))
    for k in range(cfg.distractors):
        dname = cfg.distractor_sources[k % len(cfg.distractor_sources)]
        shape = _out_shape(cfg.side, portrait=rng.uniform() < 0.3)
        img, _ = _view(photo(dname), rng, rng.uniform(0, 1), shape, 0)
        fname = f"distractor_{dname}_{k:03d}"
        _save_jpg(jpg / f"{fname}.jpg", img)
        imlist.append(fname)
    gnd = []
    for (li, pts), bbx in zip(queries, bbxs):
        entry: dict = {"bbx": bbx, "easy": [], "hard": [], "junk": []}
        for vi, (lv, tform, shape, severity, turned) in enumerate(views):
            if lv != li:
                continue
            g = grade(_visible_fraction(pts, tform, shape), severity, turned)
            if g is not None:
                entry[g].append(vi)
        gnd.append(entry)
    write_gnd(folder / f"gnd_{name}.pkl", imlist, qimlist, gnd)


def _meta(cfg: Config) -> dict:
    return {"version": VERSION, "config": json.loads(json.dumps(asdict(cfg)))}


def folder_for(name: str, root: str | Path | None = None) -> Path:
    return data_root(root) / name


def build(name: str = "offline-landmarks", root: str | Path | None = None, force: bool = False) -> Path:
    """The benchmark's folder under the data root, generated first when absent or out of date."""
    if name not in VARIANTS:
        raise ValueError(f"unknown offline benchmark {name!r}; choose one of {', '.join(VARIANTS)}")
    cfg = VARIANTS[name]
    folder = folder_for(name, root)
    meta_file = folder / "meta.json"
    if not force and meta_file.is_file():
        try:
            if json.loads(meta_file.read_text()) == _meta(cfg):
                return folder
        except json.JSONDecodeError:
            pass
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=folder.parent))
    try:
        _generate(cfg, tmp, name)
        (tmp / "meta.json").write_text(json.dumps(_meta(cfg), indent=1))
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)  # a reader never sees a half-written benchmark
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not (meta_file.is_file() and json.loads(meta_file.read_text()) == _meta(cfg)):
            raise
        # another process finished the same build first: use its folder
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


__all__ = ["Config", "VARIANTS", "photo", "query_name", "grade", "build", "folder_for"]
