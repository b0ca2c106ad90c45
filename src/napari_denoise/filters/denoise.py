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
"""

from __future__ import annotations

import itertools
from functools import partial
from typing import Literal

import numpy as np
from skimage import restoration

from .._params import (
    _finite_number,
    check_choice,
    check_int,
    lengths_to_pixels,
    optional_positive,
)
from ..kernels import nl_means
from ._base import BorderMode, Cost, FilterOp, LibraryKernel, check_mode, filter_function, setup
from .noise import noise_of_slice

__all__ = ["bilateral", "total_variation", "wavelet", "non_local_means"]

# Default multiples of the estimated noise standard deviation.
BILATERAL_INTENSITY_FACTOR = 2.0
TV_WEIGHT_FACTOR = 1.0
NLM_H_FACTOR_FAST = 0.8
NLM_H_FACTOR_SLOW = 1.15

_PAD_MODES = {
    "reflect": "symmetric",
    "mirror": "reflect",
    "nearest": "edge",
    "constant": "constant",
    "wrap": "wrap",
}


def _bilateral_block(block, sigma_intensity, *, sigma_px, radius, mode, cval):
    """Direct bilateral filter of one float32 block over all its axes."""
    if sigma_intensity == 0:
        return block.copy()
    pad_kwargs = {"constant_values": cval} if mode == "constant" else {}
    padded = np.pad(block, [(r, r) for r in radius], mode=_PAD_MODES[mode], **pad_kwargs)
    numerator = np.zeros(block.shape, np.float32)
    denominator = np.zeros(block.shape, np.float32)
    weight = np.empty(block.shape, np.float32)
    # A tiny estimated sigma (nearly flat slice) must not overflow to -inf:
    # 0 * -inf would give NaN weights on equal neighbours.
    variance = float(sigma_intensity) ** 2
    finite_max = float(np.finfo(np.float32).max)
    intensity_scale = np.float32(-0.5 / variance if variance > 0.5 / finite_max else -finite_max)
    for offset in itertools.product(*(range(-r, r + 1) for r in radius)):
        spatial = sum((o / s) ** 2 for o, s in zip(offset, sigma_px) if s > 0)
        spatial_weight = np.float32(np.exp(-0.5 * spatial))
        window = tuple(
            slice(r + o, r + o + n) for r, o, n in zip(radius, offset, block.shape)
        )
        shifted = padded[window]
        np.subtract(shifted, block, out=weight)
        np.square(weight, out=weight)
        with np.errstate(over="ignore"):  # -inf here is a weight of exactly 0
            weight *= intensity_scale
        np.exp(weight, out=weight)
        weight *= spatial_weight
        denominator += weight
        weight *= shifted
        numerator += weight
    return numerator / denominator


def _noise_multiple(piece, *, value, factor):
    """Per-slice context: ``value`` when given, else ``factor`` × the slice's noise level."""
    return value if value is not None else factor * noise_of_slice(piece)


@filter_function(noise_model=True)
def bilateral(
    image,
    sigma_spatial=1.0,
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
    sigma_spatial : float or sequence of float, default 1.0
        Standard deviation of the spatial Gaussian, in the units of
        ``spacing`` (pixels without it); one value or one per spatial axis.
        The window spans ``max(2, ceil(3 σ))`` pixels either side (as in
        scikit-image), 0 on axes with σ = 0.
    sigma_intensity : float, optional
        Standard deviation of the intensity Gaussian, in the image's units.
        Default: 2 × the noise level estimated on each slice.
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
    the window without binning intensity differences. It agrees with
    :func:`skimage.restoration.denoise_bilateral` on 2-D float images
    (``win_size = 2 * radius + 1``) to about 1e-3 of the intensity range once
    scikit-image's spatial table is built on the right grid: scikit-image
    0.26 builds it from ``arange(-w//2, w//2 + 1)``, one point too many,
    which scrambles its spatial weights.
    """
    axes, spacing = setup(image, spatial_axes, spacing)
    mode = check_mode(mode)
    cval = _finite_number(cval, "cval")
    sigma_px = lengths_to_pixels(sigma_spatial, spacing, len(axes), "sigma_spatial")
    sigma_intensity = optional_positive(sigma_intensity, "sigma_intensity", allow_zero=True)
    radius = tuple(0 if s == 0 else max(2, int(np.ceil(3 * s))) for s in sigma_px)
    kernel = LibraryKernel(
        _bilateral_block,
        {"sigma_px": sigma_px, "radius": radius, "mode": mode, "cval": cval},
        with_context=True,
    )
    return FilterOp(
        "bilateral",
        kernel,
        axes,
        None if mode == "wrap" else radius,
        Cost.library(8e-9 * float(np.prod([2 * r + 1 for r in radius]))),
        {"sigma_spatial": sigma_px, "sigma_intensity": sigma_intensity, "radius": radius},
        context=partial(_noise_multiple, value=sigma_intensity, factor=BILATERAL_INTENSITY_FACTOR),
    )


def _tv_slice(block, *, weight, eps, max_num_iter):
    w = weight if weight is not None else TV_WEIGHT_FACTOR * noise_of_slice(block)
    if w == 0:
        return block
    return restoration.denoise_tv_chambolle(
        block, weight=w, eps=eps, max_num_iter=max_num_iter, channel_axis=None
    )


@filter_function(noise_model=True)
def total_variation(
    image,
    weight=None,
    *,
    spatial_axes=None,
    eps: float = 2e-4,
    max_num_iter: int = 200,
) -> FilterOp:
    """Total-variation denoising (Chambolle's projection algorithm).

    Flattens noise while keeping sharp edges; works on the whole plane or
    volume at once (lazy input is chunked only along independent axes).

    Parameters
    ----------
    %(image)s
    weight : float, optional
        Denoising weight in the image's intensity units: larger removes more
        noise (and more detail). Default: 1 × the noise level estimated on
        each slice.
    %(spatial_axes)s
    eps : float, default 2e-4
        Relative change of the cost below which iterations stop.
    max_num_iter : int, default 200
        Maximal number of iterations.

    Returns
    -------
    %(returns_float32)s

    Notes
    -----
    Equal to ``skimage.restoration.denoise_tv_chambolle(slice, weight)`` on
    each float32 slice. Spacing is not used: TV acts on pixel neighbours.

    References
    ----------
    A. Chambolle, "An algorithm for total variation minimization and
    applications", J. Math. Imaging Vis. 20, 2004.
    """
    axes, _ = setup(image, spatial_axes)
    weight = optional_positive(weight, "weight", allow_zero=True)
    eps = optional_positive(eps, "eps")
    max_num_iter = check_int(max_num_iter, "max_num_iter")
    kernel = LibraryKernel(_tv_slice, {"weight": weight, "eps": eps, "max_num_iter": max_num_iter})
    return FilterOp("total_variation", kernel, axes, None, Cost.library(1e-6), {"weight": weight})


def _wavelet_slice(block, *, sigma, wavelet_name, threshold_mode, wavelet_levels, method):
    s = sigma if sigma is not None else noise_of_slice(block)
    if s == 0 or min(block.shape) < 2:
        return block
    return restoration.denoise_wavelet(
        block,
        sigma=s,
        wavelet=wavelet_name,
        mode=threshold_mode,
        wavelet_levels=wavelet_levels,
        method=method,
        rescale_sigma=True,
        channel_axis=None,
    )


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
) -> FilterOp:
    """Wavelet shrinkage denoising.

    Parameters
    ----------
    %(image)s
    sigma : float, optional
        Noise standard deviation in the image's units. Default: estimated on
        each slice.
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

    Returns
    -------
    %(returns_float32)s

    Notes
    -----
    Equal to ``skimage.restoration.denoise_wavelet`` on each float32 slice
    with the same sigma (on float input it neither rescales nor clips).

    References
    ----------
    S. G. Chang, B. Yu and M. Vetterli, "Adaptive wavelet thresholding for
    image denoising and compression", IEEE Trans. Image Process. 9(9), 2000.
    """
    import pywt

    axes, _ = setup(image, spatial_axes)
    sigma = optional_positive(sigma, "sigma", allow_zero=True)
    method = check_choice(method, ("BayesShrink", "VisuShrink"), "method")
    threshold_mode = check_choice(threshold_mode, ("soft", "hard"), "threshold_mode")
    if wavelet_name not in pywt.wavelist(kind="discrete"):
        raise ValueError(f"wavelet_name: {wavelet_name!r} is not a discrete PyWavelets wavelet")
    if wavelet_levels is not None:
        wavelet_levels = check_int(wavelet_levels, "wavelet_levels")
    kernel = LibraryKernel(
        _wavelet_slice,
        {
            "sigma": sigma,
            "wavelet_name": wavelet_name,
            "threshold_mode": threshold_mode,
            "wavelet_levels": wavelet_levels,
            "method": method,
        },
    )
    return FilterOp("wavelet", kernel, axes, None, Cost.library(1e-7), {"sigma": sigma, "method": method})


def _nlm_context(piece, *, h, sigma, factor):
    s = sigma if sigma is not None else noise_of_slice(piece)
    return (h if h is not None else factor * s, s)


def _nlm_fast_kernel(block, keep, out, context, token, *, patch_size, patch_distance):
    """Compiled port of scikit-image's fast mode: same result, faster; polls the token."""
    h, sigma = context
    if h == 0:
        result = np.asarray(block, np.float32)[keep]
    else:
        result = nl_means.nl_means_fast(
            block, h, sigma, patch_size, patch_distance, keep=keep, cancel_flag=token.flag
        )
    if out is None:
        return result
    out[...] = result
    return out


def _nlm_library(block, context, *, patch_size, patch_distance, fast_mode):
    h, sigma = context
    if h == 0:
        return block
    return restoration.denoise_nl_means(
        block,
        h=h,
        sigma=sigma,
        patch_size=patch_size,
        patch_distance=patch_distance,
        fast_mode=fast_mode,
        preserve_range=True,
        channel_axis=None,
    )


@filter_function(noise_model=True)
def non_local_means(
    image,
    *,
    h=None,
    sigma=None,
    patch_size: int = 5,
    patch_distance: int = 6,
    fast_mode: bool = True,
    spatial_axes=None,
) -> FilterOp:
    """Non-local means denoising (2-D or 3-D).

    Parameters
    ----------
    %(image)s
    h : float, optional
        Cut-off distance between patches, in the image's units: larger
        averages more. Default: 0.8 σ (fast mode) or 1.15 σ (slow mode), the
        values of the scikit-image gallery, with σ = ``sigma``.
    sigma : float, optional
        Noise standard deviation in the image's units, subtracted from patch
        distances. Default: estimated on each slice.
    patch_size : int, default 5
        Width of the patches compared, in pixels.
    patch_distance : int, default 6
        Maximal distance, in pixels, at which patches are searched.
    fast_mode : bool, default True
        Uniform patch weights (much faster) instead of Gaussian ones.
    spatial_axes : sequence of int, optional
        Two or three axes forming one image (default: all of a 2-D/3-D image,
        the last three otherwise). Other axes are processed independently.

    Returns
    -------
    %(returns_float32)s

    Notes
    -----
    Equal to ``skimage.restoration.denoise_nl_means(slice, h=h, sigma=sigma,
    patch_size=..., patch_distance=..., fast_mode=..., preserve_range=True)``
    on each float32 slice; large slices are tiled with a halo of
    ``patch_distance + patch_size // 2 + 1`` pixels and run on every core.

    References
    ----------
    A. Buades, B. Coll and J.-M. Morel, "A non-local algorithm for image
    denoising", CVPR 2005. J. Darbon et al., "Fast nonlocal filtering applied
    to electron cryomicroscopy", ISBI 2008.
    """
    axes, _ = setup(image, spatial_axes, min_axes=2)
    if len(axes) > 3:
        raise ValueError(
            f"spatial_axes: non-local means works on 2 or 3 spatial axes, got {len(axes)}"
        )
    h = optional_positive(h, "h", allow_zero=True)
    sigma = optional_positive(sigma, "sigma", allow_zero=True)
    patch_size = check_int(patch_size, "patch_size")
    patch_distance = check_int(patch_distance, "patch_distance")
    fast_mode = bool(fast_mode)
    factor = NLM_H_FACTOR_FAST if fast_mode else NLM_H_FACTOR_SLOW
    reach = patch_distance + patch_size // 2 + 1
    offsets = (2 * patch_distance + 1) ** len(axes)
    if fast_mode:
        # compiled: ~3 ns per voxel and search offset on one core (skimage ~5-7 ns);
        # float64 padded block, integral image, weights and sums, float32 copies
        kernel = partial(_nlm_fast_kernel, patch_size=patch_size, patch_distance=patch_distance)
        cost = Cost(offsets * 3e-9, work_arrays=10.0, over_halo=True)
    else:
        kernel = LibraryKernel(
            _nlm_library,
            {"patch_size": patch_size, "patch_distance": patch_distance, "fast_mode": False},
            with_context=True,
        )
        cost = Cost.library(offsets * 1e-8 * patch_size ** len(axes))
    return FilterOp(
        "non_local_means",
        kernel,
        axes,
        (reach,) * len(axes),
        cost,
        {"h": h, "sigma": sigma, "patch_size": patch_size, "patch_distance": patch_distance},
        context=partial(_nlm_context, h=h, sigma=sigma, factor=factor),
    )
