"""Border modes and the 3-D layout every compiled kernel works on.

Modes are scipy.ndimage's: ``reflect`` (d c b a | a b c d | d c b a),
``mirror`` (d c b | a b c d | c b a), ``nearest`` (a a | a b c d | d d) and
``constant`` (``cval`` outside). ``wrap`` is left to scipy.ndimage.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from .._params import as_kernel_input

__all__ = ["MODE_CODES", "supported", "map_index", "as_3d", "keep_bounds_3d", "writable_3d", "jit"]

MODE_CODES = {"reflect": 0, "mirror": 1, "nearest": 2, "constant": 3}

#: Decorator of every compiled kernel: cached on disk, GIL released, IEEE arithmetic.
jit = numba.njit(cache=True, nogil=True, fastmath=False, boundscheck=False)


def supported(mode: str, ndim: int) -> bool:
    """Whether the compiled kernels handle this border mode and dimensionality."""
    return mode in MODE_CODES and 1 <= ndim <= 3


@numba.njit(cache=True, nogil=True, inline="always")
def map_index(i, n, mode):
    """Source index of position ``i`` on an axis of length ``n``; -1 means ``cval``."""
    if 0 <= i < n:
        return i
    if mode == 0:  # reflect
        p = 2 * n
        i = i % p
        if i >= n:
            i = p - 1 - i
        return i
    if mode == 1:  # mirror
        if n == 1:
            return 0
        p = 2 * n - 2
        i = i % p
        if i >= n:
            i = p - i
        return i
    if mode == 2:  # nearest
        return 0 if i < 0 else n - 1
    return -1  # constant


def as_3d(block: np.ndarray) -> np.ndarray:
    """``block`` (1-D to 3-D) as a C-contiguous 3-D view, leading axes of length 1."""
    block = as_kernel_input(block)
    return block.reshape((1,) * (3 - block.ndim) + block.shape)


def keep_bounds_3d(keep, shape):
    """``[(start, stop)] * 3`` of the kept part of a block of ``shape`` (see :func:`as_3d`)."""
    keep = [slice(None)] * len(shape) if keep is None else list(keep)
    bounds = [s.indices(n)[:2] for s, n in zip(keep, shape)]
    return [(0, 1)] * (3 - len(shape)) + bounds


def writable_3d(out, shape):
    """``out`` as a 3-D C-contiguous float32 array of ``shape``, or None if it is not one."""
    if (
        out is not None
        and out.dtype == np.float32
        and out.flags.c_contiguous
        and out.flags.writeable
        and out.size == math.prod(shape)
    ):
        return out.reshape(shape)
    return None
