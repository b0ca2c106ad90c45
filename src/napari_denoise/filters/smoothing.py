"""Linear and rank smoothing: Gaussian, mean (box) and median filters.

All three give the same numbers as scipy.ndimage does on the float32 image,
but work across the spatial axes only, take sizes in physical units when
``spacing`` is given, return float32 and run tiled on every core with
compiled kernels (scipy.ndimage for the ``wrap`` mode, more than three axes
and large medians).
"""

from __future__ import annotations

import math
from functools import partial

from scipy import ndimage

from .._params import _finite_number, lengths_to_pixels, sizes_to_pixels
from ..kernels import borders, median as median_kernels, separable
from ._base import BorderMode, Cost, FilterOp, LibraryKernel, check_mode, filter_function, halo_for, setup

__all__ = ["gaussian", "mean", "median", "gaussian_radius", "gaussian_passes"]

# scipy.ndimage.median_filter allocates per-footprint-pixel tables: far larger
# windows end in a bare MemoryError (or hours of work).
_MAX_MEDIAN_WINDOW = 1 << 20


def gaussian_radius(sigma_px, truncate: float) -> tuple[int, ...]:
    """Kernel radius per axis, as scipy.ndimage computes it."""
    return tuple(int(truncate * s + 0.5) for s in sigma_px)


def gaussian_passes(sigma_px, radius, order_axis=None, order=0):
    """``[(axis, weights)]`` of ``ndimage.gaussian_filter``: axes with σ = 0 are skipped.

    With ``order_axis``, that axis gets the derivative of ``order``.
    """
    return [
        (ax, separable.gaussian_weights(s, order if ax == order_axis else 0, r))
        for ax, (s, r) in enumerate(zip(sigma_px, radius))
        if s > 1e-15
    ]


def check_truncate(truncate) -> float:
    truncate = _finite_number(truncate, "truncate")
    if truncate <= 0:
        raise ValueError(f"truncate: must be positive, got {truncate}")
    return truncate


def separable_kernel(block, keep, out, context, token, *, passes, mode, cval):
    """Kernel: 1-D correlation ``passes`` in order (compiled, bit-identical to ndimage)."""
    return separable.separable(block, passes, mode, cval, keep, out)


def _uniform_kernel(block, keep, out, context, token, *, size, mode, cval):
    return separable.uniform(block, size, mode, cval, keep, out)


def _median_kernel(block, keep, out, context, token, *, size, mode, cval):
    return median_kernels.median(block, size, mode, cval, keep, out)


@filter_function
def gaussian(
    image,
    sigma=1.0,
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
    sigma : float or sequence of float, default 1.0
        Standard deviation of the Gaussian, in the units of ``spacing`` (e.g.
        µm) when it is given, else in pixels. One value (isotropic in physical
        space) or one per spatial axis; 0 leaves an axis unsmoothed.
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
    """
    axes, spacing = setup(image, spatial_axes, spacing)
    mode = check_mode(mode)
    truncate = check_truncate(truncate)
    cval = _finite_number(cval, "cval")
    sigma_px = lengths_to_pixels(sigma, spacing, len(axes), "sigma")
    radius = gaussian_radius(sigma_px, truncate)
    if borders.supported(mode, len(axes)):  # same passes, same arithmetic, compiled
        kernel = partial(separable_kernel, passes=gaussian_passes(sigma_px, radius), mode=mode, cval=cval)
        cost = Cost(6e-9)
    else:
        kernel = LibraryKernel(
            ndimage.gaussian_filter, {"sigma": sigma_px, "mode": mode, "truncate": truncate, "cval": cval}
        )
        cost = Cost.library(2.5e-8)
    return FilterOp("gaussian", kernel, axes, halo_for(radius, mode), cost, {"sigma": sigma_px})


@filter_function
def mean(
    image,
    size=3,
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
    size : float or sequence of float, default 3
        Width of the window: in the units of ``spacing`` when it is given
        (each axis then gets the odd pixel count closest to ``size / spacing``,
        at least 1), else a whole number of pixels. One value or one per
        spatial axis.
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
    converted size on the spatial axes and 1 elsewhere.
    """
    axes, spacing = setup(image, spatial_axes, spacing)
    mode = check_mode(mode)
    cval = _finite_number(cval, "cval")
    size_px = sizes_to_pixels(size, spacing, len(axes), "size")
    if borders.supported(mode, len(axes)):  # same running sums as ndimage, compiled
        kernel = partial(_uniform_kernel, size=size_px, mode=mode, cval=cval)
        cost = Cost(3e-9)
    else:
        kernel = LibraryKernel(ndimage.uniform_filter, {"size": size_px, "mode": mode, "cval": cval})
        cost = Cost.library(1.5e-8)
    return FilterOp("mean", kernel, axes, halo_for([s // 2 for s in size_px], mode), cost, {"size": size_px})


@filter_function
def median(
    image,
    size=3,
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
    size : float or sequence of float, default 3
        Width of the (box) window: in the units of ``spacing`` when it is
        given (odd pixel count closest to ``size / spacing``, at least 1),
        else a whole number of pixels. One value or one per spatial axis.
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
    """
    axes, spacing = setup(image, spatial_axes, spacing)
    mode = check_mode(mode)
    cval = _finite_number(cval, "cval")
    size_px = sizes_to_pixels(size, spacing, len(axes), "size")
    window = math.prod(size_px)
    if window > _MAX_MEDIAN_WINDOW:
        raise ValueError(
            f"size: a median window of {'x'.join(map(str, size_px))} = {window} pixels is too "
            f"large (at most {_MAX_MEDIAN_WINDOW}); use a smaller size or a Gaussian/mean filter"
        )
    if median_kernels.median_supported(size_px, mode):  # exact, by forgetful selection
        kernel = partial(_median_kernel, size=size_px, mode=mode, cval=cval)
        cost = Cost(1e-9 * window)
    else:
        kernel = LibraryKernel(ndimage.median_filter, {"size": size_px, "mode": mode, "cval": cval})
        cost = Cost.library(3.5e-7)
    return FilterOp("median", kernel, axes, halo_for([s // 2 for s in size_px], mode), cost, {"size": size_px})

