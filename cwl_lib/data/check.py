"""``cwl data check``: each dataset and weight file present, missing or wrong (layout, lock file, the paper's image
counts, kept downloads' and weights' digests, Fashion-MNIST's IDX files), and what fixes it. Files are listed,
not decoded; each ``*_problem`` returns one line or None, never raising on damaged files. ``cwl reproduce``
(:func:`problems`) and each notebook (:func:`require`) run the same checks.
"""
from __future__ import annotations

import functools
import gzip
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import models
from ..digest import stamp
from ..paths import data_root
from . import checksums
from .classification import FASHION_MNIST_CLASSES, FOLDER_LAYOUTS, CorruptImageError, read_idx
from .ground_truth import read as read_ground_truth
from .registry import (FASHION_MNIST_FILES, RESOURCES, SOURCES, MissingDataError, Resource, Source, lacking,
                       paper_sizes, resource)

DOWNLOADS = "downloads"  # <data root>/downloads/<dataset>/<file>: the downloaded files, kept or placed by hand

# The MD5s Zalando publishes (torchvision's downloader checks them); Debian's package recompresses the files, so
# elsewhere they are checked by content.
FASHION_MNIST_MD5 = dict(zip(FASHION_MNIST_FILES, (
    "8d4fb7e6c68d591d4c3dfef9ec88bf0d", "25c81989df183df01b3e8a0aad5dffbe", "bef4ecab320f06d8554ea6380940ec79",
    "bb300cfdad3c16e7a12a480ee83cd310")))
TORCHVISION_FASHION_MNIST = Path("FashionMNIST") / "raw"

_ERRORS = (OSError, ValueError, CorruptImageError, EOFError, gzip.BadGzipFile)


def _counts(name: str, *counts: tuple[str, int, int | None], more: tuple[str, ...] = ()) -> str | None:
    """The ``(what, found, the paper's)`` counts that differ, and ``more``, as one line; None when none."""
    found = [f"{what}: {have:,}, but the paper's {name} has {want:,}" for what, have, want in counts
             if want is not None and have != want]
    return "; ".join([*found, *more]) or None


def classification_problem(name: str, folder: Path, layout_kind: str) -> str | None:
    sizes = paper_sizes(name)
    try:
        train, test, classes = FOLDER_LAYOUTS[layout_kind][0](folder)
    except _ERRORS as err:
        return f"cannot list its images ({err})"
    per_class = np.bincount([label for _, label in train + test], minlength=len(classes))
    odd = [f"{c} has {n:,}" for c, n in zip(classes, per_class) if sizes.per_class and n != sizes.per_class]
    if odd:
        return (f"images per class: {', '.join(odd[:4])}{' ...' if len(odd) > 4 else ''}, but the paper's "
                f"{name} has {sizes.per_class:,} of each class")
    return _counts(name, ("classes", len(classes), sizes.classes), ("training images", len(train), sizes.train),
                   ("test images", len(test), sizes.test))


def revisited_problem(name: str, folder: Path) -> str | None:
    sizes = paper_sizes(name)
    try:
        imlist, qimlist, _ = read_ground_truth(folder / f"gnd_{name}.pkl")
    except Exception as err:  # the file is untrusted: any failure to read it is a finding, not a crash
        return f"cannot read gnd_{name}.pkl ({str(err).splitlines()[0] if str(err) else type(err).__name__})"
    absent = [n for n in imlist + qimlist if not (folder / "jpg" / f"{n}.jpg").is_file()]
    return _counts(name, ("database images", len(imlist), sizes.train), ("queries", len(qimlist), sizes.test),
                   more=[f"{len(absent):,} images the ground truth lists are absent from jpg/, e.g. {absent[0]}.jpg"]
                   if absent else ())


def _stamps(folder: Path, files) -> tuple:
    return tuple(stamp(folder / f) for f in files)


def fashion_mnist_problem(folder: Path, root: Path | None = None) -> str | None:
    """The four IDX files: headers, 60,000 / 10,000 28x28 images, labels 0-9; the MD5s in torchvision's folder."""
    folder = Path(folder)
    try:
        return _idx_problem(folder, root, _stamps(folder, FASHION_MNIST_FILES))
    except OSError as err:
        return f"cannot read the files in {folder} ({err})"


@functools.lru_cache(maxsize=None)  # every notebook checks: remembered while the files stay unchanged
def _idx_problem(folder: Path, root: Path | None, _stamps: tuple) -> str | None:
    if root is not None and folder == Path(root) / TORCHVISION_FASHION_MNIST:
        for name, md5 in FASHION_MNIST_MD5.items():
            have = hashlib.md5((folder / name).read_bytes()).hexdigest()  # an OSError: the caller's one line
            if have != md5:
                return f"{folder / name} has MD5 {have}, not the {md5} Zalando publishes"
    sizes = paper_sizes("fashion-mnist")
    for name in FASHION_MNIST_FILES:
        kind = "images" if "images" in name else "labels"
        count = sizes.train if name.startswith("train") else sizes.test
        want = (count, 28, 28) if kind == "images" else (count,)
        try:
            array, why = read_idx(folder / name), ""
        except CorruptImageError as err:
            array, why = None, f" ({err})"
        if array is None or array.shape != want:
            return f"{folder / name} is not the {count}-item IDX {kind} file it should be{why}"
        if kind == "labels" and array.max(initial=0) >= len(FASHION_MNIST_CLASSES):
            return f"{folder / name} holds label {int(array.max())}; Fashion-MNIST's labels are 0-9"
    return None


def dataset_problem(name: str, folder: str | Path, root: Path | None = None) -> str | None:
    """What is wrong inside a dataset's folder (by its entry's ``layout_kind``), or None; never raises on content."""
    folder, kind = Path(folder), resource(name).layout_kind
    if kind == "idx":
        return fashion_mnist_problem(folder, root)
    if kind in FOLDER_LAYOUTS:
        return classification_problem(name, folder, kind)
    if kind == "revisited":
        return revisited_problem(name, folder)
    return None


def layout_problem(root: Path, source: Source) -> str | None:
    """What is wrong with an existing dataset folder, or None when it is complete and consistent."""
    absent = lacking(Path(root) / source.name, source.layout)
    return f"lacks {', '.join(absent)}" if absent else checksums.installed_problem(root, source.name)


@dataclass(frozen=True)
class Row:
    name: str
    status: str  # "present", "missing" or "wrong"
    detail: str  # where it is, or what is wrong
    fix: str  # empty when present


def _kept_downloads_problem(root: Path, name: str) -> str | None:
    for remote in SOURCES[name].files:
        path = root / DOWNLOADS / name / remote.filename
        want, why = checksums.expected(root, name, remote.filename, remote.sha256)
        if want and path.is_file() and checksums.sha256_file(path) != want:
            return f"the kept download {path} fails {why}"
    return None


def check_resource(res: Resource, root: Path) -> Row:
    """One row; a failure of the check itself (an unreadable file, a permission) is reported as ``wrong``."""
    force = f"cwl fetch {res.name} --force --data-root {root}"
    try:
        if res.name in SOURCES:
            folder = root / res.name
            problem = layout_problem(root, SOURCES[res.name]) if folder.exists() else None
            problem = problem or _kept_downloads_problem(root, res.name)
            if problem:
                return Row(res.name, "wrong", f"{folder}: {problem}", force)
        where = res.locate(root)
        if where is None:
            return Row(res.name, "missing", res.description, res.fix(root))
        problem = models.weights_problem(where) if res.kind == "weights" else dataset_problem(res.name, where, root)
        if problem:
            again = force if res.name in SOURCES else f"delete the file, then: {res.fix(root)}"
            return Row(res.name, "wrong", problem if res.kind == "weights" else f"{where}: {problem}", again)
        return Row(res.name, "present", str(where), "")
    except Exception as err:  # a report must reach the user whatever the files hold
        return Row(res.name, "wrong", f"checking it failed: {type(err).__name__}: {err}",
                   f"inspect or delete the files of {res.name} under {root}, then: {res.fix(root)}")


def check_all(root: Path) -> list[Row]:
    return [check_resource(res, root) for res in RESOURCES.values()]


def problems(names, root: str | Path | None = None) -> list[Row]:
    """The rows of ``names`` that are not present (missing or wrong)."""
    rows = [check_resource(resource(name), data_root(root)) for name in dict.fromkeys(names)]
    return [row for row in rows if row.status != "present"]


def require(*names: str, root: str | Path | None = None) -> None:
    """Stop before any work when a needed dataset or weight file is absent or fails its checks."""
    bad = problems(names, root)
    if bad:
        lines = [f"  - {row.name} is {row.status} ({row.detail}): {row.fix}" for row in bad]
        raise MissingDataError(
            "this run needs data that is not on this machine, or not as it should be:\n" + "\n".join(lines)
            + f"\n(data root: {data_root(root)}; set it with --data-root or $CWL_DATA_ROOT)")


def unmet(rows: list[Row], needed) -> list[Row]:
    """The rows among ``needed`` that are not present."""
    by_name = {row.name: row for row in rows}
    return [by_name[name] for name in dict.fromkeys(needed) if by_name[name].status != "present"]


def report(rows: list[Row], root: Path, profiles: dict[str, list[str]] | None = None) -> str:
    """The table of rows, then, for each profile given with the names it needs, whether its needs are met."""
    lines = [f"data root: {root}"]
    for row in rows:
        lines.append(f"  {row.status:<8} {row.name:<22} {row.detail}")
        if row.fix:
            lines.append(f"  {'':<8} {'':<22} fix: {row.fix}")
    bad = [r for r in rows if r.status != "present"]
    lines.append(f"{len(rows) - len(bad)} present, {sum(r.status == 'missing' for r in bad)} missing, "
                 f"{sum(r.status == 'wrong' for r in bad)} wrong")
    for profile, needed in (profiles or {}).items():
        short = unmet(rows, needed)
        lines.append(f"profile {profile}: " + ("needs met" if not short else
                     "needs not met: " + ", ".join(f"{r.name} ({r.status})" for r in short)))
    return "\n".join(lines)
