"""The compiled lookup of the exact unbiased inverse (kernels/exact_inverse.py) against NumPy."""

import numpy as np
import pytest

from napari_denoise.filters import stabilise
from napari_denoise.kernels.exact_inverse import ExactInverseTable, closed_form_photons, exact_photons


def _numpy_closed_form(values, normalised_sigma):
    """Mäkitalo & Foi's closed-form approximation as a NumPy expression (as the plugin had it)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        d = np.maximum(values, 1e-6)
        root = np.sqrt(1.5)
        photons = 0.25 * d * d + 0.25 * root / d - 1.375 / (d * d) + 0.625 * root / (d * d * d) - 0.125 \
            - normalised_sigma**2
    return np.maximum(np.where(np.isnan(values), np.nan, photons), 0.0)


def _numpy_reference(values, normalised_sigma):
    """The inverse as it was written with NumPy: interp on the table, closed form beyond, NaN kept."""
    expectation, photons = stabilise._exact_table(round(float(normalised_sigma), 6))
    out = np.interp(values, expectation, photons, left=0.0)
    beyond = values > expectation[-1]
    if np.any(beyond):
        out[beyond] = _numpy_closed_form(values[beyond], normalised_sigma)
    return np.where(np.isnan(values), np.nan, out)


@pytest.mark.parametrize("normalised_sigma", [0.0, 0.59, 2.5])
def test_lookup_is_numpys_interp_bit_for_bit(normalised_sigma):
    expectation, _ = stabilise._exact_table(round(normalised_sigma, 6))
    rng = np.random.default_rng(int(normalised_sigma * 10))
    values = np.concatenate([
        rng.uniform(-2, 1.3 * expectation[-1], 200_000),
        expectation, np.nextafter(expectation, -np.inf), np.nextafter(expectation, np.inf),  # on and beside the knots
        expectation[:-1] + np.diff(expectation) * rng.uniform(0, 1, expectation.size - 1),
        [np.nan, -np.inf, np.inf, 0.0, -0.0, 1e300, 1e-300],
    ]).reshape(-1, 2)  # any shape
    got = stabilise._exact_photons(values, normalised_sigma)
    expected = _numpy_reference(values, normalised_sigma)
    assert got.shape == values.shape and got.dtype == np.float64
    same = (got.view(np.uint64) == expected.view(np.uint64)) | (np.isnan(got) & np.isnan(expected))
    assert same.all(), values[~same][:5]


def test_table_must_increase_strictly():
    with pytest.raises(ValueError, match="strictly increasing"):
        ExactInverseTable(np.array([0.0, 1.0, 1.0, 2.0]), np.arange(4.0))
    table = ExactInverseTable(np.array([0.0, 1.0, 3.0]), np.array([0.0, 10.0, 20.0]))
    np.testing.assert_array_equal(exact_photons(np.array([-1.0, 0.5, 2.0, 3.0]), table, 0.0),
                                  np.interp([-1.0, 0.5, 2.0, 3.0], [0.0, 1.0, 3.0], [0.0, 10.0, 20.0], left=0.0))


@pytest.mark.parametrize("normalised_sigma", [0.0, 0.59, 7.3])
def test_closed_form_is_the_numpy_expression_bit_for_bit(normalised_sigma):
    # the 'closed-form' inverse everywhere, below 1e-6 (clamped), negative and non-finite values included
    rng = np.random.default_rng(3)
    values = np.concatenate([
        rng.uniform(-5, 60, 100_000), rng.uniform(0, 1e-5, 10_000), 10 ** rng.uniform(-12, 12, 10_000),
        [np.nan, -np.inf, np.inf, 0.0, -0.0, 1e-6, 1e300, -1e300],
    ])
    got = closed_form_photons(values, normalised_sigma)
    expected = _numpy_closed_form(values, normalised_sigma)
    same = (got.view(np.uint64) == expected.view(np.uint64)) | (np.isnan(got) & np.isnan(expected))
    assert same.all(), values[~same][:5]
