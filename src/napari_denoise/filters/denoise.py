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
from . import _kernels
from ._base import BorderMode, Plan, check_mode, filter_function, setup
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


def _bilateral_block(block, sigma_px, radius, sigma_intensity, mode, cval):
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


@filter_function
def bilateral(
    image,
    sigma_spatial=1.0,
    sigma_intensity=None,
    *,
    spacing=None,
    spatial_axes=None,
    mode: BorderMode = "reflect",
    cval: float = 0.0,
) -> Plan:
    """Bilateral filter: Gaussian smoothing that stops at intensity edges.

    Works in 2-D and 3-D (and more) directly, with an anisotropic window when
    ``spacing`` is given; it is not limited to planes.

    Parameters
    ----------
    image : array_like or dask array
        Image of any real dtype. It is never modified.
    sigma_spatial : float or sequence of float, default 1.0
        Standard deviation of the spatial Gaussian, in the units of
        ``spacing`` (pixels without it); one value or one per spatial axis.
        The window spans ``max(2, ceil(3 σ))`` pixels either side (as in
        scikit-image), 0 on axes with σ = 0.
    sigma_intensity : float, optional
        Standard deviation of the intensity Gaussian, in the image's units.
        Default: 2 × the noise level estimated on each slice.
    spacing : sequence of float, optional
        Voxel size along each spatial axis. Default: 1 pixel.
    spatial_axes : sequence of int, optional
        Axes to filter across (default: all of a 2-D/3-D image, the last three
        otherwise). Other axes are processed independently.
    mode : {'reflect', 'nearest', 'mirror', 'constant', 'wrap'}, default 'reflect'
        Border handling (scipy.ndimage names). scikit-image's
        ``denoise_bilateral`` defaults to 'constant', which darkens borders.
    cval : float, default 0.0
        Value outside the image for ``mode='constant'``.

    Returns
    -------
    numpy.ndarray or dask.array.Array
        float32 array of the input's shape.

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
    image, axes, spacing = setup(image, spatial_axes, spacing)
    mode = check_mode(mode)
    cval = _finite_number(cval, "cval")
    sigma_px = lengths_to_pixels(sigma_spatial, spacing, len(axes), "sigma_spatial")
    sigma_intensity = optional_positive(sigma_intensity, "sigma_intensity", allow_zero=True)
    radius = tuple(0 if s == 0 else max(2, int(np.ceil(3 * s))) for s in sigma_px)

    def prepare(piece):
        if sigma_intensity is not None:
            return sigma_intensity
        return BILATERAL_INTENSITY_FACTOR * noise_of_slice(piece)

    def core(block, sigma_i):
        return _bilateral_block(block, sigma_px, radius, sigma_i, mode, cval)

    return Plan(
        "bilateral",
        image,
        axes,
        core,
        None if mode == "wrap" else radius,
        prepare=prepare,
        cost=8e-9 * float(np.prod([2 * r + 1 for r in radius])),
        params={"sigma_spatial": sigma_px, "sigma_intensity": sigma_intensity, "radius": radius},
    )


@filter_function
def total_variation(
    image,
    weight=None,
    *,
    spatial_axes=None,
    eps: float = 2e-4,
    max_num_iter: int = 200,
) -> Plan:
    """Total-variation denoising (Chambolle's projection algorithm).

    Flattens noise while keeping sharp edges; works on the whole plane or
    volume at once (lazy input is chunked only along independent axes).

    Parameters
    ----------
    image : array_like or dask array
        Image of any real dtype. It is never modified.
    weight : float, optional
        Denoising weight in the image's intensity units: larger removes more
        noise (and more detail). Default: 1 × the noise level estimated on
        each slice.
    spatial_axes : sequence of int, optional
        Axes forming one image (default: all of a 2-D/3-D image, the last
        three otherwise). Other axes are processed independently.
    eps : float, default 2e-4
        Relative change of the cost below which iterations stop.
    max_num_iter : int, default 200
        Maximal number of iterations.

    Returns
    -------
    numpy.ndarray or dask.array.Array
        float32 array of the input's shape.

    Notes
    -----
    Equal to ``skimage.restoration.denoise_tv_chambolle(slice, weight)`` on
    each float32 slice. Spacing is not used: TV acts on pixel neighbours.

    References
    ----------
    A. Chambolle, "An algorithm for total variation minimization and
    applications", J. Math. Imaging Vis. 20, 2004.
    """
    image, axes, _ = setup(image, spatial_axes)
    weight = optional_positive(weight, "weight", allow_zero=True)
    eps = optional_positive(eps, "eps")
    max_num_iter = check_int(max_num_iter, "max_num_iter")

    def core(block, _context):
        w = weight if weight is not None else TV_WEIGHT_FACTOR * noise_of_slice(block)
        if w == 0:
            return block
        return restoration.denoise_tv_chambolle(
            block, weight=w, eps=eps, max_num_iter=max_num_iter, channel_axis=None
        )

    return Plan(
        "total_variation",
        image,
        axes,
        core,
        None,
        cost=1e-6,
        params={"weight": weight},
    )


@filter_function
def wavelet(
    image,
    *,
    sigma=None,
    method: Literal["BayesShrink", "VisuShrink"] = "BayesShrink",
    spatial_axes=None,
    wavelet_name: str = "db1",
    threshold_mode: Literal["soft", "hard"] = "soft",
    wavelet_levels: int | None = None,
) -> Plan:
    """Wavelet shrinkage denoising.

    Parameters
    ----------
    image : array_like or dask array
        Image of any real dtype. It is never modified.
    sigma : float, optional
        Noise standard deviation in the image's units. Default: estimated on
        each slice.
    method : {'BayesShrink', 'VisuShrink'}, default 'BayesShrink'
        Threshold rule: adaptive per sub-band (BayesShrink) or the universal
        threshold (VisuShrink).
    spatial_axes : sequence of int, optional
        Axes forming one image (default: all of a 2-D/3-D image, the last
        three otherwise). Other axes are processed independently.
    wavelet_name : str, default 'db1'
        Any discrete wavelet known to PyWavelets.
    threshold_mode : {'soft', 'hard'}, default 'soft'
        Thresholding of the detail coefficients.
    wavelet_levels : int, optional
        Decomposition levels; default 3 fewer than the maximum (at least 1).

    Returns
    -------
    numpy.ndarray or dask.array.Array
        float32 array of the input's shape.

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

    image, axes, _ = setup(image, spatial_axes)
    sigma = optional_positive(sigma, "sigma", allow_zero=True)
    method = check_choice(method, ("BayesShrink", "VisuShrink"), "method")
    threshold_mode = check_choice(threshold_mode, ("soft", "hard"), "threshold_mode")
    if wavelet_name not in pywt.wavelist(kind="discrete"):
        raise ValueError(f"wavelet_name: {wavelet_name!r} is not a discrete PyWavelets wavelet")
    if wavelet_levels is not None:
        wavelet_levels = check_int(wavelet_levels, "wavelet_levels")

    def core(block, _context):
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

    return Plan(
        "wavelet",
        image,
        axes,
        core,
        None,
        cost=1e-7,
        params={"sigma": sigma, "method": method},
    )


@filter_function
def non_local_means(
    image,
    *,
    h=None,
    sigma=None,
    patch_size: int = 5,
    patch_distance: int = 6,
    fast_mode: bool = True,
    spatial_axes=None,
) -> Plan:
    """Non-local means denoising (2-D or 3-D).

    Parameters
    ----------
    image : array_like or dask array
        Image of any real dtype. It is never modified.
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
    numpy.ndarray or dask.array.Array
        float32 array of the input's shape.

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
    image, axes, _ = setup(image, spatial_axes, min_axes=2)
    if len(axes) > 3:
        raise ValueError(
            f"spatial_axes: non-local means works on 2 or 3 spatial axes, got {len(axes)}"
        )
    h = optional_positive(h, "h", allow_zero=True)
    sigma = optional_positive(sigma, "sigma", allow_zero=True)
    patch_size = check_int(patch_size, "patch_size")
    patch_distance = check_int(patch_distance, "patch_distance")
    factor = NLM_H_FACTOR_FAST if fast_mode else NLM_H_FACTOR_SLOW
    reach = patch_distance + patch_size // 2 + 1

    def prepare(piece):
        s = sigma if sigma is not None else noise_of_slice(piece)
        return (h if h is not None else factor * s, s)

    abort = np.zeros(1, np.uint8)  # set by the execution layer on cancel

    def core(block, context):
        h_value, s = context
        if h_value == 0:
            return block
        if fast_mode and _kernels.HAVE_NUMBA and block.ndim in (2, 3):
            # compiled port of scikit-image's fast mode: same result, faster;
            # it polls ``abort`` so a cancel ends even a long tile at once
            return _kernels.nl_means_fast(block, h_value, s, patch_size, patch_distance, abort=abort)
        result = restoration.denoise_nl_means(
            block,
            h=h_value,
            sigma=s,
            patch_size=patch_size,
            patch_distance=patch_distance,
            fast_mode=bool(fast_mode),
            preserve_range=True,
            channel_axis=None,
        )
        # scikit-image drops size-1 axes of its input; give them back.
        return np.reshape(result, block.shape)

    if fast_mode:
        # compiled port: ~3 ns per voxel and search offset on one core (skimage ~5-7 ns)
        per_shift = 3e-9 if _kernels.HAVE_NUMBA else 1.5e-8
        per_voxel = (2 * patch_distance + 1) ** len(axes) * per_shift
    else:
        per_voxel = (2 * patch_distance + 1) ** len(axes) * 1e-8 * patch_size ** len(axes)
    return Plan(
        "non_local_means",
        image,
        axes,
        core,
        (reach,) * len(axes),
        prepare=prepare,
        cost=per_voxel,
        params={"h": h, "sigma": sigma, "patch_size": patch_size, "patch_distance": patch_distance},
        abort=abort,
    )
