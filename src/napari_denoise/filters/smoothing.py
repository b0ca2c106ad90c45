"""Linear and rank smoothing: Gaussian, mean (box) and median filters.

All three give the same numbers as scipy.ndimage does on the float32 image,
but work across the spatial axes only, take sizes in physical units when
``spacing`` is given, return float32 and run tiled on every core with
compiled kernels (scipy.ndimage for the ``wrap`` mode, more than three axes
and large medians).

Bounded work: a Gaussian or box reaching further than the image along an
axis is folded back into it (:mod:`._folding`: the border mode makes the
data beyond the image a repetition of it, so the result is the same up to
rounding) and costs at most ``2n + 1`` taps on an axis of ``n`` pixels;
``truncate * sigma`` is at most :data:`~napari_denoise._params.MAX_REACH`
voxels and a median window holds at most :data:`MAX_MEDIAN_WINDOW` values.
"""

from __future__ import annotations

import math
from functools import partial

import numpy as np
from scipy import ndimage

from .._params import check_intensity, check_reach, lengths_to_pixels, sizes_to_pixels
from ..kernels import borders, median as median_kernels, separable
from . import _folding
from .._filter_op import PIECE_SECONDS, SeparableDiagonal
from .._scheduler import Cancelled
from ._base import (
    BorderMode,
    Cost,
    FilterOp,
    check_mode,
    filter_function,
    halo_for,
    library_kernel,
    polled_library_kernel,
    setup,
)

__all__ = [
    "gaussian",
    "mean",
    "median",
    "gaussian_radius",
    "gaussian_passes",
    "passes_reach",
    "check_truncate",
    "check_cval",
    "MAX_MEDIAN_WINDOW",
    "MAX_TRUNCATE",
]

#: Most values in a median window. scipy.ndimage's median costs ~1e-8 s per
#: window value and voxel: beyond this a run takes hours and the smallest
#: piece that can be cancelled (a slab of the window's thickness) many seconds.
MAX_MEDIAN_WINDOW = 1 << 12
#: Largest ``truncate``: a Gaussian is below float64's smallest number beyond
#: 39 σ, so a longer kernel only adds zeros.
MAX_TRUNCATE = 100.0
#: σ (voxels) below which an axis is not smoothed, as in scipy.ndimage.
_NO_SMOOTHING = 1e-15
# Default lengths, in voxels of the finest axis, for images of 1-2 and of 3 or more
# spatial axes: the grid points with the best mean PSNR over real images with
# Gaussian (σ 0.05-0.2 of the range) and Poisson (peak 10-100) noise,
# benchmarks/defaults_study.py. Planes want wider kernels than volumes, whose
# windows already average more voxels at the same width.
#: σ of :func:`gaussian` (2-D: 1.5 px; 3-D: 1 voxel).
GAUSSIAN_SIGMA = {2: 1.5, 3: 1.0}
#: Width of :func:`mean` (2-D: 5 × 5; 3-D: 3 × 3 × 3).
MEAN_SIZE = {2: 5, 3: 3}
#: Width of :func:`median` (2-D: 5 × 5; 3-D: 3 × 3 × 3).
MEDIAN_SIZE = {2: 5, 3: 3}
# Time per voxel of the compiled separable passes: a fixed part and one per tap.
_SEPARABLE_SECONDS = 2e-9
_SEPARABLE_SECONDS_PER_TAP = 3e-10


def gaussian_radius(sigma_px, truncate: float) -> tuple[int, ...]:
    """Kernel radius per axis, as scipy.ndimage computes it."""
    return tuple(int(truncate * s + 0.5) for s in sigma_px)


def gaussian_passes(sigma_px, radius, order_axis=None, order=0, *, extents=None, mode="reflect"):
    """``[(axis, weights)]`` of ``ndimage.gaussian_filter``: axes with σ = 0 are skipped.

    With ``order_axis``, that axis gets the derivative of ``order``. With
    ``extents`` (the image's length along each axis) kernels reaching beyond
    the image under ``mode`` are folded into it (:mod:`._folding`).
    """
    passes = []
    for ax, (s, r) in enumerate(zip(sigma_px, radius)):
        if s <= _NO_SMOOTHING:
            continue
        o = order if ax == order_axis else 0
        if extents is None:
            passes.append((ax, separable.gaussian_weights(s, o, r)))
        else:
            passes.append((ax, _folding.gaussian_weights(s, o, r, extents[ax], mode)))
    return passes


def passes_reach(passes, n_axes: int) -> tuple[int, ...]:
    """Voxels the ``passes`` read on either side, per axis (0 where there is no pass)."""
    reach = [0] * n_axes
    for ax, weights in passes:
        reach[ax] = max(reach[ax], len(weights) // 2)
    return tuple(reach)


def passes_cost(passes, *, library: bool = False) -> Cost:
    """Time per voxel of a chain of 1-D correlations: proportional to their taps."""
    taps = sum(len(w) for _, w in passes)
    if library:  # scipy.ndimage.correlate1d: about 3 ns per tap and voxel
        return Cost.library(1e-8 + 3e-9 * taps)
    return Cost(_SEPARABLE_SECONDS + _SEPARABLE_SECONDS_PER_TAP * taps)


def default_length(table, n_axes: int, spacing):
    """The default of ``table`` (voxels, by 2 or 3 spatial axes) in the units of ``spacing``.

    One or two spatial axes take the 2-D value, three or more the 3-D value;
    with ``spacing`` the length is the voxel count times the finest voxel
    size, so the finest axis gets exactly that many voxels and coarser axes
    the same physical length.
    """
    voxels = table[min(max(n_axes, 2), 3)]
    return voxels if spacing is None else voxels * min(spacing)


def separable_diagonal(passes, mode: str, shape) -> SeparableDiagonal:
    """Derivative of each output voxel of the ``passes`` by its own input voxel, on an image of ``shape``.

    The diagonal of a separable filter's matrix is the product of its 1-D
    passes' diagonals (one pass per axis), each read off the pass applied to
    unit vectors under ``mode`` (256 at a time): ``weights[r]`` inside, more
    or less near a border where the mode folds taps back onto the voxel.
    """
    axes = [axis for axis, _ in passes]
    if len(set(axes)) != len(axes):
        raise ValueError("separable_diagonal: one pass per axis")
    factors = [np.ones(n) for n in shape]
    for axis, weights in passes:
        n = shape[axis]
        along = factors[axis]
        for first in range(0, n, 256):
            m = min(256, n - first)
            rows, columns = first + np.arange(m), np.arange(m)
            units = np.zeros((n, m))
            units[rows, columns] = 1.0
            response = ndimage.correlate1d(units, np.asarray(weights, np.float64), axis=0, mode=mode, cval=0.0)
            along[first:first + m] = response[rows, columns]
    return SeparableDiagonal(factors)


def check_truncate(truncate) -> float:
    """``truncate``: positive, at most :data:`MAX_TRUNCATE`."""
    truncate = check_intensity(truncate, "truncate", allow_none=False)
    if not 0 < truncate <= MAX_TRUNCATE:
        raise ValueError(f"truncate: must be positive and at most {MAX_TRUNCATE:g}, got {truncate:g}")
    return truncate


def check_cval(cval) -> float:
    """``cval``: 0 or a magnitude within the intensity bounds (see :mod:`.._params`)."""
    return check_intensity(cval, "cval", allow_none=False, signed=True)


def gaussian_sigma(sigma, spacing, n_axes: int, truncate: float, name: str = "sigma"):
    """Validated ``(σ in voxels, radius)`` per axis of a Gaussian (reach at most MAX_REACH)."""
    sigma_px = lengths_to_pixels(sigma, spacing, n_axes, name)
    check_reach(name, sigma, sigma_px, truncate, spacing)
    return sigma_px, gaussian_radius(sigma_px, truncate)


def correlate_ndimage(block, *, passes, mode, cval, flag=None):
    """The ``passes`` with ``ndimage.correlate1d`` in float32 (as ``gaussian_filter`` does them).

    With ``flag`` (a run's cancel flag) each pass is cut into pieces across
    the other axes, about :data:`PIECE_SECONDS` each: a 1-D correlation
    treats every line on its own, so the values are the same; the flag is
    polled between pieces and :class:`~napari_denoise.Cancelled` raised once
    it is set.
    """
    out = block
    for axis, weights in passes:
        if flag is None or out.ndim < 2:
            out = ndimage.correlate1d(out, weights, axis, output=np.float32, mode=mode, cval=cval)
            continue
        result = np.empty(out.shape, np.float32)
        across = 1 if axis == 0 else 0
        line_voxels = out.size // max(1, out.shape[across])
        seconds = _LIBRARY_SECONDS_PER_TAP * len(weights) * line_voxels
        step = max(1, int(PIECE_SECONDS / max(seconds, 1e-12)))
        for start in range(0, out.shape[across], step):
            if flag[0]:
                raise Cancelled("correlate: cancelled")
            piece = (slice(None),) * across + (slice(start, start + step),)
            ndimage.correlate1d(out[piece], weights, axis, output=result[piece], mode=mode, cval=cval)
        out = result
    return out if passes else np.array(block, dtype=np.float32)


# scipy.ndimage.correlate1d: about 3 ns per tap and voxel (see passes_cost).
_LIBRARY_SECONDS_PER_TAP = 3e-9


def separable_kernel(block, keep, out, context, token, *, passes, mode, cval):
    """Kernel: 1-D correlation ``passes`` in order (compiled, bit-identical to ndimage)."""
    return separable.separable(block, passes, mode, cval, keep, out)


def _uniform_kernel(block, keep, out, context, token, *, size, mode, cval):
    return separable.uniform(block, size, mode, cval, keep, out)


def _median_kernel(block, keep, out, context, token, *, size, mode, cval):
    return median_kernels.median(block, size, mode, cval, keep, out, token=token)


@filter_function
def gaussian(
    image,
    sigma=None,
    *,
    spacing=None,
    spatial_axes=None,
    mode: BorderMode = "reflect",
    truncate: float = 4.0,
    cval: float = 0.0,
) -> FilterOp:
    """Gaussian smoothing across the spatial axes.

    Parameters
    ----------
    %(image)s
    sigma : float or sequence of float, optional
        Standard deviation of the Gaussian, in the units of ``spacing`` (e.g.
        µm) when it is given, else in pixels. One value (isotropic in physical
        space) or one per spatial axis; 0 leaves an axis unsmoothed. Default:
        1.5 pixels on planes (1 or 2 spatial axes), 1 voxel in volumes (3 or
        more), along the finest axis: the best mean PSNR of the defaults
        study (``benchmarks/defaults_study.py``) on real images with Gaussian
        and Poisson noise.
    %(spacing)s
    %(spatial_axes)s
    %(mode)s
    %(truncate)s
    %(cval)s

    Returns
    -------
    %(returns_float32)s

    Notes
    -----
    Equal to ``scipy.ndimage.gaussian_filter(image.astype(float32), sigma_px)``
    with ``sigma_px = sigma / spacing`` on the spatial axes and 0 elsewhere.
    NaN pixels spread to every output pixel within the kernel's reach.
    ``truncate * sigma`` may be at most 1048576 voxels; a kernel reaching
    beyond the image is folded into it (same result up to rounding, at most
    ``2n + 1`` taps on an axis of ``n`` voxels).
    """
    axes, spacing = setup(image, spatial_axes, spacing)
    mode = check_mode(mode)
    truncate = check_truncate(truncate)
    cval = check_cval(cval)
    if sigma is None:
        sigma = default_length(GAUSSIAN_SIGMA, len(axes), spacing)
    sigma_px, radius = gaussian_sigma(sigma, spacing, len(axes), truncate)
    extents = [image.shape[ax] for ax in axes]
    passes = gaussian_passes(sigma_px, radius, extents=extents, mode=mode)
    reach = passes_reach(passes, len(axes))
    if borders.supported(mode, len(axes)):  # same passes, same arithmetic, compiled
        kernel = partial(separable_kernel, passes=passes, mode=mode, cval=cval)
        cost = passes_cost(passes)
    else:
        cost = passes_cost(passes, library=True)
        kernel = polled_library_kernel(correlate_ndimage, {"passes": passes, "mode": mode, "cval": cval})
    return FilterOp(
        "gaussian", kernel, axes, halo_for(reach, mode), cost, {"sigma": sigma_px},
        diagonal=partial(separable_diagonal, passes, mode),
    )


@filter_function
def mean(
    image,
    size=None,
    *,
    spacing=None,
    spatial_axes=None,
    mode: BorderMode = "reflect",
    cval: float = 0.0,
) -> FilterOp:
    """Mean (box, uniform) filter across the spatial axes.

    Parameters
    ----------
    %(image)s
    size : float or sequence of float, optional
        Width of the window: in the units of ``spacing`` when it is given
        (each axis then gets the odd pixel count closest to ``size / spacing``,
        at least 1), else a whole number of pixels. One value or one per
        spatial axis. Default: 5 pixels on planes (1 or 2 spatial axes), 3
        voxels in volumes, along the finest axis (the defaults study,
        ``benchmarks/defaults_study.py``).
    %(spacing)s
    %(spatial_axes)s
    %(mode)s
    %(cval)s

    Returns
    -------
    %(returns_float32)s

    Notes
    -----
    Equal to ``scipy.ndimage.uniform_filter`` on the float32 image with the
    converted size on the spatial axes and 1 elsewhere. A box wider than the
    image is folded into it (same result up to rounding, at most ``2n + 1``
    taps on an axis of ``n`` voxels); sizes are at most 2097153 voxels.
    """
    axes, spacing = setup(image, spatial_axes, spacing)
    mode = check_mode(mode)
    cval = check_cval(cval)
    if size is None:
        size = default_length(MEAN_SIZE, len(axes), spacing)
    size_px = sizes_to_pixels(size, spacing, len(axes), "size")
    extents = [image.shape[ax] for ax in axes]
    folded = [_folding.box_weights(s, n, mode) for s, n in zip(size_px, extents)]
    # the box as explicit weights, folded where it is longer than the image (and the matrix's diagonal)
    passes = [
        (ax, np.full(s, 1.0 / s) if w is None else w)
        for ax, (s, w) in enumerate(zip(size_px, folded))
        if s > 1 or w is not None
    ]
    if any(w is not None for w in folded):
        # a box longer than the image: the explicit weights instead of running sums
        reach = passes_reach(passes, len(axes))
        if borders.supported(mode, len(axes)):
            kernel, cost = partial(separable_kernel, passes=passes, mode=mode, cval=cval), passes_cost(passes)
        else:
            cost = passes_cost(passes, library=True)
            kernel = polled_library_kernel(correlate_ndimage, {"passes": passes, "mode": mode, "cval": cval})
    elif borders.supported(mode, len(axes)):  # same running sums as ndimage, compiled
        kernel = partial(_uniform_kernel, size=size_px, mode=mode, cval=cval)
        cost = Cost(3e-9)
        reach = [s // 2 for s in size_px]
    else:
        reach = [s // 2 for s in size_px]
        cost = Cost.library(1.5e-8)
        kernel = library_kernel(ndimage.uniform_filter, {"size": size_px, "mode": mode, "cval": cval}, reach, mode, cost)
    return FilterOp(
        "mean", kernel, axes, halo_for(reach, mode), cost, {"size": size_px},
        diagonal=partial(separable_diagonal, passes, mode),
    )


@filter_function
def median(
    image,
    size=None,
    *,
    spacing=None,
    spatial_axes=None,
    mode: BorderMode = "reflect",
    cval: float = 0.0,
) -> FilterOp:
    """Median filter across the spatial axes (removes salt-and-pepper noise).

    Parameters
    ----------
    %(image)s
    size : float or sequence of float, optional
        Width of the (box) window: in the units of ``spacing`` when it is
        given (odd pixel count closest to ``size / spacing``, at least 1),
        else a whole number of pixels. One value or one per spatial axis.
        Default: 5 pixels on planes (1 or 2 spatial axes), 3 voxels in
        volumes, along the finest axis (the defaults study,
        ``benchmarks/defaults_study.py``).
    %(spacing)s
    %(spatial_axes)s
    %(mode)s
    %(cval)s

    Returns
    -------
    %(returns_float32)s

    Notes
    -----
    Equal to ``scipy.ndimage.median_filter`` on the float32 image. The rank
    order of NaN is undefined: windows holding NaN give unspecified values.
    A window holds at most 4096 values (e.g. 63 x 63 or 15 x 15 x 15).
    """
    axes, spacing = setup(image, spatial_axes, spacing)
    mode = check_mode(mode)
    cval = check_cval(cval)
    if size is None:
        size = default_length(MEDIAN_SIZE, len(axes), spacing)
    size_px = sizes_to_pixels(size, spacing, len(axes), "size", max_pixels=MAX_MEDIAN_WINDOW)
    window = math.prod(size_px)
    if window > MAX_MEDIAN_WINDOW:
        raise ValueError(
            f"size: a median window of {'x'.join(map(str, size_px))} = {window} pixels is too "
            f"large (at most {MAX_MEDIAN_WINDOW}); use a smaller size or a Gaussian/mean filter"
        )
    if median_kernels.median_supported(size_px, mode):  # exact, by forgetful selection
        kernel = partial(_median_kernel, size=size_px, mode=mode, cval=cval)
        # measured on one core: 19 ns (3 × 3), 350 ns (7 × 7), 140 ns (3 × 3 × 3) per voxel
        cost = Cost(1e-9 * window**1.5)
    else:
        cost = Cost.library(1e-7 + 1.5e-8 * window)
        kernel = library_kernel(
            _median_ndimage, {"size": size_px, "mode": mode, "cval": cval}, [s // 2 for s in size_px], mode, cost
        )
    return FilterOp(
        "median", kernel, axes, halo_for([s // 2 for s in size_px], mode), cost, {"size": size_px}, selection=True
    )


def _median_ndimage(block, *, size, mode, cval):
    """``ndimage.median_filter``, kept off its 1-D path.

    scipy 1.17's 1-D rank filter reads outside the line when the window is
    longer than the line (mode 'mirror' on one pixel returns uninitialised
    memory); the N-D path gives the documented result, so a line goes through
    it as a column.
    """
    if block.ndim == 1:
        return ndimage.median_filter(block[:, None], (size[0], 1), mode=mode, cval=cval)[:, 0]
    return ndimage.median_filter(block, size, mode=mode, cval=cval)

