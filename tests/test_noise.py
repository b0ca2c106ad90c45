"""estimate_noise against skimage.restoration.estimate_sigma."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import restoration

import napari_denoise as nd

from _numeric_helpers import noisy_image


@pytest.mark.parametrize("shape", [(64, 70), (12, 30, 34), (200,)])
@pytest.mark.parametrize("noise", [0.5, 10.0])
def test_equals_estimate_sigma_on_float(shape, noise):
    x = noisy_image(shape, seed=3, noise=noise)
    got = nd.estimate_noise(x)
    expected = restoration.estimate_sigma(x.astype(np.float64))
    assert isinstance(got, float)
    # float32 precision: the data are float32, so errors scale with their magnitude
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6 * np.abs(x).max())
    if len(shape) > 1:  # and it does estimate the noise (1-D: the signal leaks in)
        np.testing.assert_allclose(got, noise, rtol=0.25)


def test_in_image_units_whatever_the_dtype():
    x = np.clip(noisy_image((64, 64), seed=4), 0, 235).round()
    as_float = nd.estimate_noise(x.astype(np.float32))
    for dtype in (np.uint8, np.uint16, np.int16, np.int64, np.float64):
        assert nd.estimate_noise(x.astype(dtype)) == pytest.approx(as_float, rel=1e-6)
    # not rescaled to [0, 1] as skimage does for integer input
    assert as_float > 1


def test_scale_equivariant():
    x = noisy_image((50, 60), seed=5)
    assert nd.estimate_noise(3.5 * x) == pytest.approx(3.5 * nd.estimate_noise(x), rel=1e-5)


def test_stack_averages_independent_slices():
    a = noisy_image((40, 44), seed=6, noise=2.0)
    b = noisy_image((40, 44), seed=7, noise=20.0)
    stack = np.stack([a, b])
    expected = np.mean([restoration.estimate_sigma(a.astype(np.float64)),
                        restoration.estimate_sigma(b.astype(np.float64))])
    got = nd.estimate_noise(stack, spatial_axes=(1, 2))
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    # default for 3-D: one volume, as skimage
    np.testing.assert_allclose(nd.estimate_noise(stack), restoration.estimate_sigma(stack.astype(np.float64)), rtol=1e-5)
    # 4-D: last three axes per slice
    four = np.stack([stack, stack * 2])
    np.testing.assert_allclose(
        nd.estimate_noise(four),
        np.mean([restoration.estimate_sigma(stack.astype(np.float64)),
                 restoration.estimate_sigma(2 * stack.astype(np.float64))]),
        rtol=1e-5,
    )


def test_dask_input_matches_numpy():
    da = pytest.importorskip("dask.array")
    x = noisy_image((3, 40, 44), seed=8)
    d = da.from_array(x, chunks=(1, 13, 17))
    assert nd.estimate_noise(d, spatial_axes=(1, 2)) == pytest.approx(
        nd.estimate_noise(x, spatial_axes=(1, 2)), rel=1e-7)


def test_edge_cases():
    assert nd.estimate_noise(np.zeros((0, 5), np.float32)) == 0.0
    assert nd.estimate_noise(np.zeros((0, 4, 4, 4), np.float32)) == 0.0
    assert nd.estimate_noise(np.zeros((16, 16), np.uint8)) == 0.0
    assert nd.estimate_noise(np.full((16, 16), 7.0)) < 1e-6
    assert nd.estimate_noise(np.full((8, 8), np.nan, np.float32)) == 0.0
    x = noisy_image((40, 40), seed=9)
    clean = nd.estimate_noise(x)
    x[3, 3] = np.nan
    x[10, 10] = np.inf
    assert np.isfinite(nd.estimate_noise(x))
    assert nd.estimate_noise(x) == pytest.approx(clean, rel=0.05)
    assert nd.estimate_noise((x > 50)) >= 0.0  # bool works
