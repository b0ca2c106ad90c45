"""The finest diagonal wavelet detail of a slice, as ``pywt.dwtn(x, wavelet)["dd…d"]``.

The noise estimate (:func:`napari_denoise.filters.noise.noise_of_slice`)
needs only this one sub-band of a one-level transform, but ``pywt.dwtn``
computes all ``2**ndim`` of them from a float64 copy of the slice (about 1 s
for 4096 × 4096) in one call that cannot be interrupted. Here:

* one pass per axis computes only the high-pass (detail) output, reading the
  previous pass (the first one reads the slice in its own dtype, each value
  widened to float64 exactly as ``numpy.asarray(x, float64)`` does);
* each output value is summed in the order of PyWavelets' C code
  (``downsampling_convolution``, mode 'symmetric', step 2; the order differs
  at the right border, where the extension terms come first), so the
  coefficients are bit-identical to ``pywt.dwtn`` on the float64 slice;
* the passes poll the run's cancellation flag (``token.flag``) once per
  output line and return early once it is set;
* with ``threads`` > 1 each pass (and the search for the largest magnitude)
  is shared among threads, by lines or, when there are fewer lines than
  threads, by ranges along the line: every value is still computed by the
  same sum, so the result does not depend on the number of threads.
"""

from __future__ import annotations

import numpy as np

from .borders import jit
from .lines import as_lines, map_over_lines, parts_for
from .threads import Team, split_evenly

__all__ = ["symmetric_taps", "finest_detail", "nonzero_magnitudes", "largest_finite_magnitude"]

# Types the passes read as they are (each value widened to float64 inside):
# numba's conversions of these to float64 are numpy's.
_READ_DIRECTLY = frozenset(
    np.dtype(t) for t in (np.float32, np.float64, np.int8, np.int16, np.int32, np.int64,
                          np.uint8, np.uint16, np.uint32, np.uint64)
)


@jit
def _symmetric_taps(n, filt, coef, index):
    """Fill ``coef[o, t]``, ``index[o, t]``: the ``t``-th term PyWavelets adds for output ``o``.

    A transcription of the symmetric-mode branch of PyWavelets'
    ``downsampling_convolution`` (step 2) that records, instead of summing,
    which filter tap meets which input sample, in the order the C code adds
    them. Every output gets exactly ``F`` terms.
    """
    F = filt.shape[0]
    N = n
    i = 1
    o = 0
    # left boundary overhang
    while i < F and i < N:
        t = 0
        j = 0
        while j <= i:
            coef[o, t] = filt[j]
            index[o, t] = i - j
            t += 1
            j += 1
        while j < F:
            k = 0
            while k < N and j < F:
                coef[o, t] = filt[j]
                index[o, t] = k
                t += 1
                j += 1
                k += 1
            k = 0
            while k < N and j < F:
                coef[o, t] = filt[j]
                index[o, t] = N - 1 - k
                t += 1
                k += 1
                j += 1
        i += 2
        o += 1
    # centre (the filter within the signal)
    while i < N:
        for j in range(F):
            coef[o, j] = filt[j]
            index[o, j] = i - j
        i += 2
        o += 1
    # centre with the filter wider than the signal (F > N)
    while i < F:
        t = 0
        j = 0
        while i - j >= N:
            k = 0
            while k < N and i - j >= N:
                coef[o, t] = filt[i - N - j]
                index[o, t] = N - 1 - k
                t += 1
                j += 1
                k += 1
            k = 0
            while k < N and i - j >= N:
                coef[o, t] = filt[i - N - j]
                index[o, t] = k
                t += 1
                j += 1
                k += 1
        while j <= i:
            coef[o, t] = filt[j]
            index[o, t] = i - j
            t += 1
            j += 1
        while j < F:
            k = 0
            while k < N and j < F:
                coef[o, t] = filt[j]
                index[o, t] = k
                t += 1
                j += 1
                k += 1
            k = 0
            while k < N and j < F:
                coef[o, t] = filt[j]
                index[o, t] = N - 1 - k
                t += 1
                k += 1
                j += 1
        i += 2
        o += 1
    # right boundary overhang
    while i < N + F - 1:
        t = 0
        j = 0
        while i - j >= N:
            k = 0
            while k < N and i - j >= N:
                coef[o, t] = filt[i - N - j]
                index[o, t] = N - 1 - k
                t += 1
                j += 1
                k += 1
            k = 0
            while k < N and i - j >= N:
                coef[o, t] = filt[i - N - j]
                index[o, t] = k
                t += 1
                j += 1
                k += 1
        while j < F:
            coef[o, t] = filt[j]
            index[o, t] = i - j
            t += 1
            j += 1
        i += 2
        o += 1
    return o


def symmetric_taps(n: int, filt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per output of a one-level transform of ``n`` samples: its ``F`` (tap, input position)
    pairs in PyWavelets' summation order (mode 'symmetric', ``(n + F - 1) // 2`` outputs)."""
    filt = np.ascontiguousarray(filt, dtype=np.float64)
    outputs = (n + filt.size - 1) // 2
    coef = np.empty((outputs, filt.size), np.float64)
    index = np.empty((outputs, filt.size), np.int64)
    written = _symmetric_taps(n, filt, coef, index)
    assert written == outputs
    return coef, index


@jit
def _detail_pass(src, coef, index, dst, flag, b_lo, b_hi, a_lo, a_hi):
    """``dst[b, o, a] = Σ_t coef[o, t] · src[b, index[o, t], a]`` in float64, t ascending,
    for ``b`` in ``b_lo:b_hi`` and ``a`` in ``a_lo:a_hi``.

    Returns False, leaving ``dst`` partly written, once ``flag[0]`` is set.
    """
    M, F = coef.shape
    for b in range(b_lo, b_hi):
        for o in range(M):
            if flag[0]:
                return False
            # term after term over the whole line (contiguous, vectorised);
            # each value still gets 0.0 + term 0 + term 1 + ... in that order
            line = dst[b, o, a_lo:a_hi]
            for a in range(line.size):
                line[a] = 0.0
            for t in range(F):
                c = coef[o, t]
                source = src[b, index[o, t], a_lo:a_hi]
                for a in range(line.size):
                    line[a] += c * source[a]
    return True


@jit
def _detail_pass_along_last(src, coef, index, dst, flag, b_lo, b_hi):
    """:func:`_detail_pass` along the last axis (``src`` and ``dst`` 2-D: lines × samples):
    each output a short dot product, the same terms in the same order.

    The general pass, given lines of length 1 there, spent most of a 3-D
    slice's time making one-element views (7 of 12 ms on 64 × 256 × 256).
    """
    M, F = coef.shape
    for b in range(b_lo, b_hi):
        if flag[0]:
            return False
        line = src[b]
        out = dst[b]
        for o in range(M):
            total = 0.0
            for t in range(F):
                total += coef[o, t] * line[index[o, t]]
            out[o] = total
    return True


def finest_detail(block: np.ndarray, filt: np.ndarray, flag: np.ndarray, threads: int = 1) -> np.ndarray | None:
    """``pywt.dwtn(np.asarray(block, float64), wavelet)["d" * block.ndim]``, bit for bit.

    ``filt`` is the wavelet's decomposition high-pass filter (``dec_hi``);
    ``flag`` a one-element uint8 array polled once per output line: None is
    returned once it is set. ``block`` must have at least one axis. Each
    pass runs on up to ``threads`` threads (same result).
    """
    block = np.asarray(block)
    if block.ndim == 0:
        raise ValueError("block: the wavelet detail needs at least one axis")
    if block.dtype not in _READ_DIRECTLY:
        block = block.astype(np.float64)
    current = np.ascontiguousarray(block)
    with Team(threads) as team:
        for axis in range(block.ndim):
            lines = as_lines(current.shape, axis)
            before, n, after = lines
            coef, index = symmetric_taps(n, filt)
            out = np.empty(current.shape[:axis] + (coef.shape[0],) + current.shape[axis + 1 :], np.float64)
            src = current.reshape(before, n, after)
            dst = out.reshape(before, coef.shape[0], after)
            if not map_over_lines(team, _detail_pass, _detail_pass_along_last,
                                  (src, coef, index, dst, flag), lines, out.size):
                return None
            current = out
    return current


@jit
def _nonzero_magnitudes(values, out, flag):
    count = 0
    for i in range(values.size):
        if (i & 0xFFFF) == 0 and flag[0]:
            return -1
        v = values[i]
        if v != 0.0 and np.isfinite(v):
            out[count] = abs(v)
            count += 1
    return count


def nonzero_magnitudes(values: np.ndarray, flag: np.ndarray) -> np.ndarray | None:
    """``|v|`` of the non-zero finite values of ``values`` (float64), in their order;
    None once ``flag[0]`` is set."""
    flat = np.ascontiguousarray(values, dtype=np.float64).reshape(-1)
    out = np.empty(flat.size, np.float64)
    count = _nonzero_magnitudes(flat, out, flag)
    return None if count < 0 else out[:count]


@jit
def _largest_finite_magnitude(values, flag):
    largest = 0.0
    found = False
    for i in range(values.size):
        if (i & 0xFFFF) == 0 and flag[0]:
            return -1.0, False
        v = np.float64(values[i])
        if np.isfinite(v):
            m = abs(v)
            if not found or m > largest:
                largest = m
                found = True
    return largest, found


def largest_finite_magnitude(block: np.ndarray, flag: np.ndarray, threads: int = 1) -> float | None:
    """``max(|x|)`` over the finite values of ``block`` taken as float64 (0.0 when there
    are none); None once ``flag[0]`` is set. Parts of it searched on up to ``threads`` threads."""
    block = np.asarray(block)
    if block.dtype.kind in "iu" or block.dtype == np.bool_:
        # every value finite: the larger magnitude of the two extremes, by numpy's vectorised
        # minimum and maximum (0.3 ms on 64 x 256 x 256 uint16, the compiled search 2.9 ms)
        if block.size == 0:
            return 0.0
        return max(abs(float(block.min())), abs(float(block.max())))
    if block.dtype not in _READ_DIRECTLY:
        block = block.astype(np.float64)
    flat = np.ascontiguousarray(block).reshape(-1)
    parts = parts_for(flat.size, threads)
    with Team(parts) as team:
        found_parts = team.map(_largest_finite_magnitude, [(flat[lo:hi], flag)
                                                           for lo, hi in split_evenly(flat.size, parts)])
    if any(largest < 0 for largest, _ in found_parts):
        return None
    found = [float(largest) for largest, ok in found_parts if ok]
    return max(found) if found else 0.0
