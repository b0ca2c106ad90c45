"""Kernels that reach beyond the image, folded back into it: bounded work, same result.

A 1-D correlation of a line of ``n`` pixels reads, beyond the line's ends,
what the border mode makes of it. For every mode that beyond-the-end data is
a fixed function of the line:

* ``reflect`` repeats with period ``2n`` (d c b a | a b c d | d c b a),
  ``mirror`` with period ``2n - 2`` (a line of one pixel is that pixel
  everywhere), ``wrap`` with period ``n``: the offsets ``o`` and ``o + period``
  of a kernel read the same pixel for every output pixel;
* ``nearest`` reads the first (last) pixel at every offset ``o <= -(n - 1)``
  (``o >= n - 1``), whatever the output pixel;
* ``constant`` reads ``cval`` at every offset ``|o| >= n``.

So the weights of a kernel reaching further than that can be summed onto the
offsets they alias (:func:`fold`), giving a kernel of at most ``2n + 1`` taps
whose result equals the long kernel's up to rounding (sums are taken in a
different order; where no folding is needed the weights are left exactly as
they are, so results stay bit-identical to scipy.ndimage). That is the rule
behind "a kernel reaching beyond the image is cut to the image": a Gaussian
of σ = 1000 px on a 16-pixel axis costs 33 taps, not 8001, and gives the same
numbers.

Folding needs the whole axis in one block: the folded reach is the axis
length (``n`` or ``n - 1``), so the scheduler's halo then spans the axis.
"""

from __future__ import annotations

import math

import numpy as np

from ..kernels import separable

__all__ = ["folded_reach", "fold", "gaussian_weights", "box_weights"]

# Offsets summed per step when the weights of a long kernel are built (memory bound).
_CHUNK = 1 << 16


def _period(n: int, mode: str) -> int | None:
    """Period of the border mode's extension of a line of ``n`` (None: not periodic)."""
    if mode == "reflect":
        return 2 * n
    if mode == "mirror":
        return max(0, 2 * n - 2)
    if mode == "wrap":
        return n
    return None


def folded_reach(n: int, mode: str) -> int:
    """Largest offset a kernel needs on an axis of ``n`` pixels with this border mode."""
    if mode in ("reflect", "constant"):
        return n
    if mode in ("mirror", "nearest"):
        return max(0, n - 1)
    if mode == "wrap":
        return n // 2
    raise ValueError(f"mode: unknown border mode {mode!r}")


def _target_index(offsets: np.ndarray, n: int, mode: str, reach: int) -> np.ndarray:
    """Index into the folded weights (offset ``-reach`` is index 0) of each offset."""
    period = _period(n, mode)
    if period is None:  # nearest, constant: everything beyond the reach aliases the last tap
        return np.clip(offsets, -reach, reach) + reach
    if period == 0:  # mirror on one pixel
        return np.zeros(offsets.shape, np.int64)
    c = np.mod(offsets, period)
    # classes above half the period are negative offsets; an even period's
    # middle class goes to +reach here and is split with -reach afterwards
    return np.where(c <= period // 2, c, c - period) + reach


def _split_middle(folded: np.ndarray, n: int, mode: str) -> np.ndarray:
    """Share the weight of offset ``+reach`` with ``-reach`` when both alias one pixel."""
    period = _period(n, mode)
    if period and period % 2 == 0 and len(folded) > 1:
        half = folded[-1] / 2
        folded[0] += half
        folded[-1] = half
    return folded


def _symmetry_of(weights: np.ndarray) -> int:
    if len(weights) % 2 == 0:
        return 0
    if np.array_equal(weights, weights[::-1]):
        return 1
    if np.array_equal(weights, -weights[::-1]):
        return -1
    return 0


def _restore_symmetry(folded: np.ndarray, symmetry: int) -> np.ndarray:
    """Folding keeps a (anti)symmetric kernel (anti)symmetric; make it exact after rounding."""
    if symmetry == 1:
        return (folded + folded[::-1]) / 2
    if symmetry == -1:
        return (folded - folded[::-1]) / 2
    return folded


def needs_fold(left: int, right: int, n: int, mode: str) -> bool:
    """Whether a kernel reaching ``left`` before and ``right`` after its centre needs folding."""
    return max(left, right) > folded_reach(n, mode)


def fold(weights: np.ndarray, n: int, mode: str) -> np.ndarray:
    """Correlation ``weights`` (``ndimage.correlate1d`` layout, origin 0) folded onto an
    axis of ``n`` pixels: unchanged when they reach no further than :func:`folded_reach`,
    else an odd-length kernel of reach ``folded_reach(n, mode)`` with the same result."""
    weights = np.asarray(weights, np.float64)
    size = len(weights)
    left = size // 2
    right = size - left - 1
    if not needs_fold(left, right, n, mode):
        return weights
    reach = folded_reach(n, mode)
    offsets = np.arange(-left, right + 1)
    folded = np.bincount(_target_index(offsets, n, mode, reach), weights=weights, minlength=2 * reach + 1)
    folded = _split_middle(folded, n, mode)
    return _restore_symmetry(folded, _symmetry_of(weights))


def _polynomial(sigma: float, order: int) -> np.ndarray:
    """Coefficients of q with ``d^order/dx^order phi = q(x) phi(x)`` (as scipy computes them)."""
    exponents = np.arange(order + 1)
    q = np.zeros(order + 1)
    q[0] = 1
    step = np.diag(exponents[1:], 1) + np.diag(np.ones(order) / -(sigma * sigma), -1)
    for _ in range(order):
        q = step.dot(q)
    return q


def gaussian_weights(sigma: float, order: int, radius: int, n: int, mode: str) -> np.ndarray:
    """Weights of ``ndimage.gaussian_filter1d(sigma, order, radius)`` on an axis of ``n`` pixels.

    Exactly scipy's weights (:func:`napari_denoise.kernels.separable.gaussian_weights`)
    when ``radius`` stays within :func:`folded_reach`; else the folded kernel,
    built ``_CHUNK`` offsets at a time so that memory stays bounded whatever
    the radius.
    """
    if not needs_fold(radius, radius, n, mode):
        return separable.gaussian_weights(sigma, order, radius)
    reach = folded_reach(n, mode)
    # The kernel is even (odd) in x and folding maps -o where it maps o,
    # mirrored: sum the offsets o >= 0 only and mirror them (half the
    # exponentials). An even period's middle class lands on +reach and
    # -reach, which alias one pixel: their weights are then shared equally.
    sign = -1.0 if order % 2 else 1.0
    positive = np.zeros(2 * reach + 1)
    total = 0.0
    centre = 0.0
    q = _polynomial(sigma, order) if order > 0 else None
    scale = -0.5 / (sigma * sigma)
    for start in range(0, radius + 1, _CHUNK):
        offsets = np.arange(start, min(start + _CHUNK, radius + 1))
        x = -offsets.astype(np.float64)  # correlation weight at o is the kernel at -o
        phi = np.exp(scale * x * x)
        total += 2 * phi.sum()
        if q is not None:
            phi = phi * np.polyval(q[::-1], x)
        if start == 0:
            total -= np.exp(0.0)  # offset 0 is not mirrored
            centre = phi[0]
        positive += np.bincount(_target_index(offsets, n, mode, reach), weights=phi, minlength=len(positive))
    negative = positive.copy()
    negative[reach] -= centre
    folded = (positive + sign * negative[::-1]) / total
    period = _period(n, mode)
    if period and period % 2 == 0 and reach:
        folded[0] = folded[-1] = (folded[0] + folded[-1]) / 2
    return _restore_symmetry(folded, int(sign))


def box_weights(size: int, n: int, mode: str) -> np.ndarray | None:
    """A box of ``size`` pixels (``uniform_filter1d``, origin 0) folded onto ``n`` pixels,
    as correlation weights, or None when it needs no folding.

    The weights are counts of aliasing offsets over ``size``, from a closed
    formula, so a box of any size costs at most ``2n + 1`` taps to describe.
    """
    left = size // 2
    right = size - left - 1
    if not needs_fold(left, right, n, mode):
        return None
    reach = folded_reach(n, mode)
    period = _period(n, mode)
    targets = np.arange(-reach, reach + 1)
    if period is None:
        counts = np.array(
            [
                (t + left + 1 if t == -reach else 0) + (right - t + 1 if t == reach else 0) + (-reach < t < reach)
                for t in targets
            ],
            dtype=np.float64,
        )
        if reach == 0:  # nearest on one pixel: every offset reads it
            counts = np.array([float(size)])
    elif period == 0:
        counts = np.array([float(size)])
    else:
        # number of o in [-left, right] with o = t (mod period), for t in one period
        counts = np.zeros(2 * reach + 1)
        for c in range(period):
            k = math.floor((right - c) / period) - math.floor((-left - 1 - c) / period)
            t = c if c <= period // 2 else c - period
            counts[t + reach] += k
        counts = _split_middle(counts, n, mode)
    weights = counts / size
    return _restore_symmetry(weights, 1) if size % 2 == 1 else weights
