"""The revisited ground-truth file ``gnd_<name>.pkl``: read it safely, check it, write it. A dict of ``imlist``,
``qimlist`` and ``gnd`` (per query ``bbx`` = [x1, y1, x2, y2] and ``easy`` / ``hard`` / ``junk`` database indices).

A plain ``pickle.load`` runs whatever a downloaded file names. Here only plain containers, numbers, text, bytes
and NumPy arrays of numbers are built, through stand-ins that check their arguments and charge what a call would
build against one budget (:data:`MAX_BUILT_BYTES`) *before* it runs (``list(bytes(2**31 - 1))`` is a 49-byte
file). The file's size is capped, and the loaded object is counted as a walk meets it, each shared reference
where it is used (:data:`MAX_ITEMS`).
"""
from __future__ import annotations

import _codecs
import _compat_pickle
import math
import os
import pickle
from pathlib import Path

import numpy as np
from numpy._core import multiarray, numeric

from ..paths import atomic_write

MAX_FILE_BYTES = 16 << 20
MAX_BUILT_BYTES = 64 << 20
MAX_ITEMS = 2_000_000
#: What one slot of a container costs, in the budget's bytes (a pointer; a hash table entry for sets/dicts).
_SLOT = {list: 8, tuple: 8, set: 64, frozenset: 64, dict: 64}
_TEXT = (str, bytes, bytearray)
_LATIN1 = ("latin1", "latin-1", "iso-8859-1")


class UnsafePickleError(pickle.UnpicklingError):
    """The file asks to build something other than data, or more of it than a ground-truth file can hold."""


def _length(value, what: str) -> int:
    try:
        return len(value)
    except TypeError:
        raise UnsafePickleError(f"{what} is given a {type(value).__name__}") from None


def _number_dtype(dtype) -> np.dtype:
    dtype = np.dtype(dtype)
    if dtype.kind not in "biufc" or dtype.fields is not None or dtype.subdtype is not None or dtype.itemsize > 16:
        raise UnsafePickleError(f"dtype {dtype!r}: only arrays of plain numbers are allowed")
    return dtype


def _ndarray(*args, **kwargs):
    """What ``numpy.ndarray`` names in a file: usable only as ``_reconstruct``'s first argument, never called."""
    raise UnsafePickleError("refusing to call numpy.ndarray directly: arrays are built by numpy's own "
                            "_reconstruct, within the size cap")


class _DataUnpickler(pickle.Unpickler):
    def __init__(self, handle):
        super().__init__(handle)
        self.spent = 0
        self.allowed = {("builtins", kind.__name__): self._container(kind) for kind in _SLOT}
        self.allowed.update({("builtins", k.__name__): self._scalar(k) for k in (str, int, float, complex, bool)})
        self.allowed.update({("builtins", "bytes"): self._bytes, ("_codecs", "encode"): self._encode,
                             ("numpy", "dtype"): lambda *a: _number_dtype(np.dtype(*a)),
                             ("numpy", "ndarray"): _ndarray})
        for core in ("numpy.core", "numpy._core"):  # NumPy 1 pickles name numpy.core
            self.allowed.update({(f"{core}.multiarray", "_reconstruct"): self._reconstruct,
                                 (f"{core}.multiarray", "scalar"): self._number,
                                 (f"{core}.numeric", "_frombuffer"): self._frombuffer})  # pickle protocol 5

    def charge(self, nbytes: int, what: str) -> None:
        self.spent += max(int(nbytes), 0)
        if self.spent > MAX_BUILT_BYTES:
            raise UnsafePickleError(f"it asks to build {what}, past the {MAX_BUILT_BYTES:,} bytes a ground-truth file "
                                    "can need")

    def _container(self, kind):
        def build(*args):
            if len(args) > 1:
                raise UnsafePickleError(f"{kind.__name__} is called with {len(args)} arguments")
            if args:
                n = _length(args[0], kind.__name__)
                self.charge(n * _SLOT[kind], f"a {kind.__name__} of {n:,} items")
            return kind(*args)
        return build

    def _scalar(self, kind):
        def build(*args):
            if args and isinstance(args[0], _TEXT):
                self.charge(4 * len(args[0]), f"a {kind.__name__} from {len(args[0]):,} characters")
            elif args and not isinstance(args[0], (int, float, complex, np.number)):
                raise UnsafePickleError(f"{kind.__name__} is given a {type(args[0]).__name__}")
            return kind(*args)
        return build

    def _bytes(self, *args):
        if args:
            value = args[0]
            size = value if isinstance(value, int) else value.nbytes if isinstance(value, np.ndarray) else \
                4 * _length(value, "bytes")
            self.charge(size, f"bytes({size:,})")
        return bytes(*args)

    def _encode(self, obj, encoding="utf-8", errors="strict"):
        # protocol 2 pickles bytes as encode(text, "latin1"), one byte per character; other codecs can expand
        if not isinstance(obj, str) or str(encoding).lower().replace("_", "-") not in _LATIN1:
            raise UnsafePickleError(f"_codecs.encode is called with {type(obj).__name__} and {encoding!r}; "
                                    "a ground-truth file only needs text to latin1")
        self.charge(len(obj), f"{len(obj):,} bytes")
        return _codecs.encode(obj, encoding, errors)

    def _array(self, shape, dtype) -> np.dtype:
        """The dtype of an array about to be built, its bytes charged."""
        dtype = _number_dtype(dtype)
        dims = tuple(shape) if isinstance(shape, (tuple, list)) else (shape,)
        if not all(isinstance(d, (int, np.integer)) and d >= 0 for d in dims):
            raise UnsafePickleError(f"an array is given the shape {shape!r}")
        self.charge(math.prod(int(d) for d in dims) * dtype.itemsize, f"an array of shape {shape!r}")
        return dtype

    def _reconstruct(self, subtype, shape, dtype):
        if subtype is not _ndarray:
            raise UnsafePickleError(f"_reconstruct is asked for a {subtype!r}, not numpy.ndarray")
        return multiarray._reconstruct(np.ndarray, shape, self._array(shape, dtype))

    def _number(self, dtype, data=None):
        dtype = _number_dtype(dtype)
        return multiarray.scalar(dtype, data) if data is not None else multiarray.scalar(dtype)

    def _frombuffer(self, buf, dtype, shape, order):
        return numeric._frombuffer(buf, self._array(shape, dtype), shape, order)

    def find_class(self, module, name):
        # protocol 2 files name Python 2 modules (__builtin__, copy_reg)
        module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        try:
            return self.allowed[module, name]
        except KeyError:
            raise UnsafePickleError(f"refusing to load {module}.{name}: only plain data and NumPy arrays are "
                                    "allowed") from None


def expanded_size(obj) -> int:
    """Items in ``obj`` counted as a walk over it meets them (array elements one each); refuses past the cap."""
    count, stack = 1, [obj]
    while stack:
        item = stack.pop()
        children = [*item.keys(), *item.values()] if isinstance(item, dict) else \
            list(item) if isinstance(item, (list, tuple, set, frozenset)) else ()
        count += len(children) + (item.size if isinstance(item, np.ndarray) else 0)  # arrays hold numbers only
        if count > MAX_ITEMS:  # also ends a structure that contains itself
            raise UnsafePickleError(f"it stands for more than {MAX_ITEMS:,} items once its shared parts are counted "
                                    "where they are used; a ground-truth file is far smaller")
        stack.extend(children)
    return count


def load_data_pickle(path: str | os.PathLike):
    """The object in a pickle file that holds only data (revisitop's ``gnd_*.pkl``), within the size caps."""
    size = os.path.getsize(path)
    if size > MAX_FILE_BYTES:
        raise UnsafePickleError(f"{path} is {size:,} bytes, more than the {MAX_FILE_BYTES:,} a ground-truth file can "
                                "need")
    with open(path, "rb") as handle:
        try:
            obj = _DataUnpickler(handle).load()
        except UnsafePickleError:
            raise
        except (pickle.UnpicklingError, EOFError, TypeError, ValueError, AttributeError, IndexError, KeyError,
                OverflowError, RecursionError, MemoryError) as err:
            raise UnsafePickleError(f"it is not a readable data pickle ({type(err).__name__}: {err})") from None
    expanded_size(obj)
    return obj


def _index_list(values, what: str) -> list[int]:
    arr = np.asarray(values if values is not None else [], dtype=np.float64).reshape(-1)
    if arr.size and (np.any(arr != np.round(arr)) or arr.min() < 0):
        raise ValueError(f"{what}: expected non-negative database indices")
    return [int(v) for v in arr]


def validate(raw, path: Path) -> tuple[list[str], list[str], list[dict]]:
    """``(imlist, qimlist, gnd)`` of an unpickled file, with index lists as ints; ValueError naming the flaw."""
    if not isinstance(raw, dict) or not {"imlist", "qimlist", "gnd"} <= set(raw):
        raise ValueError(f"{path} is not a revisited ground-truth file: expected a dict with imlist, qimlist, gnd")
    imlist = [str(x) for x in raw["imlist"]]
    qimlist = [str(x) for x in raw["qimlist"]]
    if len(raw["gnd"]) != len(qimlist):
        raise ValueError(f"{path}: {len(raw['gnd'])} ground-truth entries for {len(qimlist)} queries")
    gnd = []
    for i, g in enumerate(raw["gnd"]):
        if not isinstance(g, dict) or "bbx" not in g:
            raise ValueError(f"{path}: ground truth of query {i} has no bbx")
        entry = {k: _index_list(g.get(k), f"{path}: query {i} {k}") for k in ("easy", "hard", "junk")}
        for k, v in entry.items():
            if v and max(v) >= len(imlist):
                raise ValueError(f"{path}: query {i} lists {k} image {max(v)} beyond the {len(imlist)} images")
        bbx = np.asarray(g["bbx"], dtype=np.float64).reshape(-1)
        if bbx.size < 4 or not np.isfinite(bbx[:4]).all():
            raise ValueError(f"{path}: query {i} has no finite bounding box [x1, y1, x2, y2]")
        entry["bbx"] = [float(v) for v in bbx[:4]]
        gnd.append(entry)
    return imlist, qimlist, gnd


def read(path: str | Path) -> tuple[list[str], list[str], list[dict]]:
    """``(imlist, qimlist, gnd)`` of a ground-truth file, read safely and checked."""
    path = Path(path)
    try:
        raw = load_data_pickle(path)
    except UnsafePickleError as err:
        raise UnsafePickleError(f"{path} is not a plain ground-truth file ({err}); it is not the published one: "
                                "delete it and fetch it again (`cwl fetch roxford5k` / `cwl fetch rparis6k`)") from None
    return validate(raw, path)


def write_gnd(path: str | Path, imlist, qimlist, gnd) -> None:
    """Write a ground-truth file in the published format (plain lists, protocol 2), atomically."""
    path = Path(path)
    plain = {"imlist": list(imlist), "qimlist": list(qimlist),
             "gnd": [{"bbx": [float(v) for v in g["bbx"]],
                      **{k: [int(v) for v in g.get(k, [])] for k in ("easy", "hard", "junk")}} for g in gnd]}
    atomic_write(path, lambda tmp: tmp.write_bytes(pickle.dumps(plain, protocol=2)))

