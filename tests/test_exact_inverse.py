"""The compiled lookup of the exact unbiased inverse (kernels/exact_inverse.py) against NumPy."""

import numpy as np
import pytest

from napari_denoise.filters import stabilise
from napari_denoise.kernels.exact_inverse import ExactInverseTable, exact_photons


def _numpy_reference(values, normalised_sigma):
    """The inverse as it was written with NumPy: interp on the table, closed form beyond, NaN kept."""
    expectation, photons = stabilise._exact_table(round(float(normalised_sigma), 6))
    out = np.interp(values, expectation, photons, left=0.0)
    beyond = values > expectation[-1]
    if np.any(beyond):
        out[beyond] = stabilise._closed_form_photons(values[beyond], normalised_sigma)
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
