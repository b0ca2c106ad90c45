"""The compiled pieces of the noise estimates: bit-identical to what they replace, and cancellable (#11)."""

from __future__ import annotations

import threading
import time
import warnings

import numpy as np
import pytest
import pywt

from napari_denoise._scheduler import Cancelled, CancelToken
from napari_denoise.filters import noise
from napari_denoise.kernels import block_statistics, finest_detail, level_sets, lines

from test_noise_model import blobs, camera

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
    monkeypatch.setattr(lines, "_MIN_VALUES_PER_THREAD", 1 << 10)
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


@pytest.mark.parametrize("values", [np.array([-7, 3], np.int16), np.array([5, 200, 3], np.uint8),
                                    np.array([-(2**62) - 1, 2**53 + 1], np.int64), np.array([True, False]),
                                    np.array([], np.uint16), np.full((4, 5), -3, np.int32)])
def test_largest_magnitude_of_integers_is_the_compiled_searchs(values):
    # integers take numpy's minimum and maximum; the compiled search reads each value as float64
    flat = np.ascontiguousarray(values).reshape(-1).astype(np.float64)
    largest, found = finest_detail._largest_finite_magnitude(flat, NEVER)
    assert finest_detail.largest_finite_magnitude(values, NEVER) == (largest if found else 0.0)


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
    # (4096² so that even the faster estimate runs well past the 20 ms before the cancel)
    image = np.random.default_rng(0).standard_normal((4096, 4096), dtype=np.float32)
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


# -- per-block statistics of the noise-model fit ---------------------------------------------

def _reference_clip_values(block):
    """The clipping test as it was written in numpy, on the float64 slice."""
    block = np.asarray(block, dtype=np.float64)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # (all-NaN slices)
        lowest, highest = np.nanmin(block), np.nanmax(block)
    clips = []
    for extreme, beyond in ((lowest, np.greater), (highest, np.less)):
        at = np.count_nonzero(block == extreme)
        if at < max(16, 1e-4 * block.size):
            clips.append(None)
            continue
        inside = beyond(block, extreme)
        if not inside.any():
            clips.append(None)
            continue
        following = block.min(where=inside, initial=np.inf) if beyond is np.greater else block.max(
            where=inside, initial=-np.inf
        )
        clips.append(float(extreme) if at > 10.0 * np.count_nonzero(block == following) else None)
    return clips[0], clips[1]


def _reference_block_statistics(block):
    """The block statistics as they were computed in numpy (the numpy slab statistics on the
    float64 slice, the clip values above)."""
    block = np.asarray(block, dtype=np.float64)
    if block.ndim == 0 or min(block.shape) < 6 or not np.isfinite(block).any():
        return None
    low, high = _reference_clip_values(block)
    with np.errstate(invalid="ignore"):  # (inf - inf in the Haar detail)
        parts = [noise._numpy_slab_statistics(slab, low, high, NEVER) for slab in noise._slabs(block)
                 if min(slab.shape) >= 6]
    if not parts:
        return None
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]} | {"ndim": block.ndim}


def _clip_values_of(block):
    found = block_statistics.extremes(block, NEVER, noise._fewest_piled_up(np.asarray(block).size))
    return noise._clip_values(found, np.asarray(block).size)


def _assert_same_statistics(got, expected):
    if expected is None:
        assert got is None
        return
    assert got["ndim"] == expected["ndim"]
    assert np.array_equal(got["clipped"], expected["clipped"])
    # the levels, spreads and means bit for bit (ties between levels decide the fit's bins);
    # the detail is a BLAS matrix product in numpy, summed in an order of its own
    for key in ("level", "spread", "mean"):
        assert np.array_equal(got[key], expected[key]), key
    scale = np.abs(expected["detail_sq"]).max(initial=0.0)
    np.testing.assert_allclose(got["detail_sq"], expected["detail_sq"], rtol=1e-12, atol=1e-12 * scale)


def _saturated_uint8(rng, shape):
    return np.clip(rng.normal(128, 150, shape), 0, 255).astype(np.uint8)  # many 0 and 255


def _with_nan(rng, shape):
    x = rng.standard_normal(shape) * 50 + 200
    x[rng.random(shape) < 0.01] = np.nan
    return x


def _gradient_with_steps(rng, shape):
    grids = np.meshgrid(*[np.linspace(0, 1, n) for n in shape], indexing="ij")
    clean = 1000 * sum(grids) + 300 * (grids[-1] > 0.5)
    return (clean + rng.normal(0, 5, shape)).astype(np.float32)


def _with_infinities(rng, shape):
    x = rng.standard_normal(shape)
    flat = x.reshape(-1)
    flat[:: max(1, flat.size // 7)] = np.inf
    flat[3] = -np.inf
    return x


BLOCK_SHAPES = [(6,), (7,), (13,), (100,), (6, 6), (7, 13), (64, 65), (9, 200), (6, 7, 8), (13, 9, 11),
                (20, 31, 40), (5, 9), (3, 50), (9, 5, 12)]  # the last three too small


@pytest.mark.parametrize("shape", BLOCK_SHAPES)
@pytest.mark.parametrize(
    "make",
    [
        lambda rng, shape: rng.standard_normal(shape) * np.exp(rng.standard_normal(shape)),
        lambda rng, shape: rng.poisson(40, shape).astype(np.uint16),
        _saturated_uint8,
        _with_nan,
        _gradient_with_steps,
        _with_infinities,
        lambda rng, shape: (rng.standard_normal(shape) * 1000).astype(np.int16),
    ],
    ids=["float64", "poisson-uint16", "saturated-uint8", "nan", "gradient-float32", "inf", "int16"],
)
def test_compiled_block_statistics_equal_numpys(shape, make):
    x = make(np.random.default_rng(sum(shape) + len(shape)), shape)
    _assert_same_statistics(noise._block_statistics(x, NEVER), _reference_block_statistics(x))


@pytest.mark.parametrize(
    "x",
    [
        np.full((12, 14), np.nan),
        np.full((12, 14), 7, np.uint16),
        np.where(np.arange(12 * 14).reshape(12, 14) % 5, np.inf, np.nan),
        np.arange(8 * 8 * 8, dtype=np.float64).reshape(8, 8, 8)[::-1, :, ::2],  # strided
        np.random.default_rng(1).random((16, 18)) > 0.5,  # bool
        np.random.default_rng(2).poisson(3, (4, 6, 8, 10)).astype(np.float32),  # 4-D: the numpy path
    ],
    ids=["all-nan", "constant", "no-finite", "strided", "bool", "4d"],
)
def test_block_statistics_of_edge_cases_equal_numpys(x):
    _assert_same_statistics(noise._block_statistics(x, NEVER), _reference_block_statistics(x))


def test_block_statistics_of_slabs_equal_numpys(monkeypatch):
    monkeypatch.setattr(noise, "_MAX_FIT_VOXELS", 3 * 16 * 30 * 30)  # 3 slabs of 16 planes
    x = np.random.default_rng(3).poisson(20, (80, 30, 30)).astype(np.uint16)
    assert len(noise._slabs(x)) == 3
    _assert_same_statistics(noise._block_statistics(x, NEVER), _reference_block_statistics(x))


@pytest.mark.parametrize(
    "x",
    [
        _saturated_uint8(np.random.default_rng(4), (100, 100)),
        np.clip(np.random.default_rng(5).poisson(30, (50, 60)), 0, 35).astype(np.uint16),  # piled up at the top only
        np.random.default_rng(6).poisson(30, (50, 60)).astype(np.float32),  # nothing piled up
        np.concatenate([np.zeros(15), np.ones(100)]),  # one voxel short of a pile-up
        np.concatenate([np.zeros(16), np.ones(1)]),
        np.concatenate([np.zeros(40), np.full(4, 1.0), np.full(3, 2.0), np.full(40, 2.5)]),  # more than 10×
        np.concatenate([np.zeros(40), np.full(4, 1.0), np.full(50, 2.0)]),  # exactly 10×: not a pile-up
        np.full(50, 3.0),  # nothing inside
        np.full(50, np.nan),
        np.concatenate([np.full(20, -np.inf), [np.nan, 1.0], np.full(20, np.inf), [2.0, 2.0]]),
        np.concatenate([np.full(30, 2**60), [2**60 + 1, 2**60 + 512, 5]]).astype(np.int64),  # rounded alike
        np.concatenate([np.full(30, 2**63 + 2**12), [2**62, 7]]).astype(np.uint64),
    ],
)
def test_clip_values_equal_the_numpy_implementation(x):
    assert _clip_values_of(x) == _reference_clip_values(x)


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.float32, np.float64])
def test_extremes_are_numpys(dtype):
    rng = np.random.default_rng(7)
    x = np.clip(rng.normal(100, 60, (40, 50)), 0, 200).astype(dtype)
    if x.dtype.kind == "f":
        x[::7, ::3] = np.nan
    found = block_statistics.extremes(x, NEVER)  # the nearest values inside always looked for
    finite = x[~np.isnan(x)].astype(np.float64)
    lowest, highest = finite.min(), finite.max()
    above, below = finite[finite > lowest].min(), finite[finite < highest].max()
    assert found == (lowest, np.count_nonzero(finite == lowest), above, np.count_nonzero(finite == above),
                     highest, np.count_nonzero(finite == highest), below, np.count_nonzero(finite == below), True)
    # not looked for below ``fewest``
    assert block_statistics.extremes(x, NEVER, fewest=x.size + 1)[2:4] == (np.inf, 0)


def test_block_statistics_stop_once_the_flag_is_set():
    flag = np.ones(1, np.uint8)
    x = np.random.default_rng(8).poisson(20, (10, 40, 40)).astype(np.uint16)
    assert block_statistics.extremes(x, flag) is None
    for slab in (x, x[0], x[0, 0]):
        assert block_statistics.slab_statistics(slab, 0.0, None, flag) is None
    with pytest.raises(Cancelled):
        noise._block_statistics(x, flag)


def test_every_block_statistics_pass_returns_early_once_the_flag_is_set():
    flag = np.ones(1, np.uint8)
    values = np.random.default_rng(9).random((6, 6, 8))
    blocks = [np.empty((3, 3, 4)) for _ in range(3)]
    flags = np.zeros((3, 3, 4), np.uint8)
    assert block_statistics._count_equal(values.reshape(-1), 0.0, 1.0, flag) == (-1, -1)
    assert not block_statistics._nearest_inside(values.reshape(-1), 0.0, 1.0, flag)[2]
    assert not block_statistics._haar_blocks(values, 3, np.nan, np.nan, *blocks, flags, flag)
    assert not block_statistics._uniform_across(values, values, values.copy(), values.copy(), flag)
    assert not block_statistics._or_of_neighbours(flags.reshape(-1), flags.reshape(-1).copy(), 1, flag)
    outputs = [np.empty(2) for _ in range(4)] + [np.empty(2, bool)]
    assert block_statistics._usable_statistics(*blocks, blocks[0], flags, 3, *outputs, flag) == -1


@pytest.mark.parametrize(
    "make",
    [
        lambda: camera(blobs((256, 256), peak=300), 2.5, 100.0, 6.0),
        lambda: camera(blobs((20, 64, 64), peak=200, seed=4), 2.0, 100.0, 5.0, seed=5),
        lambda: np.minimum(camera(blobs((256, 256), peak=400, seed=14), 2.0, 20.0, 6.0, seed=15), 700),
        lambda: (np.random.default_rng(2).poisson(blobs((256, 256), peak=300, seed=3)) / 300).astype(np.float32),
        lambda: np.random.default_rng(0).poisson(50 + 200 * blobs((512, 512), peak=1, seed=1)).astype(np.float64),
        lambda: np.round(1000 + 20 * blobs((20, 80, 80), peak=100, seed=7)
                         + np.random.default_rng(6).normal(0, 8, (20, 80, 80))).astype(np.uint16),
    ],
)
def test_noise_model_is_unchanged(make):
    x = make()
    expected = noise._fit(_reference_block_statistics(x), NEVER)
    got = noise.noise_model_of_slice(x)
    assert got.kind == expected.kind
    for name in ("gain", "offset", "read_sigma"):
        assert getattr(got, name) == pytest.approx(getattr(expected, name), rel=1e-9, abs=1e-300)


@pytest.mark.parametrize("size", [1, 2, 3, 48, 49, 50, 1000, 26908])
@pytest.mark.parametrize("kind", ["float", "ties", "nan", "inf", "constant"])
def test_quantiles_of_sorted_values_are_numpys(size, kind):
    rng = np.random.default_rng(size)
    values = rng.standard_normal(size) * 10.0 ** rng.uniform(-5, 5)
    if kind == "ties":
        values = np.round(values / values.std() * 3) if size > 1 else values
    elif kind == "nan":
        values[rng.random(size) < 0.3] = np.nan
    elif kind == "inf":
        values[: size // 3] = np.inf
    elif kind == "constant":
        values[:] = 7.25
    values.sort()
    with np.errstate(invalid="ignore"):  # (inf - inf)
        expected = np.quantile(values, noise._FIT_QUANTILES)
        got = noise._sorted_quantiles(values, noise._FIT_QUANTILES)
    # equal (numpy's partition may put -0.0 where the sort put 0.0: the same edge)
    np.testing.assert_array_equal(got, expected)
