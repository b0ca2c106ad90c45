"""Linear and rank smoothing: Gaussian, mean (box) and median filters.

All three wrap :mod:`scipy.ndimage` and give the same numbers as it does on the
float32 image, but work across the spatial axes only, take sizes in physical
units when ``spacing`` is given, return float32 and run tiled on every core.
"""

from __future__ import annotations

import math

from scipy import ndimage

from .._params import _finite_number, lengths_to_pixels, sizes_to_pixels
from . import _kernels
from ._base import BorderMode, Plan, check_mode, filter_function, halo_for, setup

__all__ = ["gaussian", "mean", "median", "gaussian_radius"]

# scipy.ndimage.median_filter allocates per-footprint-pixel tables: far larger
# windows end in a bare MemoryError (or hours of work).
_MAX_MEDIAN_WINDOW = 1 << 20


def gaussian_radius(sigma_px, truncate: float) -> tuple[int, ...]:
    """Kernel radius per axis, as scipy.ndimage computes it."""
    return tuple(int(truncate * s + 0.5) for s in sigma_px)


def check_truncate(truncate) -> float:
    truncate = _finite_number(truncate, "truncate")
    if truncate <= 0:
        raise ValueError(f"truncate: must be positive, got {truncate}")
    return truncate


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
) -> Plan:
    """Gaussian smoothing across the spatial axes.

    Parameters
    ----------
    image : array_like or dask array
        Image of any real dtype. It is never modified.
    sigma : float or sequence of float, default 1.0
        Standard deviation of the Gaussian, in the units of ``spacing`` (e.g.
        µm) when it is given, else in pixels. One value (isotropic in physical
        space) or one per spatial axis; 0 leaves an axis unsmoothed.
    spacing : sequence of float, optional
        Voxel size along each spatial axis (a napari layer's ``scale`` on
        those axes). Default: 1 pixel.
    spatial_axes : sequence of int, optional
        Axes to smooth across; default all axes of a 2-D/3-D image, the last
        three of a 4-D/5-D one. Other axes (time, channel) are never mixed.
    mode : {'reflect', 'nearest', 'mirror', 'constant', 'wrap'}, default 'reflect'
        Border handling, as in :func:`scipy.ndimage.gaussian_filter`.
    truncate : float, default 4.0
        Kernel radius in standard deviations (radius = int(truncate·σ + 0.5) px).
    cval : float, default 0.0
        Value outside the image for ``mode='constant'``.

    Returns
    -------
    numpy.ndarray or dask.array.Array
        float32 array of the input's shape, in the input's intensity units.

    Notes
    -----
    Equal to ``scipy.ndimage.gaussian_filter(image.astype(float32), sigma_px)``
    with ``sigma_px = sigma / spacing`` on the spatial axes and 0 elsewhere.
    NaN pixels spread to every output pixel within the kernel's reach.
    """
    image, axes, spacing = setup(image, spatial_axes, spacing)
    mode = check_mode(mode)
    truncate = check_truncate(truncate)
    cval = _finite_number(cval, "cval")
    sigma_px = lengths_to_pixels(sigma, spacing, len(axes), "sigma")

    def core(block, _context):
        return ndimage.gaussian_filter(block, sigma_px, mode=mode, truncate=truncate, cval=cval)

    fast = _kernels.supported(mode, len(axes))
    if fast:  # same passes, same arithmetic, compiled (bit-identical to ndimage)
        radius = gaussian_radius(sigma_px, truncate)
        passes = [
            (ax, _kernels.gaussian_weights(s, 0, r))
            for ax, (s, r) in enumerate(zip(sigma_px, radius))
            if s > 1e-15
        ]

        def core(block, _context, keep, out=None):  # noqa: F811
            return _kernels.separable(block, passes, mode, cval, keep, out)

    return Plan(
        "gaussian",
        image,
        axes,
        core,
        halo_for(gaussian_radius(sigma_px, truncate), mode),
        cost=6e-9 if fast else 2.5e-8,
        params={"sigma": sigma_px},
        crop=fast,
    )


@filter_function
def mean(
    image,
    size=3,
    *,
    spacing=None,
    spatial_axes=None,
    mode: BorderMode = "reflect",
    cval: float = 0.0,
) -> Plan:
    """Mean (box, uniform) filter across the spatial axes.

    Parameters
    ----------
    image : array_like or dask array
        Image of any real dtype. It is never modified.
    size : float or sequence of float, default 3
        Width of the window: in the units of ``spacing`` when it is given
        (each axis then gets the odd pixel count closest to ``size / spacing``,
        at least 1), else a whole number of pixels. One value or one per
        spatial axis.
    spacing : sequence of float, optional
        Voxel size along each spatial axis. Default: 1 pixel.
    spatial_axes : sequence of int, optional
        Axes to filter across (default: all of a 2-D/3-D image, the last three
        otherwise). Other axes are processed independently.
    mode : {'reflect', 'nearest', 'mirror', 'constant', 'wrap'}, default 'reflect'
        Border handling, as in :func:`scipy.ndimage.uniform_filter`.
    cval : float, default 0.0
        Value outside the image for ``mode='constant'``.

    Returns
    -------
    numpy.ndarray or dask.array.Array
        float32 array of the input's shape.

    Notes
    -----
    Equal to ``scipy.ndimage.uniform_filter`` on the float32 image with the
    converted size on the spatial axes and 1 elsewhere.
    """
    image, axes, spacing = setup(image, spatial_axes, spacing)
    mode = check_mode(mode)
    cval = _finite_number(cval, "cval")
    size_px = sizes_to_pixels(size, spacing, len(axes), "size")

    def core(block, _context):
        return ndimage.uniform_filter(block, size_px, mode=mode, cval=cval)

    fast = _kernels.supported(mode, len(axes))
    if fast:  # same running sums as ndimage, compiled (bit-identical)

        def core(block, _context, keep, out=None):  # noqa: F811
            return _kernels.uniform(block, size_px, mode, cval, keep, out)

    return Plan(
        "mean",
        image,
        axes,
        core,
        halo_for([s // 2 for s in size_px], mode),
        cost=3e-9 if fast else 1.5e-8,
        params={"size": size_px},
        crop=fast,
    )


@filter_function
def median(
    image,
    size=3,
    *,
    spacing=None,
    spatial_axes=None,
    mode: BorderMode = "reflect",
    cval: float = 0.0,
) -> Plan:
    """Median filter across the spatial axes (removes salt-and-pepper noise).

    Parameters
    ----------
    image : array_like or dask array
        Image of any real dtype. It is never modified.
    size : float or sequence of float, default 3
        Width of the (box) window: in the units of ``spacing`` when it is
        given (odd pixel count closest to ``size / spacing``, at least 1),
        else a whole number of pixels. One value or one per spatial axis.
    spacing : sequence of float, optional
        Voxel size along each spatial axis. Default: 1 pixel.
    spatial_axes : sequence of int, optional
        Axes to filter across (default: all of a 2-D/3-D image, the last three
        otherwise). Other axes are processed independently.
    mode : {'reflect', 'nearest', 'mirror', 'constant', 'wrap'}, default 'reflect'
        Border handling, as in :func:`scipy.ndimage.median_filter`.
    cval : float, default 0.0
        Value outside the image for ``mode='constant'``.

    Returns
    -------
    numpy.ndarray or dask.array.Array
        float32 array of the input's shape.

    Notes
    -----
    Equal to ``scipy.ndimage.median_filter`` on the float32 image. The rank
    order of NaN is undefined: windows holding NaN give unspecified values.
    """
    image, axes, spacing = setup(image, spatial_axes, spacing)
    mode = check_mode(mode)
    cval = _finite_number(cval, "cval")
    size_px = sizes_to_pixels(size, spacing, len(axes), "size")
    window = math.prod(size_px)
    if window > _MAX_MEDIAN_WINDOW:
        raise ValueError(
            f"size: a median window of {'x'.join(map(str, size_px))} = {window} pixels is too "
            f"large (at most {_MAX_MEDIAN_WINDOW}); use a smaller size or a Gaussian/mean filter"
        )

    def core(block, _context):
        return ndimage.median_filter(block, size=size_px, mode=mode, cval=cval)

    fast = _kernels.median_supported(size_px, mode)
    if fast:  # exact odd-window median by forgetful selection, compiled

        def core(block, _context, keep, out=None):  # noqa: F811
            return _kernels.median(block, size_px, mode, cval, keep, out)

    return Plan(
        "median",
        image,
        axes,
        core,
        halo_for([s // 2 for s in size_px], mode),
        cost=(1e-9 * math.prod(size_px)) if fast else 3.5e-7,
        params={"size": size_px},
        crop=fast,
    )
