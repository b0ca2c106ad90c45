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
  a noise-free image is returned unchanged instead of NaN.

Results agree with scikit-image to float32 precision. Work memory: the
coefficients (about 1.15 float32 arrays of the slice for Haar in 3-D, 1.34
in 2-D); everything runs without the GIL, so independent slices run in
parallel on the scheduler's threads.
"""

from __future__ import annotations

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
    """
    nz, ny, nx = src.shape
    my, mx = bands.shape[2], bands.shape[3]
    nb = bands.shape[0]
    s = _S
    for r in range(lo, hi):
        k = r // my
        j = r - k * my
        z0 = 2 * k if active_z else k
        z1 = min(z0 + 1, nz - 1) if active_z else z0
        y0 = 2 * j if active_y else j
        y1 = min(y0 + 1, ny - 1) if active_y else y0
        for i in range(mx):
            x0 = 2 * i
            x1 = min(x0 + 1, nx - 1)
            a000 = np.float32(src[z0, y0, x0])
            a001 = np.float32(src[z0, y0, x1])
            a010 = np.float32(src[z0, y1, x0])
            a011 = np.float32(src[z0, y1, x1])
            a100 = np.float32(src[z1, y0, x0])
            a101 = np.float32(src[z1, y0, x1])
            a110 = np.float32(src[z1, y1, x0])
            a111 = np.float32(src[z1, y1, x1])
            if active_z:  # along axis 0: low in a0.., high in a1..
                l00, h00 = (a000 + a100) * s, (a000 - a100) * s
                l01, h01 = (a001 + a101) * s, (a001 - a101) * s
                l10, h10 = (a010 + a110) * s, (a010 - a110) * s
                l11, h11 = (a011 + a111) * s, (a011 - a111) * s
                a000, a001, a010, a011 = l00, l01, l10, l11
                a100, a101, a110, a111 = h00, h01, h10, h11
            if active_y:  # along axis 1
                l0, h0 = (a000 + a010) * s, (a000 - a010) * s
                l1, h1 = (a001 + a011) * s, (a001 - a011) * s
                a000, a001, a010, a011 = l0, l1, h0, h1
                l0, h0 = (a100 + a110) * s, (a100 - a110) * s
                l1, h1 = (a101 + a111) * s, (a101 - a111) * s
                a100, a101, a110, a111 = l0, l1, h0, h1
            # along axis 2
            bands[0, k, j, i] = (a000 + a001) * s
            bands[1, k, j, i] = (a000 - a001) * s
            if active_y:
                bands[2, k, j, i] = (a010 + a011) * s
                bands[3, k, j, i] = (a010 - a011) * s
            if active_z:
                bands[4, k, j, i] = (a100 + a101) * s
                bands[5, k, j, i] = (a100 - a101) * s
                if active_y:
                    bands[6, k, j, i] = (a110 + a111) * s
                    bands[7, k, j, i] = (a110 - a111) * s
        for b in range(1, nb):
            squares[b, r] = _sum_squares(bands[b, k, j])


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
    as it is read (:func:`_shrunk`); the bands are left as they were.
    """
    nz, ny, nx = out.shape
    my, mx = bands.shape[2], bands.shape[3]
    s = _S
    zero = np.float32(0.0)
    for r in range(lo, hi):
        k = r // my
        j = r - k * my
        z0 = 2 * k if active_z else k
        y0 = 2 * j if active_y else j
        for i in range(mx):
            x0 = 2 * i
            # along axis 2 first (pywt.idwtn goes through the axes backwards)
            ll = approx[k, j, i]
            lh = _shrunk(bands[1, k, j, i], thresholds[1], soft)
            a000, a001 = (ll + lh) * s, (ll - lh) * s
            a010 = a011 = a100 = a101 = a110 = a111 = zero
            if active_y:
                hl = _shrunk(bands[2, k, j, i], thresholds[2], soft)
                hh = _shrunk(bands[3, k, j, i], thresholds[3], soft)
                a010, a011 = (hl + hh) * s, (hl - hh) * s
            if active_z:
                hl = _shrunk(bands[4, k, j, i], thresholds[4], soft)
                hh = _shrunk(bands[5, k, j, i], thresholds[5], soft)
                a100, a101 = (hl + hh) * s, (hl - hh) * s
                if active_y:
                    hl = _shrunk(bands[6, k, j, i], thresholds[6], soft)
                    hh = _shrunk(bands[7, k, j, i], thresholds[7], soft)
                    a110, a111 = (hl + hh) * s, (hl - hh) * s
            if active_y:
                l0, h0 = a000, a010
                a000, a010 = (l0 + h0) * s, (l0 - h0) * s
                l1, h1 = a001, a011
                a001, a011 = (l1 + h1) * s, (l1 - h1) * s
                if active_z:
                    l0, h0 = a100, a110
                    a100, a110 = (l0 + h0) * s, (l0 - h0) * s
                    l1, h1 = a101, a111
                    a101, a111 = (l1 + h1) * s, (l1 - h1) * s
            if active_z:
                l0, h0 = a000, a100
                a000, a100 = (l0 + h0) * s, (l0 - h0) * s
                l0, h0 = a001, a101
                a001, a101 = (l0 + h0) * s, (l0 - h0) * s
                l0, h0 = a010, a110
                a010, a110 = (l0 + h0) * s, (l0 - h0) * s
                l0, h0 = a011, a111
                a011, a111 = (l0 + h0) * s, (l0 - h0) * s
            x_in = x0 + 1 < nx
            y_in = active_y and y0 + 1 < ny
            z_in = active_z and z0 + 1 < nz
            out[z0, y0, x0] = a000
            if x_in:
                out[z0, y0, x0 + 1] = a001
            if y_in:
                out[z0, y0 + 1, x0] = a010
                if x_in:
                    out[z0, y0 + 1, x0 + 1] = a011
            if z_in:
                out[z0 + 1, y0, x0] = a100
                if x_in:
                    out[z0 + 1, y0, x0 + 1] = a101
                if y_in:
                    out[z0 + 1, y0 + 1, x0] = a110
                    if x_in:
                        out[z0 + 1, y0 + 1, x0 + 1] = a111


@jit
def _shrink(flat, threshold, soft):
    """:func:`_shrunk` of every value of ``flat``, in place."""
    t = np.float32(threshold)
    for i in range(flat.size):
        flat[i] = _shrunk(flat[i], t, soft)


@jit
def _sum_squares(flat):
    """``Σ flat²`` in float64 (BayesShrink's statistic; one band row in the Haar forward pass)."""
    total = 0.0
    for i in range(flat.size):
        v = np.float64(flat[i])
        total += v * v
    return total


def _band_threshold(mean_square, method, sigma, size):
    """BayesShrink's per-band threshold or VisuShrink's universal one (scikit-image's formulas)."""
    if method == "VisuShrink":
        return sigma * math.sqrt(2 * math.log(size))
    var = sigma * sigma
    eps = float(np.finfo(np.float32).eps)
    return var / math.sqrt(max(mean_square - var, eps))


# A level's rows are shared among threads only when each gets this many
# coefficients (about 0.2 ms of work): handing a piece to another thread costs
# 0.1 ms on an idle machine and milliseconds on a busy one, so smaller levels
# (all of a 512 x 512 image) run on the calling thread.
_MIN_VALUES_PER_THREAD = 1 << 15


def _on_rows(team, function, rows, row_length, *args):
    """``function(*args, lo, hi)`` over ``range(rows)``, cut into one piece per thread."""
    parts = max(1, min(team.threads, rows * row_length // _MIN_VALUES_PER_THREAD))
    team.map(function, [args + piece for piece in split_evenly(rows, parts)])


def default_levels(shape, wavelet_name):
    """scikit-image's default: three fewer levels than the maximum, at least one."""
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
    active_z, active_y = nd == 3, nd >= 2
    source = as_3d(block)
    # every level's sub-bands, allocated first: strips write their rows of each
    shapes = [source.shape]
    for _ in range(levels):
        a = shapes[-1]
        shapes.append(((a[0] + 1) // 2 if active_z else a[0], (a[1] + 1) // 2 if active_y else a[1],
                       (a[2] + 1) // 2))
    bands = [np.empty((2**nd,) + shape, np.float32) for shape in shapes[1:]]
    squares = [np.zeros((2**nd, shape[0] * shape[1]), np.float64) for shape in shapes[1:]]
    inputs = [source] + [b[0] for b in bands[:-1]]  # what each level's forward pass reads
    target = None
    if out is not None and out.dtype == np.float32 and out.flags.c_contiguous:
        target = out.reshape(source.shape)
    result = np.empty(source.shape, np.float32) if target is None else target
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
    # rows added in order: the same thresholds whatever the number of threads
    thresholds = []
    for level in range(levels):
        size = math.prod(shapes[level + 1])
        level_thresholds = np.zeros(2**nd, np.float32)
        for b in range(1, 2**nd):
            mean_square = math.fsum(squares[level][b]) / size
            level_thresholds[b] = _band_threshold(mean_square, method, sigma, block.size)
        thresholds.append(level_thresholds)
    # A level's approximation is its sub-band 0: the coarsest's as the forward pass left it, the
    # others overwritten by the coarser level's inverse (outputs[level + 1] is bands[level][0]).
    for level in range(levels - 1, depth - 1, -1):
        shape = shapes[level + 1]
        _on_rows(team, _haar_inverse, shape[0] * shape[1], shape[2], bands[level][0], bands[level],
                 thresholds[level], soft, outputs[level], active_z, active_y)
    team.map(inverse_strip, strips)
    if levels == 0:
        result[...] = source
    return result.reshape(block.shape)


def _pywt_denoise(block, sigma, wavelet_name, levels, soft, method):
    import pywt

    image = np.asarray(block, dtype=np.float32)
    coeffs = pywt.wavedecn(image, wavelet=pywt.Wavelet(wavelet_name), level=levels)
    for detail in coeffs[1:]:
        for band in detail.values():
            # pywt's coefficient arrays are C-contiguous: ravel is a view
            flat = band.reshape(-1)
            mean_square = _sum_squares(flat) / max(1, flat.size)
            _shrink(flat, _band_threshold(mean_square, method, sigma, image.size), soft)
    result = pywt.waverecn(coeffs, wavelet_name)[tuple(slice(n) for n in image.shape)]
    return np.ascontiguousarray(result, dtype=np.float32)
