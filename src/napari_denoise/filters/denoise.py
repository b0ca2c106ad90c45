"""Edge-preserving denoisers: bilateral, total variation, wavelet, non-local means.

Intensity parameters left at ``None`` are multiples of the noise level
estimated on each independent slice (:func:`~napari_denoise.estimate_noise`),
so results are in the image's own units and do not depend on its dtype:
uint16 data holding values 0-235 is denoised exactly like the same values as
float32, and ``f(c * x) ≈ c * f(x)``.

NaN and infinite pixels never raise, but they are not skipped either: the
noise estimate leaves them out; the bilateral filter and non-local means turn
the pixels whose window or patches reach them into NaN; total variation and
wavelet shrinkage, being global, turn their whole slice (plane or volume)
into NaN.

All four run compiled kernels (:mod:`napari_denoise.kernels`) that release
the GIL: tiles or independent slices run on the scheduler's threads, and a
slice that is not cut into enough tiles uses the idle threads inside its
kernel (search offsets' slabs, TV passes, bilateral rows).
"""

from __future__ import annotations

import itertools
import math
from functools import partial
from typing import Literal

import numpy as np

from .._params import (
    check_choice,
    check_int,
    check_intensity,
    lengths_to_pixels,
    optional_positive,
)
from ..kernels import bilateral as bilateral_kernels
from ..kernels import nl_means
from ..kernels import tv
from ..kernels import wavelet as wavelet_kernels
from ..kernels.threads import threads_of
from .._filter_op import VALUE_AND_SLOPE
from ._base import BorderMode, Cost, FilterOp, check_mode, filter_function, setup
from ._folding import folded_reach
from .noise import noise_of_slice

__all__ = ["bilateral", "total_variation", "wavelet", "non_local_means"]

# Bounds on the work one call may ask for (see _params for the shared ones).
#: Most voxels in a bilateral window (σ up to 6.5 voxels in 3-D, 42 in 2-D).
MAX_BILATERAL_WINDOW = 1 << 16
#: Most search offsets of non-local means ((2 d + 1)^k, d = patch_distance).
MAX_NLM_OFFSETS = 1 << 16
#: Widest patch of non-local means, in pixels.
MAX_PATCH_SIZE = 255
#: Most iterations of total variation.
MAX_TV_ITERATIONS = 100_000

# Defaults from the study on real images with added Gaussian (σ 0.05-0.2 of the
# range) and Poisson (peak 10-100) noise, benchmarks/defaults_study.py: the grid
# point with the best mean PSNR. Intensities are multiples of the noise level the
# denoiser works with (σ̂ estimated per slice, or 1 in the variance-stabilised
# path: both give the same best multiples); lengths are voxels of the finest
# axis. Keyed by the number of spatial axes (2: planes, 3: volumes) where the
# best values differ.
#: Bilateral intensity σ, × σ̂ (was 2: too small, it kept most of the noise).
BILATERAL_INTENSITY_FACTOR = 4.0
#: Bilateral spatial σ in voxels (was 1 everywhere).
BILATERAL_SIGMA_SPATIAL = {2: 2.0, 3: 1.0}
#: Total-variation weight, × σ̂, at the converged tolerance below.
TV_WEIGHT_FACTOR = {2: 1.0, 3: 0.5}
#: Relative change of the TV energy at which iterations stop: within 0.06 dB of
#: a 1e-6 tolerance on every case of the study (2e-4, scikit-image's default,
#: stopped after 10-30 iterations and up to 0.7 dB away from convergence).
TV_EPS = 1e-5
#: Iteration cap; the study's runs at TV_EPS took 30-150 iterations.
TV_MAX_ITERATIONS = 500
#: Iterations a TV run is expected to take (time predictions and tile sizes).
TV_TYPICAL_ITERATIONS = 150
#: Non-local means h, × σ̂, fast mode (was 0.8, the 2-D gallery value: 3-D
#: stacks were over-smoothed).
NLM_H_FACTOR_FAST = {2: 0.6, 3: 0.4}
#: Slow mode (Gaussian patch weights): the fast factors × 1.15 / 0.8, the ratio
#: of scikit-image's gallery values for the two modes (not re-measured).
NLM_H_FACTOR_SLOW = {n: round(f * 1.15 / 0.8, 3) for n, f in NLM_H_FACTOR_FAST.items()}
#: Wavelet threshold noise level, × σ̂ (1 was confirmed best in 2-D and 3-D).
WAVELET_SIGMA_FACTOR = 1.0


def _by_axes(table, n_axes: int):
    """The entry of ``table`` for planes (1-2 spatial axes) or volumes (3 or more)."""
    return table[min(max(n_axes, 2), 3)]

# Measured on one core of an AMD EPYC (Zen 3) with a quiet neighbour; they set
# tile sizes and the widgets' time predictions.
BILATERAL_SECONDS_PER_VOXEL_AND_NEIGHBOUR = 1.2e-9
TV_SECONDS_PER_VOXEL_AND_ITERATION = 2.0e-9
WAVELET_SECONDS_PER_VOXEL = {"haar": 6e-9, "other": 4e-8}
# fast NLM: CPU time per voxel of the padded tile and per pair of offsets,
# 2.8e-9 (3-D) to 4.6e-9 (2-D) measured with time.process_time on one thread
NLM_FAST_SECONDS_PER_VOXEL_AND_OFFSET = 3.5e-9
NLM_SLOW_SECONDS_PER_VOXEL_AND_TERM = 2.5e-10


def _as_result(block, keep, out):
    """``block[keep]`` unchanged, as the float32 result (the filter's limit of zero strength)."""
    result = np.asarray(block, dtype=np.float32)[tuple(keep)]
    if out is None:
        return result.copy()
    out[...] = result
    return out


def _bilateral_kernel(block, keep, out, context, token, *, sigma_px, radius, mode, cval):
    """Kernel: the compiled bilateral filter on the kept part; ``context`` is σ_intensity."""
    if context == 0:
        return _as_result(block, keep, out)
    return bilateral_kernels.bilateral(
        block, sigma_px, radius, context, mode, cval, keep=keep, out=out, threads=threads_of(token), token=token
    )


def _bilateral_slope_kernel(block, keep, out, context, token, *, sigma_px, radius, mode, cval):
    """Kernel: :func:`_bilateral_kernel` and its slope, as :data:`~napari_denoise._filter_op.VALUE_AND_SLOPE`."""
    if out is None:
        shape = [len(range(*s.indices(n))) for s, n in zip(keep, block.shape)]
        out = np.empty(shape, VALUE_AND_SLOPE)
    if context == 0:  # the identity
        out["value"] = _as_result(block, keep, None)
        out["slope"] = 1.0
        return out
    value = np.empty(out.shape, np.float32)
    slope = np.empty(out.shape, np.float32)
    bilateral_kernels.bilateral(
        block, sigma_px, radius, context, mode, cval, keep=keep, out=value, threads=threads_of(token), token=token,
        slope=slope,
    )
    out["value"], out["slope"] = value, slope
    return out


def _noise_multiple(piece, token, *, value, factor):
    """Per-slice context: ``value`` when given, else ``factor`` × the slice's noise level."""
    return value if value is not None else factor * noise_of_slice(piece, token)


def _bilateral_radius(sigma_px, extents, mode, value, spacing) -> tuple[int, ...]:
    """Window radius per axis: ``max(2, ceil(3 σ))``, cut where the window would only
    re-read the image through its border mode (``folded_reach``: ``n`` voxels on an
    axis of ``n``, ``n - 1`` for 'mirror'/'nearest', ``n // 2`` for 'wrap'); the window
    at most MAX_BILATERAL_WINDOW voxels."""
    radius = tuple(
        0 if s == 0 else min(folded_reach(n, mode), max(2, int(np.ceil(3 * s)))) for s, n in zip(sigma_px, extents)
    )
    window = int(np.prod([2 * r + 1 for r in radius]))
    if window > MAX_BILATERAL_WINDOW:
        k = sum(1 for r in radius if r > 0)
        largest = int((MAX_BILATERAL_WINDOW ** (1 / k) - 1) // 2) / 3
        raise ValueError(
            f"sigma_spatial: a window of {' x '.join(str(2 * r + 1) for r in radius)} = {window} voxels is "
            f"too large (at most {MAX_BILATERAL_WINDOW}: sigma_spatial at most {largest:.3g} voxels on "
            f"{k} axes{'' if spacing is None else ', in the units of spacing divided by it'}), got {value!r}"
        )
    return radius


@filter_function(noise_model=True)
def bilateral(
    image,
    sigma_spatial=None,
    sigma_intensity=None,
    *,
    spacing=None,
    spatial_axes=None,
    mode: BorderMode = "reflect",
    cval: float = 0.0,
) -> FilterOp:
    """Bilateral filter: Gaussian smoothing that stops at intensity edges.

    Works in 2-D and 3-D (and more) directly, with an anisotropic window when
    ``spacing`` is given; it is not limited to planes.

    Parameters
    ----------
    %(image)s
    sigma_spatial : float or sequence of float, optional
        Standard deviation of the spatial Gaussian, in the units of
        ``spacing`` (pixels without it); one value or one per spatial axis.
        Default: 2 pixels on planes (1 or 2 spatial axes), 1 voxel in
        volumes, along the finest axis (the defaults study,
        ``benchmarks/defaults_study.py``).
        The window spans ``max(2, ceil(3 σ))`` pixels either side (as in
        scikit-image), 0 on axes with σ = 0, cut where it would only re-read
        the image through the border (beyond ``n`` pixels on an axis of
        ``n``; ``n - 1`` for 'mirror' and 'nearest', ``n // 2`` for 'wrap');
        it may hold at most 65536 voxels.
    sigma_intensity : float, optional
        Standard deviation of the intensity Gaussian, in the image's units.
        Default: 4 × the noise level estimated on each slice (the defaults
        study's best multiple, in 2-D and 3-D).
    %(spacing)s
    %(spatial_axes)s
    mode : {'reflect', 'nearest', 'mirror', 'constant', 'wrap'}, default 'reflect'
        Border handling (scipy.ndimage names). scikit-image's
        ``denoise_bilateral`` defaults to 'constant', which darkens borders.
    %(cval)s

    Returns
    -------
    %(returns_float32)s

    Notes
    -----
    The textbook filter (Tomasi & Manduchi, ICCV 1998), computed exactly over
    the window without binning intensity differences (compiled; float32 with
    an exponential accurate to 2 ulps). It agrees with
    :func:`skimage.restoration.denoise_bilateral` on 2-D float images
    (``win_size = 2 * radius + 1``) to about 1e-3 of the intensity range once
    scikit-image's spatial table is built on the right grid: scikit-image
    0.26 builds it from ``arange(-w//2, w//2 + 1)``, one point too many,
    which scrambles its spatial weights.
    """
    axes, spacing = setup(image, spatial_axes, spacing)
    mode = check_mode(mode)
    cval = check_intensity(cval, "cval", allow_none=False, signed=True)
    if sigma_spatial is None:
        sigma_spatial = _by_axes(BILATERAL_SIGMA_SPATIAL, len(axes)) * (1.0 if spacing is None else min(spacing))
    sigma_px = lengths_to_pixels(sigma_spatial, spacing, len(axes), "sigma_spatial", max_pixels=1e6)
    sigma_intensity = check_intensity(sigma_intensity, "sigma_intensity")
    radius = _bilateral_radius(sigma_px, [image.shape[ax] for ax in axes], mode, sigma_spatial, spacing)
    geometry = {"sigma_px": sigma_px, "radius": radius, "mode": mode, "cval": cval}
    window = math.prod(2 * r + 1 for r in radius)
    return FilterOp(
        "bilateral",
        partial(_bilateral_kernel, **geometry),
        axes,
        None if mode == "wrap" else radius,
        # reads its halo, computes the kept part; row buffers only (+ a float32
        # result when the output view is not contiguous)
        Cost(BILATERAL_SECONDS_PER_VOXEL_AND_NEIGHBOUR * window, work_arrays=1.0, over_halo=False),
        {"sigma_spatial": sigma_px, "sigma_intensity": sigma_intensity, "radius": radius},
        context=partial(_noise_multiple, value=sigma_intensity, factor=BILATERAL_INTENSITY_FACTOR),
        slope_kernel=partial(_bilateral_slope_kernel, **geometry),
    )


def _relative_spacing(spacing, n_axes):
    """``spacing / min(spacing)`` per axis (all 1 without spacing)."""
    if spacing is None:
        return (1.0,) * n_axes
    finest = min(spacing)
    return tuple(v / finest for v in spacing)


def _tv_kernel(block, keep, out, context, token, *, eps, max_num_iter, inverse_spacing):
    """Kernel: compiled Chambolle TV of a whole slice; ``context`` is the weight."""
    weight = float(context)
    tau = 1.0 / (2.0 * sum(v * v for v in inverse_spacing))
    # weight 0, or so small that τ / weight overflows float32: the result is
    # the image itself (|u - f| <= 2 ndim weight, below float32 resolution),
    # where the iteration would compute 0 * inf = NaN.
    with np.errstate(over="ignore"):
        if weight == 0 or not np.isfinite(np.float32(tau / weight)):
            return _as_result(block, keep, out)
    return tv.tv_chambolle(
        block, weight, eps, max_num_iter, inverse_spacing=inverse_spacing, out=out,
        threads=threads_of(token), token=token,
    )


@filter_function(noise_model=True)
def total_variation(
    image,
    weight=None,
    *,
    spacing=None,
    spatial_axes=None,
    eps: float = TV_EPS,
    max_num_iter: int = TV_MAX_ITERATIONS,
) -> FilterOp:
    """Total-variation denoising (Chambolle's projection algorithm).

    Flattens noise while keeping sharp edges; works on the whole plane or
    volume at once (lazy input is chunked only along independent axes).

    Parameters
    ----------
    %(image)s
    weight : float, optional
        Denoising weight in the image's intensity units: larger removes more
        noise (and more detail). Default: the noise level estimated on each
        slice × 1 on planes (1 or 2 spatial axes), × 0.5 in volumes (the
        defaults study's best multiples at the default tolerance).
    spacing : sequence of float, optional
        Voxel size along each spatial axis (a napari layer's ``scale``).
        Differences between neighbours along axis ``a`` are divided by
        ``spacing[a] / min(spacing)``: coarser axes (e.g. z) count less
        variation per voxel step and are smoothed less. Isotropic spacing
        changes nothing. Default: all axes alike (scikit-image's grid).
    %(spatial_axes)s
    eps : float, default 1e-5
        Iterations stop when the cost changes by less than ``eps`` times its
        first value. At 1e-5 the result is within 0.06 dB (PSNR) of a 1e-6
        tolerance on every image of the defaults study, after 30-150
        iterations; scikit-image's 2e-4 stops after 10-30 iterations, up to
        0.7 dB short of convergence.
    max_num_iter : int, default 500
        Maximal number of iterations (at most 100000).

    Returns
    -------
    %(returns_float32)s

    Notes
    -----
    Without spacing, equal to ``skimage.restoration.denoise_tv_chambolle(slice,
    weight, eps=eps, max_num_iter=max_num_iter)`` on each float32 slice, value
    for value: the compiled kernel repeats scikit-image's float32 operations
    and its pairwise-summed energy, so it stops at the same iteration; it
    runs the passes of each iteration on all idle threads. With spacing the
    gradient is ``(u[x + e_a] - u[x]) / (spacing[a] / min(spacing))``, its
    adjoint the divergence, and the step ``τ = 1 / (2 Σ_a (min(spacing) /
    spacing[a])²)`` (scikit-image's ``1 / (2 ndim)`` for isotropic voxels).
    A weight below about 1e-39 (τ / weight overflows) returns the image.

    References
    ----------
    A. Chambolle, "An algorithm for total variation minimization and
    applications", J. Math. Imaging Vis. 20, 2004.
    """
    axes, spacing = setup(image, spatial_axes, spacing)
    weight = check_intensity(weight, "weight")
    eps = optional_positive(eps, "eps", allow_none=False)
    max_num_iter = check_int(max_num_iter, "max_num_iter", maximum=MAX_TV_ITERATIONS)
    inverse_spacing = tuple(1.0 / r for r in _relative_spacing(spacing, len(axes)))
    kernel = partial(_tv_kernel, eps=eps, max_num_iter=max_num_iter, inverse_spacing=inverse_spacing)
    return FilterOp(
        "total_variation",
        kernel,
        axes,
        None,
        # p (one float32 volume per axis) and d/norm; + a float32 result when
        # the output view is not contiguous
        Cost(
            TV_SECONDS_PER_VOXEL_AND_ITERATION * min(max_num_iter, TV_TYPICAL_ITERATIONS),
            work_arrays=len(axes) + 2.0,
            over_halo=True,
        ),
        {"weight": weight, "spacing": spacing},
        context=partial(_noise_multiple, value=weight, factor=_by_axes(TV_WEIGHT_FACTOR, len(axes))),
    )


def _wavelet_kernel(block, keep, out, context, token, *, wavelet_name, threshold_mode, wavelet_levels, method,
                    cycle_spin):
    """Kernel: wavelet shrinkage of a whole slice; ``context`` is the noise σ.

    With ``cycle_spin`` the mean of the shrinkages of the slice shifted by 0 or
    1 voxel along each axis (circularly, as ``skimage.restoration.cycle_spin``).
    """
    sigma = float(context)
    if sigma == 0 or min(block.shape) < 2 or token.cancelled:
        return _as_result(block, keep, out)
    shifts = list(itertools.product((0, 1), repeat=block.ndim)) if cycle_spin else [(0,) * block.ndim]
    token.report(0, len(shifts))
    if len(shifts) == 1:
        result = wavelet_kernels.denoise_wavelet(
            block, sigma, wavelet_name=wavelet_name, threshold_mode=threshold_mode, method=method,
            wavelet_levels=wavelet_levels, out=out, threads=threads_of(token), token=token,
        )
        token.report(1, 1)
        return result
    result = wavelet_kernels.cycle_spin(
        block, sigma, shifts, wavelet_name=wavelet_name, threshold_mode=threshold_mode, method=method,
        wavelet_levels=wavelet_levels, out=out, threads=threads_of(token), token=token,
    )
    return _as_result(block, keep, out) if result is None else result


@filter_function(noise_model=True)
def wavelet(
    image,
    *,
    sigma=None,
    method: Literal["BayesShrink", "VisuShrink"] = "BayesShrink",
    spatial_axes=None,
    wavelet_name: str = "db1",
    threshold_mode: Literal["soft", "hard"] = "soft",
    wavelet_levels: int | None = None,
    cycle_spin: bool = True,
) -> FilterOp:
    """Wavelet shrinkage denoising.

    Parameters
    ----------
    %(image)s
    sigma : float, optional
        Noise standard deviation in the image's units. Default: estimated on
        each slice (× 1, confirmed best in 2-D and 3-D by the defaults study).
    method : {'BayesShrink', 'VisuShrink'}, default 'BayesShrink'
        Threshold rule: adaptive per sub-band (BayesShrink) or the universal
        threshold (VisuShrink).
    %(spatial_axes)s
    wavelet_name : str, default 'db1'
        Any discrete wavelet known to PyWavelets.
    threshold_mode : {'soft', 'hard'}, default 'soft'
        Thresholding of the detail coefficients.
    wavelet_levels : int, optional
        Decomposition levels; default 3 fewer than the maximum (at least 1).
        At most ``log2`` of the largest spatial extent, rounded up (beyond
        that every axis is one pixel); above the wavelet's own maximum
        PyWavelets warns of boundary effects.
    cycle_spin : bool, default True
        Average the shrinkages of the slice shifted by 0 or 1 voxel along
        each spatial axis (2^k runs: 4 in 2-D, 8 in 3-D; Coifman & Donoho
        1995), which removes the blocky artefacts of one decimated
        transform. It gained 1.3 dB on average over the quality benchmark's
        21 cases (Gaussian and Poisson noise, 2-D and 3-D;
        ``benchmarks/quality.py``) for 4–8× the time of this, the fastest
        denoiser.

    Returns
    -------
    %(returns_float32)s

    Notes
    -----
    With ``cycle_spin=False``, equal, to float32 precision, to
    ``skimage.restoration.denoise_wavelet`` on each float32 slice with the
    same sigma (on float input it neither rescales nor clips); with it, to
    that inside ``skimage.restoration.cycle_spin(max_shifts=1)``. The Haar
    wavelet (``db1``) has its own compiled transform; the other wavelets go
    through a compiled, threaded filter bank whose coefficients are
    PyWavelets' (mode 'symmetric', float32) bit for bit. Soft
    thresholding is ``sign(d) max(|d| - t, 0)``: a noise-free image (zero
    coefficients, zero threshold) comes back unchanged, not NaN.

    References
    ----------
    S. G. Chang, B. Yu and M. Vetterli, "Adaptive wavelet thresholding for
    image denoising and compression", IEEE Trans. Image Process. 9(9), 2000.
    R. R. Coifman and D. L. Donoho, "Translation-invariant de-noising",
    Wavelets and Statistics, Springer, 1995.
    """
    import pywt

    axes, _ = setup(image, spatial_axes)
    sigma = check_intensity(sigma, "sigma")
    method = check_choice(method, ("BayesShrink", "VisuShrink"), "method")
    threshold_mode = check_choice(threshold_mode, ("soft", "hard"), "threshold_mode")
    if not isinstance(wavelet_name, str) or wavelet_name not in pywt.wavelist(kind="discrete"):
        raise ValueError(f"wavelet_name: {wavelet_name!r} is not a discrete PyWavelets wavelet")
    if wavelet_levels is not None:
        # after log2(largest extent) halvings every axis is one pixel: more
        # levels would transform 1-pixel arrays (10**5 levels: seconds, for nothing)
        top = max(1, max(image.shape[ax] for ax in axes).bit_length())
        wavelet_levels = check_int(wavelet_levels, "wavelet_levels", maximum=top)
    kernel = partial(
        _wavelet_kernel,
        wavelet_name=wavelet_name,
        threshold_mode=threshold_mode,
        wavelet_levels=wavelet_levels,
        method=method,
        cycle_spin=bool(cycle_spin),
    )
    haar = wavelet_name in wavelet_kernels.HAAR_NAMES
    runs = 2 ** len(axes) if cycle_spin else 1
    slice_shape = tuple(image.shape[ax] for ax in axes)
    if cycle_spin and wavelet_kernels.spins_in_tiles(slice_shape, wavelet_name, wavelet_levels, runs):
        spinning = 2.0  # the float64 sum; each shift goes through the tiles (1/8 or less, below)
    else:
        spinning = 4.0 if cycle_spin else 0.0  # a shifted copy, its shrinkage and the float64 sum
    cost = Cost(
        WAVELET_SECONDS_PER_VOXEL["haar" if haar else "other"] * runs,
        # coefficients (Haar: 1.15-1.34 slices level by level, plus a float32 copy of a small
        # integer slice; 1/8 or less in tiles; PyWavelets: its copies)
        work_arrays=(2.0 if haar else 6.0) + spinning,
        over_halo=True,
    )
    return FilterOp(
        "wavelet",
        kernel,
        axes,
        None,
        cost,
        {"sigma": sigma, "method": method},
        context=partial(_noise_multiple, value=sigma, factor=WAVELET_SIGMA_FACTOR),
    )


def _nlm_context(piece, token, *, h, sigma, factor):
    s = sigma if sigma is not None else noise_of_slice(piece, token)
    return (h if h is not None else factor * s, s)


def _nlm_h_negligible(h, patch_size, fast_mode) -> bool:
    """h = 0, or so small that the distances' normaliser overflows (weights would be NaN).

    Then every other patch weighs 0 and each pixel keeps its value: the limit
    of non-local means as h goes to 0.
    """
    if h == 0 or h * h * math.prod(patch_size) == 0:
        return True
    if fast_mode:
        return False
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        weights = nl_means.patch_weights(tuple(p // 2 for p in patch_size), h)
    return not np.all(np.isfinite(weights))


def _nlm_kernel(block, keep, out, context, token, *, patch_size, patch_distance, fast_mode):
    """Kernel: compiled non-local means of the kept part; ``context`` is ``(h, σ)``."""
    h, sigma = context
    if _nlm_h_negligible(h, patch_size, fast_mode):
        return _as_result(block, keep, out)
    return nl_means.nl_means(
        block, h, sigma, patch_size, patch_distance, fast_mode=fast_mode, keep=keep, out=out,
        threads=threads_of(token), token=token,
    )


def nlm_extents(patch_size, patch_distance, spacing, n_axes):
    """Per-axis patch sizes and search distances, in voxels, of a non-local means call.

    Without spacing: ``patch_size`` (made odd as scikit-image does) and
    ``patch_distance`` along every axis. With spacing, they are the values
    along the finest axis; an axis ``r = spacing[a] / min(spacing)`` times
    coarser gets the same physical extent rounded to whole voxels: half
    patch ``round((patch_size // 2) / r)``, distance ``round(patch_distance / r)``.
    """
    half = (patch_size + 1 if patch_size % 2 == 0 else patch_size) // 2
    if spacing is None:
        return (2 * half + 1,) * n_axes, (patch_distance,) * n_axes
    ratios = _relative_spacing(spacing, n_axes)
    sizes = tuple(2 * math.floor(half / r + 0.5) + 1 for r in ratios)
    distances = tuple(math.floor(patch_distance / r + 0.5) for r in ratios)
    return sizes, distances


@filter_function(noise_model=True)
def non_local_means(
    image,
    *,
    h=None,
    sigma=None,
    patch_size: int = 5,
    patch_distance: int = 6,
    fast_mode: bool = True,
    spacing=None,
    spatial_axes=None,
) -> FilterOp:
    """Non-local means denoising (2-D or 3-D).

    Parameters
    ----------
    %(image)s
    h : float, optional
        Cut-off distance between patches, in the image's units: larger
        averages more. Default, with σ = ``sigma``: fast mode 0.6 σ on
        planes and 0.4 σ in volumes (the defaults study's best multiples;
        scikit-image's gallery value 0.8 σ over-smooths volumes); slow mode
        those × 1.15 / 0.8 (0.8625 σ and 0.575 σ), the ratio of the
        gallery's two values.
    sigma : float, optional
        Noise standard deviation in the image's units, subtracted from patch
        distances. Default: estimated on each slice.
    patch_size : int, default 5
        Width of the patches compared, in pixels (along the finest axis when
        ``spacing`` is given; at most 255).
    patch_distance : int, default 6
        Maximal distance, in pixels, at which patches are searched (along the
        finest axis when ``spacing`` is given; at most 127 in 2-D and 19 in
        3-D: 65536 search offsets).
    fast_mode : bool, default True
        Uniform patch weights (much faster) instead of Gaussian ones.
    spacing : sequence of float, optional
        Voxel size along each spatial axis (a napari layer's ``scale``). An
        axis ``r = spacing[a] / min(spacing)`` times coarser than the finest
        gets patches and a search of the same physical extent, rounded to
        whole voxels: half patch ``round((patch_size // 2) / r)``, search
        distance ``round(patch_distance / r)``. Isotropic spacing changes
        nothing. Default: the same extents along every axis.
    spatial_axes : sequence of int, optional
        Two or three axes forming one image (default: all of a 2-D/3-D image,
        the last three otherwise). Other axes are processed independently.

    Returns
    -------
    %(returns_float32)s

    Notes
    -----
    Without spacing, equal to ``skimage.restoration.denoise_nl_means(slice,
    h=h, sigma=sigma, patch_size=..., patch_distance=..., fast_mode=...,
    preserve_range=True)`` on each float32 slice: bit for bit in slow mode,
    to float32 precision in fast mode (scikit-image's float64 integral images
    are replaced by box sums, and its fast-mode patch, which covers
    ``2 (patch_size // 2)`` pixels per axis, is kept). Both modes are
    compiled and run on every core; large slices are tiled with a halo of
    ``patch_distance + patch_size // 2`` pixels. Extra memory: fast mode
    about 5 float32 arrays of a tile (two float64 sums and the padded tile),
    slow mode about 3.

    References
    ----------
    A. Buades, B. Coll and J.-M. Morel, "A non-local algorithm for image
    denoising", CVPR 2005. J. Darbon et al., "Fast nonlocal filtering applied
    to electron cryomicroscopy", ISBI 2008.
    """
    axes, spacing = setup(image, spatial_axes, spacing, min_axes=2)
    if len(axes) > 3:
        raise ValueError(
            f"spatial_axes: non-local means works on 2 or 3 spatial axes, got {len(axes)}"
        )
    h = check_intensity(h, "h")
    sigma = check_intensity(sigma, "sigma")
    patch_size = check_int(patch_size, "patch_size", maximum=MAX_PATCH_SIZE)
    largest_distance = int((MAX_NLM_OFFSETS ** (1 / len(axes)) - 1) // 2)
    patch_distance = check_int(patch_distance, "patch_distance", maximum=largest_distance)
    fast_mode = bool(fast_mode)
    factor = _by_axes(NLM_H_FACTOR_FAST if fast_mode else NLM_H_FACTOR_SLOW, len(axes))
    sizes, distances = nlm_extents(patch_size, patch_distance, spacing, len(axes))
    halo = tuple(d + s // 2 for s, d in zip(sizes, distances))
    offsets = math.prod(2 * d + 1 for d in distances)
    kernel = partial(_nlm_kernel, patch_size=sizes, patch_distance=distances, fast_mode=fast_mode)
    if fast_mode:
        # half the offsets (each pair of patches once); the padded tile and two
        # float64 sums over it, a few float64 planes per thread
        cost = Cost(NLM_FAST_SECONDS_PER_VOXEL_AND_OFFSET * (offsets // 2), work_arrays=6.0, over_halo=True)
    else:
        # every offset, every patch voxel; reads its halo, two float32 sums
        # and the padded tile
        cost = Cost(
            NLM_SLOW_SECONDS_PER_VOXEL_AND_TERM * offsets * math.prod(sizes), work_arrays=4.0, over_halo=False
        )
    return FilterOp(
        "non_local_means",
        kernel,
        axes,
        halo,
        cost,
        {"h": h, "sigma": sigma, "patch_size": sizes, "patch_distance": distances},
        context=partial(_nlm_context, h=h, sigma=sigma, factor=factor),
    )
