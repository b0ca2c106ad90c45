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
* other wavelets use PyWavelets for the transforms, as scikit-image does;
* the forward pass also sums the squares of each detail band row by row
  (BayesShrink's statistics), and the inverse pass thresholds each detail
  coefficient as it reads it, so a level costs two passes over memory; the
  rows of a level are shared among threads, and the result does not depend
  on their number (row sums are added in order); soft thresholding is
  ``sign(d) max(|d| - t, 0)``, which equals PyWavelets' ``d (1 - t / |d|)``
  to rounding but gives 0 (not NaN) for a zero coefficient when ``t = 0``:
  a noise-free image is returned unchanged instead of NaN;
* both passes work row by row on row views, with one loop per number of
  transformed axes and the last sample of an odd row apart, so that their
  loops have no branch or clamped index, and the soft threshold is a select
  (the sign of a noise coefficient defeats a branch predictor): 1024×1024 in
  1.8 ms instead of 13 ms on one core, bit for bit the same values.

Results agree with scikit-image to float32 precision. Work memory: the
coefficients (about 1.15 float32 arrays of the slice for Haar in 3-D, 1.34
in 2-D); everything runs without the GIL, so independent slices run in
parallel on the scheduler's threads.
"""

from __future__ import annotations

import functools
import itertools
import math

import numba
import numpy as np

from .borders import as_3d, jit
from .threads import Team, split_evenly

__all__ = ["denoise_wavelet", "HAAR_NAMES"]

HAAR_NAMES = ("db1", "haar")
_S = np.float32(1.0 / math.sqrt(2.0))  # pywt's Haar filter taps in float32


@jit
def _haar_forward(src, bands, squares, active_z, active_y, lo, hi):
    """One Haar level of ``src`` (3-D; axes 0, 1 only when active, axis 2 always).

    ``bands[b]`` receives sub-band ``b``: bit 2 of ``b`` set = detail along
    axis 0, bit 1 = along axis 1, bit 0 = along axis 2 (pywt's ``'d'`` keys).
    Only the output rows ``lo:hi`` of the flattened ``(z, y)`` rows of a band
    are written, so that threads can share a level; ``squares[b, r]``
    receives the float64 sum of squares of row ``r`` of band ``b`` (the
    BayesShrink statistics, without a second pass over the bands).

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
        z0 = 2 * k if active_z else k
        z1 = min(z0 + 1, nz - 1) if active_z else z0
        y0 = 2 * j if active_y else j
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
def _haar_inverse(approx, bands, thresholds, soft, out, active_z, active_y, lo, hi):
    """Inverse of :func:`_haar_forward` with ``approx`` as sub-band 0, cropped to
    ``out``'s shape, for the band rows ``lo:hi`` (as in the forward pass).

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
        z0 = 2 * k if active_z else k
        y0 = 2 * j if active_y else j
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


@jit
def _sum_squares(flat):
    """``Σ flat²`` in float64 (BayesShrink's statistic; one band row in the Haar forward pass).

    Four running sums, over every fourth value each, added at the end: one
    sum's chain of dependent additions took most of a Haar level's time.
    """
    s0 = s1 = s2 = s3 = 0.0
    n = flat.size
    quads = n - n % 4
    for i in range(0, quads, 4):
        v0, v1 = np.float64(flat[i]), np.float64(flat[i + 1])
        v2, v3 = np.float64(flat[i + 2]), np.float64(flat[i + 3])
        s0 += v0 * v0
        s1 += v1 * v1
        s2 += v2 * v2
        s3 += v3 * v3
    for i in range(quads, n):
        v = np.float64(flat[i])
        s0 += v * v
    return (s0 + s1) + (s2 + s3)


@jit
def _band_threshold(mean_square, visu, sigma, size):
    """BayesShrink's per-band threshold or VisuShrink's universal one (scikit-image's formulas)."""
    if visu:
        return sigma * np.sqrt(2 * np.log(size))
    var = sigma * sigma
    return var / np.sqrt(max(mean_square - var, np.float64(np.finfo(np.float32).eps)))


# A slice is shared among threads, and a level's rows, only when each thread gets
# this many values (about 1 ms of work on one core): starting the threads and
# handing them their pieces cost 0.3-0.7 ms here, so a 1024 x 1024 slice
# (1.9 ms on one thread, 1.9 ms on two) and anything smaller run as one
# compiled call on the calling thread (512 x 512: 0.67 ms instead of 1.37 ms).
_MIN_VALUES_PER_THREAD = 1 << 20


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
                    wavelet_levels=None, out=None, threads=1):
    """``skimage.restoration.denoise_wavelet(block, sigma, ...)`` of a float block, as float32.

    ``block`` is one 1-D to 3-D slice (any real dtype, read as float32);
    ``sigma`` the noise standard deviation (> 0). Returns ``out`` (filled) or
    a new float32 array. ``threads`` threads share each pass of the Haar
    transform (rows of the sub-bands) and the thresholding; the result does
    not depend on their number.
    """
    shape = block.shape
    levels = default_levels(shape, wavelet_name) if wavelet_levels is None else int(wavelet_levels)
    soft = threshold_mode == "soft"
    if wavelet_name in HAAR_NAMES and 1 <= block.ndim <= 3:
        if block.size < threads * _MIN_VALUES_PER_THREAD:
            threads = 1
        with Team(threads) as team:
            result = _haar_denoise(block, sigma, levels, soft, method, out, team)
    else:
        result = _pywt_denoise(block, sigma, wavelet_name, levels, soft, method)
    if out is not None and result is not out:
        out[...] = result
        return out
    return result


def _strips(extent: int, levels: int, threads: int, values: int):
    """Cut ``extent`` input rows into ``(start, stop)`` strips, one per thread, and the number
    of levels ``depth`` each strip transforms on its own; ``([], 0)`` when not worth it.

    The Haar transform of ``2**depth`` rows needs no other rows for ``depth``
    levels, so strips starting at multiples of ``2**depth`` go through those
    levels, forward and back, without meeting: one hand-off per direction
    instead of one per level and direction (each wakes an idle core, up to a
    millisecond on a virtual machine).
    """
    if threads < 2 or values < threads * _MIN_VALUES_PER_THREAD:
        return [], 0
    depth = min(levels, int(math.log2(max(1, extent // threads))))
    if depth < 1:
        return [], 0
    unit = 1 << depth
    units = -(-extent // unit)
    if units < threads:
        return [], 0
    return [(lo * unit, min(hi * unit, extent)) for lo, hi in split_evenly(units, threads)], depth


def _strip_rows(start, stop, extent_in, extent_out, level, per_row):
    """Band rows (flattened, ``per_row`` rows per step of the split axis) of a strip at ``level``."""
    lo = (start >> level) >> 1
    hi = extent_out if stop == extent_in else (stop >> level) >> 1
    return lo * per_row, hi * per_row


def _haar_denoise(block, sigma, levels, soft, method, out, team):
    nd = block.ndim
    nb = 2**nd
    active_z, active_y = nd == 3, nd >= 2
    source = as_3d(block)
    shapes = [source.shape]
    for _ in range(levels):
        a = shapes[-1]
        shapes.append(((a[0] + 1) // 2 if active_z else a[0], (a[1] + 1) // 2 if active_y else a[1],
                       (a[2] + 1) // 2))
    level_shapes = np.array(shapes[1:], np.int64).reshape(-1, 3)
    # every level's sub-bands and row sums of squares, allocated first (strips write their rows of
    # each), in one buffer each: views of them here, offsets for the compiled serial path
    band_sizes = [nb * math.prod(shape) for shape in shapes[1:]]
    square_sizes = [nb * shape[0] * shape[1] for shape in shapes[1:]]
    band_offsets = np.array([0, *itertools.accumulate(band_sizes)], np.int64)
    square_offsets = np.array([0, *itertools.accumulate(square_sizes)], np.int64)
    flat_bands = np.empty(int(band_offsets[-1]), np.float32)
    flat_squares = np.zeros(int(square_offsets[-1]), np.float64)
    target = None
    if out is not None and out.dtype == np.float32 and out.flags.c_contiguous:
        target = out.reshape(source.shape)
    result = np.empty(source.shape, np.float32) if target is None else target
    visu = method == "VisuShrink"
    thresholds = np.zeros((levels, nb), np.float32)
    if levels == 0:
        result[...] = source
        return result.reshape(block.shape)
    if team.threads == 1:
        # one compiled call: no Python (and no GIL) between the levels of a slice, which
        # counts when many small slices (time points) run on several threads at once
        _haar_serial(source, flat_bands, band_offsets, flat_squares, square_offsets, level_shapes, active_z,
                     active_y, np.float64(sigma), visu, block.size, soft, thresholds, result)
        return result.reshape(block.shape)
    bands = [flat_bands[band_offsets[k]:band_offsets[k + 1]].reshape((nb,) + shape)
             for k, shape in enumerate(shapes[1:])]
    squares = [flat_squares[square_offsets[k]:square_offsets[k + 1]].reshape(nb, -1) for k in range(levels)]
    inputs = [source] + [b[0] for b in bands[:-1]]  # what each level's forward pass reads
    outputs = [result, *inputs[1:]]  # where each level's inverse pass writes: the finer level's sub-band 0
    # split along z in 3-D, along y in 2-D
    axis = 0 if active_z else 1
    strips, depth = ([], 0) if not active_y else _strips(source.shape[axis], levels, team.threads, source.size)

    def rows_of(level, start, stop):
        per_row = shapes[level + 1][1] if axis == 0 else 1
        return _strip_rows(start, stop, source.shape[axis], shapes[level + 1][axis], level, per_row)

    def forward_strip(start, stop):
        for level in range(depth):
            _haar_forward(inputs[level], bands[level], squares[level], active_z, active_y,
                          *rows_of(level, start, stop))

    def inverse_strip(start, stop):
        for level in range(depth - 1, -1, -1):
            _haar_inverse(bands[level][0], bands[level], thresholds[level], soft, outputs[level], active_z,
                          active_y, *rows_of(level, start, stop))

    team.map(forward_strip, strips)
    for level in range(depth, levels):  # the coarse levels, whole (their rows cut among threads)
        shape = shapes[level + 1]
        _on_rows(team, _haar_forward, shape[0] * shape[1], shape[2], inputs[level], bands[level],
                 squares[level], active_z, active_y)
    _thresholds(flat_squares, square_offsets, level_shapes, np.float64(sigma), visu, block.size, thresholds)
    # A level's approximation is its sub-band 0: the coarsest's as the forward pass left it, the
    # others overwritten by the coarser level's inverse (outputs[level + 1] is bands[level][0]).
    for level in range(levels - 1, depth - 1, -1):
        shape = shapes[level + 1]
        _on_rows(team, _haar_inverse, shape[0] * shape[1], shape[2], bands[level][0], bands[level],
                 thresholds[level], soft, outputs[level], active_z, active_y)
    team.map(inverse_strip, strips)
    return result.reshape(block.shape)


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
def _haar_serial(source, flat_bands, band_offsets, flat_squares, square_offsets, level_shapes, active_z, active_y,
                 sigma, visu, size, soft, thresholds, result):
    """:func:`_haar_denoise` on one thread, every level in one compiled call."""
    levels, nb = thresholds.shape
    finer = flat_bands[0:0].reshape((0, 0, 0))  # the previous level's sub-band 0 (none yet)
    for level in range(levels):
        z, y, x = level_shapes[level, 0], level_shapes[level, 1], level_shapes[level, 2]
        bands = flat_bands[band_offsets[level]:band_offsets[level + 1]].reshape((nb, z, y, x))
        squares = flat_squares[square_offsets[level]:square_offsets[level + 1]].reshape((nb, z * y))
        if level == 0:
            _haar_forward(source, bands, squares, active_z, active_y, 0, z * y)
        else:
            _haar_forward(finer, bands, squares, active_z, active_y, 0, z * y)
        finer = bands[0]
    _thresholds(flat_squares, square_offsets, level_shapes, sigma, visu, size, thresholds)
    for level in range(levels - 1, -1, -1):
        z, y, x = level_shapes[level, 0], level_shapes[level, 1], level_shapes[level, 2]
        bands = flat_bands[band_offsets[level]:band_offsets[level + 1]].reshape((nb, z, y, x))
        if level == 0:
            _haar_inverse(bands[0], bands, thresholds[level], soft, result, active_z, active_y, 0, z * y)
        else:
            zf, yf, xf = level_shapes[level - 1, 0], level_shapes[level - 1, 1], level_shapes[level - 1, 2]
            finer_bands = flat_bands[band_offsets[level - 1]:band_offsets[level]].reshape((nb, zf, yf, xf))
            _haar_inverse(bands[0], bands, thresholds[level], soft, finer_bands[0], active_z, active_y, 0, z * y)


def _pywt_denoise(block, sigma, wavelet_name, levels, soft, method):
    import pywt

    image = np.asarray(block, dtype=np.float32)
    coeffs = pywt.wavedecn(image, wavelet=pywt.Wavelet(wavelet_name), level=levels)
    for detail in coeffs[1:]:
        for band in detail.values():
            # pywt's coefficient arrays are C-contiguous: ravel is a view
            flat = band.reshape(-1)
            mean_square = _sum_squares(flat) / max(1, flat.size)
            _shrink(flat, _band_threshold(mean_square, method == "VisuShrink", float(sigma), image.size), soft)
    result = pywt.waverecn(coeffs, wavelet_name)[tuple(slice(n) for n in image.shape)]
    return np.ascontiguousarray(result, dtype=np.float32)
