"""The compiled pieces of calibration against their numpy definitions."""

import itertools

import numpy as np
import pytest

from napari_denoise.kernels.sure import sure_terms
from napari_denoise.kernels.window_spread import window_spreads


@pytest.mark.parametrize("slope_kind", ["diagonal", "float32", "bool", "kept"])
def test_sure_terms_equal_the_numpy_expression(slope_kind):
    rng = np.random.default_rng(0)
    shape = (7, 11, 13)
    noisy = rng.normal(100, 10, shape)
    value = (noisy + rng.normal(0, 3, shape)).astype(np.float32)
    noisy.flat[::5] = value.flat[::5]  # voxels a rank filter kept: the same value in both
    variance = rng.uniform(50, 150, shape)
    slope = {"diagonal": rng.uniform(0, 1, shape), "float32": rng.uniform(0, 1, shape).astype(np.float32),
             "bool": rng.random(shape) < 0.5, "kept": None}[slope_kind]
    residual = value.astype(np.float64) - noisy
    expected_slope = (residual == 0.0) if slope is None else np.asarray(slope, np.float64)
    expected = residual * residual + 2.0 * variance * expected_slope
    total, terms = sure_terms(value, noisy, variance, slope, per_voxel=True)
    np.testing.assert_allclose(terms, expected, rtol=1e-15)
    assert terms.shape == shape
    assert total == pytest.approx(expected.sum(), rel=1e-12)
    assert sure_terms(value, noisy, variance, slope)[1] is None


def test_sure_terms_reject_mismatched_sizes():
    with pytest.raises(ValueError, match="same size"):
        sure_terms(np.zeros(3), np.zeros(4), np.zeros(4))
    with pytest.raises(ValueError, match="slope"):
        sure_terms(np.zeros(3), np.zeros(3), np.zeros(3), np.zeros(2))


def _numpy_spreads(piece, starts, shape):
    return [float(np.nanstd(np.asarray(piece[tuple(slice(a, a + s, 2) for a, s in zip(start, shape))], np.float64)))
            if all(s > 0 for s in shape) else 0.0 for start in starts]


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("shape, window", [((50,), (17,)), ((40, 37), (11, 20)), ((12, 30, 31), (5, 9, 12))])
def test_window_spreads_equal_numpy_std_of_every_second_voxel(dtype, shape, window):
    rng = np.random.default_rng(1)
    piece = (rng.random(shape) * 200 + 20).astype(dtype)
    starts = list(itertools.product(*[range(0, n - w + 1, max(1, (n - w) // 3)) for n, w in zip(shape, window)]))
    np.testing.assert_allclose(window_spreads(piece, starts, window), _numpy_spreads(piece, starts, window),
                               rtol=1e-9)


def test_window_spreads_ignore_nan_and_keep_a_large_level_apart_from_a_small_spread():
    piece = np.full((20, 20), np.nan)
    piece[10:, 10:] = 1e8 + np.arange(100).reshape(10, 10) * 1e-3  # level 1e8, spread ~3e-3
    starts = [(0, 0), (10, 10), (5, 5)]
    spreads = window_spreads(piece, starts, (10, 10))
    assert np.isnan(spreads[0])  # only NaN: never the largest
    with np.errstate(invalid="ignore"):
        expected = _numpy_spreads(piece, starts[1:], (10, 10))
    np.testing.assert_allclose(spreads[1:], expected, rtol=1e-6)


@pytest.mark.parametrize("shape", [(13,), (6, 9), (4, 5, 7)])
def test_sure_terms_of_a_separable_slope_equal_those_of_its_product(shape):
    from napari_denoise._filter_op import SeparableDiagonal

    rng = np.random.default_rng(2)
    noisy = rng.normal(10, 1, shape)
    value = (noisy + rng.normal(0, 0.5, shape)).astype(np.float32)
    variance = rng.uniform(0.5, 1.5, shape)
    diagonal = SeparableDiagonal([rng.uniform(0.1, 0.5, n) for n in shape])
    product = np.asarray(diagonal)
    assert product.shape == shape
    whole, whole_terms = sure_terms(value, noisy, variance, product, per_voxel=True)
    split, split_terms = sure_terms(value, noisy, variance, slope_factors=diagonal.factors, per_voxel=True)
    np.testing.assert_allclose(split_terms, whole_terms, rtol=1e-14)
    assert split == pytest.approx(whole, rel=1e-13)
    with pytest.raises(ValueError, match="slope_factors"):
        sure_terms(value, noisy, variance, slope_factors=diagonal.factors[:-1])
