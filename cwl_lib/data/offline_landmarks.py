"""An offline stand-in for ROxford5k, built from photographs that ship with scikit-image / scikit-learn.

Each photograph is a "city" cut into a grid of "buildings" (the landmarks). Queries are mild views of a whole
building; database images are transformed views centred in one (crop, zoom, rotation or a turned camera,
perspective, blur, noise, colour, occluders), graded easy / hard / junk from the share of the query's box they
show and the change's strength. A building's neighbour is the hard negative. It is NOT a landmark dataset: its
mAPs are not comparable with the paper's, and its difficulty is ours by construction (:data:`VARIANTS`). Some
queries are named after their city (``Config.city_named``), so labels must come from the ground truth.
"""
from __future__ import annotations

import hashlib
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

VERSION = 5  # raise it whenever the generator changes: builds and run records are keyed by it
BOX_STEP = 16  # query boxes: whole pixels, sides a multiple of this

#: Names of the buildings of a photograph cut into ``columns x rows``.
GRID_NAMES = {(2, 1): ("west", "east"), (2, 2): ("northwest", "northeast", "southwest", "southeast")}


@dataclass(frozen=True)
class Config:
    cities: tuple[tuple[str, int, int], ...]  # (photograph, columns, rows): its buildings are the landmarks
    distractor_sources: tuple[str, ...]
    queries_per_landmark: int
    views_per_landmark: int
    distractors: int
    side: int  # long side of every written image, in pixels (the short side is 3/4 of it)
    seed: int = 0
    city_named: tuple[str, ...] = ()  # landmarks whose second query is named after their city
    zoom: tuple[float, float] = (0.5, 1.6)  # area of a view's crop, relative to its building's
    spread: float = 0.5  # a view is centred in the middle ``spread`` of its building (each direction)
    occluded: float = 0.5  # share of the views with an occluder in front of the building
    margin: float = 0.12  # gap left on each side of a building inside its grid cell (fraction of the cell)

    @property
    def landmarks(self) -> tuple[str, ...]:
        """Landmark names, in the order their queries and views are written."""
        return tuple(name for city, cols, rows in self.cities for name in _building_names(city, cols, rows))


_SKLEARN_PHOTOS = ("china", "flower")

# landscape photographs (3:2) are cut into two portrait buildings, square ones into four
_LAPTOP_CITIES = (("chelsea", 2, 1), ("coffee", 2, 1), ("rocket", 2, 1), ("motorcycle", 2, 1), ("china", 2, 1),
                  ("flower", 2, 1), ("astronaut", 2, 2), ("hubble", 2, 2))
_DISTRACTORS = ("brick", "grass", "gravel", "moon", "page", "text", "cell", "retina", "coins", "clock",
                "colorwheel", "logo", "camera", "immunohistochemistry")

VARIANTS: dict[str, Config] = {
    # 20 landmarks, 60 queries, 160 views + 48 distractors (more distractors barely move its mAP: the
    # building next door is the hard negative)
    "offline-landmarks": Config(_LAPTOP_CITIES, _DISTRACTORS, queries_per_landmark=3, views_per_landmark=8,
                                distractors=48, side=96,
                                city_named=("astronaut_northwest", "astronaut_southeast", "coffee_west", "coffee_east",
                                            "hubble_northwest", "hubble_southeast", "china_west", "china_east")),
    # 4 landmarks, 8 queries, 16 views + 6 distractors
    "offline-landmarks-mini": Config((("coffee", 2, 1), ("rocket", 2, 1)), ("brick", "moon", "text"),
                                     queries_per_landmark=2, views_per_landmark=4, distractors=6, side=128,
                                     city_named=("coffee_west", "coffee_east")),
}


def _building_names(city: str, cols: int, rows: int) -> tuple[str, ...]:
    if (cols, rows) not in GRID_NAMES:
        raise ValueError(f"{city}: a {cols} x {rows} grid of buildings has no names; use one of {sorted(GRID_NAMES)}")
    return tuple(f"{city}_{p}" for p in GRID_NAMES[(cols, rows)])


def city_of(cfg: Config, landmark: str) -> str:
    for city, cols, rows in cfg.cities:
        if landmark in _building_names(city, cols, rows):
            return city
    raise KeyError(f"{landmark!r} is no landmark of this benchmark")


def query_name(cfg: Config, landmark: str, k: int, index: int) -> str:
    """Name of the ``k``-th query of ``landmark``, the ``index``-th query of the benchmark."""
    if k == 1 and landmark in cfg.city_named:
        return f"{city_of(cfg, landmark)}_{index + 1:06d}"
    return f"{landmark}_{k + 1:06d}"


def photo(name: str) -> np.ndarray:
    """A photograph stored inside scikit-image or scikit-learn (none downloaded lazily), as uint8 ``H x W x 3``."""
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


def _transform(dst_pts: np.ndarray, src_pts: np.ndarray) -> ProjectiveTransform:
    if hasattr(ProjectiveTransform, "from_estimate"):  # scikit-image >= 0.26
        tform = ProjectiveTransform.from_estimate(dst_pts, src_pts)
        ok = bool(tform)
    else:
        tform = ProjectiveTransform()
        ok = tform.estimate(dst_pts, src_pts)
    if not ok:
        raise RuntimeError("degenerate view transform")
    return tform


def _view(src: np.ndarray, rng: np.random.Generator, severity: float, out_hw: tuple[int, int], turn: int,
          centre: tuple[float, float] | None = None, area: float | None = None,
          within: tuple[float, float, float, float] | None = None) -> tuple[np.ndarray, "object"]:
    """A view of ``src`` covering ``area`` source pixels (default 6-80 %) around ``centre`` (default anywhere),
    kept inside ``within`` where it fits; the image and its map from view to source coordinates."""
    h0, w0 = src.shape[:2]
    oh, ow = out_hw
    aspect = ow / oh if turn % 2 == 0 else oh / ow  # the crop's aspect before the camera turn
    if area is None:
        area = rng.uniform(0.06, 0.8) * w0 * h0
    cw = min(w0, np.sqrt(area * aspect))
    ch = min(h0, cw / aspect)
    cw = ch * aspect
    if centre is None:
        cx, cy = rng.uniform(cw / 2, w0 - cw / 2), rng.uniform(ch / 2, h0 - ch / 2)
    else:
        cx, cy = centre
        if within is not None:  # keep the crop inside ``within`` where it fits, else centre it there
            x1, y1, x2, y2 = within
            cx = float(np.clip(cx, x1 + cw / 2, x2 - cw / 2)) if x2 - x1 >= cw else (x1 + x2) / 2
            cy = float(np.clip(cy, y1 + ch / 2, y2 - ch / 2)) if y2 - y1 >= ch else (y1 + y2) / 2
        cx, cy = float(np.clip(cx, cw / 2, w0 - cw / 2)), float(np.clip(cy, ch / 2, h0 - ch / 2))
    angle = np.deg2rad(rng.uniform(-12, 12) * severity + 90 * turn)
    corners = np.array([[-cw / 2, -ch / 2], [cw / 2, -ch / 2], [cw / 2, ch / 2], [-cw / 2, ch / 2]])
    corners += rng.uniform(-1, 1, size=(4, 2)) * 0.18 * severity * np.array([cw, ch])  # perspective
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    src_pts = corners @ rot.T + np.array([cx, cy])
    # output corner k shows source corner (k - turn): the camera turned by 90 degrees per step
    src_pts = np.roll(src_pts, turn, axis=0)
    dst_pts = np.array([[0, 0], [ow, 0], [ow, oh], [0, oh]], dtype=float)
    tform = _transform(dst_pts, src_pts)
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


def _occlude(img: np.ndarray, occluder: np.ndarray, rng: np.random.Generator) -> tuple[float, float, float, float]:
    """Paste a patch of ``occluder`` over 12-35 % of ``img`` (in place); returns its box x1, y1, x2, y2."""
    oh, ow = img.shape[:2]
    share, aspect = rng.uniform(0.12, 0.35), np.exp(rng.uniform(-0.7, 0.7))
    pw = int(np.clip(round(np.sqrt(share * oh * ow * aspect)), 8, ow))
    ph = int(np.clip(round(share * oh * ow / pw), 8, oh))
    x0, y0 = int(rng.integers(0, ow - pw + 1)), int(rng.integers(0, oh - ph + 1))
    sh, sw = occluder.shape[:2]
    cw, chh = int(min(sw, rng.uniform(0.2, 0.6) * sw)), int(min(sh, rng.uniform(0.2, 0.6) * sh))
    sx, sy = int(rng.integers(0, sw - cw + 1)), int(rng.integers(0, sh - chh + 1))
    patch = resize(occluder[sy:sy + chh, sx:sx + cw], (ph, pw), order=1, anti_aliasing=True, preserve_range=True)
    img[y0:y0 + ph, x0:x0 + pw] = (patch + 0.5).astype(np.uint8)
    return (x0, y0, x0 + pw, y0 + ph)


def _visible_fraction(points_src: np.ndarray, tform, out_hw, hidden=None) -> float:
    """Share of ``points_src`` (source coordinates) that the view shows, outside its ``hidden`` box."""
    oh, ow = out_hw
    xy = tform.inverse(points_src)
    inside = (xy[:, 0] >= 0) & (xy[:, 0] < ow) & (xy[:, 1] >= 0) & (xy[:, 1] < oh)
    if hidden is not None:
        x1, y1, x2, y2 = hidden
        inside &= ~((xy[:, 0] >= x1) & (xy[:, 0] < x2) & (xy[:, 1] >= y1) & (xy[:, 1] < y2))
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


def _buildings(cfg: Config, city: str, cols: int, rows: int, h0: int, w0: int) -> list[tuple[str, tuple, tuple]]:
    """(name, building, cell) boxes (x1, y1, x2, y2): a building is its grid cell less a margin."""
    cw, ch, m = w0 / cols, h0 / rows, cfg.margin
    cells = [(c, r) for r in range(rows) for c in range(cols)]
    return [(name, (cw * (c + m), ch * (r + m), cw * (c + 1 - m), ch * (r + 1 - m)),
             (cw * c, ch * r, cw * (c + 1), ch * (r + 1)))
            for name, (c, r) in zip(_building_names(city, cols, rows), cells)]


def _query(src, rng, cfg: Config, rect) -> tuple[np.ndarray, list[float], np.ndarray]:
    """A mild view of a whole building: image, box [x1, y1, x2, y2] around the building, box points in source."""
    x1, y1, x2, y2 = rect
    bw, bh = x2 - x1, y2 - y1
    for _ in range(100):
        shape = _out_shape(cfg.side, portrait=bh > bw)
        centre = ((x1 + x2) / 2 + rng.uniform(-0.15, 0.15) * bw, (y1 + y2) / 2 + rng.uniform(-0.15, 0.15) * bh)
        img, tform = _view(src, rng, rng.uniform(0, 0.25), shape, 0, centre, rng.uniform(1.3, 2.2) * bw * bh)
        corners = tform.inverse(np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], dtype=float))
        oh, ow = shape
        bx1, by1 = max(0.0, corners[:, 0].min()), max(0.0, corners[:, 1].min())
        bx2, by2 = min(float(ow), corners[:, 0].max()), min(float(oh), corners[:, 1].max())
        if bx2 - bx1 >= 0.3 * ow and by2 - by1 >= 0.3 * oh:
            break
    else:  # pragma: no cover - the crop is at least the building's size, so the box is never that small
        raise RuntimeError("could not place a query box")
    # on a grid of BOX_STEP pixels, so the query crops come in a few sizes (described in a few batches)
    w = int(min(ow, max(BOX_STEP, BOX_STEP * round((bx2 - bx1) / BOX_STEP))))
    h = int(min(oh, max(BOX_STEP, BOX_STEP * round((by2 - by1) / BOX_STEP))))
    x0 = int(np.clip(round((bx1 + bx2 - w) / 2), 0, ow - w))
    y0 = int(np.clip(round((by1 + by2 - h) / 2), 0, oh - h))
    bbx = [float(x0), float(y0), float(x0 + w), float(y0 + h)]
    gx, gy = np.meshgrid(np.linspace(bbx[0], bbx[2], 24), np.linspace(bbx[1], bbx[3], 24))
    return img, bbx, tform(np.stack([gx.ravel(), gy.ravel()], axis=1))


def _generate(cfg: Config, folder: Path, name: str) -> None:
    rng = np.random.default_rng(cfg.seed)
    jpg = folder / "jpg"
    jpg.mkdir(parents=True)
    occluders = [photo(d) for d in cfg.distractor_sources]
    imlist: list[str] = []
    views: list[tuple] = []  # city, tform, shape, severity, turned, hidden
    queries: list[tuple[int, np.ndarray, list[float]]] = []  # city, box points in source coordinates, bbx
    qimlist: list[str] = []
    for ci, (city, cols, rows) in enumerate(cfg.cities):
        src = photo(city)
        h0, w0 = src.shape[:2]
        for lname, rect, cell in _buildings(cfg, city, cols, rows, h0, w0):
            x1, y1, x2, y2 = rect
            for k in range(cfg.views_per_landmark):
                severity = rng.uniform(0, 0.45) if k % 2 == 0 else rng.uniform(0.45, 1.0)
                turn = int(rng.choice([1, 3])) if (severity > 0.6 and rng.uniform() < 0.5) else 0
                portrait = (y2 - y1 > x2 - x1) != (turn % 2 == 1)  # framed like the building, turned or not
                shape = _out_shape(cfg.side, portrait)
                half = cfg.spread / 2
                centre = (rng.uniform(x1 + (0.5 - half) * (x2 - x1), x2 - (0.5 - half) * (x2 - x1)),
                          rng.uniform(y1 + (0.5 - half) * (y2 - y1), y2 - (0.5 - half) * (y2 - y1)))
                area = rng.uniform(*cfg.zoom) * (x2 - x1) * (y2 - y1)
                img, tform = _view(src, rng, severity, shape, turn, centre, area, within=cell)
                hidden = None
                if rng.uniform() < cfg.occluded:
                    hidden = _occlude(img, occluders[int(rng.integers(len(occluders)))], rng)
                fname = f"{lname}_view{k:02d}"
                Image.fromarray(img).save(jpg / f"{fname}.jpg", quality=92)
                imlist.append(fname)
                views.append((ci, tform, shape, severity, turn != 0, hidden))
            for k in range(cfg.queries_per_landmark):
                img, bbx, pts = _query(src, rng, cfg, rect)
                qname = query_name(cfg, lname, k, len(qimlist))
                Image.fromarray(img).save(jpg / f"{qname}.jpg", quality=92)
                qimlist.append(qname)
                queries.append((ci, pts, bbx))
    for k in range(cfg.distractors):
        dname = cfg.distractor_sources[k % len(cfg.distractor_sources)]
        shape = _out_shape(cfg.side, portrait=rng.uniform() < 0.3)
        img, _ = _view(photo(dname), rng, rng.uniform(0, 1), shape, 0)
        fname = f"distractor_{dname}_{k:03d}"
        Image.fromarray(img).save(jpg / f"{fname}.jpg", quality=92)
        imlist.append(fname)
    gnd = []
    for ci, pts, bbx in queries:
        entry: dict = {"bbx": bbx, "easy": [], "hard": [], "junk": []}
        for vi, (cv, tform, shape, severity, turned, hidden) in enumerate(views):
            if cv != ci:  # another photograph: nothing of this one's buildings
                continue
            g = grade(_visible_fraction(pts, tform, shape, hidden), severity, turned)
            if g is not None:
                entry[g].append(vi)
        gnd.append(entry)
    write_gnd(folder / f"gnd_{name}.pkl", imlist, qimlist, gnd)


def _meta(cfg: Config) -> dict:
    return {"version": VERSION, "config": json.loads(json.dumps(asdict(cfg)))}


def _config(name: str) -> Config:
    if name not in VARIANTS:
        raise ValueError(f"unknown offline benchmark {name!r}; choose one of {', '.join(VARIANTS)}")
    return VARIANTS[name]


def _is_current(meta_file: Path, cfg: Config) -> bool:
    try:
        return json.loads(meta_file.read_text()) == _meta(cfg)
    except (OSError, json.JSONDecodeError):
        return False


def version(name: str) -> str:
    """A short digest of what a variant's build depends on (module version and config): records keep it."""
    text = json.dumps(_meta(_config(name)), sort_keys=True)
    return f"v{VERSION}-{hashlib.sha1(text.encode()).hexdigest()[:8]}"


def build(name: str = "offline-landmarks", root: str | Path | None = None) -> Path:
    """The benchmark's folder under the data root, generated first when absent or out of date."""
    cfg = _config(name)
    folder = data_root(root) / name
    meta_file = folder / "meta.json"
    if _is_current(meta_file, cfg):
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=folder.parent))
    try:
        _generate(cfg, tmp, name)
        (tmp / "meta.json").write_text(json.dumps(_meta(cfg), indent=1))
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)  # a reader never sees a half-written benchmark
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if not isinstance(err, OSError) or not _is_current(meta_file, cfg):
            raise  # else another process finished the same build first: use its folder
    return folder

