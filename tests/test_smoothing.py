"""gaussian, mean, median against scipy.ndimage, spacing, independent axes, execution."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

import napari_denoise as nd
from napari_denoise import _scheduler

from _numeric_helpers import assert_float32_close, noisy_image, tiles_of

MODES = ["reflect", "nearest", "mirror", "constant", "wrap"]
DTYPES = [np.uint8, np.uint16, np.int16, np.float32, np.float64, bool]


def typed(image, dtype):
    if dtype is bool:
        return image > np.median(image)
    if np.dtype(dtype).kind in "ui":
        return np.clip(image, 0, 200).astype(dtype)
    return image.astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", MODES)
def test_gaussian_equals_ndimage(dtype, mode):
    x = typed(noisy_image((17, 23)), dtype)
    before = x.copy()
    out = nd.gaussian(x, 1.7, mode=mode, cval=3.0)
    expected = ndimage.gaussian_filter(x.astype(np.float32), 1.7, mode=mode, cval=3.0)
    assert out.dtype == np.float32 and out.shape == x.shape
    assert_float32_close(out, expected)
    np.testing.assert_array_equal(x, before)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", MODES)
def test_mean_equals_uniform_filter(dtype, mode):
    x = typed(noisy_image((9, 13, 11)), dtype)
    before = x.copy()
    out = nd.mean(x, 3, mode=mode, cval=1.0)
    expected = ndimage.uniform_filter(x.astype(np.float32), 3, mode=mode, cval=1.0)
    assert_float32_close(out, expected)
    np.testing.assert_array_equal(x, before)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", MODES)
def test_median_equals_median_filter(dtype, mode):
    x = typed(noisy_image((9, 13, 11)), dtype)
    before = x.copy()
    out = nd.median(x, (3, 1, 5), mode=mode, cval=2.0)
    expected = ndimage.median_filter(x.astype(np.float32), (3, 1, 5), mode=mode, cval=2.0)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(x, before)


def test_even_sizes_without_spacing_match_scipy():
    x = noisy_image((20, 21))
    np.testing.assert_array_equal(nd.median(x, 4), ndimage.median_filter(x, 4))
    assert_float32_close(nd.mean(x, (2, 6)), ndimage.uniform_filter(x, (2, 6)))


def test_gaussian_per_axis_sigma_and_truncate():
    x = noisy_image((12, 15, 18))
    out = nd.gaussian(x, (0.0, 1.0, 2.5), truncate=2.5)
    assert_float32_close(out, ndimage.gaussian_filter(x, (0.0, 1.0, 2.5), truncate=2.5))


def test_gaussian_spacing_is_physical_units():
    x = noisy_image((12, 30, 30))
    spacing = (0.29, 0.26, 0.26)
    out = nd.gaussian(x, 0.5, spacing=spacing)
    expected = ndimage.gaussian_filter(x, [0.5 / s for s in spacing])
    assert_float32_close(out, expected)
    # a per-axis sigma in µm
    out = nd.gaussian(x, (0.58, 0.26, 0.52), spacing=spacing)
    assert_float32_close(out, ndimage.gaussian_filter(x, (2.0, 1.0, 2.0)))
    # halving the voxel size doubles the kernel in pixels
    assert_float32_close(nd.gaussian(x, 1.0, spacing=0.5), ndimage.gaussian_filter(x, 2.0))


def test_sizes_with_spacing_become_closest_odd_pixels():
    x = noisy_image((10, 24, 26))
    spacing = (0.5, 0.26, 0.1)
    # 1 µm -> 2 px -> 3, 3.85 px -> 3, 10 px -> 11
    assert_float32_close(nd.mean(x, 1.0, spacing=spacing), ndimage.uniform_filter(x, (3, 3, 11)))
    np.testing.assert_array_equal(
        nd.median(x, 1.0, spacing=spacing), ndimage.median_filter(x, (3, 3, 11))
    )
    # too small for a pixel: at least 1, i.e. no smoothing at all on that axis
    np.testing.assert_array_equal(nd.median(x, 0.05, spacing=(0.1, 1.0, 1.0)), ndimage.median_filter(x, (1, 1, 1)))


def test_four_d_default_leaves_first_axis_alone():
    x = noisy_image((3, 6, 10, 12))
    out = nd.gaussian(x, 1.2)
    expected = ndimage.gaussian_filter(x, (0, 1.2, 1.2, 1.2))
    assert_float32_close(out, expected)
    for t in range(3):
        np.testing.assert_array_equal(out[t], nd.gaussian(x[t], 1.2))


@pytest.mark.parametrize("name", ["gaussian", "mean", "median"])
def test_independent_axes_are_not_mixed(name):
    x = noisy_image((2, 3, 14, 16))
    x[1] *= 10  # a very different channel
    f = getattr(nd, name)
    out = f(x, spatial_axes=(2, 3))
    for c in range(2):
        for t in range(3):
            np.testing.assert_array_equal(out[c, t], f(x[c, t]))
    # non-contiguous spatial axes
    out = f(x, spatial_axes=(0, 3))
    for t in range(3):
        for y in (0, 7, 13):
            np.testing.assert_array_equal(out[:, t, y, :], f(x[:, t, y, :]))


def test_time_axis_of_a_stack_never_smoothed():
    x = np.zeros((5, 9, 9), np.float32)
    x[2] = 1.0
    out = nd.gaussian(x, 2.0, spatial_axes=(1, 2))
    assert np.all(out[[0, 1, 3, 4]] == 0)
    np.testing.assert_allclose(out[2], 1.0, rtol=1e-6)


def test_sigma_zero_is_identity():
    x = noisy_image((7, 9))
    np.testing.assert_array_equal(nd.gaussian(x, 0.0), x)
    np.testing.assert_array_equal(nd.mean(x, 1), x)
    np.testing.assert_array_equal(nd.median(x, 1), x)


def test_huge_sigma_gives_mean_level():
    x = noisy_image((6, 7))
    out = nd.gaussian(x, 500.0, mode="wrap")
    np.testing.assert_allclose(out, x.mean(), rtol=1e-3)


@pytest.mark.parametrize("shape", [(0, 5), (5, 0), (0, 3, 4, 4), (1, 1), (1, 9), (9, 1), (1, 1, 1)])
@pytest.mark.parametrize("name", ["gaussian", "mean", "median"])
def test_empty_and_size_one_axes(name, shape):
    x = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)
    out = getattr(nd, name)(x)
    assert out.shape == shape and out.dtype == np.float32
    if x.size:
        ref = {"gaussian": ndimage.gaussian_filter, "mean": ndimage.uniform_filter,
               "median": ndimage.median_filter}[name]
        spatial = shape[-3:] if len(shape) > 3 else shape
        # defaults (benchmarks/defaults_study.py): planes σ 1.5 / size 5, volumes σ 1 / size 3
        arg = {"gaussian": {2: 1.5, 3: 1.0}, "mean": {2: 5, 3: 3}, "median": {2: 5, 3: 3}}[name][len(spatial)]
        expected = ref(x.reshape(spatial), arg).reshape(shape)
        assert_float32_close(out, expected)


def test_nan_behaviour_is_documented_not_a_crash():
    x = noisy_image((15, 15))
    x[7, 7] = np.nan
    g = nd.gaussian(x, 1.0)
    # NaN spreads exactly over the kernel's reach (radius int(4*1+0.5) = 4)
    nan_rows, nan_cols = np.nonzero(np.isnan(g))
    assert nan_rows.min() == 3 and nan_rows.max() == 11 and nan_cols.min() == 3
    assert np.isfinite(g[0, 0])
    assert nd.median(x).shape == x.shape  # unspecified values near NaN, but no crash
    x[0, 0] = np.inf
    assert nd.mean(x).shape == x.shape


def test_output_is_new_array_for_float32_input():
    x = noisy_image((8, 8))
    out = nd.gaussian(x, 0.0)
    assert out is not x and not np.shares_memory(out, x)


# -- tiled execution, progress and cancellation -----------------------------------------
@pytest.mark.parametrize(
    ("name", "kwargs"),
    [("gaussian", {"sigma": 2.0}), ("mean", {"size": 5}), ("median", {"size": 3}),
     ("gaussian", {"sigma": (1.0, 3.0), "mode": "constant", "cval": 5.0})],
)
def test_tiled_equals_untiled(name, kwargs):
    x = noisy_image((420, 650), seed=3)
    f = getattr(nd, name)
    assert len(tiles_of(f, x, **kwargs)) > 1
    one = f(x, workers=1, **kwargs)
    two = f(x, workers=2, **kwargs)
    np.testing.assert_array_equal(one, two)
    # and both equal scipy on the whole image
    ref = {"gaussian": ndimage.gaussian_filter, "mean": ndimage.uniform_filter,
           "median": ndimage.median_filter}[name]
    arg = kwargs.get("sigma", kwargs.get("size"))
    extra = {k: v for k, v in kwargs.items() if k in ("mode", "cval")}
    assert_float32_close(two, ref(x, arg, **extra))


def test_tiled_equals_untiled_along_a_middle_axis_of_a_stack():
    x = noisy_image((2, 300, 460), seed=4)
    one = nd.gaussian(x, 1.5, spatial_axes=(1, 2), workers=1)
    three = nd.gaussian(x, 1.5, spatial_axes=(1, 2), workers=3)
    np.testing.assert_array_equal(one, three)


def test_progress_reports_every_tile():
    x = noisy_image((420, 650))
    calls = []
    nd.gaussian(x, 2.0, workers=2, progress=lambda done, total: calls.append((done, total)))
    totals = {t for _, t in calls}
    assert len(totals) == 1
    total = totals.pop()
    assert total > 1
    assert calls[-1] == (total, total)
    dones = [d for d, _ in calls]
    assert dones == sorted(dones)


@pytest.mark.parametrize("workers", [1, 2])
def test_cancel_raises_cancelled(workers):
    x = noisy_image((420, 650))
    with pytest.raises(nd.Cancelled, match="gaussian"):
        nd.gaussian(x, 2.0, workers=workers, cancel=lambda: True)


def test_cancel_false_completes():
    x = noisy_image((30, 40))
    out = nd.median(x, 3, cancel=lambda: False, progress=lambda d, t: None)
    np.testing.assert_array_equal(out, ndimage.median_filter(x, 3))


def test_scheduler_steps_yield_and_return():
    x = noisy_image((30, 40))
    gen = _scheduler.steps(nd.mean.op(x, 3), x, workers=1)
    steps = []
    try:
        while True:
            steps.append(next(gen))
    except StopIteration as stop:
        result = stop.value
    assert steps[-1][0] == steps[-1][1]
    assert_float32_close(result, ndimage.uniform_filter(x, 3))
