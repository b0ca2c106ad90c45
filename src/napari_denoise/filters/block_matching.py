"""Block-matching collaborative filtering: BM3D on planes, BM4D on volumes.

The builder checks the arguments, turns the profile and the voxel size into
per-axis block, step and search extents, and returns a FilterOp whose kernel
(:mod:`napari_denoise.kernels.block_matching`) filters one whole plane or
volume on every core. The noise level is the only intensity parameter: a
variance-stabilised image is denoised with ``sigma=1`` and nothing else
changes.
"""

from __future__ import annotations

import math
from dataclasses import replace
from functools import partial
from typing import Literal

import numpy as np

from .._params import check_choice, check_intensity
from .._scheduler import default_workers
from ..kernels import block_matching as kernel
from ..kernels.block_matching import StageParameters
from ._base import Cost, FilterOp, filter_function, setup
from .noise import noise_of_slice

__all__ = ["block_matching", "PROFILES"]

# Stage parameters on the finest axis, per (number of spatial axes, profile):
# (first stage: hard thresholding, second stage: Wiener). tau is the largest
# mean squared difference of matched blocks in units of sigma^2, lam the hard
# threshold in units of sigma. Planes follow Dabov et al. (2007) -- 8x8
# blocks, a 39x39 search window, groups of 16 and 32 blocks, lambda = 2.7, a
# Kaiser window with beta = 2 -- and its "fast" profile (larger steps, a
# 25x25 window, groups of 16). Volumes follow Maggioni et al. (2013): 4x4x4
# cubes, an 11x11x11 window, groups of 16 and 32.
PROFILES: dict[tuple[int, str], tuple[StageParameters, StageParameters]] = {
    (2, "normal"): (
        StageParameters((1, 8, 8), (1, 3, 3), (0, 19, 19), 16, 4.0, 2.7, 2.0),
        StageParameters((1, 8, 8), (1, 3, 3), (0, 19, 19), 32, 1.0, 0.0, 2.0),
    ),
    (2, "fast"): (
        StageParameters((1, 8, 8), (1, 6, 6), (0, 12, 12), 16, 4.0, 2.7, 2.0),
        StageParameters((1, 8, 8), (1, 5, 5), (0, 12, 12), 16, 1.0, 0.0, 2.0),
    ),
    (3, "normal"): (
        StageParameters((4, 4, 4), (3, 3, 3), (5, 5, 5), 16, 4.0, 2.7, 2.0),
        StageParameters((4, 4, 4), (3, 3, 3), (5, 5, 5), 32, 1.0, 0.0, 2.0),
    ),
    (3, "fast"): (
        StageParameters((4, 4, 4), (4, 4, 4), (3, 3, 3), 16, 4.0, 2.7, 2.0),
        StageParameters((4, 4, 4), (4, 4, 4), (3, 3, 3), 16, 1.0, 0.0, 2.0),
    ),
}

# Seconds per voxel on one core, measured on 256x256 planes and 32x96x96
# volumes (both stages), to size progress estimates.
_SECONDS_PER_VOXEL = {(2, "normal"): 2e-5, (2, "fast"): 4e-6, (3, "normal"): 2e-5, (3, "fast"): 5e-6}


def _nearest(value: float) -> int:
    """Nearest whole number, halves rounded up."""
    return int(math.floor(value + 0.5))


def _scaled(stage: StageParameters, factors) -> StageParameters:
    """The stage with its extents shrunk on coarse axes (``factors`` = finest spacing / spacing)."""
    block = tuple(1 if b == 1 else max(1, _nearest(b * f)) for b, f in zip(stage.block, factors))
    radius = tuple(_nearest(r * f) for r, f in zip(stage.radius, factors))
    step = tuple(max(1, min(b, _nearest(s * f))) for s, b, f in zip(stage.step, block, factors))
    return replace(stage, block=block, radius=radius, step=step)


def _fitted(stage: StageParameters, shape) -> StageParameters:
    """The stage with its blocks no larger than the slice."""
    block = tuple(min(b, n) for b, n in zip(stage.block, shape))
    step = tuple(min(s, b) for s, b in zip(stage.step, block))
    return replace(stage, block=block, step=step)


def _sigma_of_slice(piece, token, *, sigma):
    """Per-slice context: the given noise level, or the one estimated on the slice."""
    return sigma if sigma is not None else noise_of_slice(piece, token)


def _block_matching_kernel(block, keep, out, context, token, *, first, second):
    sigma = float(context)
    image = np.asarray(block, np.float32)
    volume = image.reshape((1,) * (3 - image.ndim) + image.shape)
    if sigma == 0 or image.size == 0:
        result = image.copy()
    else:
        estimate = kernel.denoise_slice(
            volume,
            sigma,
            _fitted(first, volume.shape),
            _fitted(second, volume.shape),
            threads=default_workers(),
            flag=token.flag,
            ticks=token.ticks,
        )
        # cancelled: the scheduler drops this tile
        result = np.zeros(image.shape, np.float32) if estimate is None else estimate.reshape(image.shape)
    result = result[keep]
    if out is None:
        return result
    out[...] = result
    return out


@filter_function(noise_model=True)
def block_matching(
    image,
    *,
    sigma=None,
    spacing=None,
    spatial_axes=None,
    profile: Literal["normal", "fast"] = "normal",
) -> FilterOp:
    """Block-matching collaborative filtering: BM3D on planes, BM4D on volumes.

    Groups similar blocks of the image, denoises each group in a separable
    transform domain (hard thresholding, then an empirical Wiener filter
    guided by the first estimate) and averages the block estimates. Usually
    the strongest of these denoisers on additive Gaussian noise, and the
    slowest.

    Parameters
    ----------
    %(image)s
    sigma : float, optional
        Standard deviation of the noise, in the image's units. Default:
        estimated on each slice (:func:`~napari_denoise.estimate_noise`).
        Use 1 on a variance-stabilised image.
    spacing : sequence of float, optional
        Voxel size along each spatial axis (a napari layer's ``scale``). The
        profile's block, step and search extents hold on the finest axis;
        on an axis with voxels k times coarser they are k times fewer voxels
        (rounded, blocks at least 1), so that blocks cover about the same
        physical extent along every axis. Default: isotropic voxels.
    spatial_axes : sequence of int, optional
        Two axes (BM3D, planes) or three (BM4D, volumes) forming one image;
        default: all of a 2-D/3-D image, the last three otherwise. Every
        other axis (time, channel) is processed slice by slice, never mixed.
    profile : {'normal', 'fast'}, default 'normal'
        'normal': planes in 8×8 blocks, a reference block every 3 pixels,
        searched over 39×39 pixels, groups of up to 16 (first stage) and 32
        (Wiener stage) blocks; volumes in 4×4×4 cubes every 3 voxels, searched
        over 11×11×11 voxels, groups of 16 and 32. 'fast': planes with
        reference blocks every 6 and 5 pixels, a 25×25 search and groups of
        16; volumes with cubes every 4 voxels, a 7×7×7 search and groups of
        16: about 5× faster, a few tenths of a dB worse.

    Returns
    -------
    %(returns_float32)s

    Notes
    -----
    Written from the papers (no code of their reference implementations):
    each reference block's closest blocks within the search window (mean
    squared difference at most 4 σ², on the noisy image) are stacked; the
    group is transformed by an orthonormal DCT of each block and a Haar
    transform across blocks, coefficients at most 2.7 σ are zeroed, and the
    inverse transforms are averaged with weights 1 / (kept coefficients)
    times a Kaiser window (β = 2). The second stage matches blocks on that
    first estimate (at most 1 σ² apart) and shrinks the noisy group's
    spectrum by the Wiener factor ``|B|² / (|B|² + σ²)`` of the first
    estimate's spectrum ``B``, with weights 1 / ‖W‖².

    Each plane or volume is filtered whole (lazy input is chunked only along
    the independent axes), on every core: reference blocks are shared among
    threads and their estimates added in a fixed order, so the result does
    not depend on the number of threads. Memory: about six float32 copies of
    the slice (the image, the first estimate and two float64 sums) plus a
    few MiB per thread. NaN pixels make the blocks that contain them
    unmatched and the pixels of their groups NaN.

    References
    ----------
    K. Dabov, A. Foi, V. Katkovnik and K. Egiazarian, "Image denoising by
    sparse 3-D transform-domain collaborative filtering", IEEE Trans. Image
    Process. 16(8), 2007. M. Maggioni, V. Katkovnik, K. Egiazarian and
    A. Foi, "Nonlocal transform-domain filter for volumetric data denoising
    and reconstruction", IEEE Trans. Image Process. 22(1), 2013.
    """
    axes, spacing = setup(image, spatial_axes, spacing, min_axes=2)
    if len(axes) > 3:
        raise ValueError(
            f"spatial_axes: block matching works on 2 or 3 spatial axes, got {len(axes)}"
        )
    sigma = check_intensity(sigma, "sigma")
    profile = check_choice(profile, ("normal", "fast"), "profile")
    first, second = PROFILES[(len(axes), profile)]
    if spacing is not None:
        finest = min(spacing)
        factors = (1.0,) * (3 - len(axes)) + tuple(finest / s for s in spacing)
        first, second = _scaled(first, factors), _scaled(second, factors)
    kernel_function = partial(_block_matching_kernel, first=first, second=second)
    return FilterOp(
        "block_matching",
        kernel_function,
        axes,
        None,
        # the image, the first estimate, float64 sums and weights
        Cost(_SECONDS_PER_VOXEL[(len(axes), profile)], work_arrays=6.0, over_halo=True),
        {
            "sigma": sigma,
            "profile": profile,
            "block": first.block[3 - len(axes):],
            "search": tuple(2 * r + 1 for r in first.radius[3 - len(axes):]),
        },
        context=partial(_sigma_of_slice, sigma=sigma),
    )

