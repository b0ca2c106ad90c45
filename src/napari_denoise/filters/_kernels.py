"""Compiled kernels (numba) for the separable linear filters and the median.

Everything here reproduces scipy.ndimage's arithmetic exactly, only faster:

* :func:`separable` runs 1-D correlations along the axes in the given order,
  each pass accumulating in float64 in the same order as ``NI_Correlate1D``
  (symmetric / antisymmetric / general kernels, same tolerance) and rounding to
  float32 between passes, as ``ndimage.gaussian_filter(float32_block)`` does;
  so results are bit-identical to ndimage. The passes run along the
  non-contiguous axes as whole-row vector operations (SIMD) instead of
  ndimage's copy-a-line-into-a-buffer loop.
* :func:`uniform` is ``ndimage.uniform_filter`` (running sums in float64, same
  order of operations).
* :func:`median` is an exact odd-size box median by *forgetful selection*
  done on whole rows at once (min/max of vectors): the same values as
  ``ndimage.median_filter`` (NaN aside).
* :func:`nl_means_fast` is scikit-image's fast-mode non-local means (2-D and
  3-D, one channel) with the same float64 operations in the same order, so
  bit-identical on a whole image; only the integral-image recursion is
  rescheduled (4 rows on a skewed wavefront) and fused plane by plane with the
  weighing pass.

Tiles and halos: every function takes ``keep``, the slices of the block whose
result is wanted. The pass along an axis computes only the kept range of that
axis (the rest of the block, i.e. the halo, is only read), so a tile cut
along z does not filter its halo planes at all.

All kernels release the GIL (``nogil``) and are single-threaded: the execution
layer runs tiles on a thread pool. Without numba (or for the 'wrap' mode and
for more than three axes) the callers fall back to scipy.ndimage.
"""

from __future__ import annotations

import math
import threading

import numpy as np

from .._params import DIRECT_DTYPES, as_kernel_input

try:  # pragma: no cover - exercised when numba is installed
    import numba

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover
    numba = None
    HAVE_NUMBA = False

__all__ = [
    "HAVE_NUMBA",
    "DIRECT_DTYPES",
    "supported",
    "separable",
    "uniform",
    "median",
    "gaussian_weights",
    "median_supported",
    "release_scratch",
    "edge_magnitude",
    "derivative_sum",
    "nl_means_fast",
]

_MODES = {"reflect": 0, "mirror": 1, "nearest": 2, "constant": 3}
_BLOCK = 512  # columns processed at once along the contiguous axis
_MEDIAN_BLOCK = 256
_MAX_MEDIAN_WINDOW = 63  # forgetful selection is O(n^2): beyond this ndimage wins

# skimage/_shared/fast_exp.h (Schraudolph's exp) as used by skimage's NLM
_EXP_A = 1512775.3951951856938
_EXP_BC = 1072632447
# 2**(e - 1023) for the exponents fast_exp reaches on [-5, 0] (the NLM cutoff)
_POW2 = np.array([math.ldexp(1.0, e - 1023) for e in range(1015, 1023)])


def supported(mode: str, ndim: int) -> bool:
    """Whether the compiled kernels handle this border mode and dimensionality."""
    return HAVE_NUMBA and mode in _MODES and 1 <= ndim <= 3


def median_supported(size, mode: str) -> bool:
    n = math.prod(size)
    return supported(mode, len(size)) and n % 2 == 1 and 1 < n <= _MAX_MEDIAN_WINDOW


def gaussian_weights(sigma: float, order: int, radius: int) -> np.ndarray:
    """Correlation weights of ``ndimage.gaussian_filter1d`` (kernel reversed)."""
    try:
        from scipy.ndimage._filters import _gaussian_kernel1d
    except ImportError:  # pragma: no cover - private scipy API moved
        from scipy.ndimage.filters import _gaussian_kernel1d
    return np.ascontiguousarray(_gaussian_kernel1d(sigma, order, radius)[::-1], dtype=np.float64)


def _symmetry(weights: np.ndarray) -> int:
    """1, -1 or 0 as ``NI_Correlate1D`` decides (odd length, DBL_EPSILON)."""
    n = len(weights)
    if n % 2 == 0:
        return 0
    c = n // 2
    eps = np.finfo(np.float64).eps
    if all(abs(weights[c + i] - weights[c - i]) <= eps for i in range(1, c + 1)):
        return 1
    if all(abs(weights[c + i] + weights[c - i]) <= eps for i in range(1, c + 1)):
        return -1
    return 0


def _as3d(block: np.ndarray) -> np.ndarray:
    block = as_kernel_input(block)
    return block.reshape((1,) * (3 - block.ndim) + block.shape)


def _keep3d(keep, shape):
    keep = [slice(None)] * len(shape) if keep is None else list(keep)
    bounds = [s.indices(n)[:2] for s, n in zip(keep, shape)]
    return [(0, 1)] * (3 - len(shape)) + bounds


if HAVE_NUMBA:
    _jit = numba.njit(cache=True, nogil=True, fastmath=False, boundscheck=False)

    @numba.njit(cache=True, nogil=True, inline="always")
    def _map(i, n, mode):
        """Source index of position ``i`` on an axis of length ``n``; -1 = cval."""
        if 0 <= i < n:
            return i
        if mode == 0:  # reflect (d c b a | a b c d | d c b a)
            p = 2 * n
            i = i % p
            if i >= n:
                i = p - 1 - i
            return i
        if mode == 1:  # mirror (d c b | a b c d | c b a)
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

    # Inner loops index 1-D slices with the loop counter only: numba then
    # drops its negative-index checks and LLVM vectorises them (4x faster).

    @_jit
    def _corr_inner(src, out, w, sym, mode, cval, start):
        """Correlate along the last axis of (A, N) ``src`` into (A, M) ``out``.

        Output column k is input position ``start + k``.
        """
        a_len, n = src.shape
        m = out.shape[1]
        size = w.shape[0]
        r1 = size // 2
        r2 = size - r1 - 1
        line = np.empty(m + size - 1, np.float64)
        acc = np.empty(m, np.float64)
        for a in range(a_len):
            row = src[a]
            for k in range(m + size - 1):
                j = _map(start + k - r1, n, mode)
                line[k] = cval if j < 0 else np.float64(row[j])
            if sym != 0:
                centre = line[r1 : r1 + m]
                w0 = w[r1]
                for k in range(m):
                    acc[k] = centre[k] * w0
                for jj in range(-r1, 0):
                    wj = w[r1 + jj]
                    lo = line[r1 + jj : r1 + jj + m]
                    hi = line[r1 - jj : r1 - jj + m]
                    if sym > 0:
                        for k in range(m):
                            acc[k] += (lo[k] + hi[k]) * wj
                    else:
                        for k in range(m):
                            acc[k] += (lo[k] - hi[k]) * wj
            else:
                last = line[r1 + r2 : r1 + r2 + m]
                wl = w[r1 + r2]
                for k in range(m):
                    acc[k] = last[k] * wl
                for jj in range(-r1, r2):
                    wj = w[r1 + jj]
                    sh = line[r1 + jj : r1 + jj + m]
                    for k in range(m):
                        acc[k] += sh[k] * wj
            o = out[a]
            for k in range(m):
                o[k] = np.float32(acc[k])

    @numba.njit(cache=True, nogil=True, inline="always")
    def _fill(acc, row, bw, cval, wj):
        if row.shape[0] == 0:
            for b in range(bw):
                acc[b] = cval * wj
        else:
            for b in range(bw):
                acc[b] = np.float64(row[b]) * wj

    @numba.njit(cache=True, nogil=True, inline="always")
    def _add(acc, row, bw, cval, wj):
        if row.shape[0] == 0:
            for b in range(bw):
                acc[b] += cval * wj
        else:
            for b in range(bw):
                acc[b] += np.float64(row[b]) * wj

    @numba.njit(cache=True, nogil=True, inline="always")
    def _add_pair(acc, lo, hi, bw, cval, wj, sign):
        if lo.shape[0] != 0 and hi.shape[0] != 0:
            if sign > 0:
                for b in range(bw):
                    acc[b] += (np.float64(lo[b]) + np.float64(hi[b])) * wj
            else:
                for b in range(bw):
                    acc[b] += (np.float64(lo[b]) - np.float64(hi[b])) * wj
        elif lo.shape[0] != 0:
            if sign > 0:
                for b in range(bw):
                    acc[b] += (np.float64(lo[b]) + cval) * wj
            else:
                for b in range(bw):
                    acc[b] += (np.float64(lo[b]) - cval) * wj
        elif hi.shape[0] != 0:
            if sign > 0:
                for b in range(bw):
                    acc[b] += (cval + np.float64(hi[b])) * wj
            else:
                for b in range(bw):
                    acc[b] += (cval - np.float64(hi[b])) * wj
        else:
            v = (cval + cval) if sign > 0 else (cval - cval)
            for b in range(bw):
                acc[b] += v * wj

    @numba.njit(cache=True, nogil=True, inline="always")
    def _row(src, a, i, b0, bw):
        """Row ``i`` of plane ``a`` (columns b0 .. b0+bw), empty for -1 (cval)."""
        if i < 0:
            return src[a, 0, b0:b0]
        return src[a, i, b0 : b0 + bw]

    @_jit
    def _corr_outer(src, out, w, sym, mode, cval, start):
        """Correlate along the middle axis of (A, N, B) ``src`` into (A, M, B) ``out``.

        Vectorised over the contiguous axis B, in blocks of ``_BLOCK`` columns.
        """
        a_len, n, b_len = src.shape
        m = out.shape[1]
        size = w.shape[0]
        r1 = size // 2
        r2 = size - r1 - 1
        acc = np.empty(_BLOCK, np.float64)
        for a in range(a_len):
            for b0 in range(0, b_len, _BLOCK):
                bw = min(_BLOCK, b_len - b0)
                for k in range(m):
                    i = start + k
                    if sym != 0:
                        _fill(acc, _row(src, a, _map(i, n, mode), b0, bw), bw, cval, w[r1])
                        for jj in range(-r1, 0):
                            lo = _row(src, a, _map(i + jj, n, mode), b0, bw)
                            hi = _row(src, a, _map(i - jj, n, mode), b0, bw)
                            _add_pair(acc, lo, hi, bw, cval, w[r1 + jj], sym)
                    else:
                        # first term is the last weight, then -r1 .. r2-1
                        _fill(acc, _row(src, a, _map(i + r2, n, mode), b0, bw), bw, cval, w[r1 + r2])
                        for jj in range(-r1, r2):
                            _add(acc, _row(src, a, _map(i + jj, n, mode), b0, bw), bw, cval, w[r1 + jj])
                    o = out[a, k, b0 : b0 + bw]
                    for b in range(bw):
                        o[b] = np.float32(acc[b])

    @_jit
    def _uniform_inner(src, out, size, mode, cval, start):
        """``NI_UniformFilter1D`` along the last axis (running sum in float64, divided on output)."""
        a_len, n = src.shape
        m = out.shape[1]
        r1 = size // 2
        line = np.empty(m + size - 1, np.float64)
        for a in range(a_len):
            row = src[a]
            for k in range(m + size - 1):
                j = _map(start + k - r1, n, mode)
                line[k] = cval if j < 0 else np.float64(row[j])
            o = out[a]
            tmp = 0.0
            for k in range(size):
                tmp += line[k]
            o[0] = np.float32(tmp / size)
            for k in range(1, m):
                tmp += line[k + size - 1] - line[k - 1]
                o[k] = np.float32(tmp / size)

    @_jit
    def _uniform_outer(src, out, size, mode, cval, start):
        """``NI_UniformFilter1D`` along the middle axis of (A, N, B), vectorised over B."""
        a_len, n, b_len = src.shape
        m = out.shape[1]
        r1 = size // 2
        acc = np.empty(_BLOCK, np.float64)
        fsize = np.float64(size)
        for a in range(a_len):
            for b0 in range(0, b_len, _BLOCK):
                bw = min(_BLOCK, b_len - b0)
                for b in range(bw):
                    acc[b] = 0.0
                for t in range(size):
                    _add(acc, _row(src, a, _map(start - r1 + t, n, mode), b0, bw), bw, cval, 1.0)
                o = out[a, 0, b0 : b0 + bw]
                for b in range(bw):
                    o[b] = np.float32(acc[b] / fsize)
                for k in range(1, m):
                    add = _row(src, a, _map(start + k + size - 1 - r1, n, mode), b0, bw)
                    sub = _row(src, a, _map(start + k - 1 - r1, n, mode), b0, bw)
                    _add_pair(acc, add, sub, bw, cval, 1.0, -1)
                    o = out[a, k, b0 : b0 + bw]
                    for b in range(bw):
                        o[b] = np.float32(acc[b] / fsize)

    @_jit
    def _median3d(src, out, sz, sy, sx, mode, cval, z0, y0, x0):
        """Exact median of odd ``sz*sy*sx`` boxes, by forgetful selection on rows.

        ``out[k, j, i]`` is the median around ``src[z0 + k, y0 + j, x0 + i]``.
        """
        nz, ny, nx = src.shape
        mz, my, mx = out.shape
        n = sz * sy * sx
        half = n // 2
        keep = half + 2 if n > 3 else n
        rz, ry, rx = sz // 2, sy // 2, sx // 2
        buf = np.empty((keep, _MEDIAN_BLOCK), np.float32)
        act = np.empty(keep, np.int64)
        rows = np.empty(sz * sy, np.int64)  # flattened (z, y) source rows, -1 = cval
        for k in range(mz):
            for j in range(my):
                q = 0
                for dz in range(sz):
                    zz = _map(z0 + k + dz - rz, nz, mode)
                    for dy in range(sy):
                        yy = _map(y0 + j + dy - ry, ny, mode)
                        rows[q] = -1 if (zz < 0 or yy < 0) else zz * ny + yy
                        q += 1
                for c0 in range(0, mx, _MEDIAN_BLOCK):
                    cw = min(_MEDIAN_BLOCK, mx - c0)
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
                                    xx = _map(base + i, nx, mode)
                                    buf[slot, i] = cval if xx < 0 else src[zz, yy, xx]
                        if e < keep:
                            act[s] = slot
                            s += 1
                            if s < keep:
                                continue
                        # s active rows: move the min to act[0], the max to act[s-1]
                        r0 = act[0]
                        for t in range(1, s):
                            rt = act[t]
                            for i in range(cw):
                                a = buf[r0, i]
                                b = buf[rt, i]
                                if b < a:
                                    buf[r0, i] = b
                                    buf[rt, i] = a
                        rl = act[s - 1]
                        for t in range(1, s - 1):
                            rt = act[t]
                            for i in range(cw):
                                a = buf[rt, i]
                                b = buf[rl, i]
                                if b < a:
                                    buf[rt, i] = b
                                    buf[rl, i] = a
                        if e < n - 1:
                            # drop min (its slot takes the next element) and max
                            s -= 1
                    # three rows left after the last min/max pass: the middle one
                    mid = act[1]
                    for i in range(cw):
                        out[k, j, c0 + i] = buf[mid, i]


    # -- fast-mode non-local means (port of scikit-image's Cython code) -----
    # Same operations in the same order as skimage.restoration's
    # _fast_nl_means_denoising_2d/_3d (float64 integral images, Schraudolph
    # fast_exp, cutoff 5, symmetric shifts): results are bit-identical. The
    # only change is how the integral image recursion is scheduled: four rows
    # are computed at once on a skewed wavefront (row r + k at column c - k),
    # which keeps four independent dependency chains in flight instead of one
    # while every cell still adds the same terms in the same order.

    @numba.njit(cache=True, nogil=True, inline="always")
    def _fast_exp(y, pow2):
        # skimage/_shared/fast_exp.h: high word int32(EXP_A * y) + EXP_BC, low word 0
        hi = np.int32(_EXP_A * y) + np.int32(_EXP_BC)
        return pow2[(hi >> 20) - 1015] * (1.0 + (hi & 0xFFFFF) * 9.5367431640625e-07)

    @numba.njit(cache=True, nogil=True, inline="always")
    def _nlm_cell2(integral, padded, row, col, t_row, t_col, var2):
        t = padded[row, col] - padded[row + t_row, col + t_col]
        dist = t * t - var2
        integral[row, col] = (
            dist + integral[row - 1, col] + integral[row, col - 1] - integral[row - 1, col - 1]
        )

    @numba.njit(cache=True, nogil=True, inline="always")
    def _nlm_cell3(integral, padded, pln, row, col, t_pln, t_row, t_col, var2):
        t = padded[pln, row, col] - padded[pln + t_pln, row + t_row, col + t_col]
        dist = t * t - var2
        integral[pln, row, col] = (
            dist
            + integral[pln - 1, row, col]
            + integral[pln, row - 1, col]
            + integral[pln, row, col - 1]
            + integral[pln - 1, row - 1, col - 1]
            - integral[pln - 1, row - 1, col]
            - integral[pln, row - 1, col - 1]
            - integral[pln - 1, row, col - 1]
        )

    @_jit
    def _nlm_integral2(padded, integral, t_row, t_col, var2):
        n_row, n_col = padded.shape
        ce = n_col - t_col
        r1 = min(n_row, n_row - t_row)
        row = max(1, -t_row)
        while row + 4 <= r1:
            for c in range(1, min(4, ce + 3)):
                for k in range(4):
                    if 1 <= c - k < ce:
                        _nlm_cell2(integral, padded, row + k, c - k, t_row, t_col, var2)
            for c in range(4, ce):
                _nlm_cell2(integral, padded, row, c, t_row, t_col, var2)
                _nlm_cell2(integral, padded, row + 1, c - 1, t_row, t_col, var2)
                _nlm_cell2(integral, padded, row + 2, c - 2, t_row, t_col, var2)
                _nlm_cell2(integral, padded, row + 3, c - 3, t_row, t_col, var2)
            for c in range(max(ce, 4), ce + 3):
                for k in range(4):
                    if 1 <= c - k < ce:
                        _nlm_cell2(integral, padded, row + k, c - k, t_row, t_col, var2)
            row += 4
        while row < r1:
            for c in range(1, ce):
                _nlm_cell2(integral, padded, row, c, t_row, t_col, var2)
            row += 1

    @_jit
    def _nlm_integral3_plane(padded, integral, pln, t_pln, t_row, t_col, var2):
        n_row, n_col = padded.shape[1], padded.shape[2]
        ce = n_col - t_col
        r1 = min(n_row, n_row - t_row)
        row = max(1, -t_row)
        while row + 4 <= r1:
            for c in range(1, min(4, ce + 3)):
                for k in range(4):
                    if 1 <= c - k < ce:
                        _nlm_cell3(integral, padded, pln, row + k, c - k, t_pln, t_row, t_col, var2)
            for c in range(4, ce):
                _nlm_cell3(integral, padded, pln, row, c, t_pln, t_row, t_col, var2)
                _nlm_cell3(integral, padded, pln, row + 1, c - 1, t_pln, t_row, t_col, var2)
                _nlm_cell3(integral, padded, pln, row + 2, c - 2, t_pln, t_row, t_col, var2)
                _nlm_cell3(integral, padded, pln, row + 3, c - 3, t_pln, t_row, t_col, var2)
            for c in range(max(ce, 4), ce + 3):
                for k in range(4):
                    if 1 <= c - k < ce:
                        _nlm_cell3(integral, padded, pln, row + k, c - k, t_pln, t_row, t_col, var2)
            row += 4
        while row < r1:
            for c in range(1, ce):
                _nlm_cell3(integral, padded, pln, row, c, t_pln, t_row, t_col, var2)
            row += 1

    @_jit
    def _nlm_weigh3(padded, integral, weights, result, pln, o, t_pln, t_row, t_col,
                    rmin, rmax, cmax, alpha, sch, pow2):
        p2 = pln + t_pln
        for row in range(rmin, rmax):
            r2 = row + t_row
            for col in range(o, cmax):
                dist = (
                    integral[pln + o, row + o, col + o]
                    - integral[pln - o, row - o, col - o]
                    + integral[pln - o, row - o, col + o]
                    + integral[pln - o, row + o, col - o]
                    + integral[pln + o, row - o, col - o]
                    - integral[pln - o, row + o, col + o]
                    - integral[pln + o, row - o, col + o]
                    - integral[pln + o, row + o, col - o]
                )
                dist = max(dist, 0.0) / sch
                if dist > 5.0:
                    continue
                w = alpha * _fast_exp(-dist, pow2)
                c2 = col + t_col
                weights[pln, row, col] += w
                weights[p2, r2, c2] += w
                result[pln, row, col] += w * padded[p2, r2, c2]
                result[p2, r2, c2] += w * padded[pln, row, col]

    @_jit
    def _nlm_fast2d(padded, s, d, h, var, pow2, abort):
        o = s // 2
        n_row, n_col = padded.shape
        weights = np.zeros_like(padded)
        integral = np.zeros_like(padded)
        result = np.zeros_like(padded)
        h2s2 = h * h * s * s
        var2 = var * 2.0
        for t_row in range(-d, d + 1):
            rmin = max(o, o - t_row)
            rmax = min(n_row - o, n_row - o - t_row)
            for t_col in range(d + 1):
                if abort[0]:  # cancelled: the caller drops this result
                    return result, weights
                alpha = 0.5 if t_col == 0 else 1.0
                cmax = n_col - o - t_col
                _nlm_integral2(padded, integral, t_row, t_col, var2)
                for row in range(rmin, rmax):
                    for col in range(o, cmax):
                        dist = (
                            integral[row + o, col + o]
                            + integral[row - o, col - o]
                            - integral[row - o, col + o]
                            - integral[row + o, col - o]
                        )
                        dist = max(dist, 0.0) / h2s2
                        if dist > 5.0:
                            continue
                        w = alpha * _fast_exp(-dist, pow2)
                        weights[row, col] += w
                        weights[row + t_row, col + t_col] += w
                        result[row, col] += w * padded[row + t_row, col + t_col]
                        result[row + t_row, col + t_col] += w * padded[row, col]
        return result, weights

    @_jit
    def _nlm_fast3d(padded, s, d, h, var, pow2, abort):
        o = s // 2
        n_pln, n_row, n_col = padded.shape
        weights = np.zeros_like(padded)
        integral = np.zeros_like(padded)
        result = np.zeros_like(padded)
        sch = h * h * s * s * s
        var2 = var * 2.0
        for t_pln in range(-d, d + 1):
            pmin = max(o, o - t_pln)
            pmax = min(n_pln - o, n_pln - o - t_pln)
            q0 = max(1, -t_pln)
            q1 = min(n_pln, n_pln - t_pln)
            for t_row in range(-d, d + 1):
                rmin = max(o, o - t_row)
                rmax = min(n_row - o, n_row - o - t_row)
                for t_col in range(d + 1):
                    if abort[0]:  # cancelled: the caller drops this result
                        return result, weights
                    alpha = 0.5 if t_col == 0 else 1.0
                    cmax = n_col - o - t_col
                    # Plane pln of the weighing needs integral planes up to
                    # pln + o only: weigh each plane as soon as they are done
                    # (same operations, same order, while they are in cache).
                    pln = pmin
                    for q in range(q0, q1):
                        _nlm_integral3_plane(padded, integral, q, t_pln, t_row, t_col, var2)
                        while pln < pmax and pln + o <= q:
                            _nlm_weigh3(padded, integral, weights, result, pln, o, t_pln, t_row,
                                        t_col, rmin, rmax, cmax, alpha, sch, pow2)
                            pln += 1
                    while pln < pmax:
                        _nlm_weigh3(padded, integral, weights, result, pln, o, t_pln, t_row,
                                    t_col, rmin, rmax, cmax, alpha, sch, pow2)
                        pln += 1
        return result, weights


_local = threading.local()


def _scratch(slot: int, shape) -> np.ndarray:
    """A float32 work array of ``shape`` reused by this thread (no fresh pages per tile)."""
    n = math.prod(shape)
    buffers = getattr(_local, "buffers", None)
    if buffers is None:
        buffers = _local.buffers = {}
    buf = buffers.get(slot)
    if buf is None or buf.size < n:
        buf = buffers[slot] = np.empty(n, np.float32)
    return buf[:n].reshape(shape)


def release_scratch() -> None:
    """Free this thread's work arrays (threads of a finished pool free theirs anyway)."""
    _local.buffers = None


def _pass(src, weights, axis, start, stop, mode, cval, kind, out=None, slot=None):
    """One 1-D pass along ``axis`` of the 3-D array ``src``; output cropped to [start, stop)."""
    shape = src.shape
    out_shape = list(shape)
    out_shape[axis] = stop - start
    if out is None:
        out = np.empty(out_shape, np.float32) if slot is None else _scratch(slot, out_shape)
    a_len = math.prod(shape[:axis])
    b_len = math.prod(shape[axis + 1 :])
    if axis == 2:
        s2 = src.reshape(a_len, shape[2])
        o2 = out.reshape(a_len, stop - start)
        if kind == "uniform":
            _uniform_inner(s2, o2, int(weights), mode, cval, start)
        else:
            _corr_inner(s2, o2, weights, _symmetry(weights), mode, cval, start)
    else:
        s3 = src.reshape(a_len, shape[axis], b_len)
        o3 = out.reshape(a_len, stop - start, b_len)
        if kind == "uniform":
            _uniform_outer(s3, o3, int(weights), mode, cval, start)
        else:
            _corr_outer(s3, o3, weights, _symmetry(weights), mode, cval, start)
    return out


def _writable(out, shape):
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


def _run_passes(block, passes, mode, cval, keep, kind, out=None, final_slot=None):
    original_ndim = block.ndim
    bounds = _keep3d(keep, block.shape)
    data = _as3d(block)
    shift = 3 - original_ndim
    code = _MODES[mode]
    cval = float(cval)
    done = {axis + shift for axis, _ in passes}
    kept_shape = [b - a for a, b in bounds]
    # axes without a pass are cropped at the end; when there is nothing to
    # crop the last pass writes straight into ``out``
    direct = all(ax in done or bounds[ax] == (0, data.shape[ax]) for ax in range(3))
    target = _writable(out, kept_shape) if direct else None
    for i, (axis, weights) in enumerate(passes):
        ax = axis + shift
        start, stop = bounds[ax]
        last = i == len(passes) - 1
        data = _pass(
            data, weights, ax, start, stop, code, cval, kind,
            out=target if last else None, slot=(final_slot if last else i % 2),
        )
    if target is not None and passes:
        return out
    crop = tuple(slice(None) if ax in done else slice(*bounds[ax]) for ax in range(3))
    data = data[crop]
    if out is not None:
        out[...] = data.reshape(out.shape)
        return out
    data = np.array(data, dtype=np.float32) if not passes else np.asarray(data, dtype=np.float32)
    return data.reshape(data.shape[shift:])


def separable(block, passes, mode, cval=0.0, keep=None, out=None, final_slot=None):
    """Apply 1-D correlations ``passes = [(axis, weights), ...]`` in order.

    Bit-identical to calling ``ndimage.correlate1d(x, weights, axis,
    output=float32, mode=mode, cval=cval)`` in the same order on the float32
    block, restricted to ``keep``. The result goes into ``out`` when given;
    else into this thread's work array ``final_slot`` when given (valid until
    the next call that uses that slot), else into a new array.
    """
    passes = [(axis, np.ascontiguousarray(w, dtype=np.float64)) for axis, w in passes]
    return _run_passes(block, passes, mode, cval, keep, "correlate", out, final_slot)


def uniform(block, size, mode, cval=0.0, keep=None, out=None):
    """``ndimage.uniform_filter(float32 block, size)`` restricted to ``keep``."""
    passes = [(axis, int(s)) for axis, s in enumerate(size) if int(s) > 1]
    return _run_passes(block, passes, mode, cval, keep, "uniform", out)


def median(block, size, mode, cval=0.0, keep=None, out=None):
    """``ndimage.median_filter(float32 block, size)`` restricted to ``keep`` (odd window)."""
    bounds = _keep3d(keep, block.shape)
    size3 = (1,) * (3 - block.ndim) + tuple(int(s) for s in size)
    data = _as3d(block)
    kept_shape = [b - a for a, b in bounds]
    target = _writable(out, kept_shape)
    result = np.empty(kept_shape, np.float32) if target is None else target
    _median3d(
        data, result, size3[0], size3[1], size3[2], _MODES[mode], np.float32(cval),
        bounds[0][0], bounds[1][0], bounds[2][0],
    )
    if target is not None:
        return out
    result = result.reshape(result.shape[3 - block.ndim :])
    if out is not None:
        out[...] = result
        return out
    return result


def edge_magnitude(block, derivative, smooth, steps, mode, cval=0.0, keep=None, out=None):
    """``sqrt(mean_i (g_i / step_i)^2)`` with ``g_i`` = derivative along i, smoothed along the others.

    Same passes, in the same order, as ``ndimage.correlate1d`` calls would do.
    """
    ndim = block.ndim
    total = None
    for edge_axis in range(ndim):
        # smoothing first, derivative last: exact for mode='constant' with cval != 0
        passes = [(ax, smooth) for ax in range(ndim) if ax != edge_axis] + [(edge_axis, derivative)]
        if edge_axis == 0:
            component = separable(block, passes, mode, cval, keep, out)
        else:  # a reused work array: no fresh pages, no allocator slack
            component = separable(block, passes, mode, cval, keep, final_slot=2)
        component /= np.float32(steps[edge_axis])
        np.square(component, out=component)
        if total is None:
            total = component
        else:
            total += component
    total /= np.float32(ndim)
    return np.sqrt(total, out=total)


def derivative_sum(block, sigma_px, radius, steps, order, mode, cval=0.0, keep=None, out=None):
    """Sum over axes of Gaussian derivatives (squared for order 1), as ``ndimage.gaussian_filter(order=...)``."""
    total = None
    for axis in range(block.ndim):
        passes = [
            (ax, gaussian_weights(s, order if ax == axis else 0, r))
            for ax, (s, r) in enumerate(zip(sigma_px, radius))
            if s > 1e-15
        ]
        if axis == 0:
            term = separable(block, passes, mode, cval, keep, out)
        else:
            term = separable(block, passes, mode, cval, keep, final_slot=2)
        if steps[axis] != 1.0:
            term /= np.float32(steps[axis] ** order)
        if order == 1:
            np.square(term, out=term)
        if total is None:
            total = term
        else:
            total += term
    return total


def nl_means_fast(block, h, sigma, patch_size, patch_distance, keep=None, abort=None):
    """Fast-mode non-local means of a 2-D or 3-D block, as scikit-image.

    Equal (bit for bit on a whole image) to ``skimage.restoration.denoise_nl_means(
    block, h=h, sigma=sigma, patch_size=patch_size, patch_distance=patch_distance,
    fast_mode=True, preserve_range=True, channel_axis=None)`` on the float32
    block. ``keep`` (slices of ``block``) is the part whose result is wanted: the
    rest is halo, used as the padding where it reaches ``patch_size // 2 +
    patch_distance + 1`` pixels (``reflect`` padding, as scikit-image, supplies
    the rest, i.e. at the true image border). Returns a float32 array of
    ``block[keep]``'s shape. Runs on one core and releases the GIL. ``abort``
    (a one-element uint8 array) is polled between search offsets: once it is
    set the kernel returns at once with an unfinished result.
    """
    s = int(patch_size)
    if s % 2 == 0:
        s += 1  # odd value for a symmetric patch, as scikit-image
    d = int(patch_distance)
    pad = s // 2 + d + 1
    shape = block.shape
    if keep is None:
        keep = (slice(None),) * block.ndim
    cut, widths, inner = [], [], []
    for k, n in zip(keep, shape):
        start, stop, _ = k.indices(n)
        lo, hi = max(0, start - pad), min(n, stop + pad)
        cut.append(slice(lo, hi))
        widths.append((pad - (start - lo), pad - (hi - stop)))
        inner.append(slice(pad, pad + stop - start))
    region = np.asarray(block[tuple(cut)], dtype=np.float32)
    padded = np.ascontiguousarray(np.pad(region, widths, mode="reflect"), dtype=np.float64)
    kernel = _nlm_fast2d if block.ndim == 2 else _nlm_fast3d
    # sigma * sigma in the caller's type (float32 sigma gives a float32 variance
    # in scikit-image too), then double as in its Cython signature
    if abort is None:
        abort = np.zeros(1, np.uint8)
    result, weights = kernel(padded, s, d, float(h), float(sigma * sigma), _POW2, abort)
    inner = tuple(inner)
    result = result[inner]
    if abort[0]:  # unfinished: the caller drops it
        return np.zeros(result.shape, np.float32)
    result /= weights[inner]
    return result.astype(np.float32)
