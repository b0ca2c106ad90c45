"""Edge filters against scikit-image / scipy, and derivatives per physical unit."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from skimage import feature, filters

import napari_denoise as nd

from _numeric_helpers import assert_float32_close, noisy_image, tiles_of

MODES = ["reflect", "nearest", "mirror", "constant", "wrap"]


@pytest.mark.parametrize("name", ["sobel", "scharr", "prewitt"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape", [(19, 23), (7, 11, 13)])
def test_edge_magnitude_equals_skimage(name, mode, shape):
    x = noisy_image(shape, seed=1)
    out = getattr(nd, name)(x, mode=mode, cval=2.0)
    expected = getattr(filters, name)(x, mode=mode, cval=2.0)
    assert out.dtype == np.float32
    assert_float32_close(out, expected, rtol=1e-5, atol_rel=1e-5)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, bool, np.float64])
def test_edge_magnitude_integer_input_does_not_wrap(dtype):
    x = noisy_image((16, 18), seed=2, scale=200)
    x = (x > 100) if dtype is bool else np.clip(x, 0, 255).astype(dtype)
    out = nd.sobel(x)
    # skimage on the float32 values (ndimage.sobel on uint8 itself would wrap around)
    expected = filters.sobel(x.astype(np.float32))
    assert_float32_close(out, expected)


@pytest.mark.parametrize("name", ["sobel", "scharr", "prewitt"])
def test_edge_magnitude_with_spacing_divides_each_component(name):
    x = noisy_image((8, 12, 14), seed=5)
    spacing = (2.0, 0.5, 0.25)
    out = getattr(nd, name)(x, spacing=spacing)
    components = [getattr(filters, name)(x, axis=i) / s for i, s in enumerate(spacing)]
    expected = np.sqrt(np.mean(np.square(components), axis=0))
    assert_float32_close(out, expected)
    # unit spacing is the plain filter
    assert_float32_close(getattr(nd, name)(x, spacing=1.0), getattr(filters, name)(x))


def test_sobel_over_chosen_axes_of_a_stack():
    x = noisy_image((3, 10, 12, 2), seed=6)
    out = nd.sobel(x, spatial_axes=(1, 2))
    for t in range(3):
        for c in range(2):
            assert_float32_close(out[t, :, :, c], filters.sobel(x[t, :, :, c]))


@pytest.mark.parametrize("mode", MODES)
def test_laplace_equals_ndimage(mode):
    x = noisy_image((9, 12, 10), seed=7)
    assert_float32_close(nd.laplace(x, mode=mode, cval=1.0), ndimage.laplace(x, mode=mode, cval=1.0))


def test_laplace_with_spacing_is_per_unit_squared():
    x = noisy_image((9, 12, 10), seed=7)
    spacing = (0.29, 0.26, 0.13)
    expected = sum(
        ndimage.correlate1d(x.astype(np.float64), [1, -2, 1], axis=i) / s**2 for i, s in enumerate(spacing)
    )
    assert_float32_close(nd.laplace(x, spacing=spacing), expected, rtol=1e-4)
    # a parabola 0.5*k*(z*dz)^2 has Laplacian k per unit², whatever the voxel size
    z = np.arange(20, dtype=np.float64) * 0.29
    parabola = np.broadcast_to((1.5 * z**2)[:, None, None], (20, 6, 6)).astype(np.float32)
    lap = nd.laplace(parabola, spacing=(0.29, 0.26, 0.13))
    np.testing.assert_allclose(lap[2:-2], 3.0, rtol=1e-3)


@pytest.mark.parametrize("mode", MODES)
def test_gradient_magnitude_and_log_equal_ndimage(mode):
    x = noisy_image((11, 13, 12), seed=8)
    assert_float32_close(
        nd.gradient_magnitude(x, 1.3, mode=mode),
        ndimage.gaussian_gradient_magnitude(x, 1.3, mode=mode),
    )
    assert_float32_close(
        nd.laplacian_of_gaussian(x, (0.8, 1.3, 2.0), mode=mode),
        ndimage.gaussian_laplace(x, (0.8, 1.3, 2.0), mode=mode),
    )


def test_gaussian_derivatives_with_spacing():
    x = noisy_image((10, 14, 16), seed=9)
    spacing = (0.5, 0.25, 0.25)
    sigma_px = [1.0 / s for s in spacing]
    comps = [
        ndimage.gaussian_filter(x.astype(np.float64), sigma_px, order=[int(i == a) for i in range(3)]) / spacing[a]
        for a in range(3)
    ]
    expected = np.sqrt(np.sum(np.square(comps), axis=0))
    assert_float32_close(nd.gradient_magnitude(x, 1.0, spacing=spacing), expected, rtol=1e-4)
    second = sum(
        ndimage.gaussian_filter(x.astype(np.float64), sigma_px, order=[2 * int(i == a) for i in range(3)]) / spacing[a] ** 2
        for a in range(3)
    )
    assert_float32_close(nd.laplacian_of_gaussian(x, 1.0, spacing=spacing), second, rtol=1e-4, atol_rel=1e-4)


@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize(
    ("spacing", "sigma"),
    [((1.0, 1.0, 1.0), 1.0), ((0.29, 0.26, 0.26), 0.5), ((2.0, 0.25, 0.5), 2.0)],
)
def test_gradient_magnitude_of_a_ramp_is_its_slope(axis, spacing, sigma):
    # sigma (physical) is at least one pixel on every axis: sampled Gaussian
    # derivative kernels of sub-pixel width (ndimage's too) under-estimate slopes.
    slope = 3.5  # intensity per physical unit
    shape = (40, 80, 48)
    coords = np.arange(shape[axis]) * spacing[axis]
    view = [1, 1, 1]
    view[axis] = shape[axis]
    ramp = np.broadcast_to((slope * coords).reshape(view), shape).astype(np.float32)
    out = nd.gradient_magnitude(ramp, sigma, spacing=spacing, mode="nearest")
    reach = int(4 * sigma / spacing[axis] + 0.5) + 1  # kernel radius along the ramp
    inner = [slice(None)] * 3
    inner[axis] = slice(reach, shape[axis] - reach)
    assert shape[axis] - 2 * reach >= 4
    np.testing.assert_allclose(out[tuple(inner)], slope, rtol=2e-3)
    # and the same physical slope gives the same answer whatever the voxel size
    coarse = np.broadcast_to((slope * np.arange(shape[axis]) * 1.0).reshape(view), shape).astype(np.float32)
    out_unit = nd.gradient_magnitude(coarse, 1.0, mode="nearest")
    np.testing.assert_allclose(out_unit[tuple(inner)], slope, rtol=2e-3)


def test_edge_filters_report_slope_consistently_between_axes():
    # the same physical edge along z and along x gives the same Sobel response
    spacing = (0.5, 0.25)
    z = np.arange(32)[:, None] * spacing[0] * np.ones((1, 32))
    x = np.ones((32, 1)) * np.arange(32)[None, :] * spacing[1]
    gz = nd.sobel(z.astype(np.float32), spacing=spacing)
    gx = nd.sobel(x.astype(np.float32), spacing=spacing)
    np.testing.assert_allclose(gz[2:-2, 2:-2], gx[2:-2, 2:-2], rtol=1e-5)


@pytest.mark.parametrize("mode", ["nearest", "reflect", "constant"])
def test_difference_of_gaussians_equals_skimage(mode):
    x = noisy_image((15, 17, 13), seed=10)
    out = nd.difference_of_gaussians(x, 1.0, 2.5, mode=mode)
    expected = filters.difference_of_gaussians(x, 1.0, 2.5, mode=mode)
    assert_float32_close(out, expected)
    # default high sigma: 1.6 x low, as in scikit-image
    assert_float32_close(nd.difference_of_gaussians(x, 1.2, mode=mode),
                         filters.difference_of_gaussians(x, 1.2, mode=mode))


def test_difference_of_gaussians_with_spacing():
    x = noisy_image((8, 20, 20), seed=11)
    spacing = (0.5, 0.25, 0.25)
    out = nd.difference_of_gaussians(x, 0.5, 1.0, spacing=spacing, mode="nearest")
    expected = filters.difference_of_gaussians(
        x, [0.5 / s for s in spacing], [1.0 / s for s in spacing], mode="nearest"
    )
    assert_float32_close(out, expected)


@pytest.mark.parametrize("mode", ["reflect", "constant", "nearest"])
def test_canny_equals_skimage_per_plane(mode):
    x = noisy_image((3, 2, 30, 34), seed=12)
    x[..., 10:20, 12:25] += 80
    out = nd.canny(x, 1.5, 5.0, 15.0, mode=mode)
    assert out.dtype == bool and out.shape == x.shape
    for t in range(3):
        for z in range(2):
            expected = feature.canny(x[t, z], 1.5, 5.0, 15.0, mode=mode)
            np.testing.assert_array_equal(out[t, z], expected)
    assert out.any()


def test_canny_default_thresholds_are_quantiles():
    x = noisy_image((30, 34), seed=13)
    out = nd.canny(x)
    expected = feature.canny(x, 1.0, 0.8, 0.9, use_quantiles=True, mode="reflect")
    np.testing.assert_array_equal(out, expected)
    # hence invariant to the intensity scale and the dtype
    np.testing.assert_array_equal(nd.canny(x * 7.0), out)


def test_canny_spacing_uses_last_two_axes():
    x = noisy_image((2, 30, 34), seed=14)
    out = nd.canny(x, 0.5, 1.0, 5.0, spacing=(9.0, 0.25, 0.5))
    for z in range(2):
        np.testing.assert_array_equal(out[z], feature.canny(x[z], (2.0, 1.0), 1.0, 5.0, mode="reflect"))


def test_canny_stack_never_fails():
    x = noisy_image((2, 3, 4, 20, 22), seed=15)
    out = nd.canny(x, spatial_axes=(0, 3, 4))
    assert out.shape == x.shape and out.dtype == bool
    np.testing.assert_array_equal(out[1, 2, 3], nd.canny(x[1, 2, 3]))
    # planes over explicitly chosen non-trailing axes
    out = nd.canny(x, spatial_axes=(1, 3))
    np.testing.assert_array_equal(out[0, :, 1, :, 5], nd.canny(x[0, :, 1, :, 5]))


@pytest.mark.parametrize("name", ["sobel", "scharr", "prewitt", "laplace", "gradient_magnitude",
                                  "laplacian_of_gaussian", "difference_of_gaussians"])
def test_edge_input_untouched_and_independent(name):
    f = getattr(nd, name)
    x = noisy_image((2, 3, 12, 14), seed=16)
    before = x.copy()
    out = f(x)
    np.testing.assert_array_equal(x, before)
    assert out.dtype == np.float32 and out.shape == x.shape
    for c in range(2):
        np.testing.assert_array_equal(out[c], f(x[c]))


@pytest.mark.parametrize("name", ["sobel", "laplace", "gradient_magnitude", "difference_of_gaussians", "canny"])
def test_tiled_equals_untiled(name):
    x = noisy_image((420, 650), seed=17)
    f = getattr(nd, name)
    tiles = tiles_of(f, x)
    if name == "canny":
        assert tiles == (None,)  # global thresholds: never tiled
    else:
        assert len(tiles) > 1
    np.testing.assert_array_equal(f(x, workers=1), f(x, workers=2))


@pytest.mark.filterwarnings("ignore::RuntimeWarning", "ignore::UserWarning")
def test_nan_and_inf_pixels_do_not_crash():
    x = noisy_image((20, 20), seed=18)
    x[5, 5] = np.nan
    x[15, 15] = np.inf
    for name in ["sobel", "scharr", "prewitt", "laplace", "gradient_magnitude",
                 "laplacian_of_gaussian", "difference_of_gaussians", "canny"]:
        out = getattr(nd, name)(x)
        assert out.shape == x.shape
        if out.dtype == np.float32:
            assert np.isfinite(out[0, -1])  # far from the bad pixels


@pytest.mark.parametrize("shape", [(0, 6), (6, 0), (1, 1), (1, 8), (8, 1), (2, 2)])
@pytest.mark.parametrize("name", ["sobel", "laplace", "gradient_magnitude", "laplacian_of_gaussian",
                                  "difference_of_gaussians", "canny"])
def test_empty_and_size_one(name, shape):
    x = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)
    out = getattr(nd, name)(x)
    assert out.shape == shape
    if name == "sobel" and x.size:
        assert_float32_close(out, filters.sobel(x))
