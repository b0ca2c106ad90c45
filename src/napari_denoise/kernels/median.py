"""Exact box median of odd windows, compiled: *forgetful selection* on whole rows.

For a window of n values, keep n // 2 + 2 of them, repeatedly move the
smallest and the largest of the kept ones aside and drop them, bring in the
next value, and end with three: the middle one is the median. Done for 256
output columns at once with vector min/max, it gives the same values as
``ndimage.median_filter`` (NaN aside) many times faster for small windows;
the work grows as n², so windows above :data:`MAX_WINDOW` values are left to
scipy.ndimage.
"""

from __future__ import annotations

import math

import numpy as np

from .borders import MODE_CODES, as_3d, jit, keep_bounds_3d, map_index, supported, writable_3d

__all__ = ["median", "median_supported", "MAX_WINDOW"]

_COLUMNS = 256  # output columns processed at once
MAX_WINDOW = 63  # forgetful selection is O(n^2): beyond this ndimage wins


def median_supported(size, mode: str) -> bool:
    """Whether :func:`median` handles this window (odd, 3..63 values) and mode."""
    n = math.prod(size)
    return supported(mode, len(size)) and n % 2 == 1 and 1 < n <= MAX_WINDOW


@jit
def _median3d(src, out, sz, sy, sx, mode, cval, z0, y0, x0, flag, ticks):
    """Exact median of odd ``sz*sy*sx`` boxes, by forgetful selection on rows.

    ``out[k, j, i]`` is the median around ``src[z0 + k, y0 + j, x0 + i]``.
    Polls the cancel flag ``flag[0]`` before each output row (a large window
    makes one tile last seconds on a loaded machine) and counts rows done in
    ``ticks`` (``[done, total]``).
    """
    nz, ny, nx = src.shape
    mz, my, mx = out.shape
    n = sz * sy * sx
    half = n // 2
    keep = half + 2 if n > 3 else n
    rz, ry, rx = sz // 2, sy // 2, sx // 2
    buf = np.empty((keep, _COLUMNS), np.float32)
    act = np.empty(keep, np.int64)
    rows = np.empty(sz * sy, np.int64)  # flattened (z, y) source rows, -1 = cval
    ticks[1] = mz * my
    for k in range(mz):
        for j in range(my):
            if flag[0]:
                return
            ticks[0] = k * my + j
            q = 0
            for dz in range(sz):
                zz = map_index(z0 + k + dz - rz, nz, mode)
                for dy in range(sy):
                    yy = map_index(y0 + j + dy - ry, ny, mode)
                    rows[q] = -1 if (zz < 0 or yy < 0) else zz * ny + yy
                    q += 1
            for c0 in range(0, mx, _COLUMNS):
                cw = min(_COLUMNS, mx - c0)
                s = 0
                for e in range(n):
                    # element e of the window: row e // sx, column shift e % sx
                    slot = s if e < keep else act[0]
                    row = rows[e // sx]
                    dx = e % sx - rx
                    if row < 0:
                        for i in range(cw):
                            buf[slot, i] = cval
                    else:
                        zz = row // ny
                        yy = row - zz * ny
                        base = x0 + c0 + dx
                        if base >= 0 and base + cw <= nx:
                            for i in range(cw):
                                buf[slot, i] = src[zz, yy, base + i]
                        else:
                            for i in range(cw):
                                xx = map_index(base + i, nx, mode)
                                buf[slot, i] = cval if xx < 0 else src[zz, yy, xx]
                    if e < keep:
                        act[s] = slot
                        s += 1
                        if s < keep:
                            continue
                    # s active rows: move the min to act[0], the max to act[s-1]
                    r0 = act[0]
                    # Unconditional min/max stores: they vectorise to vminps/vmaxps
                    # everywhere, where a conditional swap became masked stores,
                    # which are microcoded and ~10x slower on AMD Zen (AVX2).
                    for t in range(1, s):
                        rt = act[t]
                        lo_row = buf[r0]
                        hi_row = buf[rt]
                        for i in range(cw):
                            a = lo_row[i]
                            b = hi_row[i]
                            lo_row[i] = min(a, b)
                            hi_row[i] = max(a, b)
                    rl = act[s - 1]
                    hi_row = buf[rl]
                    for t in range(1, s - 1):
                        lo_row = buf[act[t]]
                        for i in range(cw):
                            a = lo_row[i]
                            b = hi_row[i]
                            lo_row[i] = min(a, b)
                            hi_row[i] = max(a, b)
                    if e < n - 1:
                        # drop min (its slot takes the next element) and max
                        s -= 1
                # three rows left after the last min/max pass: the middle one
                mid = act[1]
                for i in range(cw):
                    out[k, j, c0 + i] = buf[mid, i]


def median(block, size, mode, cval=0.0, keep=None, out=None, token=None):
    """``ndimage.median_filter(float32 block, size)`` restricted to ``keep`` (odd window).

    With a ``token`` (:class:`~napari_denoise._scheduler.TileToken`) it stops
    early once the run is cancelled (the result is then incomplete and
    discarded by the scheduler) and reports its rows.
    """
    bounds = keep_bounds_3d(keep, block.shape)
    size3 = (1,) * (3 - block.ndim) + tuple(int(s) for s in size)
    data = as_3d(block)
    kept_shape = [b - a for a, b in bounds]
    target = writable_3d(out, kept_shape)
    result = np.empty(kept_shape, np.float32) if target is None else target
    _median3d(
        data, result, size3[0], size3[1], size3[2], MODE_CODES[mode], np.float32(cval),
        bounds[0][0], bounds[1][0], bounds[2][0],
        np.zeros(1, np.uint8) if token is None else token.flag,
        np.zeros(2, np.int64) if token is None else token.ticks,
    )
    if target is not None:
        return out
    result = result.reshape(result.shape[3 - block.ndim :])
    if out is not None:
        out[...] = result
        return out
    return result
