"""The compiled filter bank against PyWavelets' own float32 transforms."""

import itertools
import warnings

import numpy as np
import pytest
import pywt

from napari_denoise.kernels import filter_bank, lines
from napari_denoise.kernels import wavelet as wavelet_kernels
from napari_denoise.kernels.threads import Team

NOT_CANCELLED = np.zeros(1, np.uint8)
# (dmey, 62 taps, is left out: 4 levels of a 4-D array grow it to ~60 values per axis, 2 min in pywt)
WAVELETS = ["db2", "sym4", "coif1", "coif3", "bior2.2", "rbio3.1", "db8"]
SHAPES = [(301,), (7,), (48, 52), (47, 33), (3, 5), (10, 32, 30), (7, 9, 11), (2, 3, 4, 5), (64, 1)]


@pytest.mark.filterwarnings("ignore:Level value")
@pytest.mark.parametrize("name", WAVELETS)
def test_transforms_are_pywavelets_bit_for_bit(name):
    rng = np.random.default_rng(0)
    for shape, levels, threads in itertools.product(SHAPES, (1, 2, 4), (1, 3)):
        x = (rng.normal(size=shape) * 100).astype(np.float32)
        expected = pywt.wavedecn(x, name, level=levels)
        with Team(threads) as team:
            ours = filter_bank.wavedecn(x, name, levels, team, NOT_CANCELLED)
            np.testing.assert_array_equal(ours[0], expected[0])
            assert ours[0].dtype == np.float32
            for mine, theirs in zip(ours[1:], expected[1:], strict=True):
                assert mine.keys() == theirs.keys()
                for key in theirs:
                    np.testing.assert_array_equal(mine[key], theirs[key])
            back = filter_bank.waverecn(expected, name, shape, team, NOT_CANCELLED)
        np.testing.assert_array_equal(back, pywt.waverecn(expected, name)[tuple(slice(n) for n in shape)])


@pytest.mark.parametrize("shape", [(6, 40, 50), (70, 3), (2, 90), (3, 200)])
@pytest.mark.parametrize("threads", [2, 3])
def test_threads_share_the_passes_without_changing_a_bit(shape, threads, monkeypatch):
    # pieces of 16 values, so that every pass is shared: by lines, or along them where
    # lines are fewer than threads (the shapes above are otherwise far too small to share)
    monkeypatch.setattr(lines, "_MIN_VALUES_PER_THREAD", 16)
    shared = []
    real_pieces = lines.line_pieces
    monkeypatch.setattr(lines, "line_pieces", lambda *a: shared.append(len(real_pieces(*a))) or real_pieces(*a))
    x = (np.random.default_rng(1).normal(size=shape) * 100).astype(np.float32)
    expected = pywt.wavedecn(x, "sym4", level=2)
    with Team(threads) as team:
        ours = filter_bank.wavedecn(x, "sym4", 2, team, NOT_CANCELLED)
        back = filter_bank.waverecn(expected, "sym4", shape, team, NOT_CANCELLED)
    np.testing.assert_array_equal(ours[0], expected[0])
    for mine, theirs in zip(ours[1:], expected[1:], strict=True):
        for key in theirs:
            np.testing.assert_array_equal(mine[key], theirs[key])
    np.testing.assert_array_equal(back, pywt.waverecn(expected, "sym4")[tuple(slice(n) for n in shape)])
    assert max(shared) == threads


def test_float32_taps_are_pywavelets_own():
    # coif1's float32 taps are not its float64 filter bank rounded
    dec_lo, dec_hi, rec_lo, rec_hi = filter_bank.filters_of("coif1")
    assert not np.array_equal(dec_hi, np.float32(pywt.Wavelet("coif1").dec_hi))
    impulse = np.zeros(16, np.float32)
    impulse[9] = 1
    _, detail = pywt.dwt(impulse, "coif1")
    assert set(detail[detail != 0]) <= set(dec_hi)


def test_levels_above_the_maximum_warn_as_pywavelets_does():
    x = np.ones((20, 20), np.float32)
    with Team(1) as team, pytest.warns(UserWarning, match="boundary effects"):
        filter_bank.wavedecn(x, "db2", 5, team, NOT_CANCELLED)
    with Team(1) as team, warnings.catch_warnings():
        warnings.simplefilter("error")
        filter_bank.wavedecn(x, "db2", 1, team, NOT_CANCELLED)


def test_a_set_flag_stops_both_transforms():
    x = np.ones((40, 40), np.float32)
    flag = np.ones(1, np.uint8)
    with Team(2) as team:
        assert filter_bank.wavedecn(x, "db2", 2, team, flag) is None
        coeffs = filter_bank.wavedecn(x, "db2", 2, team, NOT_CANCELLED)
        assert filter_bank.waverecn(coeffs, "db2", x.shape, team, flag) is None


@pytest.mark.filterwarnings("ignore:Level value")
@pytest.mark.parametrize("name", ["sym4", "bior2.2"])
def test_denoising_other_wavelets_equals_the_pywavelets_path(name):
    # the shrinkage between the transforms, as before the filter bank, on every thread count
    rng = np.random.default_rng(3)
    for shape in [(301,), (47, 33), (10, 32, 30), (3, 4, 5, 6)]:
        x = (rng.normal(size=shape) * 20 + 100).astype(np.float32)
        for method, mode, levels in itertools.product(["BayesShrink", "VisuShrink"], ["soft", "hard"], [None, 3]):
            n_levels = wavelet_kernels.default_levels(shape, name) if levels is None else levels
            coeffs = pywt.wavedecn(x, name, level=n_levels)
            for detail in coeffs[1:]:
                for band in detail.values():
                    flat = band.reshape(-1)
                    mean_square = wavelet_kernels._sum_squares(flat) / flat.size
                    threshold = wavelet_kernels._band_threshold(mean_square, method == "VisuShrink", 9.0, x.size)
                    wavelet_kernels._shrink(flat, threshold, mode == "soft")
            expected = pywt.waverecn(coeffs, name)[tuple(slice(n) for n in shape)]
            for threads in (1, 2):
                out = wavelet_kernels.denoise_wavelet(x, 9.0, wavelet_name=name, threshold_mode=mode, method=method,
                                                      wavelet_levels=levels, threads=threads)
                np.testing.assert_array_equal(out, expected)
