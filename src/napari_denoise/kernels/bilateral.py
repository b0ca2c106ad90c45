"""The bilateral filter, computed exactly over its window, compiled (1-D to 3-D).

``out(x) = Σ_o w(o, x) u(x + o) / Σ_o w(o, x)`` over the window offsets ``o``
(``|o_a| <= r_a``), ``w = exp(-½ Σ_a (o_a / σ_a)² - ½ (u(x + o) - u(x))² / σ_i²)``
(Tomasi & Manduchi 1998), without binning intensity differences. Each
output row is computed at once: for every offset, the shifted source row
(border mode applied once per row) is compared with the row's centres,
and one float32 exponential per pair (a Cody–Waite reduction and a degree-6
polynomial, within 2 float32 ulps of ``exp``, written without branches so
that it vectorises) gives the weight. Only the wanted part of a block is
computed; its halo is only read.

On request the same pass also gives each output voxel's derivative by its
own input voxel, ``∂out(x)/∂u(x) = g(x)/W + (Σ w d² / W − (out − u)²) / σ_i²``
(``d = u(x + o) − u(x)``, ``W = Σ w``, ``g`` the spatial weights of the
offsets the border mode maps back onto ``x`` itself, 1 inside the image):
the divergence that calibration's SURE needs, without a second call.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic

from .borders import MODE_CODES, as_3d, jit, keep_bounds_3d, map_index, writable_3d
from .threads import progress_counters, run_pieces, split_evenly

__all__ = ["bilateral", "spatial_weights", "self_weights", "MODES"]

#: Border modes: scipy.ndimage's names; 'wrap' needs the whole axis in the block.
MODES = {**MODE_CODES, "wrap": 4}

_LOG2E = np.float32(1.4426950408889634)
_LN2_HI = np.float32(0.693359375)
_LN2_LO = np.float32(-2.12194440e-4)
_EXP_FLOOR = np.float32(-87.0)  # below: weight 0 (exp would be subnormal)


@intrinsic
def _f32_from_bits(typingctx, bits):
    """Reinterpret an int32 as a float32."""
    if bits != types.int32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return types.float32(types.int32), codegen


@numba.njit(cache=True, nogil=True, inline="always")
def _exp_neg(a):
    """``exp(a)`` for float32 ``a <= 0`` (0 below -87), branch-free (Cephes ``expf``)."""
    clamped = max(a, _EXP_FLOOR)
    n = np.floor(clamped * _LOG2E + np.float32(0.5))
    r = clamped - n * _LN2_HI
    r = r - n * _LN2_LO
    p = np.float32(1.9875691500e-4)
    p = p * r + np.float32(1.3981999507e-3)
    p = p * r + np.float32(8.3334519073e-3)
    p = p * r + np.float32(4.1665795894e-2)
    p = p * r + np.float32(1.6666665459e-1)
    p = p * r + np.float32(5.0000001201e-1)
    p = p * (r * r) + r + np.float32(1.0)
    scale = _f32_from_bits(np.int32((np.int32(n) + np.int32(127)) << np.int32(23)))
    return np.float32(0.0) if a < _EXP_FLOOR else p * scale


@jit
def _source_index(i, n, mode):
    if mode == 4:  # wrap
        return i % n
    return map_index(i, n, mode)


@jit
def _bilateral_rows(src, out, spatial, rz, ry, rx, scale, mode, cval, z0, y0, x0, rows_lo, rows_hi,
                    flag, progress, slot, slope, gz, gy, gx, variance):
    """Rows ``rows_lo:rows_hi`` (flat over the kept planes × rows) of the bilateral filter.

    ``out[k, j, i]`` is the result at ``src[z0 + k, y0 + j, x0 + i]``;
    ``spatial[dz, dy, dx]`` the spatial weights, ``scale = -1 / (2 σ_i²)``.
    With a non-empty ``slope`` (else shape ``(0, 0, 0)``), also
    ``∂out/∂src`` at the same voxel there; ``gz[k] · gy[j] · gx[i]`` is the
    weight of the offsets that map onto the voxel itself, ``variance = σ_i²``.
    """
    with_slope = slope.size > 0
    nz, ny, nx = src.shape
    my, mx = out.shape[1], out.shape[2]
    centre = np.empty(mx, np.float32)
    shifted = np.empty(mx + 2 * rx, np.float32)
    num = np.empty(mx, np.float32)
    den = np.empty(mx, np.float32)
    squares = np.empty(mx if with_slope else 0, np.float32)
    zero = np.float32(0.0)
    for row in range(rows_lo, rows_hi):
        if flag[0]:
            return
        k = row // my
        j = row - k * my
        z = z0 + k
        y = y0 + j
        row_values = src[z, y, x0:]
        for i in range(mx):
            centre[i] = np.float32(row_values[i])
            num[i] = zero
            den[i] = zero
        for i in range(squares.size):
            squares[i] = zero
        for dz in range(-rz, rz + 1):
            zz = _source_index(z + dz, nz, mode)
            for dy in range(-ry, ry + 1):
                yy = _source_index(y + dy, ny, mode)
                # the source row with the border mode applied once: shifted[i + rx + dx]
                if zz < 0 or yy < 0:
                    for i in range(mx + 2 * rx):
                        shifted[i] = cval
                else:
                    for i in range(mx + 2 * rx):
                        xx = x0 - rx + i
                        if 0 <= xx < nx:
                            shifted[i] = np.float32(src[zz, yy, xx])
                        else:
                            xs = _source_index(xx, nx, mode)
                            shifted[i] = cval if xs < 0 else np.float32(src[zz, yy, xs])
                for dx in range(-rx, rx + 1):
                    log_spatial = spatial[dz + rz, dy + ry, dx + rx]
                    # a slice, not offset indices (which keep numba's negative-index
                    # check and with it the loop scalar)
                    source = shifted[rx + dx:]
                    if with_slope:  # (tested once per offset: the plain loop stays as tight as before)
                        for i in range(mx):
                            v = source[i]
                            d = v - centre[i]
                            w = _exp_neg(d * d * scale + log_spatial)
                            num[i] += w * v
                            den[i] += w
                            squares[i] += w * d * d
                    else:
                        for i in range(mx):
                            v = source[i]
                            d = v - centre[i]
                            w = _exp_neg(d * d * scale + log_spatial)
                            num[i] += w * v
                            den[i] += w
        for i in range(mx):
            out[k, j, i] = num[i] / den[i]
        if with_slope:
            own = gz[k] * gy[j]
            for i in range(mx):
                moved = out[k, j, i] - centre[i]
                # weighted variance of the window's differences; float64 so that a tiny σ_i² cannot overflow
                spread = max(np.float64(squares[i] / den[i]) - np.float64(moved) * moved, 0.0)
                slope[k, j, i] = np.float32(own * gx[i] / den[i] + spread / variance)
        progress[slot] += 1


def spatial_weights(sigma_px, radius):
    """``-½ Σ_a (o_a / σ_a)²`` over the window (the log of the spatial weights), float32, 3-D."""
    sigma3 = (0.0,) * (3 - len(sigma_px)) + tuple(sigma_px)
    radius3 = (0,) * (3 - len(radius)) + tuple(radius)
    grids = np.meshgrid(*[np.arange(-r, r + 1, dtype=np.float64) for r in radius3], indexing="ij")
    total = np.zeros(grids[0].shape)
    for g, s in zip(grids, sigma3):
        if s > 0:
            total += (g / s) ** 2
    return np.ascontiguousarray(-0.5 * total, dtype=np.float32)


def self_weights(sigma_px, radius, mode, shape, bounds):
    """Per axis of the 3-D block, ``g[i] = Σ exp(-½ (o/σ)²)`` over the window offsets ``o``
    that the border ``mode`` maps from kept position ``i`` back onto ``i`` (``o = 0``
    always; beyond the block's border, e.g. ``o = -1`` at ``i = 0`` for 'reflect')."""
    sigma3 = (0.0,) * (3 - len(sigma_px)) + tuple(sigma_px)
    radius3 = (0,) * (3 - len(radius)) + tuple(int(r) for r in radius)
    weights = []
    for s, r, n, (lo, hi) in zip(sigma3, radius3, shape, bounds):
        g = np.ones(hi - lo, np.float64)  # o = 0; inside, no other offset reaches i
        near_border = [i for i in range(lo, hi) if i < r or i >= n - r]
        for i in near_border:
            for o in range(-r, r + 1):
                if o != 0 and _source_index(i + o, n, MODES[mode]) == i:
                    g[i - lo] += math.exp(-0.5 * (o / s) ** 2)
        weights.append(g)
    return weights


def bilateral(block, sigma_px, radius, sigma_intensity, mode="reflect", cval=0.0, keep=None, out=None,
              threads=1, token=None, slope=None):
    """Bilateral filter of the 1-D to 3-D ``block`` over ``keep`` (its halo only read), float32.

    ``sigma_px`` and ``radius`` per axis (voxels); ``sigma_intensity`` > 0 in
    the block's units. Border ``mode`` as scipy.ndimage ('wrap' needs the
    whole axes in the block). Runs on ``threads`` threads (rows split among
    them); polls ``token.flag`` every row, counts rows in ``token.ticks``.
    ``slope``: a C-contiguous float32 array of the kept part's shape that
    receives each output voxel's derivative by its own input voxel (see the
    module's docstring), computed in the same pass.
    """
    bounds = keep_bounds_3d(keep, block.shape)
    data = as_3d(block)
    kept = [b - a for a, b in bounds]
    target = writable_3d(out, kept)
    result = np.empty(kept, np.float32) if target is None else target
    variance = float(sigma_intensity) ** 2
    finite_max = float(np.finfo(np.float32).max)
    # A tiny sigma (nearly flat slice) must not overflow to -inf: 0 * -inf is NaN.
    scale = np.float32(-0.5 / variance if variance > 0.5 / finite_max else -finite_max)
    spatial = spatial_weights(sigma_px, radius)
    r3 = (0,) * (3 - len(radius)) + tuple(int(r) for r in radius)
    rows = kept[0] * kept[1]
    flag = np.zeros(1, np.uint8) if token is None else token.flag
    threads = max(1, min(int(threads), rows // 8, max(1, math.prod(kept) // (1 << 15))))
    pieces = split_evenly(rows, threads)
    progress = progress_counters(token, len(pieces))
    if slope is None:
        slope3, own = np.empty((0, 0, 0), np.float32), [np.empty(0)] * 3
    else:
        slope3 = writable_3d(slope, kept)
        if slope3 is None:
            raise ValueError("slope: expected a C-contiguous float32 array of the kept part's shape")
        own = self_weights(sigma_px, radius, mode, data.shape, bounds)
    arguments = [
        (data, result, spatial, *r3, scale, MODES[mode], np.float32(cval), bounds[0][0], bounds[1][0],
         bounds[2][0], lo, hi, flag, progress, k if len(pieces) > 1 else 0, slope3, *own, variance)
        for k, (lo, hi) in enumerate(pieces)
    ]
    if rows and kept[2]:
        run_pieces(_bilateral_rows, arguments, progress, token, rows)
    if target is not None:
        return out
    result = result.reshape(result.shape[3 - block.ndim :])
    if out is not None:
        out[...] = result
        return out
    return result
