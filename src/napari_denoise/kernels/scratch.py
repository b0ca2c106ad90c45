"""Work arrays reused by each thread from tile to tile.

Allocating fresh float32 arrays for every tile costs page faults and lets the
allocator keep freed pages around; reusing one array per purpose and thread
keeps a run's memory at the output plus a few tiles.
"""

from __future__ import annotations

import math
import threading

import numpy as np

__all__ = ["work_array", "release"]

_local = threading.local()


def work_array(name: str, shape) -> np.ndarray:
    """This thread's float32 array called ``name``, of ``shape`` (contents undefined).

    Valid until the same thread asks for ``name`` again or calls :func:`release`.
    """
    n = math.prod(shape)
    arrays = getattr(_local, "arrays", None)
    if arrays is None:
        arrays = _local.arrays = {}
    array = arrays.get(name)
    if array is None or array.size < n:
        array = arrays[name] = np.empty(n, np.float32)
    return array[:n].reshape(shape)


def release() -> None:
    """Free this thread's work arrays (threads of a finished pool free theirs anyway)."""
    _local.arrays = None
