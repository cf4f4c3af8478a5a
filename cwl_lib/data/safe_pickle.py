"""Reading revisitop's ground-truth pickles (``gnd_roxford5k.pkl``, ``gnd_rparis6k.pkl``) safely.

They are downloaded files, and a plain ``pickle.load`` runs whatever callable a file names. This
unpickler builds only plain containers, numbers, strings and NumPy arrays, and refuses anything else.
"""
from __future__ import annotations

import _compat_pickle
import os
import pickle

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


def load_data_pickle(path: str | os.PathLike):
    """The object in a pickle file that holds only data (revisitop's ``gnd_*.pkl``)."""
    with open(path, "rb") as handle:
        return _DataUnpickler(handle).load()
