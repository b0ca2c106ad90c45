"""The exact unbiased inverse of the Anscombe transform, as a compiled table lookup.

:func:`napari_denoise.filters.stabilise.inverse_anscombe` maps a denoised
value ``v`` back to photons through a table of ``E[f(z)]`` against the mean
photon count (``np.interp(v, expectation, photons, left=0)``), the closed-form
approximation beyond the table, and NaN kept as NaN. ``np.interp`` searches
the table by bisection for every value: about 40 ns each, a third of a
stabilised wavelet call on a 32×256×512 stack. Here each value's interval is
found from a uniform grid of buckets over the table (a step or two from the
bucket's first entry), and the value is interpolated with the same formula
as NumPy's ``interp`` (its slope, its fallbacks for non-finite results), so
the photons are the same float64 numbers bit for bit.
"""

from __future__ import annotations

import numpy as np

from .borders import jit

__all__ = ["ExactInverseTable", "exact_photons", "closed_form_photons"]

# Buckets per table: a few per interval of the ~560-entry table, so that a value's
# interval is at most a step or two from its bucket's first one.
_BUCKETS = 4096


class ExactInverseTable:
    """The table ``(expectation, photons)`` with what the lookup needs precomputed.

    ``expectation`` must increase strictly (it does: ``E[f(z)]`` grows with the
    mean count); the slopes are NumPy ``interp``'s, interval by interval.
    """

    def __init__(self, expectation: np.ndarray, photons: np.ndarray):
        xp = np.ascontiguousarray(expectation, np.float64)
        fp = np.ascontiguousarray(photons, np.float64)
        if xp.ndim != 1 or xp.shape != fp.shape or xp.size < 2 or not np.all(np.diff(xp) > 0):
            raise ValueError("expectation: expected a strictly increasing 1-D table as long as photons")
        self.expectation, self.photons = xp, fp
        self.slopes = (fp[1:] - fp[:-1]) / (xp[1:] - xp[:-1])
        self.scale = _BUCKETS / (xp[-1] - xp[0])
        # each bucket's first interval: the last j with xp[j] <= the bucket's left edge
        edges = xp[0] + np.arange(_BUCKETS) / self.scale
        self.starts = np.clip(np.searchsorted(xp, edges, side="right") - 1, 0, xp.size - 2).astype(np.int64)


def exact_photons(values: np.ndarray, table: ExactInverseTable, normalised_sigma: float) -> np.ndarray:
    """Photons (float64, shape of ``values``) of the exact unbiased inverse at ``values``.

    ``np.interp(values, expectation, photons, left=0)`` inside the table, the
    closed-form approximation (:func:`_closed_form`) above it, NaN for NaN.
    """
    flat = np.ascontiguousarray(values, np.float64).reshape(-1)
    out = np.empty(flat.size, np.float64)
    _lookup(flat, table.expectation, table.photons, table.slopes, table.starts, table.scale,
            np.float64(normalised_sigma), out)
    return out.reshape(np.shape(values))


def closed_form_photons(values: np.ndarray, normalised_sigma: float) -> np.ndarray:
    """Photons (float64, shape of ``values``) of Mäkitalo & Foi's closed-form approximation
    of the exact unbiased inverse (:func:`_closed_form`), NaN for NaN."""
    flat = np.ascontiguousarray(values, np.float64).reshape(-1)
    out = np.empty(flat.size, np.float64)
    _closed_forms(flat, np.float64(normalised_sigma), out)
    return out.reshape(np.shape(values))


@jit
def _closed_forms(values, normalised_sigma, out):
    for i in range(values.size):
        x = values[i]
        out[i] = x if np.isnan(x) else _closed_form(x, normalised_sigma)


@jit
def _lookup(values, xp, fp, slopes, starts, scale, normalised_sigma, out):
    n = xp.size
    first, last = xp[0], xp[n - 1]
    buckets = starts.size
    for i in range(values.size):
        x = values[i]
        if np.isnan(x):
            out[i] = x
        elif x > last:
            out[i] = _closed_form(x, normalised_sigma)
        elif x < first:
            out[i] = 0.0  # left=0
        elif x == last:
            out[i] = fp[n - 1]
        else:
            k = int((x - first) * scale)
            j = starts[min(max(k, 0), buckets - 1)]
            while xp[j + 1] <= x:  # x < last: stops at n - 2 at the latest
                j += 1
            while xp[j] > x:
                j -= 1
            if xp[j] == x:
                out[i] = fp[j]
                continue
            # NumPy's interp: the slope times the offset from the left end, then fallbacks
            slope = slopes[j]
            result = slope * (x - xp[j]) + fp[j]
            if np.isnan(result):
                result = slope * (x - xp[j + 1]) + fp[j + 1]
                if np.isnan(result) and fp[j] == fp[j + 1]:
                    result = fp[j]
            out[i] = result


@jit
def _closed_form(value, normalised_sigma):
    """Mäkitalo & Foi's closed form at one (non-NaN) value, clamped at 0 photons:
    ``d²/4 + √1.5/(4d) − 11/(8d²) + 5√1.5/(8d³) − 1/8 − σ²`` with ``d = max(v, 1e-6)``,
    term for term in this order (NumPy's ``np.maximum(·, 0)`` semantics at the end)."""
    d = max(value, 1e-6)
    root = np.sqrt(1.5)
    photons = (0.25 * d * d + 0.25 * root / d - 1.375 / (d * d) + 0.625 * root / (d * d * d) - 0.125
               - normalised_sigma ** 2)
    return photons if photons >= 0.0 or np.isnan(photons) else 0.0
