"""Spread of the voxels of many windows of one slice, for choosing a calibration crop.

Calibration compares up to 5 window positions per axis by the standard
deviation of every second voxel in each. As numpy that was a strided copy
converted to float64 and a two-pass ``std`` per window (2.2 ms for the 25
windows of a 60×256×256 slice, more than a cheap denoiser's call on the
crop); here one compiled pass per window reads the slice in its own dtype.
"""

from __future__ import annotations

import numpy as np

import numba

__all__ = ["window_spreads"]


@numba.njit(cache=True, nogil=True)
def _first_value(volume, z0, y0, x0, shape, step):
    """The window's first value that is not NaN (NaN when there is none)."""
    for z in range(z0, z0 + shape[0], step[0]):
        for y in range(y0, y0 + shape[1], step[1]):
            for x in range(x0, x0 + shape[2], step[2]):
                v = np.float64(volume[z, y, x])
                if v == v:
                    return v
    return np.nan


# Sums in any order (vectorised): the spreads only rank windows. NaN stays NaN (no "nnan").
@numba.njit(cache=True, nogil=True, fastmath={"reassoc", "nsz", "contract"})
def _window_spreads(volume, starts, shape, step, out):
    for w in range(starts.shape[0]):
        z0, y0, x0 = starts[w, 0], starts[w, 1], starts[w, 2]
        # one pass of shifted sums: the shift (the window's first value) keeps the
        # difference of the two sums from cancelling when the spread is small next to the level
        shift = _first_value(volume, z0, y0, x0, shape, step)
        total = 0.0
        squares = 0.0
        count = 0
        for z in range(z0, z0 + shape[0], step[0]):
            for y in range(y0, y0 + shape[1], step[1]):
                for x in range(x0, x0 + shape[2], step[2]):
                    v = np.float64(volume[z, y, x])
                    if v == v:  # NaN ignored
                        d = v - shift
                        total += d
                        squares += d * d
                        count += 1
        if count == 0:
            # no voxel: no spread; only NaN: unknown (never the largest)
            out[w] = 0.0 if shape[0] * shape[1] * shape[2] == 0 else np.nan
            continue
        mean = total / count
        out[w] = np.sqrt(max(squares / count - mean * mean, 0.0))


def window_spreads(piece: np.ndarray, starts, shape, step: int = 2) -> np.ndarray:
    """Standard deviation (NaN ignored) of every ``step``-th voxel of each window of ``piece``.

    Parameters
    ----------
    piece : ndarray
        A 1-D to 3-D slice of any real dtype.
    starts : sequence of tuples
        Each window's first voxel (one index per axis of ``piece``).
    shape : tuple of int
        The windows' shape (every window lies inside ``piece``).

    Returns
    -------
    ndarray of float64
        One spread per window, as ``np.nanstd(piece[window][::step, …])``
        (to rounding: one pass of sums shifted by the window's first value):
        0 for an empty window, NaN for one holding only NaN.
    """
    if not 1 <= piece.ndim <= 3:
        raise ValueError(f"window_spreads: expected a 1-D to 3-D slice, got {piece.ndim}-D")
    missing = 3 - piece.ndim
    volume = piece.reshape((1,) * missing + piece.shape)
    starts = np.array([(0,) * missing + tuple(int(a) for a in s) for s in starts], np.int64).reshape(-1, 3)
    full_shape = np.array((1,) * missing + tuple(int(s) for s in shape), np.int64)
    steps = np.array((1,) * missing + (int(step),) * piece.ndim, np.int64)
    out = np.empty(starts.shape[0], np.float64)
    if piece.dtype == np.bool_:
        volume = volume.view(np.uint8)
    _window_spreads(volume, starts, full_shape, steps, out)
    return out
