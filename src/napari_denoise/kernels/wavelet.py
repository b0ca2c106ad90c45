"""Wavelet shrinkage (BayesShrink / VisuShrink), as ``skimage.restoration.denoise_wavelet``.

scikit-image decomposes with ``pywt.wavedecn`` (mode 'symmetric'), computes
one threshold per detail sub-band (BayesShrink: ``σ² / sqrt(max(mean(d²) -
σ², eps))``) or one for all (VisuShrink: ``σ sqrt(2 log n)``), shrinks the
detail coefficients with ``pywt.threshold`` and reconstructs with
``pywt.waverecn``. Here:

* the Haar wavelet (``db1``, the default, also ``haar``) is compiled: each
  level is one pass that reads every 2×2(×2) block once and writes its
  ``2**ndim`` sub-band coefficients (orthonormal butterflies along axis 0,
  then 1, then 2, as ``pywt.dwtn``; the symmetric extension of odd lengths
  repeats the last sample), and reconstruction is the inverse pass, written
  straight into the output;
* other wavelets go through a compiled filter bank (:mod:`.filter_bank`):
  PyWavelets' transforms bit for bit, shared among threads by lines, level
  by level (scikit-image's ``pywt`` calls run on one thread);
* the forward pass also sums the squares of each detail band row by row
  (BayesShrink's statistics), and the inverse pass thresholds each detail
  coefficient as it reads it; the sums add in row order, so the result does
  not depend on the number of threads; soft thresholding is
  ``sign(d) max(|d| - t, 0)``, which equals PyWavelets' ``d (1 - t / |d|)``
  to rounding but gives 0 (not NaN) for a zero coefficient when ``t = 0``:
  a noise-free image is returned unchanged instead of NaN;
* both passes work row by row on row views, with one loop per number of
  transformed axes and the last sample of an odd row apart, so that their
  loops have no branch or clamped index, and the soft threshold is a select
  (the sign of a noise coefficient defeats a branch predictor);
* a large slice, or any slice shared among threads, is transformed in tiles
  of ``2**depth`` rows (and planes) that stay in a core's cache, in two
  passes (:func:`_haar_denoise`): the fine sub-bands are never stored for
  the whole slice, threads take whole tiles, and the values are bit for bit
  those of the level-by-level transform;
* cycle spinning (:func:`cycle_spin`) of a slice of 1 Mi values or more
  runs each shift as one tiled transform that reads the slice at its rolled
  places and adds each reconstructed tile into the float64 sum at the
  unshifted places (no shifted copy, no full-size shrinkage per shift); a
  smaller slice shifts, shrinks and adds back through reused buffers in
  compiled row loops.

Results agree with scikit-image to float32 precision. Work memory: level by
level (one thread, up to 8 Mi float32 values or 2 Mi of another dtype, which
is first copied to float32), the coefficients, about 1.15 float32 arrays of
the slice in 3-D and 1.34 in 2-D; in tiles, the coarse levels (at most 1/8
of the slice, usually 1/64 or less) and a few hundred KB per thread; cycle
spinning adds its float64 sum (two float32 arrays of the slice) and, below
1 Mi values, a shifted copy and a shrinkage (two more).
Everything runs without the GIL, so independent slices run in parallel on
the scheduler's threads.
"""

from __future__ import annotations

import functools
import itertools
import math

import numba
import numpy as np

from . import filter_bank
from .borders import as_3d, jit
from .scratch import work_array
from .threads import Team, split_evenly

__all__ = ["HAAR_NAMES", "cycle_spin", "denoise_wavelet"]

HAAR_NAMES = ("db1", "haar")
_S = np.float32(1.0 / math.sqrt(2.0))  # pywt's Haar filter taps in float32


@jit
def _haar_forward(src, z_offset, y_offset, bands, squares, with_squares, active_z, active_y, lo, hi):
    """One Haar level of ``src`` (3-D; axes 0, 1 only when active, axis 2 always).

    ``bands[b]`` receives sub-band ``b``: bit 2 of ``b`` set = detail along
    axis 0, bit 1 = along axis 1, bit 0 = along axis 2 (pywt's ``'d'`` keys).
    Only the output rows ``lo:hi`` of the flattened ``(z, y)`` rows of a band
    are written, so that threads can share a level; ``squares[b, r]``
    receives the float64 sum of squares of row ``r`` of band ``b`` (the
    BayesShrink statistics, without a second pass over the bands) when
    ``with_squares``. The bands may be those of a tile of ``src`` that
    starts at plane ``z_offset`` (axis 0) and row ``y_offset`` (axis 1), both
    even: their row ``(k, j)`` is then made from ``src``'s planes
    ``z_offset + 2k`` and rows ``y_offset + 2j``.

    Each output row reads its 1, 2 or 4 input rows as row views, with one
    loop per number of active axes and the last sample of an odd row apart:
    loops without branches or clamped indices, 2.4× faster than one loop
    for all cases (measured on a 1024² level).
    """
    nz, ny, nx = src.shape
    my, mx = bands.shape[2], bands.shape[3]
    nb = bands.shape[0]
    pairs = nx // 2  # blocks with both samples along axis 2 inside
    for r in range(lo, hi):
        k = r // my
        j = r - k * my
        z0 = z_offset + (2 * k if active_z else k)
        z1 = min(z0 + 1, nz - 1) if active_z else z0
        y0 = y_offset + (2 * j if active_y else j)
        y1 = min(y0 + 1, ny - 1) if active_y else y0
        if active_z and active_y:
            _forward_row_3d(src[z0, y0], src[z0, y1], src[z1, y0], src[z1, y1], bands[0, k, j], bands[1, k, j],
                            bands[2, k, j], bands[3, k, j], bands[4, k, j], bands[5, k, j], bands[6, k, j],
                            bands[7, k, j], pairs, mx)
        elif active_y:
            _forward_row_2d(src[z0, y0], src[z0, y1], bands[0, k, j], bands[1, k, j], bands[2, k, j],
                            bands[3, k, j], pairs, mx)
        else:
            _forward_row_1d(src[z0, y0], bands[0, k, j], bands[1, k, j], pairs, mx)
        if with_squares:
            for b in range(1, nb):
                squares[b, r] = _sum_squares(bands[b, k, j])


@numba.njit(cache=True, nogil=True, inline="always")
def _pair(row, i, pairs):
    """Samples ``2i`` and ``2i + 1`` of ``row`` as float32 (the last one repeated past the end)."""
    first = np.float32(row[2 * i])
    return first, (np.float32(row[2 * i + 1]) if i < pairs else first)


@jit
def _forward_row_1d(r0, b0, b1, pairs, mx):
    s = _S
    for i in range(pairs):
        a000, a001 = np.float32(r0[2 * i]), np.float32(r0[2 * i + 1])
        b0[i] = (a000 + a001) * s
        b1[i] = (a000 - a001) * s
    for i in range(pairs, mx):
        a000, a001 = _pair(r0, i, pairs)
        b0[i] = (a000 + a001) * s
        b1[i] = (a000 - a001) * s


@numba.njit(cache=True, nogil=True, inline="always")
def _butterfly_2d(a000, a001, a010, a011, b0, b1, b2, b3, i):
    s = _S
    l0, h0 = (a000 + a010) * s, (a000 - a010) * s  # along axis 1
    l1, h1 = (a001 + a011) * s, (a001 - a011) * s
    b0[i] = (l0 + l1) * s  # along axis 2
    b1[i] = (l0 - l1) * s
    b2[i] = (h0 + h1) * s
    b3[i] = (h0 - h1) * s


@jit
def _forward_row_2d(r0, r1, b0, b1, b2, b3, pairs, mx):
    for i in range(pairs):
        _butterfly_2d(np.float32(r0[2 * i]), np.float32(r0[2 * i + 1]), np.float32(r1[2 * i]),
                      np.float32(r1[2 * i + 1]), b0, b1, b2, b3, i)
    for i in range(pairs, mx):
        a000, a001 = _pair(r0, i, pairs)
        a010, a011 = _pair(r1, i, pairs)
        _butterfly_2d(a000, a001, a010, a011, b0, b1, b2, b3, i)


@numba.njit(cache=True, nogil=True, inline="always")
def _butterfly_3d(a000, a001, a010, a011, a100, a101, a110, a111, b0, b1, b2, b3, b4, b5, b6, b7, i):
    s = _S
    # along axis 0: low in a0.., high in a1..
    l00, h00 = (a000 + a100) * s, (a000 - a100) * s
    l01, h01 = (a001 + a101) * s, (a001 - a101) * s
    l10, h10 = (a010 + a110) * s, (a010 - a110) * s
    l11, h11 = (a011 + a111) * s, (a011 - a111) * s
    _butterfly_2d(l00, l01, l10, l11, b0, b1, b2, b3, i)  # then axes 1 and 2
    _butterfly_2d(h00, h01, h10, h11, b4, b5, b6, b7, i)


@jit
def _forward_row_3d(r00, r01, r10, r11, b0, b1, b2, b3, b4, b5, b6, b7, pairs, mx):
    for i in range(pairs):
        _butterfly_3d(np.float32(r00[2 * i]), np.float32(r00[2 * i + 1]), np.float32(r01[2 * i]),
                      np.float32(r01[2 * i + 1]), np.float32(r10[2 * i]), np.float32(r10[2 * i + 1]),
                      np.float32(r11[2 * i]), np.float32(r11[2 * i + 1]), b0, b1, b2, b3, b4, b5, b6, b7, i)
    for i in range(pairs, mx):
        a000, a001 = _pair(r00, i, pairs)
        a010, a011 = _pair(r01, i, pairs)
        a100, a101 = _pair(r10, i, pairs)
        a110, a111 = _pair(r11, i, pairs)
        _butterfly_3d(a000, a001, a010, a011, a100, a101, a110, a111, b0, b1, b2, b3, b4, b5, b6, b7, i)


@numba.njit(cache=True, nogil=True, inline="always")
def _shrunk(d, t, soft):
    """Soft (``sign(d) max(|d| - t, 0)``) or hard (``d`` where ``|d| >= t``, else 0) thresholding."""
    zero = np.float32(0.0)
    m = abs(d)
    if soft:
        r = m - t
        # selects, not branches (the signs of noise coefficients are unpredictable)
        return np.float32(math.copysign(r, d)) if r > zero else zero
    return d if m >= t else zero


@jit
def _haar_inverse(approx, bands, thresholds, soft, out, z_offset, y_offset, active_z, active_y, lo, hi):
    """Inverse of :func:`_haar_forward` with ``approx`` as sub-band 0, cropped to
    ``out``'s shape, for the band rows ``lo:hi`` (as in the forward pass); the
    rows of a tile's bands go to ``out``'s planes and rows from ``z_offset`` and ``y_offset``.

    Each detail coefficient of band ``b`` is thresholded at ``thresholds[b]``
    as it is read (:func:`_shrunk`); the bands are left as they were. Each
    band row writes its 1, 2 or 4 output rows through row views (one loop
    per number of active axes, the last sample of an odd row apart); an
    output row past the end of an odd axis is written to a scratch row.
    """
    nz, ny, nx = out.shape
    my, mx = bands.shape[2], bands.shape[3]
    pairs = nx // 2  # blocks with both samples along axis 2 inside
    scratch = np.empty((3, nx), out.dtype)
    t = thresholds
    for r in range(lo, hi):
        k = r // my
        j = r - k * my
        z0 = z_offset + (2 * k if active_z else k)
        y0 = y_offset + (2 * j if active_y else j)
        o00 = out[z0, y0]
        if active_z and active_y:
            o01 = out[z0, y0 + 1] if y0 + 1 < ny else scratch[0]
            o10 = out[z0 + 1, y0] if z0 + 1 < nz else scratch[1]
            o11 = out[z0 + 1, y0 + 1] if z0 + 1 < nz and y0 + 1 < ny else scratch[2]
            _inverse_row_3d(approx[k, j], bands[1, k, j], bands[2, k, j], bands[3, k, j], bands[4, k, j],
                            bands[5, k, j], bands[6, k, j], bands[7, k, j], t[1], t[2], t[3], t[4], t[5], t[6],
                            t[7], soft, o00, o01, o10, o11, pairs, mx)
        elif active_y:
            o01 = out[z0, y0 + 1] if y0 + 1 < ny else scratch[0]
            _inverse_row_2d(approx[k, j], bands[1, k, j], bands[2, k, j], bands[3, k, j], t[1], t[2], t[3], soft,
                            o00, o01, pairs, mx)
        else:
            _inverse_row_1d(approx[k, j], bands[1, k, j], t[1], soft, o00, pairs, mx)


@numba.njit(cache=True, nogil=True, inline="always")
def _put_pair(row, i, pairs, first, second):
    """Samples ``2i`` and ``2i + 1`` of ``row`` (the second dropped past the end)."""
    row[2 * i] = first
    if i < pairs:
        row[2 * i + 1] = second


@jit
def _inverse_row_1d(ll_row, lh_row, t1, soft, o00, pairs, mx):
    s = _S
    for i in range(mx):
        ll = ll_row[i]
        lh = _shrunk(lh_row[i], t1, soft)
        _put_pair(o00, i, pairs, (ll + lh) * s, (ll - lh) * s)


@numba.njit(cache=True, nogil=True, inline="always")
def _unbutterfly_2d(ll, lh, hl, hh):
    """The four samples of a 2×2 block from its sub-bands (along axis 2, then axis 1)."""
    s = _S
    a000, a001 = (ll + lh) * s, (ll - lh) * s
    a010, a011 = (hl + hh) * s, (hl - hh) * s
    return (a000 + a010) * s, (a001 + a011) * s, (a000 - a010) * s, (a001 - a011) * s


@jit
def _inverse_row_2d(ll_row, lh_row, hl_row, hh_row, t1, t2, t3, soft, o00, o01, pairs, mx):
    for i in range(pairs):
        a000, a001, a010, a011 = _unbutterfly_2d(ll_row[i], _shrunk(lh_row[i], t1, soft),
                                                 _shrunk(hl_row[i], t2, soft), _shrunk(hh_row[i], t3, soft))
        o00[2 * i] = a000
        o00[2 * i + 1] = a001
        o01[2 * i] = a010
        o01[2 * i + 1] = a011
    for i in range(pairs, mx):
        a000, a001, a010, a011 = _unbutterfly_2d(ll_row[i], _shrunk(lh_row[i], t1, soft),
                                                 _shrunk(hl_row[i], t2, soft), _shrunk(hh_row[i], t3, soft))
        _put_pair(o00, i, pairs, a000, a001)
        _put_pair(o01, i, pairs, a010, a011)


@numba.njit(cache=True, nogil=True, inline="always")
def _unbutterfly_3d(ll, lh, hl, hh, b4, b5, b6, b7):
    """The eight samples of a 2×2×2 block from its sub-bands (along axes 2, 1, then 0)."""
    s = _S
    a000, a001, a010, a011 = _unbutterfly_2d(ll, lh, hl, hh)
    a100, a101, a110, a111 = _unbutterfly_2d(b4, b5, b6, b7)
    return ((a000 + a100) * s, (a001 + a101) * s, (a010 + a110) * s, (a011 + a111) * s,
            (a000 - a100) * s, (a001 - a101) * s, (a010 - a110) * s, (a011 - a111) * s)


@jit
def _inverse_row_3d(ll_row, r1, r2, r3, r4, r5, r6, r7, t1, t2, t3, t4, t5, t6, t7, soft, o00, o01, o10, o11,
                    pairs, mx):
    for i in range(pairs):
        a000, a001, a010, a011, a100, a101, a110, a111 = _unbutterfly_3d(
            ll_row[i], _shrunk(r1[i], t1, soft), _shrunk(r2[i], t2, soft), _shrunk(r3[i], t3, soft),
            _shrunk(r4[i], t4, soft), _shrunk(r5[i], t5, soft), _shrunk(r6[i], t6, soft),
            _shrunk(r7[i], t7, soft))
        o00[2 * i] = a000
        o00[2 * i + 1] = a001
        o01[2 * i] = a010
        o01[2 * i + 1] = a011
        o10[2 * i] = a100
        o10[2 * i + 1] = a101
        o11[2 * i] = a110
        o11[2 * i + 1] = a111
    for i in range(pairs, mx):
        a000, a001, a010, a011, a100, a101, a110, a111 = _unbutterfly_3d(
            ll_row[i], _shrunk(r1[i], t1, soft), _shrunk(r2[i], t2, soft), _shrunk(r3[i], t3, soft),
            _shrunk(r4[i], t4, soft), _shrunk(r5[i], t5, soft), _shrunk(r6[i], t6, soft),
            _shrunk(r7[i], t7, soft))
        _put_pair(o00, i, pairs, a000, a001)
        _put_pair(o01, i, pairs, a010, a011)
        _put_pair(o10, i, pairs, a100, a101)
        _put_pair(o11, i, pairs, a110, a111)


@jit
def _shrink(flat, threshold, soft):
    """:func:`_shrunk` of every value of ``flat``, in place."""
    t = np.float32(threshold)
    for i in range(flat.size):
        flat[i] = _shrunk(flat[i], t, soft)


@numba.njit(cache=True, nogil=True, fastmath={"reassoc"})
def _sum_squares(flat):
    """``Σ flat²`` in float64 (BayesShrink's statistic; one band row in the Haar forward pass).

    Reassociation allowed (and nothing else of fast-math: NaN still gives
    NaN): the compiler sums in vector lanes and adds them at the end, 3-6×
    faster than one chain of dependent additions, which took more of a
    3-D forward pass than the transform itself. The order depends only on
    the row's length, so the thresholds do not depend on the threads.
    """
    s = 0.0
    for i in range(flat.size):
        v = np.float64(flat[i])
        s += v * v
    return s


@jit
def _band_threshold(mean_square, visu, sigma, size):
    """BayesShrink's per-band threshold or VisuShrink's universal one (scikit-image's formulas)."""
    if visu:
        return sigma * np.sqrt(2 * np.log(size))
    var = sigma * sigma
    return var / np.sqrt(max(mean_square - var, np.float64(np.finfo(np.float32).eps)))


# A slice (its tiles, and the rows of cycle spinning's shifts and sums) is shared among
# threads only when each thread gets this many values (about 1 ms of work on one core):
# starting the threads and handing them their pieces cost 0.2-0.7 ms here, so a
# 1024 x 1024 slice and anything smaller runs on the calling thread.
_MIN_VALUES_PER_THREAD = 1 << 20

# Values in one tile (see _tile_plan): 64 Ki float32 = 256 KB, so that a tile and its
# sub-bands stay in a core's 512 KB L2 cache between the transform and its inverse.
_TILE_VALUES = 1 << 16
# On one thread a float32 slice is tiled only from this many values (32 MB, the L3 cache
# here): a smaller one's sub-bands stay in L3 anyway, and the tiles' copies and second
# forward transform cost more (1024 x 1024: 0.76 ms untiled, 1.2 ms tiled; 64 x 256 x 256:
# 7.1 and 9.1 ms). Another dtype is converted to float32 to be transformed untiled, which
# is worth it only up to 2 Mi values (a 4 Mi uint16 slice: 11.5 ms converted, 4.6 ms tiled).
# Several threads always tile: each then works on its own tiles, with no hand-off between
# levels.
_MIN_TILED_VALUES = 1 << 23
_MIN_TILED_CONVERTED_VALUES = 1 << 21


def _on_rows(team, function, rows, row_length, *args):
    """``function(*args, lo, hi)`` over ``range(rows)``, cut into one piece per thread."""
    parts = max(1, min(team.threads, rows * row_length // _MIN_VALUES_PER_THREAD))
    team.map(function, [args + piece for piece in split_evenly(rows, parts)])


@functools.lru_cache(maxsize=256)
def default_levels(shape, wavelet_name):
    """scikit-image's default: three fewer levels than the maximum, at least one.

    Cached: the frames of a time-lapse share it, and PyWavelets takes 17 µs
    for it, a twentieth of a small frame's whole denoising.
    """
    import pywt

    return max(pywt.dwtn_max_level(shape, pywt.Wavelet(wavelet_name)) - 3, 1)


def denoise_wavelet(block, sigma, *, wavelet_name="db1", threshold_mode="soft", method="BayesShrink",
                    wavelet_levels=None, out=None, threads=1, token=None):
    """``skimage.restoration.denoise_wavelet(block, sigma, ...)`` of a float block, as float32.

    ``block`` is one 1-D to 3-D slice (any real dtype, read as float32);
    ``sigma`` the noise standard deviation (> 0). Returns ``out`` (filled) or
    a new float32 array. ``threads`` threads share the tiles of the Haar
    transform (its small coarse levels run on the calling thread); the
    result does not depend on their number. A tiled transform stops between tiles once
    ``token`` (a kernel token, optional) is cancelled; what it returns then
    is unfinished.
    """
    levels = default_levels(block.shape, wavelet_name) if wavelet_levels is None else int(wavelet_levels)
    with Team(_threads_for(block, wavelet_name, threads)) as team:
        return _denoise(block, sigma, levels, threshold_mode == "soft", method, wavelet_name, out, team,
                        _flag_of(token))


def cycle_spin(block, sigma, shifts, *, wavelet_name="db1", threshold_mode="soft", method="BayesShrink",
               wavelet_levels=None, out=None, threads=1, token=None):
    """The mean of :func:`denoise_wavelet` of ``block`` circularly shifted by each of
    ``shifts`` (tuples, one entry per axis, the first all zeros) and shifted back,
    as ``skimage.restoration.cycle_spin``; float32, summed in float64.

    The Haar wavelet on a slice of 1 Mi values or more takes each shift
    through its tiles (:func:`_cycle_spin_in_tiles`). Otherwise the shifted
    copies and the shrinkages go through two reused buffers, and the sum is
    taken row by row in compiled loops that read the shifted rows in place
    (``np.roll`` allocated two arrays per shift and summed through numpy's
    casting loops: 2/3 of a cycle-spun 1024×1024 call). With a ``token``,
    progress is reported after each shift and ``None`` returned once it is
    cancelled.
    """
    levels = default_levels(block.shape, wavelet_name) if wavelet_levels is None else int(wavelet_levels)
    soft = threshold_mode == "soft"
    result = np.empty(block.shape, np.float32) if out is None else out
    if spins_in_tiles(block.shape, wavelet_name, levels, len(shifts)):
        return _cycle_spin_in_tiles(block, sigma, shifts, levels, soft, method, result, threads, token)
    source = as_3d(block)
    rows = source.shape[0] * source.shape[1]
    shifted = np.empty_like(source)
    denoised = np.empty(source.shape, np.float32)
    total = np.empty(source.shape, np.float64)
    in_place = result.flags.c_contiguous  # the last sum is written straight into it
    target = as_3d(result) if in_place else np.empty(source.shape, np.float32)
    with Team(_threads_for(block, wavelet_name, threads)) as team:
        for done, shift in enumerate(shifts):
            if token is not None and token.cancelled:
                return None
            shift3 = (0,) * (3 - block.ndim) + tuple(shift)
            if any(shift):
                _on_rows(team, _rolled_rows, rows, source.shape[2], source, *shift3, shifted)
            _denoise(shifted.reshape(block.shape) if any(shift) else block, sigma, levels, soft, method, wavelet_name,
                     denoised.reshape(block.shape), team, _flag_of(token))
            if token is not None and token.cancelled:
                return None
            if done == 0:
                total[...] = denoised  # the first shift is none
            else:
                last = done == len(shifts) - 1
                _on_rows(team, _add_rolled_rows, rows, source.shape[2], total, denoised, *shift3,
                         np.float64(1.0 / len(shifts)), target if last else target[:0])
            if token is not None:
                token.report(done + 1, len(shifts))
    if len(shifts) == 1:
        target[...] = total
    if not in_place:
        result[...] = target.reshape(result.shape)
    return result


def spins_in_tiles(shape, wavelet_name, levels, shifts: int) -> bool:
    """Whether :func:`cycle_spin` of a slice of ``shape`` over ``shifts`` shifts takes
    them through the Haar transform's tiles (:func:`_cycle_spin_in_tiles`) rather than
    through whole shifted copies (``levels``: the transform's, None for the default).

    From :data:`_MIN_VALUES_PER_THREAD` values: a smaller slice's copies stay in
    cache, and its tiles cost more than they save (16×128×128, one level: 4.9 ms
    with copies, 8–14 ms in tiles; 511×511 1.7 against 2.3 ms), while a larger
    one gains (1024×1024 15 → 9 ms, 64×256×256 on two threads 99–104 → 66–94 ms).
    """
    if wavelet_name not in HAAR_NAMES or not 2 <= len(shape) <= 3 or shifts < 2:
        return False
    levels = default_levels(tuple(shape), wavelet_name) if levels is None else levels
    return levels >= 1 and math.prod(shape) >= _MIN_VALUES_PER_THREAD


def _cycle_spin_in_tiles(block, sigma, shifts, levels, soft, method, result, threads, token):
    """:func:`cycle_spin` of the Haar wavelet, each shift one tiled transform
    (:func:`_haar_tiles`) that reads the slice at its rolled places and adds its
    reconstruction, tile by tile, to the float64 sum at the unshifted places.

    The same sums in the same order as the copies' path, so the same values bit
    for bit; but the slice's shifted copy and each shift's full-size shrinkage
    (two float32 arrays of the slice, written and read back per shift) are gone.
    """
    source = as_3d(block)
    active_z = block.ndim == 3
    total = np.empty(source.shape, np.float64)
    in_place = result.flags.c_contiguous
    final = as_3d(result) if in_place else np.empty(source.shape, np.float32)
    scale = np.float64(1.0 / len(shifts))
    flag = _flag_of(token)
    with Team(_threads_for(block, "db1", threads)) as team:
        layout = _layout(source.shape, levels, active_z, True, team.threads, source.dtype == np.float32, True)
        for done, shift in enumerate(shifts):
            if token is not None and token.cancelled:
                return None
            mode = _SPIN_SET if done == 0 else _SPIN_LAST if done == len(shifts) - 1 else _SPIN_ADD
            shift3 = np.array((0,) * (3 - block.ndim) + tuple(shift), np.int64)
            _haar_tiles(source, final, layout, active_z, sigma, method, soft, team, flag,
                        (shift3, total, final, scale, mode))
            if token is not None and token.cancelled:
                return None
            if token is not None:
                token.report(done + 1, len(shifts))
    if not in_place:
        result[...] = final.reshape(result.shape)
    return result


def _threads_for(block, wavelet_name, threads):
    """Threads worth starting for ``block``: for the Haar transform, one below
    :data:`_MIN_VALUES_PER_THREAD` each; the filter bank's passes share out their
    lines by their own (smaller) measure, as their work per value is larger."""
    if wavelet_name not in HAAR_NAMES or not 1 <= block.ndim <= 3:
        return threads
    return 1 if block.size < threads * _MIN_VALUES_PER_THREAD else threads


_NEVER = np.zeros(1, np.uint8)  # the cancel flag of a call without a token


def _flag_of(token):
    return _NEVER if token is None else token.flag


def _denoise(block, sigma, levels, soft, method, wavelet_name, out, team, flag):
    if wavelet_name in HAAR_NAMES and 1 <= block.ndim <= 3:
        result = _haar_denoise(block, sigma, levels, soft, method, out, team, flag)
    else:
        result = _filter_bank_denoise(block, sigma, wavelet_name, levels, soft, method, team, flag)
        if result is None:  # cancelled
            return out if out is not None else np.zeros(block.shape, np.float32)
    if out is not None and result is not out:
        out[...] = result
        return out
    return result


def _tile_plan(shape, levels: int, active_z: bool, active_y: bool, threads: int,
               float32: bool = True, always: bool = False) -> tuple[int, int, int]:
    """``(depth, side, tiles)``: the slice (as 3-D) is cut into ``tiles`` tiles
    of ``side = 2**depth`` rows along axis 1 (and planes along axis 0 in 3-D)
    by the whole last axis, each transformed ``depth`` levels on its own;
    ``(0, 0, 0)`` for no tiles (1-D, or small enough for one thread; see
    :data:`_MIN_TILED_VALUES`, which applies to ``float32`` slices; ``always``
    tiles any slice of two or more axes, as a cycle-spinning step needs).

    The Haar transform of ``2**depth`` samples needs no others for ``depth``
    levels, so a tile starting at multiples of ``2**depth`` gets exactly the
    coefficients of the whole slice's transform there. ``depth`` is the
    largest (at least 1, at most ``levels``) whose tile holds at most
    :data:`_TILE_VALUES` values.
    """
    smallest = _MIN_TILED_VALUES if float32 else _MIN_TILED_CONVERTED_VALUES
    if not active_y or levels < 1 or (not always and threads == 1 and math.prod(shape) < smallest):
        return 0, 0, 0
    depth = 1
    while depth < levels and (2 << depth) ** (2 if active_z else 1) * shape[2] <= _TILE_VALUES:
        depth += 1
    side = 1 << depth
    tiles = -(-shape[1] // side) * (-(-shape[0] // side) if active_z else 1)
    return depth, side, tiles


@functools.lru_cache(maxsize=64)
def _layout(shape, levels: int, active_z: bool, active_y: bool, threads: int, float32: bool, always: bool = False):
    """A slice's level shapes, tile plan (:func:`_tile_plan`) and the offsets of each
    level in the sub-band and row-sum buffers: ``(shapes, level_shapes, depth, side,
    tiles, band_offsets, square_offsets)``.

    Cached (the arrays are only read): the frames of a time-lapse share it, and
    building it took a fifth of a 511×511 frame's Python, all of it holding the GIL.
    """
    nb = 2 ** (1 + active_y + active_z)
    shapes = [shape]
    for _ in range(levels):
        a = shapes[-1]
        shapes.append(((a[0] + 1) // 2 if active_z else a[0], (a[1] + 1) // 2 if active_y else a[1],
                       (a[2] + 1) // 2))
    level_shapes = np.array(shapes[1:], np.int64).reshape(-1, 3)
    depth, side, tiles = _tile_plan(shape, levels, active_z, active_y, threads, float32, always)
    # the coarse levels' sub-bands (the tiles' are their own), and every level's row sums of
    # squares, in one buffer each: offsets for the compiled code
    band_sizes = [nb * math.prod(s) if level >= depth else 0 for level, s in enumerate(shapes[1:])]
    square_sizes = [nb * s[0] * s[1] for s in shapes[1:]]
    band_offsets = np.array([0, *itertools.accumulate(band_sizes)], np.int64)
    square_offsets = np.array([0, *itertools.accumulate(square_sizes)], np.int64)
    return shapes, level_shapes, depth, side, tiles, band_offsets, square_offsets


def _haar_denoise(block, sigma, levels, soft, method, out, team, flag):
    """Haar wavelet shrinkage of ``block``, level by level or in two passes over tiles.

    Tiled (:func:`_tile_plan`), the finest ``depth`` levels are computed tile
    by tile in a small buffer that stays in cache: a first pass keeps only
    their row sums of squares (BayesShrink's statistics) and each tile's
    level-``depth`` approximation; the coarse levels of that approximation
    are transformed, thresholded and inverted whole (they are ``4**depth`` or
    ``8**depth`` times smaller); a second pass transforms each tile again,
    puts the reconstructed approximation in, and inverts it, thresholding as
    it reads, straight into the output. The fine sub-bands are never stored
    for the whole slice: the input is read twice and the output written
    once, instead of sub-bands as large as the slice written and read back,
    and threads share tiles, not the rows of each level. Same values, bit for
    bit, as transforming the slice level by level.
    """
    nd = block.ndim
    nb = 2**nd
    active_z, active_y = nd == 3, nd >= 2
    source = as_3d(block)
    target = None
    if out is not None and out.dtype == np.float32 and out.flags.c_contiguous:
        target = out.reshape(source.shape)
    result = np.empty(source.shape, np.float32) if target is None else target
    if levels == 0:
        result[...] = source
        return result.reshape(block.shape)
    layout = _layout(source.shape, levels, active_z, active_y, team.threads, source.dtype == np.float32)
    if not layout[2]:  # depth 0: untiled
        # level by level, on one thread, through the same compiled code as the coarse levels
        whole = source
        if source.dtype != np.float32 or not source.flags.c_contiguous:
            whole = work_array("wavelet input", source.shape)
            whole[...] = source
        _, level_shapes, _, _, _, band_offsets, square_offsets = layout
        flat_bands, flat_squares, thresholds = _shrinkage_buffers(layout, nb)
        for reconstruct in (False, True):
            _coarse_levels(whole, flat_bands, band_offsets, flat_squares, square_offsets, level_shapes, 0, active_z,
                           active_y, np.float64(sigma), method == "VisuShrink", block.size, soft, thresholds, result,
                           reconstruct)
        return result.reshape(block.shape)
    _haar_tiles(source, result, layout, active_z, sigma, method, soft, team, flag, _NO_SPIN)
    return result.reshape(block.shape)


def _shrinkage_buffers(layout, nb):
    """``(flat_bands, flat_squares, thresholds)`` for a slice of ``layout`` (:func:`_layout`)
    with ``nb`` sub-bands per level: the stored levels' sub-bands (this thread's work array:
    the frames of a time-lapse reuse it instead of faulting in fresh pages for each, see
    scratch), every level's row sums of squares, and each level's band thresholds."""
    shapes, _, _, _, _, band_offsets, square_offsets = layout
    return (work_array("wavelet bands", (int(band_offsets[-1]),)), np.zeros(int(square_offsets[-1]), np.float64),
            np.zeros((len(shapes) - 1, nb), np.float32))


# How a tile's reconstruction is used (the last argument of _tile_pass): written to the
# output (plain shrinkage), or one step of cycle spinning, taken into its float64 sum at the
# unshifted places: the first shift sets the sum, the others add to it, and the last writes
# (sum + its own) × 1/len(shifts) into the output instead.
_WRITE, _SPIN_SET, _SPIN_ADD, _SPIN_LAST = 0, 1, 2, 3
# plain shrinkage: no shift, no sum
_NO_SPIN = (np.zeros(3, np.int64), np.empty((0, 0, 0), np.float64), np.empty((0, 0, 0), np.float32),
            np.float64(1.0), _WRITE)


def _haar_tiles(source, result, layout, active_z, sigma, method, soft, team, flag, spin):
    """The tiled transform of :func:`_haar_denoise` (``layout`` from :func:`_layout`,
    with tiles) of the 3-D ``source``, into ``result`` or, for a cycle-spinning step,
    read shifted and taken into the sum as ``spin = (shift, total, final, scale, mode)``
    says (see :data:`_WRITE`)."""
    shapes, level_shapes, depth, side, tiles, band_offsets, square_offsets = layout
    flat_bands, flat_squares, thresholds = _shrinkage_buffers(layout, 8 if active_z else 4)  # tiles: 2+ axes
    visu = method == "VisuShrink"
    sigma = np.float64(sigma)
    size = math.prod(shapes[0])
    # the level-`depth` approximation: the tiles' first pass writes it, the coarse levels
    # transform it and put its reconstruction back, the second pass reads that
    coarse = np.empty(shapes[depth], np.float32)

    def tile_pass(first, stop, reconstruct):
        _tile_pass(source, result, coarse, flat_squares, square_offsets, level_shapes, thresholds, depth, side,
                   first, stop, active_z, soft, reconstruct, flag, *spin)

    pieces = split_evenly(tiles, team.threads)
    team.map(tile_pass, [(first, stop, False) for first, stop in pieces])
    if flag[0]:
        return  # cancelled: unfinished, and dropped by the caller
    # The coarse levels on this thread: at most 1/8 of the slice (1/64 or less but for rows of
    # more than 16 Ki values), while a hand-off per level and direction costs up to a
    # millisecond. These are separate compiled calls, not one (numba would compile the tile
    # pass and the coarse levels again inside it: 10 s more for a first call).
    for reconstruct in (False, True):
        _coarse_levels(coarse, flat_bands, band_offsets, flat_squares, square_offsets, level_shapes, depth, active_z,
                       True, sigma, visu, size, soft, thresholds, coarse, reconstruct)
    team.map(tile_pass, [(first, stop, True) for first, stop in pieces])


@jit
def _thresholds(flat_squares, square_offsets, level_shapes, sigma, visu, size, thresholds):
    """Each level's and detail band's threshold from the row sums of squares of its band.

    The row sums are added in row order: the same thresholds whatever the
    number of threads that computed the rows.
    """
    levels, nb = thresholds.shape
    for level in range(levels):
        band_size = level_shapes[level, 0] * level_shapes[level, 1] * level_shapes[level, 2]
        rows = (square_offsets[level + 1] - square_offsets[level]) // nb
        for b in range(1, nb):
            start = square_offsets[level] + b * rows
            total = 0.0
            for r in range(rows):
                total += flat_squares[start + r]
            thresholds[level, b] = _band_threshold(total / band_size, visu, sigma, size)


@jit
def _tile_pass(source, result, coarse, flat_squares, square_offsets, level_shapes, thresholds, depth, side,
               first, stop, active_z, soft, reconstruct, flag, shift, total, final, scale, mode):
    """Tiles ``first:stop`` of :func:`_haar_denoise`, first (``reconstruct``
    False) or second pass.

    A tile is ``side = 2**depth`` rows along axis 1 (and as many planes
    along axis 0 in 3-D) by the whole of the last axis; tiles are numbered
    row-major over (axis 0, axis 1). Each tile is copied as float32 into a
    small buffer, and its ``depth`` levels go into another, both sized for a
    tile and reused from tile to tile. First pass: the tile's rows of each
    level's sums of squares go to ``flat_squares`` and its approximation to
    ``coarse``. Second pass: the same transform (without the sums), the
    tile's part of ``coarse`` (reconstructed by then) as its approximation,
    and the inverse into ``result``.

    The transforms see only float32 arrays, through one call each: numba
    compiles the row kernels once, not once per input dtype and call (which
    had made a first call compile for 24 s).

    A cycle-spinning step (``mode`` other than :data:`_WRITE`) reads ``source``
    as ``np.roll(source, shift)`` (each tile row copied from its rolled place,
    in two pieces) and takes each reconstructed tile into ``total`` at its
    unshifted places (:func:`_spin_rows`): no shifted copy of the slice and
    no full-size shrinkage are written or read back.
    """
    nb = 8 if active_z else 4
    nz, ny, nx = source.shape
    tiles_y = -(-ny // side)
    z_rows = np.empty(depth + 1, np.int64)  # a tile's extent along axes 0 and 1, per level
    y_rows = np.empty(depth + 1, np.int64)
    z_rows[0], y_rows[0] = (side if active_z else 1), side
    band_starts = np.zeros(depth + 1, np.int64)  # each level's place in the tile's buffer
    for level in range(depth):
        z_rows[level + 1] = (z_rows[level] + 1) // 2 if active_z else 1
        y_rows[level + 1] = (y_rows[level] + 1) // 2
        band_starts[level + 1] = band_starts[level] + nb * z_rows[level + 1] * y_rows[level + 1] * level_shapes[level, 2]
    buffer = np.empty(band_starts[depth], np.float32)
    kx = shift[2] % nx
    tile_values = np.empty(z_rows[0] * y_rows[0] * nx, np.float32)
    tile_squares = np.empty(nb * z_rows[1] * y_rows[1], np.float64)
    for tile in range(first, stop):
        if flag[0]:
            return  # cancelled: a large slice stops within a tile, not after both passes
        z_start = (tile // tiles_y) * side if active_z else 0
        y_start = (tile % tiles_y) * side
        z_rows[0] = min(side, nz - z_start) if active_z else 1
        y_rows[0] = min(side, ny - y_start)
        for level in range(depth):
            z_rows[level + 1] = (z_rows[level] + 1) // 2 if active_z else 1
            y_rows[level + 1] = (y_rows[level] + 1) // 2
        finer = tile_values[:z_rows[0] * y_rows[0] * nx].reshape((z_rows[0], y_rows[0], nx))
        tile = finer  # the tile at full resolution: its input, and a spinning step's reconstruction
        for k in range(z_rows[0]):
            for j in range(y_rows[0]):
                row = source[(z_start + k - shift[0]) % nz, (y_start + j - shift[1]) % ny]
                _copy(row[:nx - kx], finer[k, j, kx:])
                _copy(row[nx - kx:], finer[k, j, :kx])
        for level in range(depth):
            z, y, x = z_rows[level + 1], y_rows[level + 1], level_shapes[level, 2]
            bands = buffer[band_starts[level]:band_starts[level] + nb * z * y * x].reshape((nb, z, y, x))
            squares = tile_squares[:nb * z * y].reshape((nb, z * y))
            _haar_forward(finer, 0, 0, bands, squares, not reconstruct, active_z, True, 0, z * y)
            finer = bands[0]
            if not reconstruct:
                # the tile's rows of this level's row sums, at their places in the slice's row order
                level_rows = level_shapes[level, 0] * level_shapes[level, 1]
                first_z, first_y = z_start >> (level + 1), y_start >> (level + 1)
                for b in range(1, nb):
                    for k in range(z):
                        place = square_offsets[level] + b * level_rows + (first_z + k) * level_shapes[level, 1] + first_y
                        flat_squares[place:place + y] = squares[b, k * y:(k + 1) * y]
        # `finer` is now the tile's level-`depth` approximation, a block of `coarse`
        first_z, first_y = z_start >> depth, y_start >> depth
        z, y = z_rows[depth], y_rows[depth]
        if not reconstruct:
            coarse[first_z:first_z + z, first_y:first_y + y] = finer
            continue
        finer[...] = coarse[first_z:first_z + z, first_y:first_y + y]
        for level in range(depth - 1, -1, -1):
            z, y, x = z_rows[level + 1], y_rows[level + 1], level_shapes[level, 2]
            bands = buffer[band_starts[level]:band_starts[level] + nb * z * y * x].reshape((nb, z, y, x))
            target, z_offset, y_offset = result, z_start, y_start
            if mode != _WRITE:
                target, z_offset, y_offset = tile, 0, 0  # its input is no longer read
            if level > 0:
                zf, yf, xf = z_rows[level], y_rows[level], level_shapes[level - 1, 2]
                finer_bands = buffer[band_starts[level - 1]:band_starts[level - 1] + nb * zf * yf * xf]
                target, z_offset, y_offset = finer_bands.reshape((nb, zf, yf, xf))[0], 0, 0
            _haar_inverse(bands[0], bands, thresholds[level], soft, target, z_offset, y_offset, active_z, True, 0,
                          z * y)
        if mode != _WRITE:
            _spin_rows(tile, z_start, y_start, shift, total, final, scale, mode)


@jit
def _coarse_levels(source, flat_bands, band_offsets, flat_squares, square_offsets, level_shapes, first_level,
                   active_z, active_y, sigma, visu, size, soft, thresholds, result, reconstruct):
    """Levels ``first_level:`` of ``source`` (float32: the level-``first_level``
    approximation, or the slice itself), whole, on one thread: the forward
    transform and every level's thresholds, or (``reconstruct``) the inverse
    into ``result`` (one call site each, as in :func:`_tile_pass`)."""
    levels, nb = thresholds.shape
    if not reconstruct:
        finer = source
        for level in range(first_level, levels):
            z, y, x = level_shapes[level, 0], level_shapes[level, 1], level_shapes[level, 2]
            bands = flat_bands[band_offsets[level]:band_offsets[level + 1]].reshape((nb, z, y, x))
            squares = flat_squares[square_offsets[level]:square_offsets[level + 1]].reshape((nb, z * y))
            _haar_forward(finer, 0, 0, bands, squares, True, active_z, active_y, 0, z * y)
            finer = bands[0]
        _thresholds(flat_squares, square_offsets, level_shapes, sigma, visu, size, thresholds)
        return
    for level in range(levels - 1, first_level - 1, -1):
        z, y, x = level_shapes[level, 0], level_shapes[level, 1], level_shapes[level, 2]
        bands = flat_bands[band_offsets[level]:band_offsets[level + 1]].reshape((nb, z, y, x))
        target = result
        if level > first_level:
            zf, yf, xf = level_shapes[level - 1, 0], level_shapes[level - 1, 1], level_shapes[level - 1, 2]
            target = flat_bands[band_offsets[level - 1]:band_offsets[level]].reshape((nb, zf, yf, xf))[0]
        _haar_inverse(bands[0], bands, thresholds[level], soft, target, 0, 0, active_z, active_y, 0, z * y)


def _filter_bank_denoise(block, sigma, wavelet_name, levels, soft, method, team, flag):
    """Any other wavelet, through the compiled filter bank (:mod:`.filter_bank`), whose
    coefficients are ``pywt.wavedecn``'s and reconstruction ``pywt.waverecn``'s, bit for bit;
    None once ``flag[0]`` is set."""
    image = np.asarray(block, dtype=np.float32)
    coeffs = filter_bank.wavedecn(image, wavelet_name, levels, team, flag)
    if coeffs is None:
        return None
    for detail in coeffs[1:]:
        for band in detail.values():
            flat = band.reshape(-1)  # the bands are C-contiguous: a view
            mean_square = _sum_squares(flat) / max(1, flat.size)
            _shrink(flat, _band_threshold(mean_square, method == "VisuShrink", float(sigma), image.size), soft)
    return filter_bank.waverecn(coeffs, wavelet_name, image.shape, team, flag)


# -- cycle spinning -----------------------------------------------------------------------------
@jit
def _rolled_rows(src, shift_z, shift_y, shift_x, dst, lo, hi):
    """``dst = np.roll(src, (shift_z, shift_y, shift_x))`` for the rows ``lo:hi`` of ``dst`` (3-D).

    Each row is two copies between views that start at index 0 (a loop
    indexed ``x - k`` was not vectorised: 0.72 against 0.09 ms on 1024²).
    """
    nz, ny, nx = dst.shape
    k = shift_x % nx
    for r in range(lo, hi):
        z, y = r // ny, r % ny
        s = src[(z - shift_z) % nz, (y - shift_y) % ny]
        d = dst[z, y]
        _copy(s[:nx - k], d[k:])
        _copy(s[nx - k:], d[:k])


@numba.njit(cache=True, nogil=True, inline="always")
def _copy(src, dst):
    for x in range(dst.size):
        dst[x] = src[x]


@jit
def _add_rolled_rows(total, src, shift_z, shift_y, shift_x, scale, out, lo, hi):
    """``total += np.roll(src, -shift)`` (float64) for the rows ``lo:hi``; with an ``out``
    (non-empty), ``out = (total + np.roll(src, -shift)) * scale`` instead, ``total`` unchanged."""
    nz, ny, nx = total.shape
    k = shift_x % nx
    mode = _SPIN_LAST if out.size > 0 else _SPIN_ADD
    for r in range(lo, hi):
        z, y = r // ny, r % ny
        _into_sum(total, out, z, y, src[(z + shift_z) % nz, (y + shift_y) % ny], k, mode, scale)


@jit
def _spin_rows(tile, z_start, y_start, shift, total, final, scale, mode):
    """A cycle-spinning step's reconstructed tile (rows of the shifted slice from
    ``(z_start, y_start)``) into the float64 ``total`` at its unshifted places, as
    :func:`_add_rolled_rows` takes a whole shifted shrinkage (:func:`_into_sum`)."""
    nz, ny, nx = total.shape
    k = shift[2] % nx
    for a in range(tile.shape[0]):
        for b in range(tile.shape[1]):
            z, y = (z_start + a - shift[0]) % nz, (y_start + b - shift[1]) % ny
            _into_sum(total, final, z, y, tile[a, b], k, mode, scale)


@numba.njit(cache=True, nogil=True, inline="always")
def _into_sum(total, final, z, y, row, k, mode, scale):
    """One row of a shift's shrinkage, read ``k`` samples on along the row, into row
    ``(z, y)`` of the float64 sum: set (``_SPIN_SET``), added (``_SPIN_ADD``), or
    ``final[z, y] = (total[z, y] + row) * scale`` with the sum unchanged (``_SPIN_LAST``).

    Two segments per row, as views from index 0 (see :func:`_rolled_rows`).
    """
    t = total[z, y]
    n = t.size
    if mode == _SPIN_SET:
        _set(t[:n - k], row[k:])
        _set(t[n - k:], row[:k])
    elif mode == _SPIN_ADD:
        _add(t[:n - k], row[k:])
        _add(t[n - k:], row[:k])
    else:
        o = final[z, y]
        _scaled_sum(t[:n - k], row[k:], scale, o[:n - k])
        _scaled_sum(t[n - k:], row[:k], scale, o[n - k:])


@numba.njit(cache=True, nogil=True, inline="always")
def _set(total, src):
    for x in range(total.size):
        total[x] = np.float64(src[x])


@numba.njit(cache=True, nogil=True, inline="always")
def _add(total, src):
    for x in range(total.size):
        total[x] += np.float64(src[x])


@numba.njit(cache=True, nogil=True, inline="always")
def _scaled_sum(total, src, scale, out):
    for x in range(total.size):
        out[x] = (total[x] + np.float64(src[x])) * scale
