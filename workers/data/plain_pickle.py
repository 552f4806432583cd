"""Reading pickles that hold plain data only: files from a user's or a shared location.

:func:`pickle.load` runs whatever callable a file names, so a file called ``data_batch_1``
on a shared drive could run code in the process that loads it. :func:`load_plain` admits
what data formats such as CIFAR's use and nothing else: dicts, lists, tuples, bytes, str,
numbers, booleans, None and numpy arrays and scalars (rebuilt by numpy's own array
reconstructors from a dtype and raw bytes). Any other global the file names is refused with
:class:`UnsafePickleError` before it is called.
"""

from __future__ import annotations

import importlib
import io
import pickle
from typing import IO, Any

#: (module, name) -> the module that really holds it (numpy 2 moved numpy.core to _core).
_ALLOWED: dict[tuple[str, str], str] = {
    ("numpy", "ndarray"): "numpy",
    ("numpy", "dtype"): "numpy",
    ("numpy.core.multiarray", "_reconstruct"): "numpy._core.multiarray",
    ("numpy._core.multiarray", "_reconstruct"): "numpy._core.multiarray",
    ("numpy.core.multiarray", "scalar"): "numpy._core.multiarray",
    ("numpy._core.multiarray", "scalar"): "numpy._core.multiarray",
    ("numpy.core.numeric", "_frombuffer"): "numpy._core.numeric",
    ("numpy._core.numeric", "_frombuffer"): "numpy._core.numeric",
    # protocol 2 pickles of Python 3 bytes: _codecs.encode(text, "latin1")
    ("_codecs", "encode"): "_codecs",
}


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle named a global that plain data does not need (it may run code)."""


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        home = _ALLOWED.get((module, name))
        if home is None:
            raise UnsafePickleError(
                f"it names {module}.{name}, which plain data does not need (refused: a pickle "
                "that calls it could run code)"
            )
        try:
            return getattr(importlib.import_module(home), name)
        except ImportError:  # numpy 1.x: numpy.core
            return getattr(importlib.import_module(home.replace("_core", "core")), name)


def load_plain(fh: IO[bytes], encoding: str = "ASCII") -> Any:
    """Unpickle ``fh`` admitting plain data only (see the module's docstring); raises
    :class:`UnsafePickleError` for anything else, and never calls it."""
    return _PlainUnpickler(fh, encoding=encoding).load()


def loads_plain(data: bytes, encoding: str = "ASCII") -> Any:
    """:func:`load_plain` of bytes."""
    return load_plain(io.BytesIO(data), encoding=encoding)
