"""Reading revisitop's ground-truth pickles (``gnd_roxford5k.pkl``, ``gnd_rparis6k.pkl``) safely.

They are downloaded files, and a plain ``pickle.load`` runs whatever callable a file names. This
unpickler builds only plain containers, numbers, strings and NumPy arrays of numbers, and refuses
anything else.

A pickle can also be small and stand for something huge, in two ways, and both are bounded:

* **While it is built.** The callables a file may name (``list``, ``bytes``, NumPy's array builders...)
  are never handed to the unpickler themselves: it gets stand-ins that check their arguments and charge
  what the call would build against one budget for the whole file (:data:`MAX_BUILT_BYTES`) *before*
  calling the real one. ``list(bytes(2**31 - 1))`` is a 49-byte file; ``bytes(2**31 - 1)`` is refused
  before a byte of it exists. Whatever the opcodes build without a call grows at most a few bytes per
  byte of file, and the file's size is capped (:data:`MAX_FILE_BYTES`).
* **Where it is used.** One list referenced a thousand times by another list is a thousand lists to
  whoever walks it (a 250-byte file can stand for millions of indices), so the loaded object is also
  counted the way a reader walks it, every shared reference at each place it appears (:data:`MAX_ITEMS`).

The published files are far below every cap (``gnd_rparis6k.pkl``: about 6,400 names and 70 queries of a
few thousand indices).
"""
from __future__ import annotations

import _codecs
import _compat_pickle
import math
import os
import pickle

import numpy as np
from numpy._core import multiarray, numeric

MAX_FILE_BYTES = 16 << 20
MAX_BUILT_BYTES = 64 << 20
MAX_ITEMS = 2_000_000
#: What one slot of a container costs, in the budget's bytes (a pointer; a hash table entry for sets/dicts).
_SLOT = {list: 8, tuple: 8, set: 64, frozenset: 64, dict: 64}
_NUMBER_KINDS = "biufc"  # the array dtypes a ground-truth file holds: numbers (no strings, objects, records)


class UnsafePickleError(pickle.UnpicklingError):
    """The file asks to build something other than data, or more of it than a ground-truth file can hold."""


class _Budget:
    def __init__(self, limit: int):
        self.limit, self.spent = limit, 0

    def charge(self, nbytes: int, what: str) -> None:
        self.spent += max(int(nbytes), 0)
        if self.spent > self.limit:
            raise UnsafePickleError(f"it asks to build {what}, past the {self.limit:,} bytes a ground-truth file "
                                    "can need")


def _length(value, what: str) -> int:
    try:
        return len(value)
    except TypeError:
        raise UnsafePickleError(f"{what} is given a {type(value).__name__}, which a ground-truth file never "
                                "holds there") from None


def _simple_dtype(dtype, what: str) -> np.dtype:
    dtype = np.dtype(dtype)
    if dtype.kind not in _NUMBER_KINDS or dtype.fields is not None or dtype.subdtype is not None or dtype.itemsize > 16:
        raise UnsafePickleError(f"{what} of dtype {dtype!r}: only arrays of plain numbers are allowed")
    return dtype


def _array_bytes(shape, dtype, what: str) -> int:
    dims = tuple(shape) if isinstance(shape, (tuple, list)) else (shape,)
    if not all(isinstance(d, (int, np.integer)) and d >= 0 for d in dims):
        raise UnsafePickleError(f"{what} is given the shape {shape!r}")
    return math.prod(int(d) for d in dims) * dtype.itemsize


def _ndarray(*args, **kwargs):
    """What ``numpy.ndarray`` names in a file: usable only as ``_reconstruct``'s first argument, never called."""
    raise UnsafePickleError("refusing to call numpy.ndarray directly: arrays are built by numpy's own "
                            "_reconstruct, within the size cap")


def _builders(budget: _Budget) -> dict:
    """The stand-ins the unpickler gets for the callables a ground-truth file may name."""
    charge = budget.charge

    def container(kind):
        def build(*args):
            if len(args) > 1:
                raise UnsafePickleError(f"{kind.__name__} is called with {len(args)} arguments")
            if args:
                n = _length(args[0], kind.__name__)
                charge(n * _SLOT[kind], f"a {kind.__name__} of {n:,} items")
            return kind(*args)
        return build

    def build_bytes(*args):
        if args and isinstance(args[0], bool):
            raise UnsafePickleError("bytes is given a bool")
        if args and isinstance(args[0], int):
            charge(args[0], f"bytes({args[0]:,})")
        elif args and isinstance(args[0], str):
            charge(4 * len(args[0]), f"bytes of {len(args[0]):,} characters")
        elif args and isinstance(args[0], np.ndarray):
            charge(args[0].nbytes, f"bytes of an array of {args[0].nbytes:,} bytes")
        elif args:
            charge(_length(args[0], "bytes"), "bytes")
        return bytes(*args)

    def build_str(*args):
        if args and not isinstance(args[0], (str, bytes, bytearray, int, float, complex, bool)):
            raise UnsafePickleError(f"str is given a {type(args[0]).__name__}, which a ground-truth file never "
                                    "turns into text")
        if args and isinstance(args[0], (str, bytes, bytearray)):
            charge(4 * len(args[0]), f"text of {len(args[0]):,} characters")
        return str(*args)

    def scalar_of(kind):
        def build(*args):
            if args and isinstance(args[0], (str, bytes, bytearray)):
                charge(len(args[0]), f"a {kind.__name__} from {len(args[0]):,} characters")
            elif args and not isinstance(args[0], (int, float, complex, bool, np.number)):
                raise UnsafePickleError(f"{kind.__name__} is given a {type(args[0]).__name__}")
            return kind(*args)
        return build

    def encode(obj, encoding="utf-8", errors="strict"):
        # Python 3 pickles bytes (and arrays' raw bytes) under protocol 2 as encode(text, "latin1"):
        # one byte per character. Other codecs can expand their input many times, and are never needed.
        if not isinstance(obj, str) or str(encoding).lower().replace("_", "-") not in ("latin1", "latin-1", "iso-8859-1"):
            raise UnsafePickleError(f"_codecs.encode is called with {type(obj).__name__} and {encoding!r}; "
                                    "a ground-truth file only needs text to latin1")
        charge(len(obj), f"{len(obj):,} bytes")
        return _codecs.encode(obj, encoding, errors)

    def dtype(*args):
        return _simple_dtype(np.dtype(*args), "an array")

    def reconstruct(subtype, shape, dtype_code):
        if subtype is not _ndarray:
            raise UnsafePickleError(f"_reconstruct is asked for a {subtype!r}, not numpy.ndarray")
        dt = _simple_dtype(dtype_code, "an array")
        charge(_array_bytes(shape, dt, "an array"), f"an array of shape {shape!r}")
        return multiarray._reconstruct(np.ndarray, shape, dt)

    def scalar(dtype_, data=None):
        dt = _simple_dtype(dtype_, "a number")
        return multiarray.scalar(dt, data) if data is not None else multiarray.scalar(dt)

    def frombuffer(buf, dtype_, shape, order):
        dt = _simple_dtype(dtype_, "an array")
        charge(_array_bytes(shape, dt, "an array"), f"an array of shape {shape!r}")
        return numeric._frombuffer(buf, dt, shape, order)

    out = {("builtins", kind.__name__): container(kind) for kind in _SLOT}
    out.update({("builtins", "bytes"): build_bytes, ("builtins", "str"): build_str,
                **{("builtins", k.__name__): scalar_of(k) for k in (int, float, complex, bool)},
                ("_codecs", "encode"): encode, ("numpy", "dtype"): dtype, ("numpy", "ndarray"): _ndarray})
    for core in ("numpy.core", "numpy._core"):  # NumPy 1 pickles name numpy.core; NumPy 2 reads them as numpy._core
        out.update({(f"{core}.multiarray", "_reconstruct"): reconstruct, (f"{core}.multiarray", "scalar"): scalar,
                    (f"{core}.numeric", "_frombuffer"): frombuffer})  # _frombuffer: pickle protocol 5
    return out


class _DataUnpickler(pickle.Unpickler):
    def __init__(self, handle, budget: _Budget):
        super().__init__(handle)
        self._allowed = _builders(budget)

    def find_class(self, module, name):
        # protocol 2 files name Python 2 modules (__builtin__, copy_reg); these names exist only there
        module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        try:
            return self._allowed[module, name]
        except KeyError:
            raise UnsafePickleError(f"refusing to load {module}.{name}: only plain data and NumPy arrays are "
                                    "allowed") from None


def expanded_size(obj, limit: int = MAX_ITEMS) -> int:
    """Items in ``obj`` counted as a walk over it meets them (array elements one each); refuses past ``limit``."""
    count, stack = 1, [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            children = [*item.keys(), *item.values()]
        elif isinstance(item, (list, tuple, set, frozenset)):
            children = list(item)
        elif isinstance(item, np.ndarray):
            children = ()  # numbers only: the builders refuse other dtypes, and NumPy ignores a later BUILD on them
            count += item.size
        else:
            children = ()
        count += len(children)
        if count > limit:  # also ends a structure that contains itself
            raise UnsafePickleError(f"it stands for more than {limit:,} items once its shared parts are counted "
                                    "where they are used; a ground-truth file is far smaller")
        stack.extend(children)
    return count


def load_data_pickle(path: str | os.PathLike, max_bytes: int = MAX_FILE_BYTES, max_items: int = MAX_ITEMS,
                     max_built: int = MAX_BUILT_BYTES):
    """The object in a pickle file that holds only data (revisitop's ``gnd_*.pkl``), within the size caps."""
    size = os.path.getsize(path)
    if size > max_bytes:
        raise UnsafePickleError(f"{path} is {size:,} bytes, more than the {max_bytes:,} a ground-truth file can need")
    with open(path, "rb") as handle:
        try:
            obj = _DataUnpickler(handle, _Budget(max_built)).load()
        except UnsafePickleError:
            raise
        except (pickle.UnpicklingError, EOFError, TypeError, ValueError, AttributeError, IndexError, KeyError,
                OverflowError, RecursionError, MemoryError) as err:
            raise UnsafePickleError(f"it is not a readable data pickle ({type(err).__name__}: {err})") from None
    expanded_size(obj, max_items)
    return obj
