"""Property-based tests: random shapes (2-D to 5-D), dtypes and spatial-axis choices."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import ndimage
from skimage import filters

import napari_denoise as nd

from _numeric_helpers import FILTERS, call

DTYPES = [np.uint8, np.uint16, np.int16, np.float32, np.float64, np.bool_]
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def images(draw, min_dims=2, max_dims=5, min_side=1, max_side=6):
    ndim = draw(st.integers(min_dims, max_dims))
    shape = tuple(draw(st.lists(st.integers(min_side, max_side), min_size=ndim, max_size=ndim)))
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    if dtype == np.bool_:
        x = rng.random(shape) > 0.5
    elif dtype.kind in "ui":
        lo = 0 if dtype.kind == "u" else -100
        x = rng.integers(lo, 200, shape).astype(dtype)
    else:
        x = (rng.normal(50, 20, shape)).astype(dtype)
    return x


@st.composite
def image_and_axes(draw, min_axes=1, max_axes=3, **kwargs):
    x = draw(images(min_dims=max(2, min_axes), **kwargs))
    k = draw(st.integers(min_axes, min(max_axes, x.ndim)))
    axes = tuple(sorted(draw(st.permutations(range(x.ndim)))[:k]))
    return x, axes


def independent_index(draw, x, axes):
    """A random index over the non-spatial axes (slices for the spatial ones)."""
    return tuple(
        slice(None) if ax in axes else draw(st.integers(0, x.shape[ax] - 1)) for ax in range(x.ndim)
    )


@SETTINGS
@given(data=st.data(), name=st.sampled_from(sorted(FILTERS)))
def test_independent_axes_are_exact(data, name):
    min_axes = 2 if name in ("canny", "non_local_means", "block_matching") else 1
    x, axes = data.draw(image_and_axes(min_axes=min_axes, max_side=5))
    before = x.copy()
    out = call(name, x, spatial_axes=axes)
    np.testing.assert_array_equal(x, before)
    assert out.shape == x.shape
    assert out.dtype == (np.bool_ if name == "canny" else np.float32)
    index = independent_index(data.draw, x, axes)
    # x[index] keeps the spatial axes in their original order
    np.testing.assert_array_equal(out[index], call(name, x[index]))


@SETTINGS
@given(data=st.data(), mode=st.sampled_from(["reflect", "nearest", "mirror", "constant", "wrap"]))
def test_gaussian_mean_median_equal_scipy(data, mode):
    x, axes = data.draw(image_and_axes())
    k = len(axes)
    sigma = tuple(data.draw(st.floats(0, 3)) for _ in range(k))
    size = tuple(data.draw(st.integers(1, 4)) for _ in range(k))
    f32 = x.astype(np.float32)
    full_sigma = [0.0] * x.ndim
    full_size = [1] * x.ndim
    for ax, s, n in zip(axes, sigma, size):
        full_sigma[ax] = s
        full_size[ax] = n
    g = nd.gaussian(x, sigma, spatial_axes=axes, mode=mode, cval=1.5)
    np.testing.assert_allclose(
        g, ndimage.gaussian_filter(f32, full_sigma, mode=mode, cval=1.5), rtol=1e-5, atol=1e-4
    )
    m = nd.mean(x, size, spatial_axes=axes, mode=mode)
    np.testing.assert_allclose(m, ndimage.uniform_filter(f32, full_size, mode=mode), rtol=1e-5, atol=1e-4)
    med = nd.median(x, size, spatial_axes=axes, mode=mode)
    np.testing.assert_array_equal(med, ndimage.median_filter(f32, full_size, mode=mode))


@SETTINGS
@given(data=st.data(), name=st.sampled_from(["sobel", "scharr", "prewitt"]),
       mode=st.sampled_from(["reflect", "nearest", "mirror", "constant", "wrap"]))
def test_edge_magnitude_equals_skimage(data, name, mode):
    x, axes = data.draw(image_and_axes(min_axes=1, max_axes=3))
    out = getattr(nd, name)(x, spatial_axes=axes, mode=mode)
    f32 = np.moveaxis(x.astype(np.float32), axes, range(x.ndim - len(axes), x.ndim))
    lead = f32.shape[: x.ndim - len(axes)]
    moved_out = np.moveaxis(out, axes, range(x.ndim - len(axes), x.ndim))
    for index in np.ndindex(*lead):
        piece = f32[index]
        expected = getattr(filters, name)(piece, mode=mode)
        if piece.ndim == 1:  # skimage returns the signed derivative in 1-D
            expected = np.abs(expected)
        np.testing.assert_allclose(moved_out[index], expected, rtol=1e-5, atol=1e-4)


@SETTINGS
@given(x=images(min_dims=2, max_dims=4, min_side=2, max_side=6), c=st.floats(0.1, 10))
def test_spacing_equals_pixel_sigma(x, c):
    # sigma c * s in units with voxel size s is sigma c in pixels
    k = min(3, x.ndim)
    spacing = tuple(0.25 + 0.5 * i for i in range(k))
    out = nd.gaussian(x, [c * s for s in spacing], spacing=spacing)
    np.testing.assert_allclose(out, nd.gaussian(x, c), rtol=1e-6, atol=1e-5)


@SETTINGS
@given(x=images(min_dims=2, max_dims=3, min_side=4, max_side=8))
def test_denoisers_finite_and_bounded(x):
    # edge-preserving denoisers are weighted averages (or near): stay within the data range
    f32 = x.astype(np.float32)
    lo, hi = float(f32.min()), float(f32.max())
    span = max(hi - lo, 1.0)
    for name in ("bilateral", "non_local_means", "median", "mean", "gaussian"):
        out = call(name, x)
        assert np.all(np.isfinite(out))
        assert out.min() >= lo - 1e-4 * span and out.max() <= hi + 1e-4 * span, name
