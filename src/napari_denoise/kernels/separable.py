"""Separable 1-D correlations along any axis, compiled: Gaussian, derivatives, box.

Everything here reproduces scipy.ndimage's arithmetic exactly, only faster:

* :func:`separable` runs 1-D correlations along the axes in the given order,
  each pass accumulating in float64 in the same order as ``NI_Correlate1D``
  (symmetric / antisymmetric / general kernels, same tolerance) and rounding to
  float32 between passes, as ``ndimage.gaussian_filter(float32_block)`` does;
  so results are bit-identical to ndimage. The passes along the
  non-contiguous axes run as whole-row vector operations (SIMD) instead of
  ndimage's copy-a-line-into-a-buffer loop.
* :func:`uniform` is ``ndimage.uniform_filter`` (running sums in float64, same
  order of operations).
* :func:`edge_magnitude` and :func:`derivative_sum` combine such passes into
  Sobel-like magnitudes and sums of Gaussian derivatives.

Tiles and halos: every function takes ``keep``, the slices of the block whose
result is wanted. The pass along an axis computes only the kept range of that
axis (the rest of the block, i.e. the halo, is only read), so a tile cut
along z does not filter its halo planes at all.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from .borders import MODE_CODES, as_3d, jit, keep_bounds_3d, map_index, writable_3d
from .scratch import work_array

__all__ = ["gaussian_weights", "separable", "uniform", "edge_magnitude", "derivative_sum"]

_BLOCK = 512  # columns processed at once along the contiguous axis

# Work arrays (see .scratch): the two intermediate results that passes
# alternate between, and the per-axis term of a magnitude or sum.
_PING, _PONG, _TERM = "separable.ping", "separable.pong", "separable.term"


def gaussian_weights(sigma: float, order: int, radius: int) -> np.ndarray:
    """Correlation weights of ``ndimage.gaussian_filter1d`` (its kernel reversed).

    The sampled Gaussian ``exp(-x² / 2σ²)`` on ``-radius..radius``, normalised
    to sum 1, times the polynomial that differentiating it ``order`` times
    gives. Computed with the same numpy operations as scipy, so the weights
    (and every filter built on them) are bit-identical to scipy.ndimage's.
    """
    if order < 0:
        raise ValueError(f"order: must be non-negative, got {order}")
    x = np.arange(-radius, radius + 1)
    sigma2 = sigma * sigma
    phi = np.exp(-0.5 / sigma2 * x**2)
    phi = phi / phi.sum()
    if order > 0:
        # d/dx (q(x) phi(x)) = (q'(x) - x q(x) / σ²) phi(x): apply that operator
        # ``order`` times to the coefficients of q, starting from q = 1.
        exponents = np.arange(order + 1)
        q = np.zeros(order + 1)
        q[0] = 1
        step = np.diag(exponents[1:], 1) + np.diag(np.ones(order) / -sigma2, -1)
        for _ in range(order):
            q = step.dot(q)
        phi = (x[:, None] ** exponents).dot(q) * phi
    return np.ascontiguousarray(phi[::-1], dtype=np.float64)


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


# Inner loops index 1-D slices with the loop counter only: numba then drops
# its negative-index checks and LLVM vectorises them (4x faster).
@jit
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
            j = map_index(start + k - r1, n, mode)
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


@jit
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
                    _fill(acc, _row(src, a, map_index(i, n, mode), b0, bw), bw, cval, w[r1])
                    for jj in range(-r1, 0):
                        lo = _row(src, a, map_index(i + jj, n, mode), b0, bw)
                        hi = _row(src, a, map_index(i - jj, n, mode), b0, bw)
                        _add_pair(acc, lo, hi, bw, cval, w[r1 + jj], sym)
                else:
                    # first term is the last weight, then -r1 .. r2-1
                    _fill(acc, _row(src, a, map_index(i + r2, n, mode), b0, bw), bw, cval, w[r1 + r2])
                    for jj in range(-r1, r2):
                        _add(acc, _row(src, a, map_index(i + jj, n, mode), b0, bw), bw, cval, w[r1 + jj])
                o = out[a, k, b0 : b0 + bw]
                for b in range(bw):
                    o[b] = np.float32(acc[b])


@jit
def _uniform_inner(src, out, size, mode, cval, start):
    """``NI_UniformFilter1D`` along the last axis (running sum in float64, divided on output)."""
    a_len, n = src.shape
    m = out.shape[1]
    r1 = size // 2
    line = np.empty(m + size - 1, np.float64)
    for a in range(a_len):
        row = src[a]
        for k in range(m + size - 1):
            j = map_index(start + k - r1, n, mode)
            line[k] = cval if j < 0 else np.float64(row[j])
        o = out[a]
        tmp = 0.0
        for k in range(size):
            tmp += line[k]
        o[0] = np.float32(tmp / size)
        for k in range(1, m):
            tmp += line[k + size - 1] - line[k - 1]
            o[k] = np.float32(tmp / size)


@jit
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
                _add(acc, _row(src, a, map_index(start - r1 + t, n, mode), b0, bw), bw, cval, 1.0)
            o = out[a, 0, b0 : b0 + bw]
            for b in range(bw):
                o[b] = np.float32(acc[b] / fsize)
            for k in range(1, m):
                add = _row(src, a, map_index(start + k + size - 1 - r1, n, mode), b0, bw)
                sub = _row(src, a, map_index(start + k - 1 - r1, n, mode), b0, bw)
                _add_pair(acc, add, sub, bw, cval, 1.0, -1)
                o = out[a, k, b0 : b0 + bw]
                for b in range(bw):
                    o[b] = np.float32(acc[b] / fsize)


def _pass(src, weights, axis, start, stop, mode, cval, kind, out=None, scratch=None):
    """One 1-D pass along ``axis`` of the 3-D array ``src``; output cropped to [start, stop).

    The output goes into ``out``, else into the work array named ``scratch``,
    else into a new array.
    """
    shape = src.shape
    out_shape = list(shape)
    out_shape[axis] = stop - start
    if out is None:
        out = np.empty(out_shape, np.float32) if scratch is None else work_array(scratch, out_shape)
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


def _run_passes(block, passes, mode, cval, keep, kind, out=None, result_scratch=None):
    original_ndim = block.ndim
    bounds = keep_bounds_3d(keep, block.shape)
    data = as_3d(block)
    shift = 3 - original_ndim
    code = MODE_CODES[mode]
    cval = float(cval)
    done = {axis + shift for axis, _ in passes}
    kept_shape = [b - a for a, b in bounds]
    # axes without a pass are cropped at the end; when there is nothing to
    # crop the last pass writes straight into ``out``
    direct = all(ax in done or bounds[ax] == (0, data.shape[ax]) for ax in range(3))
    target = writable_3d(out, kept_shape) if direct else None
    for i, (axis, weights) in enumerate(passes):
        ax = axis + shift
        start, stop = bounds[ax]
        last = i == len(passes) - 1
        data = _pass(
            data, weights, ax, start, stop, code, cval, kind,
            out=target if last else None,
            scratch=result_scratch if last else (_PING, _PONG)[i % 2],
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


def separable(block, passes, mode, cval=0.0, keep=None, out=None, result_scratch=None):
    """Apply 1-D correlations ``passes = [(axis, weights), ...]`` in order.

    Bit-identical to calling ``ndimage.correlate1d(x, weights, axis,
    output=float32, mode=mode, cval=cval)`` in the same order on the float32
    block, restricted to ``keep``. The result goes into ``out`` when given;
    else into this thread's work array named ``result_scratch`` when given
    (valid until the next call that uses that name), else into a new array.
    """
    passes = [(axis, np.ascontiguousarray(w, dtype=np.float64)) for axis, w in passes]
    return _run_passes(block, passes, mode, cval, keep, "correlate", out, result_scratch)


def uniform(block, size, mode, cval=0.0, keep=None, out=None):
    """``ndimage.uniform_filter(float32 block, size)`` restricted to ``keep``."""
    passes = [(axis, int(s)) for axis, s in enumerate(size) if int(s) > 1]
    return _run_passes(block, passes, mode, cval, keep, "uniform", out)


def _sum_of_terms(n_axes, passes_for, finish, block, mode, cval, keep, out):
    """Sum over axes of ``finish(term, axis)``, each term being ``separable(block, passes_for(axis))``.

    The first term is computed straight into ``out`` (the result), the others
    into one reused work array, so the sum holds one extra array whatever the
    number of axes.
    """
    total = None
    for axis in range(n_axes):
        if total is None:
            term = separable(block, passes_for(axis), mode, cval, keep, out)
        else:
            term = separable(block, passes_for(axis), mode, cval, keep, result_scratch=_TERM)
        finish(term, axis)
        if total is None:
            total = term
        else:
            total += term
    return total


def edge_magnitude(block, derivative, smooth, steps, mode, cval=0.0, keep=None, out=None):
    """``sqrt(mean_i (g_i / step_i)^2)`` with ``g_i`` = derivative along i, smoothed along the others.

    Same passes, in the same order, as ``ndimage.correlate1d`` calls would do.
    """
    ndim = block.ndim

    def passes_for(axis):
        # smoothing first, derivative last: exact for mode='constant' with cval != 0
        return [(ax, smooth) for ax in range(ndim) if ax != axis] + [(axis, derivative)]

    def square(component, axis):
        component /= np.float32(steps[axis])
        np.square(component, out=component)

    total = _sum_of_terms(ndim, passes_for, square, block, mode, cval, keep, out)
    total /= np.float32(ndim)
    return np.sqrt(total, out=total)


def derivative_sum(block, sigma_px, radius, steps, order, mode, cval=0.0, keep=None, out=None):
    """Sum over axes of Gaussian derivatives (squared for order 1), as ``ndimage.gaussian_filter(order=...)``."""

    def passes_for(axis):
        return [
            (ax, gaussian_weights(s, order if ax == axis else 0, r))
            for ax, (s, r) in enumerate(zip(sigma_px, radius))
            if s > 1e-15
        ]

    def scale(term, axis):
        if steps[axis] != 1.0:
            term /= np.float32(steps[axis] ** order)
        if order == 1:
            np.square(term, out=term)

    return _sum_of_terms(block.ndim, passes_for, scale, block, mode, cval, keep, out)
