"""Noise estimation, in the image's own intensity units.

Two estimates:

* :func:`estimate_noise` — the standard deviation of additive Gaussian noise
  (Donoho & Johnstone's wavelet MAD). The default intensity parameters of the
  edge-preserving denoisers (NLM ``h``, bilateral ``sigma_intensity``, TV
  ``weight``, wavelet ``sigma``) are multiples of it, so that they follow the
  data rather than the dtype's nominal range: ``f(c * x) == c * f(x)`` and
  uint16 data is treated like the same values as float32.
* :func:`estimate_noise_model` — a Poisson–Gaussian model, variance =
  gain·(signal − offset) + read_sigma², fitted from local means and variances
  of smooth parts of the image (Foi et al. 2008): photon-limited data, whose
  noise grows with the signal, are then denoised after variance stabilisation
  (:mod:`napari_denoise.filters.stabilise`).
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pywt
from scipy import ndimage

from .._params import MAX_INTENSITY, MIN_INTENSITY, as_image, check_intensity, resolve_spatial_axes
from .._scheduler import Cancelled, TileToken, default_workers
from ..kernels import block_statistics, finest_detail, level_sets
from ..kernels.threads import threads_of

__all__ = [
    "NoiseModel",
    "estimate_noise",
    "estimate_noise_model",
    "noise_of_slice",
    "noise_model_of_slice",
    "assumed_noise_level",
]

# Median absolute deviation of a standard normal variable: Phi^-1(3/4).
_MAD_TO_SIGMA = 0.6744897501960817
# Daubechies 2 decomposition high-pass filter, as pywt.dwtn uses it.
_DB2_HIGH_PASS = np.asarray(pywt.Wavelet("db2").dec_hi, dtype=np.float64)


# Inside a variance-stabilised run the noise is known (σ = 1): the denoisers'
# noise-derived defaults, which all read the noise through noise_of_slice,
# must use it rather than re-estimate it on the stabilised image (where the
# dark background, whose variance stabilisation cannot reach 1, would bias the
# estimate low). Per thread, since tiles run on a pool.
_assumed = threading.local()


@contextmanager
def assumed_noise_level(sigma: float):
    """Within this block, :func:`noise_of_slice` returns ``sigma`` in this thread.

    Used by the variance-stabilising wrapper of the denoisers: the stabilised
    image has noise of standard deviation 1 by construction, so the defaults
    derived from the noise level (``h``, ``sigma_intensity``, ``weight``,
    ``sigma``) are computed from σ = 1 rather than from an estimate.
    """
    previous = getattr(_assumed, "sigma", None)
    _assumed.sigma = float(sigma)
    try:
        yield
    finally:
        _assumed.sigma = previous


def noise_of_slice(block: np.ndarray, token=None) -> float:
    """Noise standard deviation of one slice whose axes are all spatial.

    Donoho & Johnstone's robust estimator: the median absolute value of the
    finest diagonal wavelet detail coefficients (Daubechies 2) divided by
    0.6745; coefficients that are exactly zero (saturated or flat areas) and
    NaN are left out, as in :func:`skimage.restoration.estimate_sigma`.

    An estimate at the level of the transform's float64 rounding (below
    ``2**ndim * 16 * eps`` times the largest magnitude in the slice) is
    returned as exactly 0.0: such a slice is noise-free (constant, or flat
    with steps), and every default derived from it treats 0 as
    "leave unchanged" instead of dividing by a denormal.

    Inside :func:`assumed_noise_level` it returns the assumed level instead.
    With a ``token`` (a :class:`~napari_denoise.CancelToken` or the
    scheduler's tile token) the estimate polls ``token.flag`` and raises
    :class:`~napari_denoise.Cancelled` within milliseconds of a cancel.
    """
    assumed = getattr(_assumed, "sigma", None)
    if assumed is not None:
        return assumed
    flag = _flag_of(token)
    block = np.asarray(block)
    if block.size == 0:
        return 0.0
    # The coefficients are pywt.dwtn's on the float64 slice, bit for bit
    # (float64, as skimage: in float32 the detail coefficients of flat areas
    # of integer-valued data come out as rounding noise instead of exact
    # zeros, are not left out, and bias the estimate low, 0.2 % on zebrafish
    # data), computed without the other sub-bands and polling the flag.
    threads = threads_of(token)
    detail = finest_detail.finest_detail(block, _DB2_HIGH_PASS, flag, threads)
    magnitudes = None if detail is None else finest_detail.nonzero_magnitudes(detail, flag)
    del detail
    _stop_if_cancelled(flag, magnitudes)
    if magnitudes.size == 0:
        return 0.0
    sigma = float(_median_in_place(magnitudes) / _MAD_TO_SIGMA)
    del magnitudes
    largest = finest_detail.largest_finite_magnitude(block, flag, threads)
    _stop_if_cancelled(flag, largest)
    rounding = 2.0**block.ndim * 16 * np.finfo(np.float64).eps * largest
    return 0.0 if sigma <= rounding else sigma


def _median_in_place(values: np.ndarray) -> float:
    """``numpy.median(values)`` of a 1-D array without NaN, reordering ``values``.

    One selection (and the largest value below it for an even count) instead of
    numpy's selection of two ranks at once, which took 7× as long on 0.5 M values.
    """
    half = values.size // 2
    values.partition(half)
    upper = float(values[half])
    if values.size % 2:
        return upper
    return (float(values[:half].max()) + upper) / 2.0


# The flag of calls that cannot be cancelled (the public estimate_* functions).
_NEVER = np.zeros(1, np.uint8)
_NEVER.flags.writeable = False


def _flag_of(token) -> np.ndarray:
    """The cancel flag to poll: ``token.flag``, or one never set."""
    return _NEVER if token is None else token.flag


def _stop_if_cancelled(flag: np.ndarray, result=True) -> None:
    """Raise :class:`Cancelled` when the flag is set (or a compiled step gave up: ``result`` None)."""
    if result is None or flag[0]:
        raise Cancelled("noise estimate: cancelled")


def estimate_noise(image, *, spatial_axes=None) -> float:
    """Estimate the standard deviation of additive Gaussian noise.

    Parameters
    ----------
    image : array_like or dask array
        Image of any real dtype (dask input is computed one slice at a time).
    spatial_axes : sequence of int, optional
        Axes forming one image (default: all of a 2-D/3-D image, the last three
        otherwise). The estimate is made on every independent slice over the
        other axes (time points, channels) and averaged. Each slice's
        estimate runs on every core.

    Returns
    -------
    float
        Noise standard deviation in the image's intensity units (no rescaling
        to [0, 1] whatever the dtype). 0.0 for an empty or noise-free image.

    References
    ----------
    D. L. Donoho and I. M. Johnstone, "Ideal spatial adaptation by wavelet
    shrinkage", Biometrika 81(3), 1994. Same estimator as
    :func:`skimage.restoration.estimate_sigma` on a float image.
    """
    image = as_image(image)
    axes = resolve_spatial_axes(image.ndim, spatial_axes)
    k = len(axes)
    moved = image if not axes else _move_last(image, axes)
    lead = moved.shape[: moved.ndim - k]
    estimates = []
    every_core = TileToken(_NEVER, default_workers())
    for index in np.ndindex(*lead):
        piece = moved[index]
        if hasattr(piece, "compute"):
            piece = piece.compute()
        estimates.append(noise_of_slice(piece, every_core))
    return float(np.mean(estimates)) if estimates else 0.0


def _move_last(image, axes):
    k = len(axes)
    if hasattr(image, "compute"):
        import dask.array as da

        return da.moveaxis(image, axes, range(image.ndim - k, image.ndim))
    return np.moveaxis(image, axes, range(image.ndim - k, image.ndim))


# -- Poisson–Gaussian noise model --------------------------------------------------------------
NoiseKind = Literal["gaussian", "poisson-gaussian"]
NOISE_KINDS = ("gaussian", "poisson-gaussian")

#: The noise counts as Gaussian (signal-independent) when its standard
#: deviation changes by less than this factor between the darkest and the
#: brightest level sets of the fit (or its slope is within three standard
#: errors of zero): stabilising it would then
#: change the image by an almost affine map, i.e. change nothing.
GAUSSIAN_STD_RATIO = 1.1

# Level sets (intensity bins) of the fit, as in Foi et al.'s "level sets".
_FIT_BINS = 48
# (their edges: these quantiles of the blocks' levels)
_FIT_QUANTILES = np.linspace(0, 1, _FIT_BINS + 1)
_MIN_BLOCKS_PER_BIN = 30
# A block counts as smooth when the variance of its neighbours' means is below
# this multiple of what noise alone gives (chi-square tail of 3^n - 1 means).
_SMOOTH_SPREAD = 2.0
# Bins where more than this share of blocks hold clipped pixels are left out.
_MAX_CLIPPED_SHARE = 0.005
# A value piled up this many times more often than the next one is a clip.
_PILE_UP = 10.0
# Larger slices are fitted on evenly spaced slabs of this many planes.
_MAX_FIT_VOXELS = 1 << 24
_SLAB_PLANES = 16


@dataclass(frozen=True)
class NoiseModel:
    """Poisson–Gaussian noise: variance = gain·(signal − offset) + read_sigma².

    All values are in the image's own intensity units. ``gain`` is the
    intensity of one detected photon (electron), ``offset`` the signal of
    zero photons (camera black level), ``read_sigma`` the standard deviation
    of the signal-independent (read-out, dark) noise. ``kind`` is
    ``"gaussian"`` when the signal-dependent part is negligible (then
    ``gain`` is 0 and ``read_sigma`` the noise level), else
    ``"poisson-gaussian"``.

    Only ``gain`` and ``read_sigma² − gain·offset`` are identifiable from an
    image: :func:`estimate_noise_model` puts ``offset`` at the darkest smooth
    level of the image, so ``read_sigma`` also holds the shot noise of a
    background that is not truly dark.
    """

    gain: float
    offset: float
    read_sigma: float
    kind: NoiseKind = "poisson-gaussian"

    def __post_init__(self):
        for name in ("gain", "offset", "read_sigma"):
            value = getattr(self, name)
            if not isinstance(value, (int, float, np.floating, np.integer)) or isinstance(value, bool):
                raise TypeError(f"{name}: expected a number, got {value!r}")
            # bounded like every intensity parameter, so the transforms stay finite (#11)
            object.__setattr__(self, name, check_intensity(value, name, allow_none=False, signed=name == "offset"))
        if self.gain < 0:
            raise ValueError(f"gain: must be non-negative, got {self.gain}")
        if self.read_sigma < 0:
            raise ValueError(f"read_sigma: must be non-negative, got {self.read_sigma}")
        if self.kind not in NOISE_KINDS:
            raise ValueError(f"kind: expected one of {NOISE_KINDS}, got {self.kind!r}")

    @classmethod
    def gaussian(cls, sigma: float, offset: float = 0.0) -> "NoiseModel":
        """Signal-independent noise of standard deviation ``sigma``."""
        return cls(0.0, offset, sigma, "gaussian")

    def variance(self, signal):
        """Noise variance at ``signal`` (clipped at 0 below the model's zero)."""
        signal = np.asarray(signal, dtype=np.float64)
        return np.maximum(self.gain * (signal - self.offset) + self.read_sigma**2, 0.0)

    def sigma(self, signal):
        """Noise standard deviation at ``signal``."""
        return np.sqrt(self.variance(signal))

    def scaled(self, factor: float) -> "NoiseModel":
        """The model of the image multiplied by ``factor`` (> 0)."""
        return NoiseModel(self.gain * factor, self.offset * factor, self.read_sigma * factor, self.kind)


def _haar_blocks(block: np.ndarray, flag: np.ndarray):
    """Per 2×…×2 block: its mean, its finest diagonal Haar detail and its corners.

    The detail (alternating-sign sum over the block / sqrt(2^n)) has the
    variance of one pixel's noise and does not respond to a signal that is
    constant or linear along any axis; it and the block mean are uncorrelated.

    Computed in bands of rows (about a million voxels each), polling ``flag``
    between them: every value is computed by the same numpy operation on its
    own row as on the whole block (checked bit for bit in the tests).
    """
    n = block.ndim
    rows = block.shape[0] // 2
    half = tuple(s // 2 for s in block.shape)
    if rows == 0 or 0 in half:
        return _haar_band(block)
    band = 2 * max(1, _HAAR_BAND_VOXELS // max(1, 2 * int(np.prod(block.shape[1:], dtype=np.int64))))
    mean = np.empty(half, np.float64)
    detail = np.empty(half, np.float64)
    corners = np.empty((*half, 2**n), block.dtype)
    for start in range(0, 2 * rows, band):
        _stop_if_cancelled(flag)
        stop = min(start + band, 2 * rows)
        part = _haar_band(block[start:stop])
        for whole, piece in zip((mean, detail, corners), part):
            whole[start // 2 : stop // 2] = piece
    return mean, detail, corners


# Voxels of one band of _haar_blocks (~10 ms each).
_HAAR_BAND_VOXELS = 1 << 20


def _haar_band(block: np.ndarray):
    """:func:`_haar_blocks` of ``block`` in one go."""
    n = block.ndim
    even = block[tuple(slice(0, (s // 2) * 2) for s in block.shape)]
    half = tuple(s // 2 for s in even.shape)
    split = even.reshape([v for s in half for v in (s, 2)])
    corners = split.transpose([*range(0, 2 * n, 2), *range(1, 2 * n, 2)]).reshape(*half, 2**n)
    parity = np.array([bin(k).count("1") % 2 for k in range(2**n)])
    signs = np.where(parity == 0, 1.0, -1.0)
    detail = corners @ signs / np.sqrt(2**n)
    return corners.mean(axis=-1), detail, corners


def _clip_values(found: block_statistics.Extremes, size: int) -> tuple[float | None, float | None]:
    """The minimum / maximum of a slice of ``size`` voxels when values pile up there
    (clipping, saturation), from its :func:`~napari_denoise.kernels.block_statistics.extremes`.

    A pile-up is an extreme value held by many pixels (:func:`_fewest_piled_up`)
    and by far more of them than the next value: clipped noise, not the
    lattice of photon counts.
    """
    clips = []
    for extreme, at, at_following in (
        (found.lowest, found.at_lowest, found.at_above),
        (found.highest, found.at_highest, found.at_below),
    ):
        # (at_following is 0 when no value lies inside the extreme)
        piled_up = at >= _fewest_piled_up(size) and at_following > 0 and at > _PILE_UP * at_following
        clips.append(float(extreme) if piled_up else None)
    return clips[0], clips[1]


def _fewest_piled_up(size: int) -> float:
    """The fewest voxels of a slice of ``size`` voxels that an extreme value must hold to be a pile-up."""
    return max(16, 1e-4 * size)


def _corner_extremes(corners: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per block, its smallest and largest corner, NaN corners ignored (all NaN: NaN).

    ``darkest <= low`` is then ``(corners <= low).any(axis=-1)``; one
    elementwise pass per corner instead of numpy's reduction over the short
    last axis (2.2× faster on 2×2×2 blocks).
    """
    flat = corners.reshape(-1, corners.shape[-1])
    darkest, brightest = flat[:, 0].copy(), flat[:, 0].copy()
    for k in range(1, flat.shape[1]):
        np.fmin(darkest, flat[:, k], out=darkest)
        np.fmax(brightest, flat[:, k], out=brightest)
    return darkest.reshape(corners.shape[:-1]), brightest.reshape(corners.shape[:-1])


def _slabs(block: np.ndarray):
    """The slice itself, or evenly spaced slabs of it along axis 0 when it is very large."""
    if block.size <= _MAX_FIT_VOXELS or block.shape[0] <= 2 * _SLAB_PLANES:
        return [block]
    planes = block.size // block.shape[0]
    count = max(1, min(block.shape[0] // _SLAB_PLANES, _MAX_FIT_VOXELS // (planes * _SLAB_PLANES)))
    starts = np.linspace(0, block.shape[0] - _SLAB_PLANES, count).astype(int)
    return [block[s : s + _SLAB_PLANES] for s in np.unique(starts)]


def _block_statistics(block: np.ndarray, flag: np.ndarray) -> dict | None:
    """Per-block statistics of one slice for the fit (None when it is too small).

    1-D to 3-D slices go through the compiled kernels
    (:func:`~napari_denoise.kernels.block_statistics.slab_statistics`), which
    poll ``flag``; larger ones through :func:`_numpy_slab_statistics`, which
    polls it between its whole-array steps. :class:`Cancelled` is raised once
    it is set.
    """
    block = np.asarray(block)
    if block.ndim == 0 or min(block.shape) < 6:
        return None
    _stop_if_cancelled(flag)
    block = block_statistics.as_readable(block)  # (at most one copy, shared by the extremes and the slabs)
    found = block_statistics.extremes(block, flag, _fewest_piled_up(block.size))
    _stop_if_cancelled(flag, found)
    if not found.any_finite:
        return None
    low, high = _clip_values(found, block.size)
    statistics_of = block_statistics.slab_statistics if block.ndim <= 3 else _numpy_slab_statistics
    parts = []
    for slab in _slabs(block):
        if min(slab.shape) < 6:
            continue
        _stop_if_cancelled(flag)
        part = statistics_of(slab, low, high, flag)
        _stop_if_cancelled(flag, part)
        parts.append(part)
    if not parts:
        return None
    if len(parts) == 1:  # (a copy of 4096 x 4096 statistics takes 0.2 s)
        return parts[0] | {"ndim": block.ndim}
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]} | {"ndim": block.ndim}


def _numpy_slab_statistics(slab: np.ndarray, low: float | None, high: float | None, flag: np.ndarray) -> dict:
    """:func:`~napari_denoise.kernels.block_statistics.slab_statistics` in numpy, for any
    number of axes (the compiled one takes 1 to 3).

    Polls ``flag`` between its steps (each a whole-array numpy operation,
    tenths of a second at most on a 4096 × 4096 slice) and raises
    :class:`Cancelled` once it is set.
    """
    slab = np.asarray(slab, dtype=np.float64)
    mean, detail, corners = _haar_blocks(slab, flag)
    _stop_if_cancelled(flag)
    n = slab.ndim
    ring_count = 3**n - 1
    finite = np.isfinite(mean) & np.isfinite(detail)
    filled = np.where(finite, mean, 0.0)
    _stop_if_cancelled(flag)
    # Level and spread from the 3^n - 1 neighbouring blocks only: their
    # noise is independent of this block's mean and detail, so binning by
    # them biases neither the level nor the variance of a bin.
    total = ndimage.uniform_filter(filled, 3, mode="nearest") * 3**n - filled
    _stop_if_cancelled(flag)
    squares = ndimage.uniform_filter(filled * filled, 3, mode="nearest") * 3**n - filled * filled
    _stop_if_cancelled(flag)
    level = total / ring_count
    spread = (squares - ring_count * level * level) / (ring_count - 1)
    del total, squares
    _stop_if_cancelled(flag)
    usable = finite & (ndimage.minimum_filter(finite, 3, mode="constant", cval=False))
    interior = np.zeros(mean.shape, bool)
    interior[tuple(slice(1, -1) for _ in range(n))] = True
    usable &= interior
    clipped = np.zeros(mean.shape, bool)
    if low is not None or high is not None:
        darkest, brightest = _corner_extremes(corners)
        if low is not None:
            clipped |= darkest <= low
        if high is not None:
            clipped |= brightest >= high
    _stop_if_cancelled(flag)
    return {
        "level": level[usable],
        "spread": spread[usable],
        "mean": mean[usable],
        "detail_sq": detail[usable] ** 2,
        "clipped": ndimage.maximum_filter(clipped, 3, mode="nearest")[usable],
    }


def _bins(stats, mask, flag):
    """Per level set: mean level, mean squared detail, count, share of clipped blocks."""
    level = stats["level"][mask]
    if level.size < _MIN_BLOCKS_PER_BIN * 3:
        return None
    _stop_if_cancelled(flag)
    # Sorted (in place: level is this function's copy), then the quantiles read
    # off the sorted values: numpy's vectorised sort takes a third of the time
    # of numpy.quantile's partition of unsorted values, and its partition even
    # of sorted ones took longer than the sort.
    level.sort()
    _stop_if_cancelled(flag)
    edges = _sorted_quantiles(level, _FIT_QUANTILES)
    del level
    # searchsorted into the edges and bincount of the masked blocks, in one pass
    sums = level_sets.level_set_sums(
        stats["level"], stats["mean"], stats["detail_sq"], stats["clipped"], mask, edges, _FIT_BINS, flag
    )
    _stop_if_cancelled(flag, sums)
    count, mean_sum, detail_sum, clipped_sum = sums
    safe = np.maximum(count, 1)
    levels = mean_sum / safe
    variances = detail_sum / safe
    clipped = clipped_sum / safe
    keep = count >= _MIN_BLOCKS_PER_BIN
    unclipped = keep & (clipped <= _MAX_CLIPPED_SHARE)
    if np.count_nonzero(unclipped) >= 3:
        keep = unclipped
    if np.count_nonzero(keep) < 2:
        return None
    return levels[keep], variances[keep], count[keep]


def _sorted_quantiles(values: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
    """``numpy.quantile(values, quantiles)`` of sorted 1-D ``values`` (NaN last), bit for bit.

    numpy's "linear" method (its virtual indices, the neighbours it reads and
    its interpolation, from whichever side is nearer), without the partition
    numpy makes first: ``values`` are sorted already. ``quantiles`` lie in [0, 1].
    """
    last = values.size - 1
    virtual = last * quantiles
    # (numpy reads the last value twice from the last index on)
    at_end = virtual >= last
    previous = np.where(at_end, -1, np.floor(virtual)).astype(np.intp)
    following = np.where(at_end, -1, previous + 1).astype(np.intp)
    gamma = virtual - previous
    below, above = values[previous], values[following]
    step = above - below
    result = below + step * gamma
    np.subtract(above, step * (1 - gamma), out=result, where=gamma >= 0.5)
    if np.isnan(values[-1]):
        result[:] = np.nan
    return result


def _line(levels, variances, counts):
    """Weighted least-squares line variance = a·level + b, and the standard error of a.

    Bins are weighted by 1/Var(estimate): the mean of N squared details of
    variance V has variance 2 V² / N.
    """
    # Floored so that noise-free (dark, flat) bins, exact as they are, do not
    # outweigh every other bin.
    if not np.any(variances > 0):
        # noise-free (constant or piecewise-constant) slice: no noise to model;
        # the weights below would be infinite
        return 0.0, 0.0, np.inf
    floor = 0.05 * float(np.mean(variances))
    weights = counts / (2.0 * np.maximum(variances, floor) ** 2)
    if np.ptp(levels) == 0 or not np.all(np.isfinite(weights)):
        return 0.0, float(np.average(variances, weights=counts)), np.inf
    root = np.sqrt(weights)
    design = np.stack([levels, np.ones_like(levels)], axis=1)
    (a, b), *_ = np.linalg.lstsq(design * root[:, None], variances * root, rcond=None)
    normal = design.T @ (design * weights[:, None])
    try:
        slope_error = float(np.sqrt(max(np.linalg.inv(normal)[0, 0], 0.0)))
    except np.linalg.LinAlgError:
        slope_error = np.inf
    return float(a), float(b), slope_error


def _fit(stats: dict, flag: np.ndarray) -> NoiseModel:
    n = stats["ndim"]
    usable = np.ones(stats["level"].shape, bool)
    mask = usable
    fitted = None
    for _ in range(3):
        _stop_if_cancelled(flag)
        bins = _bins(stats, mask, flag)
        if bins is None:
            break
        levels, variances, counts = bins
        a, b, slope_error = _line(levels, variances, counts)
        # Bins far above the line hold texture the smoothness test missed.
        spread = np.sqrt(2.0 / counts) * np.maximum(variances, 0.05 * float(np.mean(variances)))
        residual = (variances - (a * levels + b)) / np.maximum(spread, 1e-300)
        inliers = residual < 3.0
        if 3 <= np.count_nonzero(inliers) < inliers.size:
            levels, variances, counts = levels[inliers], variances[inliers], counts[inliers]
            a, b, slope_error = _line(levels, variances, counts)
        fitted = (a, b, slope_error, levels, variances, counts)
        expected = np.maximum(a * stats["level"] + b, 1e-300) / 2**n
        mask = usable & (stats["spread"] < _SMOOTH_SPREAD * expected)
    if fitted is None:
        return None
    a, b, slope_error, levels, variances, counts = fitted
    # The signal range is that of the level sets' own means: the neighbours'
    # means that the blocks were sorted by also hold noise, which would widen
    # the range of an image with no signal to speak of.
    offset = float(levels.min())
    dark = a * levels.min() + b
    bright = a * levels.max() + b
    # Gaussian unless the slope is both significant (three standard errors:
    # with a flat signal the level sets span almost no range and the slope
    # is noise) and large enough to change the noise level by 10 %.
    if a <= 3.0 * slope_error or dark > 0 and bright < GAUSSIAN_STD_RATIO**2 * dark:
        sigma = float(np.sqrt(max(np.average(variances, weights=counts), 0.0)))
        return _estimated(0.0, offset, sigma, "gaussian")
    read_variance = a * offset + b
    if read_variance < 0:  # the line reaches zero variance above the darkest level
        offset, read_variance = -b / a, 0.0
    return _estimated(a, offset, float(np.sqrt(read_variance)), "poisson-gaussian")


def _estimated(gain, offset, read_sigma, kind) -> NoiseModel:
    """The :class:`NoiseModel` of estimated values: a magnitude below the smallest intensity the
    plugin handles (``MIN_INTENSITY``) is 0 at its precision; one above the largest is an image
    out of range (``ValueError`` naming the image)."""
    values = {"gain": float(gain), "offset": float(offset), "read_sigma": float(read_sigma)}
    for name, value in values.items():
        if abs(value) < MIN_INTENSITY:
            values[name] = 0.0
        elif not abs(value) <= MAX_INTENSITY:
            raise ValueError(
                f"image: its noise model's {name} ({value:g}) is beyond the intensities the plugin handles "
                f"(magnitudes up to {MAX_INTENSITY:g}); rescale the image"
            )
    return NoiseModel(values["gain"], values["offset"], values["read_sigma"], kind)


def noise_model_of_slice(block: np.ndarray, token=None) -> NoiseModel:
    """Poisson–Gaussian noise model of one slice whose axes are all spatial.

    See :func:`estimate_noise_model`. Slices too small or too flat for the
    fit get a Gaussian model with the :func:`noise_of_slice` level. With a
    ``token`` the fit polls ``token.flag`` between its steps and raises
    :class:`~napari_denoise.Cancelled` once it is set.
    """
    flag = _flag_of(token)
    stats = _block_statistics(block, flag)
    model = None if stats is None else _fit(stats, flag)
    if model is None:
        return _estimated(0.0, 0.0, noise_of_slice(block, token), "gaussian")
    return model


def estimate_noise_model(image, *, spatial_axes=None) -> NoiseModel:
    """Fit a Poisson–Gaussian noise model to an image, from the image alone.

    The model says how the noise grows with the signal: variance =
    gain·(signal − offset) + read_sigma². Photon-limited images (fluorescence
    at low light) follow it with a large gain; images whose noise does not
    depend on the signal get ``kind="gaussian"``.

    Parameters
    ----------
    image : array_like or dask array
        Image of any real dtype, in its raw units (the fit is done in them; a
        rescaled image gets a rescaled model). Dask input is read one slice at
        a time.
    spatial_axes : sequence of int, optional
        Axes forming one image (default: all of a 2-D/3-D image, the last three
        otherwise). The statistics of every independent slice (time points)
        are pooled into one fit; fit channels separately, their gains differ.

    Returns
    -------
    NoiseModel
        ``gain``, ``offset``, ``read_sigma`` in the image's units and ``kind``
        (``"gaussian"`` when the noise standard deviation varies by less than
        10 % between the darkest and brightest smooth level sets, or the
        growth is not statistically significant).

    Notes
    -----
    The image is cut into 2×2 (2×2×2) blocks. Each block's finest diagonal
    Haar detail coefficient has the variance of the noise at the block's
    signal and ignores smooth structure. Blocks are grouped into 48 level
    sets by the mean of their neighbouring blocks; blocks whose neighbours
    vary more than noise allows (edges, texture) are left out, and so are
    level sets touching clipped or saturated values. A straight line,
    variance against level, is fitted by weighted least squares, with
    level sets far above it dropped as texture. ``offset`` is put at the
    darkest level set (only ``gain`` and ``read_sigma² − gain·offset`` are
    identifiable from one image).

    References
    ----------
    A. Foi, M. Trimeche, V. Katkovnik and K. Egiazarian, "Practical
    Poissonian-Gaussian noise modeling and fitting for single-image raw-data",
    IEEE Trans. Image Process. 17(10), 2008.
    """
    image = as_image(image)
    axes = resolve_spatial_axes(image.ndim, spatial_axes)
    moved = image if not axes else _move_last(image, axes)
    lead = moved.shape[: moved.ndim - len(axes)]
    pooled = []
    for index in np.ndindex(*lead):
        piece = moved[index]
        if hasattr(piece, "compute"):
            piece = piece.compute()
        stats = _block_statistics(piece, _NEVER)
        if stats is not None:
            pooled.append(stats)
    model = None
    if pooled:
        keys = [k for k in pooled[0] if k != "ndim"]
        merged = {k: np.concatenate([p[k] for p in pooled]) for k in keys} | {"ndim": pooled[0]["ndim"]}
        model = _fit(merged, _NEVER)
    if model is None:
        return _estimated(0.0, 0.0, estimate_noise(image, spatial_axes=spatial_axes), "gaussian")
    return model
