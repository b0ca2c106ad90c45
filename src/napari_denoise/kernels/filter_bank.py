"""Multilevel n-D discrete wavelet transform of float32 data, for any wavelet.

``wavedecn`` and ``waverecn`` compute what ``pywt.wavedecn`` / ``pywt.waverecn``
compute (mode 'symmetric', every axis) on a float32 array, value for value:

* a forward pass along one axis computes both outputs (approximation and
  detail) from one read of each input line, each value summed in float32 in
  the order of PyWavelets' C code (``downsampling_convolution``, step 2, from
  the tap table of :func:`~napari_denoise.kernels.finest_detail.symmetric_taps`);
* an inverse pass computes ``y[2p + r]`` as PyWavelets' ``idwt`` does: the
  approximation's ``F/2`` terms summed, the detail's summed, then added
  (``upsampling_convolution_valid_sf``; ``F`` the filter length), and only
  the outputs that are kept (PyWavelets trims a level's reconstruction to the
  next level's detail shape, and scikit-image the last one to the image);
* each pass is shared among threads by lines, or by ranges along the lines
  when there are fewer lines than threads; every value is the same sum
  whichever thread computes it, so results do not depend on the threads;
* passes poll a cancel flag (``flag[0]``) once per output line.

PyWavelets runs these transforms on one thread, through float32 copies per
axis and level; these passes read the lines in place (the other wavelets'
denoising was ~1.1x scikit-image's speed, all of it in ``pywt``).
"""

from __future__ import annotations

import functools
import itertools
import warnings

import numpy as np

from .borders import jit
from .finest_detail import symmetric_taps
from .lines import as_lines, map_over_lines

__all__ = ["filters_of", "wavedecn", "waverecn"]


@functools.lru_cache(maxsize=64)
def filters_of(wavelet_name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(dec_lo, dec_hi, rec_lo, rec_hi)`` as PyWavelets' float32 transforms use them.

    Read from its transforms of unit impulses: its float32 taps are not always
    the float64 ``Wavelet.filter_bank`` rounded (coif1's ``dec_hi[3]`` is one
    unit in the last place away), and the transforms are to agree bit for bit.
    """
    import pywt

    wavelet = pywt.Wavelet(wavelet_name)
    length = wavelet.dec_len
    impulse = np.zeros(4 * length, np.float32)
    dec_lo, dec_hi = np.empty(length, np.float32), np.empty(length, np.float32)
    for position in (2 * length, 2 * length + 1):  # odd taps, then even ones
        impulse[:] = 0
        impulse[position] = 1
        approximation, detail = pywt.dwt(impulse, wavelet, mode="symmetric")
        # output o meets input 2o + 1 - j through tap j
        for o in range(approximation.size):
            j = 2 * o + 1 - position
            if 0 <= j < length:
                dec_lo[j], dec_hi[j] = approximation[o], detail[o]
    coefficients = np.zeros(2 * length, np.float32)
    coefficients[length] = 1
    # output m meets coefficient k through tap m + F - 2 - 2k: here taps 0..F-1 at m = F + 2 + j
    rec_lo = pywt.idwt(coefficients, None, wavelet, mode="symmetric")[length + 2: 2 * length + 2]
    rec_hi = pywt.idwt(None, coefficients, wavelet, mode="symmetric")[length + 2: 2 * length + 2]
    return dec_lo, dec_hi, np.ascontiguousarray(rec_lo), np.ascontiguousarray(rec_hi)


@functools.lru_cache(maxsize=256)
def _analysis_taps(n: int, wavelet_name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per output of one level along ``n`` samples: low-pass and high-pass taps (float32)
    and the input positions they meet, in PyWavelets' summation order."""
    dec_lo, dec_hi, _, _ = filters_of(wavelet_name)
    coef_lo, index = symmetric_taps(n, dec_lo)  # float32 taps, exact in float64
    coef_hi, _ = symmetric_taps(n, dec_hi)
    return coef_lo.astype(np.float32), coef_hi.astype(np.float32), index


@functools.lru_cache(maxsize=64)
def _synthesis_taps(wavelet_name: str) -> tuple[np.ndarray, np.ndarray]:
    """``(rec_lo, rec_hi)`` as float32, each reshaped ``(F/2, 2)``: ``[j, r]`` is tap ``2j + r``."""
    _, _, rec_lo, rec_hi = filters_of(wavelet_name)
    return rec_lo.reshape(-1, 2), rec_hi.reshape(-1, 2)


# -- passes -------------------------------------------------------------------------------------
@jit
def _analysis_pass(src, coef_lo, coef_hi, index, lo, hi, flag, b_lo, b_hi, a_lo, a_hi):
    """``lo[b, o, a] = Σ_t coef_lo[o, t] · src[b, index[o, t], a]`` in float32, t ascending
    (``hi`` likewise with ``coef_hi``), for ``b`` in ``b_lo:b_hi`` and ``a`` in ``a_lo:a_hi``.

    Returns False, leaving the outputs partly written, once ``flag[0]`` is set.
    """
    M, F = coef_lo.shape
    for b in range(b_lo, b_hi):
        for o in range(M):
            if flag[0]:
                return False
            # term after term over the whole line (contiguous, vectorised); each value
            # still gets 0 + term 0 + term 1 + ... in that order
            low = lo[b, o, a_lo:a_hi]
            high = hi[b, o, a_lo:a_hi]
            for a in range(low.size):
                low[a] = 0.0
                high[a] = 0.0
            for t in range(F):
                cl = coef_lo[o, t]
                ch = coef_hi[o, t]
                source = src[b, index[o, t], a_lo:a_hi]
                for a in range(low.size):
                    low[a] += cl * source[a]
                    high[a] += ch * source[a]
    return True


@jit
def _analysis_pass_along_last(src, coef_lo, coef_hi, index, lo, hi, flag, b_lo, b_hi):
    """:func:`_analysis_pass` along the last axis (2-D arrays: lines × samples), each
    output a short dot product with the same terms in the same order."""
    M, F = coef_lo.shape
    for b in range(b_lo, b_hi):
        if flag[0]:
            return False
        line = src[b]
        low = lo[b]
        high = hi[b]
        for o in range(M):
            sum_lo = np.float32(0.0)
            sum_hi = np.float32(0.0)
            for t in range(F):
                value = line[index[o, t]]
                sum_lo += coef_lo[o, t] * value
                sum_hi += coef_hi[o, t] * value
            low[o] = sum_lo
            high[o] = sum_hi
    return True


@jit
def _synthesis_pass(lo, hi, rec_lo, rec_hi, out, flag, b_lo, b_hi, a_lo, a_hi):
    """One inverse level along the middle axis: for each kept output ``m = 2p + r``,
    ``out[b, m, a] = Σ_j rec_lo[j, r] · lo[b, p + F/2 - 1 - j, a]`` plus the same sum
    over ``hi`` with ``rec_hi``, each summed over ``j`` ascending, then added."""
    half = rec_lo.shape[0]
    kept = out.shape[1]
    detail = np.empty(a_hi - a_lo, np.float32)
    for b in range(b_lo, b_hi):
        for m in range(kept):
            if flag[0]:
                return False
            p, r = m // 2, m % 2
            line = out[b, m, a_lo:a_hi]
            for a in range(line.size):
                line[a] = 0.0
                detail[a] = 0.0
            for j in range(half):
                cl = rec_lo[j, r]
                ch = rec_hi[j, r]
                approximation = lo[b, p + half - 1 - j, a_lo:a_hi]
                difference = hi[b, p + half - 1 - j, a_lo:a_hi]
                for a in range(line.size):
                    line[a] += cl * approximation[a]
                    detail[a] += ch * difference[a]
            for a in range(line.size):
                line[a] += detail[a]
    return True


@jit
def _synthesis_pass_along_last(lo, hi, rec_lo, rec_hi, out, flag, b_lo, b_hi):
    """:func:`_synthesis_pass` along the last axis (2-D arrays: lines × samples)."""
    half = rec_lo.shape[0]
    kept = out.shape[1]
    for b in range(b_lo, b_hi):
        if flag[0]:
            return False
        low = lo[b]
        high = hi[b]
        line = out[b]
        for m in range(kept):
            p, r = m // 2, m % 2
            sum_lo = np.float32(0.0)
            sum_hi = np.float32(0.0)
            for j in range(half):
                sum_lo += rec_lo[j, r] * low[p + half - 1 - j]
                sum_hi += rec_hi[j, r] * high[p + half - 1 - j]
            line[m] = sum_lo + sum_hi
    return True


def _analyse(x, axis, wavelet_name, team, flag):
    """One level along ``axis``: ``(approximation, detail)``, or None once cancelled."""
    lines = as_lines(x.shape, axis)
    before, n, after = lines
    coef_lo, coef_hi, index = _analysis_taps(n, wavelet_name)
    shape = x.shape[:axis] + (coef_lo.shape[0],) + x.shape[axis + 1:]
    lo, hi = np.empty(shape, np.float32), np.empty(shape, np.float32)
    args = (x.reshape(before, n, after), coef_lo, coef_hi, index,
            lo.reshape(before, -1, after), hi.reshape(before, -1, after), flag)
    done = map_over_lines(team, _analysis_pass, _analysis_pass_along_last, args, lines, 2 * lo.size)
    return (lo, hi) if done else None


def _synthesise(lo, hi, axis, kept, wavelet_name, team, flag):
    """One inverse level along ``axis``, its first ``kept`` outputs; None once cancelled."""
    rec_lo, rec_hi = _synthesis_taps(wavelet_name)
    lines = as_lines(lo.shape, axis)
    before, n, after = lines
    out = np.empty(lo.shape[:axis] + (kept,) + lo.shape[axis + 1:], np.float32)
    args = (lo.reshape(before, n, after), hi.reshape(before, n, after), rec_lo, rec_hi,
            out.reshape(before, kept, after), flag)
    done = map_over_lines(team, _synthesis_pass, _synthesis_pass_along_last, args, lines, out.size)
    return out if done else None


# -- multilevel ----------------------------------------------------------------------------------
def wavedecn(x: np.ndarray, wavelet_name: str, levels: int, team, flag):
    """``pywt.wavedecn(x, wavelet_name, mode="symmetric", level=levels)`` of a float32 array:
    ``[approximation, {key: detail}, ...]`` from the coarsest level to the finest (keys of
    ``'a'``/``'d'`` per axis), or None once ``flag[0]`` is set. Warns, as PyWavelets does,
    when ``levels`` is above the wavelet's maximum for ``x``."""
    import pywt

    if levels > pywt.dwtn_max_level(x.shape, wavelet_name):
        warnings.warn(
            f"Level value of {levels} is too high: all coefficients will experience boundary effects.",
            UserWarning, stacklevel=3,
        )
    approximation = np.ascontiguousarray(x, np.float32)
    details = []
    for _ in range(levels):
        bands = {"": approximation}
        for axis in range(x.ndim):
            split = {}
            for key, band in bands.items():
                halves = _analyse(band, axis, wavelet_name, team, flag)
                if halves is None:
                    return None
                split[key + "a"], split[key + "d"] = halves
            bands = split
        approximation = bands.pop("a" * x.ndim)
        details.append(bands)
    return [approximation, *details[::-1]]


def waverecn(coeffs, wavelet_name: str, shape, team, flag):
    """The inverse of :func:`wavedecn` cropped to ``shape`` (``pywt.waverecn(coeffs,
    wavelet_name)[:shape]`` as scikit-image crops it), or None once ``flag[0]`` is set.

    Each level's reconstruction is computed only as far as PyWavelets keeps it:
    the next level's detail shape, and ``shape`` for the last.
    """
    approximation, details = coeffs[0], coeffs[1:]
    ndim = approximation.ndim
    taps = _synthesis_taps(wavelet_name)[0].size  # F
    for level, bands in enumerate(details):
        bands = dict(bands)
        band_shape = next(iter(bands.values())).shape
        # the previous level's reconstruction may be one longer than this level's details
        bands["a" * ndim] = approximation[tuple(slice(n) for n in band_shape)]
        finer = details[level + 1] if level + 1 < len(details) else None
        target = next(iter(finer.values())).shape if finer is not None else tuple(shape)
        for axis in reversed(range(ndim)):
            joined = {}
            for key in ("".join(k) for k in itertools.product("ad", repeat=axis)):
                low, high = bands[key + "a"], bands[key + "d"]
                full = 2 * low.shape[axis] - taps + 2  # PyWavelets' idwt length
                joined[key] = _synthesise(low, high, axis, min(full, target[axis]), wavelet_name, team, flag)
                if joined[key] is None:
                    return None
            bands = joined
        approximation = bands[""]
    return approximation
