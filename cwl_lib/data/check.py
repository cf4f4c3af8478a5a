"""``cwl data check``: each dataset and weight file, present / missing / wrong, and what fixes it.

"wrong" means the bytes or the layout are not what a run expects: a dataset folder missing part of
its layout or built from other files than the lock file records, a kept download whose digest
differs, Fashion-MNIST files that are not the IDX arrays they should be, or a weight file whose SHA-256
does not start with the prefix torchvision puts in its name.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from . import checksums
from .fetch import DOWNLOADS, layout_problem
from .registry import FASHION_MNIST_FILES, RESOURCES, Resource
from .sources import SOURCES


@dataclass(frozen=True)
class Row:
    name: str
    status: str  # "present", "missing" or "wrong"
    detail: str  # where it is, or what is wrong
    fix: str  # empty when present


def _fashion_mnist_problem(folder: Path) -> str | None:
    """Reads each file as the loader does; Debian recompresses the .gz files, so MD5s cannot be used."""
    from .classification import CorruptImageError, read_idx

    for name in FASHION_MNIST_FILES:
        kind = "images" if "images" in name else "labels"
        count = 60000 if name.startswith("train") else 10000
        want = (count, 28, 28) if kind == "images" else (count,)
        try:
            shape, why = read_idx(folder / name).shape, ""
        except CorruptImageError as err:
            shape, why = None, f" ({err})"
        if shape != want:
            return f"{folder / name} is not the {count}-item IDX {kind} file it should be{why}"
    return None


def _weights_problem(path: Path) -> str | None:
    """torchvision names each weight file ``<arch>-<first hex digits of its SHA-256>.pth``."""
    match = re.search(r"-([a-f0-9]{6,})\.", path.name)
    if match is None:
        return None
    if not path.is_file():  # MobileNetV2 may be read from the offline wheel instead of the hub cache
        from ..models import _offline_wheel_file

        path = _offline_wheel_file(path.name) or path
        if not path.is_file():
            return None
    if not checksums.sha256_file(path).startswith(match.group(1)):
        return f"{path} fails the SHA-256 prefix {match.group(1)} in its name (truncated or replaced)"
    return None


def _kept_downloads_problem(root: Path, name: str) -> str | None:
    for remote in SOURCES[name].files:
        path = root / DOWNLOADS / name / remote.filename
        want, why = checksums.expected(root, name, remote.filename, remote.sha256)
        if want and path.is_file() and checksums.sha256_file(path) != want:
            return f"the kept download {path} fails {why}"
    return None


def check_resource(res: Resource, root: Path) -> Row:
    where = res.locate(root)
    if res.name in SOURCES:
        folder = root / res.name
        problem = layout_problem(root, SOURCES[res.name]) if folder.exists() else None
        problem = problem or _kept_downloads_problem(root, res.name)
        if problem:
            return Row(res.name, "wrong", f"{folder}: {problem}",
                       f"cwl fetch {res.name} --force --data-root {root}")
    if where is None:
        return Row(res.name, "missing", res.description, res.fix(root))
    if res.name == "fashion-mnist":
        problem = _fashion_mnist_problem(where)
    elif res.kind == "weights":
        problem = _weights_problem(where)
    else:
        problem = None
    if problem:
        return Row(res.name, "wrong", problem, f"delete the file, then: {res.fix(root)}")
    return Row(res.name, "present", str(where), "")


def check_all(root: Path) -> list[Row]:
    return [check_resource(res, root) for res in RESOURCES.values()]


def report(rows: list[Row], root: Path) -> str:
    lines = [f"data root: {root}"]
    for row in rows:
        lines.append(f"  {row.status:<8} {row.name:<22} {row.detail}")
        if row.fix:
            lines.append(f"  {'':<8} {'':<22} fix: {row.fix}")
    bad = [r for r in rows if r.status != "present"]
    lines.append(f"{len(rows) - len(bad)} present, {sum(r.status == 'missing' for r in bad)} missing, "
                 f"{sum(r.status == 'wrong' for r in bad)} wrong")
    return "\n".join(lines)
