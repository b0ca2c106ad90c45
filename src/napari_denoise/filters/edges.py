"""Edge filters: Sobel, Scharr, Prewitt, Laplace, Gaussian derivatives, DoG, Canny.

Derivatives are per physical unit when ``spacing`` is given: each axis'
derivative is divided by that axis' voxel size (second derivatives by its
square) before the axes are combined, so an edge of a given physical slope
gives the same response along z as along x.

NaN and infinite pixels never raise: as in scipy.ndimage, they make every
output pixel within the kernel's reach NaN (Canny returns booleans: whatever
skimage.feature.canny makes of them).

Gaussian kernels are bounded as in :mod:`.smoothing` (reach at most
1048576 voxels, folded into the image beyond it); derivative filters need
σ of at least :data:`MIN_DERIVATIVE_SIGMA` voxel, below which the sampled
derivative kernel is a single tap (a first derivative of 0, a second one
of ``-image / σ²``).
"""

from __future__ import annotations

from functools import partial

import numpy as np
from scipy import ndimage
from skimage import feature

from .._params import check_intensity, check_reach, lengths_to_pixels
from ..kernels import borders, separable
from ._base import (
    BorderMode,
    Cost,
    FilterOp,
    check_mode,
    filter_function,
    halo_for,
    last_two,
    library_kernel,
    polled_library_kernel,
    setup,
)
from .smoothing import (
    check_cval,
    check_truncate,
    correlate_ndimage,
    gaussian_passes,
    gaussian_sigma,
    passes_cost,
    passes_reach,
    gaussian_radius,
)

__all__ = [
    "sobel",
    "scharr",
    "prewitt",
    "laplace",
    "gradient_magnitude",
    "laplacian_of_gaussian",
    "difference_of_gaussians",
    "canny",
    "MIN_DERIVATIVE_SIGMA",
]

#: Smallest σ (voxels) of a Gaussian derivative filter.
MIN_DERIVATIVE_SIGMA = 0.01

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
    cval = check_cval(cval)
    params = {"smooth": _SMOOTHING[name], "steps": _unit_spacing(spacing, len(axes)), "mode": mode, "cval": cval}
    if borders.supported(mode, len(axes)):  # the same correlate1d passes, compiled
        kernel, cost = partial(_edge_magnitude_kernel, **params), Cost(6e-9)
    else:
        # nine correlate1d passes and three squares per voxel in 3-D: 2.2e-7 s per
        # voxel measured on a loaded 2-core machine (2e-8 made ~1 s pieces there)
        cost = Cost.library(8e-8)
        kernel = library_kernel(_edge_magnitude_ndimage, params, (1,) * len(axes), mode, cost)
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
    cval = check_cval(cval)
    cost = Cost.library(1e-8)
    params = {"steps": _unit_spacing(spacing, len(axes)), "mode": mode, "cval": cval}
    kernel = library_kernel(_laplace_ndimage, params, (1,) * len(axes), mode, cost)
    return FilterOp("laplace", kernel, axes, halo_for((1,) * len(axes), mode), cost)


def _gaussian_setup(image, sigma, spacing, spatial_axes, mode, truncate, cval, name="sigma", derivative=False):
    axes, spacing = setup(image, spatial_axes, spacing)
    mode = check_mode(mode)
    truncate = check_truncate(truncate)
    cval = check_cval(cval)
    sigma_px, radius = gaussian_sigma(sigma, spacing, len(axes), truncate, name)
    if derivative:
        for ax, s in enumerate(sigma_px):
            # scipy.ndimage skips axes with sigma 0, derivative included, which
            # would add the raw image to the sum instead of a derivative; a
            # tiny sigma makes a one-tap kernel (and 1/σ² overflows).
            if not s >= MIN_DERIVATIVE_SIGMA:
                raise ValueError(
                    f"{name}: must be positive on every spatial axis for a derivative filter, "
                    f"at least {MIN_DERIVATIVE_SIGMA:g} voxel; got {s:.6g} voxels along spatial axis {ax}"
                )
    extents = [image.shape[ax] for ax in axes]
    return axes, _unit_spacing(spacing, len(axes)), mode, truncate, cval, sigma_px, radius, extents


def _derivative_terms(sigma_px, radius, order, extents, mode):
    """Per axis ``a``: the passes of the Gaussian derivative of ``order`` along ``a``."""
    return tuple(
        gaussian_passes(sigma_px, radius, order_axis=a, order=order, extents=extents, mode=mode)
        for a in range(len(sigma_px))
    )


def _finish_term(term, axis, steps, order):
    if steps[axis] != 1.0:
        term /= np.float32(steps[axis] ** order)
    if order == 1:
        np.square(term, out=term)


def _derivative_sum_ndimage(block, *, terms, steps, order, mode, cval, root=False, flag=None):
    """Sum over axes of (Gaussian derivative of ``order`` along the axis / step**order)^p."""
    total = np.zeros(block.shape, np.float32)
    for axis, passes in enumerate(terms):
        term = correlate_ndimage(block, passes=passes, mode=mode, cval=cval, flag=flag)
        _finish_term(term, axis, steps, order)
        total += term
    return np.sqrt(total, out=total) if root else total


def _derivative_sum_kernel(block, keep, out, context, token, *, terms, steps, order, mode, cval, root=False):
    """Compiled :func:`_derivative_sum_ndimage` on the kept part: the first term into
    ``out``, the others through one reused work array."""
    total = None
    for axis, passes in enumerate(terms):
        if total is None:
            term = separable.separable(block, passes, mode, cval, keep, out)
        else:
            term = separable.separable(block, passes, mode, cval, keep, result_scratch="edges.term")
        _finish_term(term, axis, steps, order)
        total = term if total is None else np.add(total, term, out=total)
    return np.sqrt(total, out=total) if root else total


def _terms_reach(terms, n_axes):
    return tuple(max(r) for r in zip(*(passes_reach(p, n_axes) for p in terms)))


def _derivative_op(name, axes, terms, steps, order, mode, cval, root, params) -> FilterOp:
    settings = {"terms": terms, "steps": steps, "order": order, "mode": mode, "cval": cval, "root": root}
    all_passes = [p for term in terms for p in term]
    reach = _terms_reach(terms, len(axes))
    if borders.supported(mode, len(axes)):  # the same Gaussian-derivative passes, compiled
        kernel, cost = partial(_derivative_sum_kernel, **settings), passes_cost(all_passes)
    else:
        cost = passes_cost(all_passes, library=True)
        kernel = polled_library_kernel(_derivative_sum_ndimage, settings)
    return FilterOp(name, kernel, axes, halo_for(reach, mode), cost, params)


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
    axes, steps, mode, truncate, cval, sigma_px, radius, extents = _gaussian_setup(
        image, sigma, spacing, spatial_axes, mode, truncate, cval, derivative=True
    )
    terms = _derivative_terms(sigma_px, radius, 1, extents, mode)
    return _derivative_op("gradient_magnitude", axes, terms, steps, 1, mode, cval, True, {"sigma": sigma_px})


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
    axes, steps, mode, truncate, cval, sigma_px, radius, extents = _gaussian_setup(
        image, sigma, spacing, spatial_axes, mode, truncate, cval, derivative=True
    )
    terms = _derivative_terms(sigma_px, radius, 2, extents, mode)
    return _derivative_op("laplacian_of_gaussian", axes, terms, steps, 2, mode, cval, False, {"sigma": sigma_px})


def _difference_of_gaussians_ndimage(block, *, low, high, mode, cval, flag=None):
    result = correlate_ndimage(block, passes=low, mode=mode, cval=cval, flag=flag)
    result -= correlate_ndimage(block, passes=high, mode=mode, cval=cval, flag=flag)
    return result


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
    axes, steps, mode, truncate, cval, low_px, low_radius, extents = _gaussian_setup(
        image, low_sigma, spacing, spatial_axes, mode, truncate, cval, name="low_sigma"
    )
    spacing = None if spacing is None else steps
    if high_sigma is None:
        high_px = tuple(1.6 * s for s in low_px)
        check_reach("low_sigma", low_sigma, low_px, truncate, spacing, factor=1.6)
        high_radius = gaussian_radius(high_px, truncate)
    else:
        high_px, high_radius = gaussian_sigma(high_sigma, spacing, len(axes), truncate, "high_sigma")
    if any(h < l for h, l in zip(high_px, low_px)):
        raise ValueError("high_sigma: must not be smaller than low_sigma on any axis")
    low = gaussian_passes(low_px, low_radius, extents=extents, mode=mode)
    high = gaussian_passes(high_px, high_radius, extents=extents, mode=mode)
    reach = tuple(max(a, b) for a, b in zip(passes_reach(low, len(axes)), passes_reach(high, len(axes))))
    cost = passes_cost(low + high, library=True)
    params = {"low": low, "high": high, "mode": mode, "cval": cval}
    kernel = polled_library_kernel(_difference_of_gaussians_ndimage, params)
    return FilterOp(
        "difference_of_gaussians", kernel, axes, halo_for(reach, mode), cost,
        {"low_sigma": low_px, "high_sigma": high_px},
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
        nor the intensity scale changes. When only one is given, the other is
        scikit-image's default (0.1 for the low, 0.2 for the high one).
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
    cval = check_cval(cval)
    sigma_px, radius = gaussian_sigma(sigma, plane_spacing, 2, _CANNY_TRUNCATE)
    low = check_intensity(low_threshold, "low_threshold")
    high = check_intensity(high_threshold, "high_threshold")
    quantiles = bool(use_quantiles)
    if low is None and high is None:
        low, high, quantiles = 0.8, 0.9, True
    if quantiles:
        for name, value in (("low_threshold", low), ("high_threshold", high)):
            if value is not None and value > 1:
                raise ValueError(f"{name}: a quantile must lie in [0, 1], got {value}")
    # scikit-image's defaults for a threshold left out (the other one given): 0.1 and 0.2
    if low is None and high < _CANNY_LOW:
        raise ValueError(f"high_threshold: must be at least low_threshold (default {_CANNY_LOW:g}), got {high:g}")
    if low is not None and low > (_CANNY_HIGH if high is None else high):
        shown = "high_threshold" if high is not None else f"high_threshold (default {_CANNY_HIGH:g})"
        raise ValueError(f"low_threshold: must not be larger than {shown}, got {low:g}")
    extents = [image.shape[ax] for ax in plane_axes]
    passes = gaussian_passes(sigma_px, radius, extents=extents, mode=mode)
    smoothing_cost = passes_cost(passes, library=not borders.supported(mode, 2))
    settings = {"passes": passes, "mode": mode, "cval": cval}
    if borders.supported(mode, 2):  # compiled passes, on pieces of the plane between which the flag is polled
        smoothing = library_kernel(_smooth_plane, settings, passes_reach(passes, 2), mode, smoothing_cost)
    else:  # scipy's passes, each cut into pieces across the other axis
        smoothing = polled_library_kernel(_smooth_plane, settings)
    kernel = partial(
        _canny_kernel, smoothing=smoothing, constant=mode == "constant",
        low=low, high=high, quantiles=quantiles,
    )
    return FilterOp(
        "canny", kernel, plane_axes, None, Cost.library(2e-7 + smoothing_cost.seconds),
        {"sigma": sigma_px, "low_threshold": low, "high_threshold": high},
        out_dtype=np.bool_,
    )


# skimage.feature.canny smooths with ndimage.gaussian_filter's default truncate.
_CANNY_TRUNCATE = 4.0
# ... and uses these thresholds when one is not given.
_CANNY_LOW, _CANNY_HIGH = 0.1, 0.2


def _smooth_plane(block, *, passes, mode, cval, flag=None):
    if borders.supported(mode, block.ndim):
        return separable.separable(block, passes, mode, cval)
    return correlate_ndimage(block, passes=passes, mode=mode, cval=cval, flag=flag)


def _canny_kernel(block, keep, out, context, token, *, smoothing, constant, low, high, quantiles):
    """``skimage.feature.canny`` on one plane, its Gaussian smoothing done first, in pieces.

    The smoothing is the slow part for a large σ and scikit-image cannot be
    stopped inside it: done here (same weights, bit-identical, folded when
    longer than the plane) a piece at a time, checking the cancel flag, then
    canny runs with σ = 0 on the smoothed plane (its mode then matters only
    for the bleed-over correction of mode 'constant', done here as
    scikit-image does it).
    """
    plane = np.asarray(block, np.float32)
    whole = (slice(None),) * plane.ndim
    smoothed = smoothing(plane, whole, None, None, token)
    if constant:
        bleed = smoothing(np.ones(plane.shape, np.float32), whole, None, None, token)
        bleed += np.finfo(np.float32).eps
        smoothed /= bleed
    if token is not None and token.flag[0]:
        return np.zeros(plane[keep].shape, bool)  # cancelled: dropped by the run
    edges = feature.canny(
        smoothed, sigma=0.0, low_threshold=low, high_threshold=high, use_quantiles=quantiles, mode="nearest"
    )[keep]
    if out is None:
        return edges
    out[...] = edges
    return out
