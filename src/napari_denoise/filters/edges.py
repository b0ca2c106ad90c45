"""Edge filters: Sobel, Scharr, Prewitt, Laplace, Gaussian derivatives, DoG, Canny.

Derivatives are per physical unit when ``spacing`` is given: each axis'
derivative is divided by that axis' voxel size (second derivatives by its
square) before the axes are combined, so an edge of a given physical slope
gives the same response along z as along x.

NaN and infinite pixels never raise: as in scipy.ndimage, they make every
output pixel within the kernel's reach NaN (Canny returns booleans: whatever
skimage.feature.canny makes of them).
"""

from __future__ import annotations

from functools import partial

import numpy as np
from scipy import ndimage
from skimage import feature

from .._params import _finite_number, lengths_to_pixels, optional_positive
from ..kernels import borders, separable
from ._base import (
    BorderMode,
    Cost,
    FilterOp,
    LibraryKernel,
    check_mode,
    filter_function,
    halo_for,
    last_two,
    setup,
)
from .smoothing import check_truncate, gaussian_radius

__all__ = [
    "sobel",
    "scharr",
    "prewitt",
    "laplace",
    "gradient_magnitude",
    "laplacian_of_gaussian",
    "difference_of_gaussians",
    "canny",
]

# Derivative and (normalised) smoothing weights, as in skimage.filters.
_DERIVATIVE = np.array([-1.0, 0.0, 1.0])
_SMOOTHING = {
    "sobel": np.array([1.0, 2.0, 1.0]) / 4,
    "scharr": np.array([3.0, 10.0, 3.0]) / 16,
    "prewitt": np.array([1.0, 1.0, 1.0]) / 3,
}


def _unit_spacing(spacing, n):
    return spacing if spacing is not None else (1.0,) * n


def _edge_magnitude_kernel(block, keep, out, context, token, *, smooth, steps, mode, cval):
    return separable.edge_magnitude(block, _DERIVATIVE, smooth, steps, mode, cval, keep, out)


def _edge_magnitude_ndimage(block, *, smooth, steps, mode, cval):
    total = np.zeros(block.shape, np.float32)
    for edge_axis in range(block.ndim):
        # Smoothing passes first, the derivative last: with mode='constant'
        # the padding of each intermediate must be what filtering the
        # cval-padded image gives there, i.e. cval after (normalised)
        # smoothing but 0 after a derivative. Derivative-first padded the
        # derivative with cval (wrong borders, unlike skimage.filters).
        component = block
        for axis in range(block.ndim):
            if axis != edge_axis:
                component = ndimage.correlate1d(component, smooth, axis=axis, mode=mode, cval=cval)
        component = ndimage.correlate1d(component, _DERIVATIVE, axis=edge_axis, mode=mode, cval=cval)
        component /= np.float32(steps[edge_axis])
        np.square(component, out=component)
        total += component
    total /= np.float32(block.ndim)
    return np.sqrt(total, out=total)


def _edge_magnitude_op(name, image, spacing, spatial_axes, mode, cval) -> FilterOp:
    axes, spacing = setup(image, spatial_axes, spacing)
    mode = check_mode(mode)
    cval = _finite_number(cval, "cval")
    params = {"smooth": _SMOOTHING[name], "steps": _unit_spacing(spacing, len(axes)), "mode": mode, "cval": cval}
    if borders.supported(mode, len(axes)):  # the same correlate1d passes, compiled
        kernel, cost = partial(_edge_magnitude_kernel, **params), Cost(6e-9)
    else:
        kernel, cost = LibraryKernel(_edge_magnitude_ndimage, params), Cost.library(2e-8)
    return FilterOp(name, kernel, axes, halo_for((1,) * len(axes), mode), cost)


@filter_function
def sobel(image, *, spacing=None, spatial_axes=None, mode: BorderMode = "reflect", cval: float = 0.0) -> FilterOp:
    """Sobel edge magnitude across the spatial axes.

    Parameters
    ----------
    %(image)s
    %(spacing_derivative)s
    %(spatial_axes)s
    %(mode)s
    %(cval)s

    Returns
    -------
    numpy.ndarray or dask.array.Array
        float32 array of the input's shape: ``sqrt(mean over axes of g_i²)``
        where ``g_i`` is the Sobel derivative along axis i.

    Notes
    -----
    Without spacing, equal to ``skimage.filters.sobel`` on the float32 image
    over the spatial axes with the same mode (a 1-D image gives ``|g|``).
    """
    return _edge_magnitude_op("sobel", image, spacing, spatial_axes, mode, cval)


@filter_function
def scharr(image, *, spacing=None, spatial_axes=None, mode: BorderMode = "reflect", cval: float = 0.0) -> FilterOp:
    """Scharr edge magnitude across the spatial axes.

    Parameters
    ----------
    %(image)s
    %(spacing_derivative)s
    %(spatial_axes)s
    %(mode)s
    %(cval)s

    Returns
    -------
    numpy.ndarray or dask.array.Array
        float32 array of the input's shape: ``sqrt(mean over axes of g_i²)``
        where ``g_i`` is the Scharr derivative along axis i.

    Notes
    -----
    Without spacing, equal to ``skimage.filters.scharr`` on the float32 image
    over the spatial axes with the same mode (a 1-D image gives ``|g|``).
    """
    return _edge_magnitude_op("scharr", image, spacing, spatial_axes, mode, cval)


@filter_function
def prewitt(image, *, spacing=None, spatial_axes=None, mode: BorderMode = "reflect", cval: float = 0.0) -> FilterOp:
    """Prewitt edge magnitude across the spatial axes.

    Parameters
    ----------
    %(image)s
    %(spacing_derivative)s
    %(spatial_axes)s
    %(mode)s
    %(cval)s

    Returns
    -------
    numpy.ndarray or dask.array.Array
        float32 array of the input's shape: ``sqrt(mean over axes of g_i²)``
        where ``g_i`` is the Prewitt derivative along axis i.

    Notes
    -----
    Without spacing, equal to ``skimage.filters.prewitt`` on the float32 image
    over the spatial axes with the same mode (a 1-D image gives ``|g|``).
    """
    return _edge_magnitude_op("prewitt", image, spacing, spatial_axes, mode, cval)


def _laplace_ndimage(block, *, steps, mode, cval):
    weights = np.array([1.0, -2.0, 1.0])
    total = np.zeros(block.shape, np.float32)
    for axis in range(block.ndim):
        term = ndimage.correlate1d(block, weights, axis=axis, mode=mode, cval=cval)
        if steps[axis] != 1.0:
            term /= np.float32(steps[axis] ** 2)
        total += term
    return total


@filter_function
def laplace(
    image,
    *,
    spacing=None,
    spatial_axes=None,
    mode: BorderMode = "reflect",
    cval: float = 0.0,
) -> FilterOp:
    """Discrete Laplacian (sum of second differences) across the spatial axes.

    Parameters
    ----------
    %(image)s
    spacing : sequence of float, optional
        Voxel size along each spatial axis; each axis' second difference is
        divided by its square (Laplacian per unit²). Default: 1 pixel.
    %(spatial_axes)s
    %(mode)s
    %(cval)s

    Returns
    -------
    numpy.ndarray or dask.array.Array
        float32 array. Without spacing equal to ``scipy.ndimage.laplace``.
    """
    axes, spacing = setup(image, spatial_axes, spacing)
    mode = check_mode(mode)
    cval = _finite_number(cval, "cval")
    kernel = LibraryKernel(_laplace_ndimage, {"steps": _unit_spacing(spacing, len(axes)), "mode": mode, "cval": cval})
    return FilterOp("laplace", kernel, axes, halo_for((1,) * len(axes), mode), Cost.library(1e-8))


def _gaussian_setup(image, sigma, spacing, spatial_axes, mode, truncate, cval, name="sigma", derivative=False):
    axes, spacing = setup(image, spatial_axes, spacing)
    mode = check_mode(mode)
    truncate = check_truncate(truncate)
    cval = _finite_number(cval, "cval")
    sigma_px = lengths_to_pixels(sigma, spacing, len(axes), name)
    if derivative and min(sigma_px) == 0:
        # scipy.ndimage skips axes with sigma 0, derivative included, which
        # would add the raw image to the sum instead of a derivative.
        raise ValueError(f"{name}: must be positive on every spatial axis for a derivative filter")
    return axes, _unit_spacing(spacing, len(axes)), mode, truncate, cval, sigma_px


def _derivative_sum_ndimage(block, *, sigma_px, steps, order, mode, truncate, cval, root=False):
    """Sum over axes of (Gaussian derivative of ``order`` along the axis / step**order)^p."""
    total = np.zeros(block.shape, np.float32)
    for axis in range(block.ndim):
        orders = [0] * block.ndim
        orders[axis] = order
        term = ndimage.gaussian_filter(
            block, sigma_px, order=orders, mode=mode, truncate=truncate, cval=cval
        )
        if steps[axis] != 1.0:
            term /= np.float32(steps[axis] ** order)
        if order == 1:
            np.square(term, out=term)
        total += term
    return np.sqrt(total, out=total) if root else total


def _gradient_magnitude_kernel(block, keep, out, context, token, *, sigma_px, radius, steps, mode, cval):
    total = separable.derivative_sum(block, sigma_px, radius, steps, 1, mode, cval, keep, out)
    return np.sqrt(total, out=total)


@filter_function
def gradient_magnitude(
    image,
    sigma=1.0,
    *,
    spacing=None,
    spatial_axes=None,
    mode: BorderMode = "reflect",
    truncate: float = 4.0,
    cval: float = 0.0,
) -> FilterOp:
    """Gradient magnitude with Gaussian derivatives.

    Parameters
    ----------
    %(image)s
    sigma : float or sequence of float, default 1.0
        Gaussian standard deviation, in the units of ``spacing`` (pixels
        without it); one value or one per spatial axis, positive on every
        axis. Below about 1 voxel the sampled derivative kernel reads slopes
        low (0.86 s at 0.5 voxel), as scipy.ndimage's does.
    spacing : sequence of float, optional
        Voxel size along each spatial axis. Derivatives are per physical unit:
        a linear ramp of slope s per unit gives s, whatever the voxel size.
    %(spatial_axes)s
    %(mode)s
    %(truncate)s
    %(cval)s

    Returns
    -------
    numpy.ndarray or dask.array.Array
        float32 array. Without spacing equal to
        ``scipy.ndimage.gaussian_gradient_magnitude``.
    """
    axes, steps, mode, truncate, cval, sigma_px = _gaussian_setup(
        image, sigma, spacing, spatial_axes, mode, truncate, cval, derivative=True
    )
    radius = gaussian_radius(sigma_px, truncate)
    if borders.supported(mode, len(axes)):  # the same Gaussian-derivative passes, compiled
        kernel = partial(
            _gradient_magnitude_kernel, sigma_px=sigma_px, radius=radius, steps=steps, mode=mode, cval=cval
        )
        cost = Cost(6e-9 * len(axes))
    else:
        kernel = LibraryKernel(
            _derivative_sum_ndimage,
            {"sigma_px": sigma_px, "steps": steps, "order": 1, "mode": mode, "truncate": truncate,
             "cval": cval, "root": True},
        )
        cost = Cost.library(2.5e-8 * len(axes))
    return FilterOp("gradient_magnitude", kernel, axes, halo_for(radius, mode), cost, {"sigma": sigma_px})


@filter_function
def laplacian_of_gaussian(
    image,
    sigma=1.0,
    *,
    spacing=None,
    spatial_axes=None,
    mode: BorderMode = "reflect",
    truncate: float = 4.0,
    cval: float = 0.0,
) -> FilterOp:
    """Laplacian of Gaussian (LoG): blob and edge detector.

    Parameters
    ----------
    %(image)s
    sigma : float or sequence of float, default 1.0
        Gaussian standard deviation, in the units of ``spacing`` (pixels
        without it); one value or one per spatial axis, positive on every axis.
    spacing : sequence of float, optional
        Voxel size along each spatial axis; second derivatives are per unit².
    %(spatial_axes)s
    %(mode)s
    %(truncate)s
    %(cval)s

    Returns
    -------
    numpy.ndarray or dask.array.Array
        float32 array (not scale-normalised: multiply by σ² to compare scales).
        Without spacing equal to ``scipy.ndimage.gaussian_laplace``.
    """
    axes, steps, mode, truncate, cval, sigma_px = _gaussian_setup(
        image, sigma, spacing, spatial_axes, mode, truncate, cval, derivative=True
    )
    kernel = LibraryKernel(
        _derivative_sum_ndimage,
        {"sigma_px": sigma_px, "steps": steps, "order": 2, "mode": mode, "truncate": truncate, "cval": cval},
    )
    radius = gaussian_radius(sigma_px, truncate)
    return FilterOp(
        "laplacian_of_gaussian", kernel, axes, halo_for(radius, mode), Cost.library(2.5e-8 * len(axes)),
        {"sigma": sigma_px},
    )


def _difference_of_gaussians_ndimage(block, *, low_px, high_px, mode, truncate, cval):
    low = ndimage.gaussian_filter(block, low_px, mode=mode, truncate=truncate, cval=cval)
    high = ndimage.gaussian_filter(block, high_px, mode=mode, truncate=truncate, cval=cval)
    low -= high
    return low


@filter_function
def difference_of_gaussians(
    image,
    low_sigma=1.0,
    high_sigma=None,
    *,
    spacing=None,
    spatial_axes=None,
    mode: BorderMode = "reflect",
    truncate: float = 4.0,
    cval: float = 0.0,
) -> FilterOp:
    """Difference of Gaussians (band-pass): Gaussian(low) − Gaussian(high).

    Parameters
    ----------
    %(image)s
    low_sigma : float or sequence of float, default 1.0
        Standard deviation of the narrower Gaussian, in the units of
        ``spacing`` (pixels without it).
    high_sigma : float or sequence of float, optional
        Standard deviation of the wider Gaussian, not smaller than
        ``low_sigma`` on any axis. Default: 1.6 × ``low_sigma``.
    %(spacing)s
    %(spatial_axes)s
    mode : {'reflect', 'nearest', 'mirror', 'constant', 'wrap'}, default 'reflect'
        Border handling (scikit-image's own default is 'nearest').
    %(truncate)s
    %(cval)s

    Returns
    -------
    numpy.ndarray or dask.array.Array
        float32 array. Equal to ``skimage.filters.difference_of_gaussians`` on
        the float32 image with the same mode.
    """
    axes, steps, mode, truncate, cval, low_px = _gaussian_setup(
        image, low_sigma, spacing, spatial_axes, mode, truncate, cval, name="low_sigma"
    )
    if high_sigma is None:
        high_px = tuple(1.6 * s for s in low_px)
    else:
        high_px = lengths_to_pixels(high_sigma, steps, len(axes), "high_sigma")
    if any(h < l for h, l in zip(high_px, low_px)):
        raise ValueError("high_sigma: must not be smaller than low_sigma on any axis")
    kernel = LibraryKernel(
        _difference_of_gaussians_ndimage,
        {"low_px": low_px, "high_px": high_px, "mode": mode, "truncate": truncate, "cval": cval},
    )
    return FilterOp(
        "difference_of_gaussians", kernel, axes, halo_for(gaussian_radius(high_px, truncate), mode),
        Cost.library(5e-8), {"low_sigma": low_px, "high_sigma": high_px},
    )


@filter_function
def canny(
    image,
    sigma=1.0,
    low_threshold=None,
    high_threshold=None,
    *,
    spacing=None,
    spatial_axes=None,
    use_quantiles: bool = False,
    mode: BorderMode = "reflect",
    cval: float = 0.0,
) -> FilterOp:
    """Canny edge detector, plane by plane.

    Canny is a 2-D method: it runs on each 2-D plane spanned by the last two
    spatial axes; every other axis (z, time, channel) is looped over.

    Parameters
    ----------
    %(image)s
    sigma : float or sequence of float, default 1.0
        Gaussian smoothing before differentiation, in the units of ``spacing``
        (pixels without it); one value or one per plane axis.
    low_threshold, high_threshold : float, optional
        Hysteresis thresholds on the Sobel gradient magnitude of the smoothed
        plane, in the image's units (or quantiles in [0, 1] with
        ``use_quantiles``). Default when both are None: the 0.8 and 0.9
        quantiles of each plane's gradient magnitude, which neither the dtype
        nor the intensity scale changes.
    spacing : sequence of float, optional
        Voxel size along each spatial axis (only the last two are used).
    spatial_axes : sequence of int, optional
        At least two axes; the last two form the planes.
    use_quantiles : bool, default False
        Read the thresholds as quantiles of the gradient magnitude.
    mode : {'reflect', 'nearest', 'mirror', 'constant', 'wrap'}, default 'reflect'
        Border handling of the smoothing (scikit-image defaults to 'constant',
        which marks the image frame as an edge).
    %(cval)s

    Returns
    -------
    numpy.ndarray or dask.array.Array
        bool array of the input's shape, True on edges. Equal to
        ``skimage.feature.canny`` on each float32 plane.
    """
    axes, spacing = setup(image, spatial_axes, spacing, min_axes=2)
    plane_axes = last_two(axes)
    plane_spacing = None if spacing is None else spacing[-2:]
    mode = check_mode(mode)
    cval = _finite_number(cval, "cval")
    sigma_px = lengths_to_pixels(sigma, plane_spacing, 2, "sigma")
    low = optional_positive(low_threshold, "low_threshold", allow_zero=True)
    high = optional_positive(high_threshold, "high_threshold", allow_zero=True)
    quantiles = bool(use_quantiles)
    if low is None and high is None:
        low, high, quantiles = 0.8, 0.9, True
    if quantiles:
        for name, value in (("low_threshold", low), ("high_threshold", high)):
            if value is not None and value > 1:
                raise ValueError(f"{name}: a quantile must lie in [0, 1], got {value}")
    if low is not None and high is not None and low > high:
        raise ValueError("low_threshold: must not be larger than high_threshold")
    kernel = LibraryKernel(
        feature.canny,
        {"sigma": sigma_px, "low_threshold": low, "high_threshold": high, "use_quantiles": quantiles,
         "mode": mode, "cval": cval},
    )
    return FilterOp(
        "canny", kernel, plane_axes, None, Cost.library(2e-7),
        {"sigma": sigma_px, "low_threshold": low, "high_threshold": high},
        out_dtype=np.bool_,
    )
