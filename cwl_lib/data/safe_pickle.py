"""Reading revisitop's ground-truth pickles (``gnd_roxford5k.pkl``, ``gnd_rparis6k.pkl``) safely.

They are downloaded files, and a plain ``pickle.load`` runs whatever callable a file names. This
unpickler builds only plain containers, numbers, strings and NumPy arrays, and refuses anything else.

A pickle can also be small and stand for something huge: one list referenced a thousand times by
another list is a thousand lists to whoever walks it (a 250-byte file can stand for millions of
indices). So the file's size is capped, and so is the size of the object counted the way a reader
walks it, every shared reference counted at each place it appears. The published files are far
below both caps (``gnd_rparis6k.pkl``: about 6,400 names and 70 queries of a few thousand indices).
"""
from __future__ import annotations

import _compat_pickle
import os
import pickle

import numpy as np

MAX_FILE_BYTES = 64 << 20
MAX_ITEMS = 2_000_000

_ALLOWED = {
    ("builtins", "list"), ("builtins", "dict"), ("builtins", "set"), ("builtins", "frozenset"),
    ("builtins", "tuple"), ("builtins", "str"), ("builtins", "bytes"), ("builtins", "int"),
    ("builtins", "float"), ("builtins", "complex"), ("builtins", "bool"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    # NumPy 1 pickles name numpy.core; NumPy 2 reads them through numpy._core
    ("numpy.core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),  # pickle protocol 5
    # Python 3 writes a NumPy array's bytes through _codecs.encode under pickle protocol 2; it only makes bytes
    ("_codecs", "encode"),
}


class UnsafePickleError(pickle.UnpicklingError):
    """The file asks to build something other than data."""


class _DataUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        # protocol 2 files name Python 2 modules (__builtin__, copy_reg); these names exist only there
        module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        if (module, name) not in _ALLOWED:
            raise UnsafePickleError(f"refusing to load {module}.{name}: only plain data and NumPy arrays are allowed")
        return super().find_class(module, name)


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
            children = item.ravel().tolist() if item.dtype == object else ()
            count += 0 if item.dtype == object else item.size
        else:
            children = ()
        count += len(children)
        if count > limit:  # also ends a structure that contains itself
            raise UnsafePickleError(f"it stands for more than {limit:,} items once its shared parts are counted "
                                    "where they are used; a ground-truth file is far smaller")
        stack.extend(children)
    return count


def load_data_pickle(path: str | os.PathLike, max_bytes: int = MAX_FILE_BYTES, max_items: int = MAX_ITEMS):
    """The object in a pickle file that holds only data (revisitop's ``gnd_*.pkl``), within the size caps."""
    size = os.path.getsize(path)
    if size > max_bytes:
        raise UnsafePickleError(f"{path} is {size:,} bytes, more than the {max_bytes:,} a ground-truth file can need")
    with open(path, "rb") as handle:
        obj = _DataUnpickler(handle).load()
    expanded_size(obj, max_items)
    return obj
