"""The compiled pieces of the noise estimates: bit-identical to what they replace, and cancellable (#11)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import pywt

from napari_denoise._scheduler import Cancelled, CancelToken
from napari_denoise.filters import noise
from napari_denoise.kernels import finest_detail, level_sets

DB2_HIGH_PASS = np.asarray(pywt.Wavelet("db2").dec_hi)
NEVER = np.zeros(1, np.uint8)

# Every length below the filter's 4 taps (PyWavelets reflects repeatedly
# there), odd and even lengths, 1-D to 4-D.
SHAPES = [(n,) for n in range(1, 12)] + [(a, b) for a in (1, 2, 3, 4, 7) for b in (1, 2, 3, 5, 8)] + [
    (3, 5, 7), (2, 9, 4), (5, 4, 3, 2), (17, 33), (31, 40, 9),
]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint16, np.int16, np.uint8, bool])
def test_finest_detail_is_pywt_dwtn_bit_for_bit(shape, dtype):
    rng = np.random.default_rng(len(shape) * 100 + sum(shape))
    if dtype is bool:
        x = rng.random(shape) > 0.5
    else:
        x = (rng.standard_normal(shape) * 300 * np.exp(rng.standard_normal(shape)) + 10).astype(dtype)
    expected = pywt.dwtn(np.asarray(x, dtype=np.float64), "db2")["d" * x.ndim]
    got = finest_detail.finest_detail(x, DB2_HIGH_PASS, NEVER)
    assert got.shape == expected.shape
    assert np.array_equal(got.view(np.uint64), expected.view(np.uint64))


@pytest.mark.parametrize("shape", [(2, 300, 260), (300, 3, 250), (70000,), (600, 230)])
@pytest.mark.parametrize("threads", [2, 3])
def test_threads_share_the_passes_without_changing_a_bit(shape, threads, monkeypatch):
    # small pieces, so that each pass is shared: by lines, or along them where lines are fewer than threads
    monkeypatch.setattr(finest_detail, "_MIN_VALUES_PER_THREAD", 1 << 10)
    rng = np.random.default_rng(sum(shape))
    x = np.clip(rng.standard_normal(shape) * 300 + 1000, 0, 30000).astype(np.uint16)
    x.flat[5] = 40000
    expected = pywt.dwtn(np.asarray(x, dtype=np.float64), "db2")["d" * x.ndim]
    got = finest_detail.finest_detail(x, DB2_HIGH_PASS, NEVER, threads)
    assert np.array_equal(got.view(np.uint64), expected.view(np.uint64))
    assert finest_detail.largest_finite_magnitude(x, NEVER, threads) == 40000.0
    assert finest_detail.finest_detail(x, DB2_HIGH_PASS, np.ones(1, np.uint8), threads) is None


@pytest.mark.parametrize("size", [1, 2, 7, 1000, 1001])
def test_median_in_place_is_numpys(size):
    values = np.random.default_rng(size).standard_normal(size)
    values[: size // 3] = values[0]  # ties
    assert noise._median_in_place(values.copy()) == np.median(values)


def test_finest_detail_of_strided_input_with_nan_and_inf():
    x = np.random.default_rng(0).standard_normal((40, 50)).astype(np.float32)[::2, ::-3]
    x[3, 4], x[5, 6] = np.nan, np.inf
    expected = pywt.dwtn(np.asarray(x, np.float64), "db2")["dd"]
    np.testing.assert_array_equal(finest_detail.finest_detail(x, DB2_HIGH_PASS, NEVER), expected)


def test_finest_detail_stops_once_the_flag_is_set():
    flag = np.ones(1, np.uint8)
    assert finest_detail.finest_detail(np.ones((64, 64)), DB2_HIGH_PASS, flag) is None
    assert finest_detail.nonzero_magnitudes(np.ones(10), flag) is None
    assert finest_detail.largest_finite_magnitude(np.ones(10), flag) is None


def test_magnitudes_and_largest_magnitude_match_numpy():
    x = np.random.default_rng(1).standard_normal(1000)
    x[::7] = 0.0
    x[3], x[9], x[11] = np.nan, np.inf, -np.inf
    expected = np.abs(x[np.nonzero(x)])
    expected = expected[np.isfinite(expected)]
    np.testing.assert_array_equal(finest_detail.nonzero_magnitudes(x, NEVER), expected)
    finite = np.abs(x[np.isfinite(x)])
    assert finest_detail.largest_finite_magnitude(x, NEVER) == finite.max()
    assert finest_detail.largest_finite_magnitude(np.array([np.nan, np.inf]), NEVER) == 0.0
    assert finest_detail.largest_finite_magnitude(np.array([-7, 3], np.int16), NEVER) == 7.0


def _reference_noise_of_slice(block):
    """The estimate as it was written before the compiled pieces (pywt.dwtn on float64)."""
    block = np.asarray(block, dtype=np.float64)
    if block.size == 0:
        return 0.0
    detail = pywt.dwtn(block, wavelet="db2")["d" * block.ndim]
    detail = np.abs(detail[np.nonzero(detail)])
    detail = detail[np.isfinite(detail)]
    if detail.size == 0:
        return 0.0
    sigma = float(np.median(detail) / 0.6744897501960817)
    finite = np.abs(block[np.isfinite(block)])
    rounding = 2.0**block.ndim * 16 * np.finfo(np.float64).eps * (float(finite.max()) if finite.size else 0.0)
    return 0.0 if sigma <= rounding else sigma


@pytest.mark.parametrize(
    "make",
    [
        lambda rng: rng.standard_normal((300, 301)).astype(np.float32) * 30 + 1000,
        lambda rng: rng.poisson(50, (20, 41, 38)).astype(np.uint16),
        lambda rng: np.full((64, 64), 7.0, np.float32),
        lambda rng: np.repeat(np.arange(8.0), 16)[:, None] * np.ones((1, 40)),
        lambda rng: rng.standard_normal(1001),
        lambda rng: np.where(rng.random((50, 60)) < 0.1, np.nan, rng.standard_normal((50, 60))),
    ],
)
def test_noise_of_slice_is_unchanged_bit_for_bit(make):
    x = make(np.random.default_rng(5))
    assert noise.noise_of_slice(x) == _reference_noise_of_slice(x)


@pytest.mark.parametrize("shape", [(37, 41), (9, 20, 22)])
def test_haar_blocks_in_bands_equal_the_whole(shape, monkeypatch):
    x = np.random.default_rng(2).standard_normal(shape) * np.exp(np.random.default_rng(3).standard_normal(shape))
    whole = noise._haar_band(x)
    monkeypatch.setattr(noise, "_HAAR_BAND_VOXELS", 2 * int(np.prod(shape[1:])) * 3)  # bands of 6 rows
    banded = noise._haar_blocks(x, NEVER)
    for a, b in zip(whole, banded):
        assert np.array_equal(a, b)


def test_level_set_sums_equal_searchsorted_and_bincount():
    rng = np.random.default_rng(4)
    n, bins = 5000, 12
    level = rng.standard_normal(n)
    level[::50] = np.round(level[::50], 1)  # ties with the edges
    mean, detail_sq = rng.standard_normal(n), rng.random(n)
    clipped, mask = rng.random(n) < 0.1, rng.random(n) < 0.7
    edges = np.quantile(level[mask], np.linspace(0, 1, bins + 1))
    index = np.clip(np.searchsorted(edges, level[mask], side="right") - 1, 0, bins - 1)
    count, mean_sum, detail_sum, clipped_sum = level_sets.level_set_sums(
        level, mean, detail_sq, clipped, mask, edges, bins, NEVER
    )
    np.testing.assert_array_equal(count, np.bincount(index, minlength=bins))
    assert np.array_equal(mean_sum, np.bincount(index, mean[mask], bins))
    assert np.array_equal(detail_sum, np.bincount(index, detail_sq[mask], bins))
    assert np.array_equal(clipped_sum, np.bincount(index, clipped[mask], bins))
    assert level_sets.level_set_sums(level, mean, detail_sq, clipped, mask, edges, bins, np.ones(1, np.uint8)) is None


@pytest.mark.parametrize("estimate", [noise.noise_of_slice, noise.noise_model_of_slice])
def test_a_cancelled_token_stops_the_estimate(estimate):
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        estimate(np.random.default_rng(0).standard_normal((64, 64)), token)


@pytest.mark.parametrize("estimate", [noise.noise_of_slice, noise.noise_model_of_slice])
def test_the_estimate_of_a_large_slice_stops_soon_after_cancel(estimate):
    image = np.random.default_rng(0).standard_normal((2048, 2048), dtype=np.float32)
    estimate(image[:64, :64])  # compiled code loaded
    token = CancelToken()
    outcome = {}

    def target():
        try:
            outcome["value"] = estimate(image, token)
        except Cancelled:
            outcome["cancelled"] = time.perf_counter()

    thread = threading.Thread(target=target)
    thread.start()
    time.sleep(0.02)
    cancelled_at = time.perf_counter()
    token.cancel()
    thread.join(30)
    if "value" in outcome:
        pytest.skip("the estimate finished within 20 ms")
    assert outcome["cancelled"] - cancelled_at < 1.0
