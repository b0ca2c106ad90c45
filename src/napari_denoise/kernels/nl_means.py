"""Fast-mode non-local means (Darbon et al. 2008), a compiled port of scikit-image's.

Same operations in the same order as skimage.restoration's
``_fast_nl_means_denoising_2d/_3d`` (float64 integral images, Schraudolph's
fast exp, cut-off 5, symmetric shifts): results are bit-identical. The only
change is how the integral-image recursion is scheduled: four rows are
computed at once on a skewed wavefront (row r + k at column c - k), which
keeps four independent dependency chains in flight instead of one while every
cell still adds the same terms in the same order; in 3-D each plane is weighed
as soon as the integral planes it needs are done, while they are in cache.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from .borders import jit

__all__ = ["nl_means_fast"]

# skimage/_shared/fast_exp.h (Schraudolph's exp) as used by skimage's NLM
_EXP_A = 1512775.3951951856938
_EXP_BC = 1072632447
# 2**(e - 1023) for the exponents fast_exp reaches on [-5, 0] (the NLM cut-off)
_POW2 = np.array([math.ldexp(1.0, e - 1023) for e in range(1015, 1023)])


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


@jit
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


@jit
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


@jit
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


@jit
def _nlm_fast2d(padded, s, d, h, var, pow2, cancel_flag):
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
            if cancel_flag[0]:  # cancelled: the caller drops this result
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


@jit
def _nlm_fast3d(padded, s, d, h, var, pow2, cancel_flag):
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
                if cancel_flag[0]:  # cancelled: the caller drops this result
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


def nl_means_fast(block, h, sigma, patch_size, patch_distance, keep=None, cancel_flag=None):
    """Fast-mode non-local means of a 2-D or 3-D block, as scikit-image.

    Equal (bit for bit on a whole image) to ``skimage.restoration.denoise_nl_means(
    block, h=h, sigma=sigma, patch_size=patch_size, patch_distance=patch_distance,
    fast_mode=True, preserve_range=True, channel_axis=None)`` on the float32
    block. ``keep`` (slices of ``block``) is the part whose result is wanted: the
    rest is halo, used as the padding where it reaches ``patch_size // 2 +
    patch_distance + 1`` pixels (``reflect`` padding, as scikit-image, supplies
    the rest, i.e. at the true image border). Returns a float32 array of
    ``block[keep]``'s shape. Runs on one core and releases the GIL.
    ``cancel_flag`` (a one-element uint8 array) is polled between search
    offsets: once it is set the kernel returns at once with an unfinished
    result.
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
    if cancel_flag is None:
        cancel_flag = np.zeros(1, np.uint8)
    result, weights = kernel(padded, s, d, float(h), float(sigma * sigma), _POW2, cancel_flag)
    inner = tuple(inner)
    result = result[inner]
    if cancel_flag[0]:  # unfinished: the caller drops it
        return np.zeros(result.shape, np.float32)
    result /= weights[inner]
    return result.astype(np.float32)
