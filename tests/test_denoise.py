"""Edge-preserving denoisers against scikit-image, noise-derived defaults, stacks."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from skimage import restoration
from skimage.restoration import _denoise as sk_denoise

import napari_denoise as nd
from napari_denoise.kernels import nl_means as nl_means_kernels

from _numeric_helpers import assert_float32_close, call, noisy_image, nuclei_2d, tiles_of


def sk_sigma(x):
    return restoration.estimate_sigma(np.asarray(x, np.float64))


# -- non-local means -------------------------------------------------------------------
@pytest.mark.parametrize("fast_mode", [True, False])
def test_nlm_equals_skimage_with_given_parameters(fast_mode):
    x = noisy_image((40, 46), seed=1)
    before = x.copy()
    out = nd.non_local_means(x, h=7.0, sigma=9.0, patch_size=5, patch_distance=4, fast_mode=fast_mode)
    expected = restoration.denoise_nl_means(x, h=7.0, sigma=9.0, patch_size=5, patch_distance=4,
                                            fast_mode=fast_mode, preserve_range=True)
    assert out.dtype == np.float32
    assert_float32_close(out, expected)
    np.testing.assert_array_equal(x, before)


@pytest.mark.parametrize(("fast_mode", "factor"), [(True, 0.6), (False, 0.8625)])
def test_nlm_defaults_derive_from_the_noise_estimate(fast_mode, factor):
    # the defaults study's multiples for planes (benchmarks/defaults_study.py)
    x = noisy_image((36, 40), seed=2)
    s = sk_sigma(x)
    out = nd.non_local_means(x, patch_size=3, patch_distance=3, fast_mode=fast_mode)
    expected = restoration.denoise_nl_means(x, h=factor * s, sigma=s, patch_size=3, patch_distance=3,
                                            fast_mode=fast_mode, preserve_range=True)
    assert_float32_close(out, expected, rtol=1e-4, atol_rel=1e-4)


def test_nlm_3d_equals_skimage():
    x = noisy_image((8, 16, 18), seed=3)
    out = nd.non_local_means(x, h=6.0, sigma=8.0, patch_size=3, patch_distance=2)
    expected = restoration.denoise_nl_means(x, h=6.0, sigma=8.0, patch_size=3, patch_distance=2,
                                            preserve_range=True)
    assert_float32_close(out, expected)


def test_nlm_uint16_is_not_rescaled():
    x = np.clip(noisy_image((30, 32), seed=4), 0, 235).round()
    out = nd.non_local_means(x.astype(np.uint16), h=8.0, sigma=5.0, patch_size=3, patch_distance=3)
    expected = restoration.denoise_nl_means(x.astype(np.float32), h=8.0, sigma=5.0, patch_size=3,
                                            patch_distance=3, preserve_range=True)
    assert_float32_close(out, expected)


def test_nlm_tiled_equals_untiled():
    x = noisy_image((400, 560), seed=5)
    assert len(tiles_of(nd.non_local_means, x)) > 1
    one = nd.non_local_means(x, workers=1)
    two = nd.non_local_means(x, workers=2)
    # skimage's fast mode sums integral images: tiles may shift the rounding only
    assert_float32_close(two, one, rtol=1e-5, atol_rel=1e-6)
    s = sk_sigma(x)
    expected = restoration.denoise_nl_means(x, h=0.6 * s, sigma=s, patch_size=5, patch_distance=6,
                                            preserve_range=True)
    assert_float32_close(two, expected, rtol=1e-4, atol_rel=1e-4)


@pytest.mark.parametrize("fast_mode", [True, False])
@pytest.mark.parametrize(
    "shape, h, sigma, patch_size, patch_distance",
    [
        ((53, 71), 0.09, 0.06, 4, 5),  # even patch size: scikit-image uses 5
        ((53, 71), 0.3, 0.0, 7, 3),
        ((11, 23, 29), 0.12, 0.08, 3, 4),
        ((9, 17, 19), 0.2, 0.1, 6, 2),
    ],
)
def test_nlm_kernel_matches_skimage(shape, h, sigma, patch_size, patch_distance, fast_mode):
    # slow mode repeats scikit-image's float32 operations; fast mode replaces its
    # float64 integral images by float64 box sums (equal to ~1e-15)
    x = np.random.default_rng(11).random(shape).astype(np.float32)
    expected = restoration.denoise_nl_means(
        x, h=h, sigma=sigma, patch_size=patch_size, patch_distance=patch_distance,
        fast_mode=fast_mode, preserve_range=True, channel_axis=None,
    ).astype(np.float32)
    for threads in (1, 2, 3):
        out = nl_means_kernels.nl_means(x, h, sigma, patch_size, patch_distance, fast_mode=fast_mode,
                                        threads=threads)
        assert out.dtype == np.float32 and out.shape == x.shape
        if fast_mode:
            np.testing.assert_allclose(out, expected, rtol=2e-7, atol=0)
        else:
            np.testing.assert_array_equal(out, expected)
    # a tile with its halo gives the same values on its kept part
    reach = patch_distance + patch_size // 2 + 1
    start, stop = 3, shape[0] - 2
    block = x[max(0, start - reach) : stop + reach]
    keep = (slice(start - max(0, start - reach), stop - max(0, start - reach)),) + (slice(None),) * (x.ndim - 1)
    tile = nl_means_kernels.nl_means(block, h, sigma, patch_size, patch_distance, fast_mode=fast_mode, keep=keep)
    np.testing.assert_allclose(tile, expected[start:stop], rtol=2e-7, atol=0)
    via_api = nd.non_local_means(x, h=h, sigma=sigma, patch_size=patch_size,
                                 patch_distance=patch_distance, fast_mode=fast_mode, workers=1)
    np.testing.assert_allclose(via_api, expected, rtol=2e-7, atol=0)


def test_nlm_size_one_axis():
    x = noisy_image((3, 1, 12), seed=6)
    out = nd.non_local_means(x, patch_size=3, patch_distance=2)
    assert out.shape == x.shape and out.dtype == np.float32


# -- total variation -------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(40, 44), (8, 20, 22)])
def test_tv_equals_chambolle(shape):
    x = noisy_image(shape, seed=7)
    out = nd.total_variation(x, 6.0, eps=2e-4, max_num_iter=200)  # scikit-image's defaults
    assert_float32_close(out, restoration.denoise_tv_chambolle(x, weight=6.0))
    out = nd.total_variation(x, 3.0, eps=1e-3, max_num_iter=30)
    assert_float32_close(out, restoration.denoise_tv_chambolle(x, weight=3.0, eps=1e-3, max_num_iter=30))


def test_tv_default_weight_is_noise_estimate():
    x = noisy_image((40, 44), seed=8)
    out = nd.total_variation(x)
    # planes: weight 1 σ̂, run to the tolerance 1e-5 (at most 500 iterations)
    expected = restoration.denoise_tv_chambolle(x, weight=sk_sigma(x), eps=1e-5, max_num_iter=500)
    assert_float32_close(out, expected, rtol=1e-4, atol_rel=1e-4)


# -- wavelet ---------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["BayesShrink", "VisuShrink"])
@pytest.mark.parametrize("mode", ["soft", "hard"])
def test_wavelet_equals_skimage(method, mode):
    x = noisy_image((48, 52), seed=9)
    out = nd.wavelet(x, sigma=9.0, method=method, threshold_mode=mode, cycle_spin=False)
    expected = restoration.denoise_wavelet(x, sigma=9.0, method=method, mode=mode, rescale_sigma=True)
    assert_float32_close(out, expected)


@pytest.mark.parametrize("shape", [(48, 52), (10, 32, 30)])
def test_wavelet_cycle_spin_equals_skimage(shape):
    x = noisy_image(shape, seed=11)
    out = nd.wavelet(x, sigma=9.0)  # the default: mean over the 2^k one-voxel shifts
    expected = restoration.cycle_spin(
        x, lambda y: restoration.denoise_wavelet(y, sigma=9.0, rescale_sigma=True), max_shifts=1, channel_axis=None
    )
    assert_float32_close(out, expected)
    assert np.abs(out - nd.wavelet(x, sigma=9.0, cycle_spin=False)).max() > 1  # it is not the plain shrinkage


@pytest.mark.filterwarnings("ignore::RuntimeWarning", "ignore::UserWarning")
def test_wavelet_default_sigma_and_options():
    x = noisy_image((10, 32, 30), seed=10)
    out = nd.wavelet(x, wavelet_name="db2", wavelet_levels=2, cycle_spin=False)
    expected = restoration.denoise_wavelet(x, sigma=sk_sigma(x), wavelet="db2", wavelet_levels=2)
    assert_float32_close(out, expected, rtol=1e-4, atol_rel=1e-4)
    # float input: neither rescaled nor clipped
    assert out.max() > 1


# -- bilateral -------------------------------------------------------------------------
def reference_bilateral(image, sigma_px, sigma_i, pad_mode, cval=0.0):
    """Textbook bilateral filter, float64, window radius max(2, ceil(3 sigma))."""
    image = np.asarray(image, np.float64)
    radius = [0 if s == 0 else max(2, int(np.ceil(3 * s))) for s in sigma_px]
    kw = {"constant_values": cval} if pad_mode == "constant" else {}
    padded = np.pad(image, [(r, r) for r in radius], mode=pad_mode, **kw)
    num = np.zeros_like(image)
    den = np.zeros_like(image)
    for off in itertools.product(*[range(-r, r + 1) for r in radius]):
        d2 = sum((o / s) ** 2 for o, s in zip(off, sigma_px) if s > 0)
        window = tuple(slice(r + o, r + o + n) for r, o, n in zip(radius, off, image.shape))
        shifted = padded[window]
        w = np.exp(-0.5 * d2) * np.exp(-0.5 * (shifted - image) ** 2 / sigma_i**2)
        num += w * shifted
        den += w
    return num / den


@pytest.mark.parametrize(
    ("mode", "pad_mode"),
    [("reflect", "symmetric"), ("mirror", "reflect"), ("nearest", "edge"), ("constant", "constant"), ("wrap", "wrap")],
)
def test_bilateral_equals_textbook_formula(mode, pad_mode):
    x = noisy_image((18, 21), seed=11)
    out = nd.bilateral(x, 1.2, 15.0, mode=mode, cval=4.0)
    assert_float32_close(out, reference_bilateral(x, (1.2, 1.2), 15.0, pad_mode, cval=4.0), rtol=1e-4)


def test_bilateral_3d_anisotropic_spacing():
    x = noisy_image((6, 12, 14), seed=12)
    spacing = (2.0, 1.0, 0.5)
    out = nd.bilateral(x, 1.0, 20.0, spacing=spacing)
    expected = reference_bilateral(x, (0.5, 1.0, 2.0), 20.0, "symmetric")
    assert_float32_close(out, expected, rtol=1e-4)


def _correct_spatial_lut(win_size, sigma, *, dtype=float):
    # scikit-image 0.26 builds this table on arange(-w // 2, w // 2 + 1), i.e. w + 1
    # points for odd w, and then reads it with stride w: its spatial weights are
    # scrambled. This is the table it means to build.
    grid = np.arange(-(win_size // 2), win_size // 2 + 1)
    rr, cc = np.meshgrid(grid, grid, indexing="ij")
    return sk_denoise._gaussian_weight(np.hypot(rr, cc), sigma**2, dtype=dtype).ravel()


@pytest.mark.parametrize("sigma_spatial", [1.0, 1.5])
def test_bilateral_matches_skimage_2d(monkeypatch, sigma_spatial):
    x = noisy_image((30, 34), seed=13, scale=0.8, noise=0.05)
    x = np.clip(x, 0, None)  # skimage shifts negative images; keep it simple
    radius = max(2, int(np.ceil(3 * sigma_spatial)))
    monkeypatch.setattr(sk_denoise, "_compute_spatial_lut", _correct_spatial_lut)
    expected = restoration.denoise_bilateral(
        x, win_size=2 * radius + 1, sigma_color=0.1, sigma_spatial=sigma_spatial, mode="reflect"
    )
    out = nd.bilateral(x, sigma_spatial, 0.1, mode="mirror")  # numpy 'reflect' = ndimage 'mirror'
    # skimage bins intensity differences into 10000 levels of [0, max]
    np.testing.assert_allclose(out, expected, atol=2e-3 * x.max())
    assert np.abs(out - x).max() > 0.01  # it did filter


def test_bilateral_defaults_are_four_times_the_noise_and_two_pixels():
    # the defaults study's values for planes (benchmarks/defaults_study.py)
    x = noisy_image((20, 22), seed=14)
    expected = nd.bilateral(x, 1.0, 4.0 * sk_sigma(x))
    assert_float32_close(nd.bilateral(x, 1.0), expected, rtol=1e-4, atol_rel=1e-4)
    assert_float32_close(nd.bilateral(x, 1.0), reference_bilateral(x, (1.0, 1.0), 4 * sk_sigma(x), "symmetric"),
                         rtol=1e-4, atol_rel=1e-4)
    assert_float32_close(nd.bilateral(x), nd.bilateral(x, 2.0, 4.0 * sk_sigma(x)), rtol=1e-4, atol_rel=1e-4)
    volume = noisy_image((6, 12, 14), seed=14)
    assert_float32_close(nd.bilateral(volume), nd.bilateral(volume, 1.0, 4.0 * sk_sigma(volume)),
                         rtol=1e-4, atol_rel=1e-4)


def test_bilateral_zero_or_tiny_intensity_sigma():
    x = noisy_image((12, 13), seed=15)
    np.testing.assert_array_equal(nd.bilateral(x, 1.0, 0.0), x)
    out = nd.bilateral(x, 1.0, 1e-18)  # the smallest allowed: each pixel keeps itself, no NaN
    np.testing.assert_allclose(out, x, rtol=1e-6)
    with pytest.raises(ValueError, match=r"^sigma_intensity: .*between 1e-18 and 1e\+18"):
        nd.bilateral(x, 1.0, 1e-30)  # its square underflows float32: refused
    # single-voxel slices: noise estimate ~0, must not produce NaN
    stack = noisy_image((3, 1, 1, 1), seed=16)
    out = nd.bilateral(stack)
    np.testing.assert_allclose(out, stack, rtol=1e-6)


def test_bilateral_tiled_equals_untiled():
    x = noisy_image((420, 650), seed=17)
    assert len(tiles_of(nd.bilateral, x, sigma_spatial=1.0)) > 1
    np.testing.assert_array_equal(nd.bilateral(x, 1.0, workers=1), nd.bilateral(x, 1.0, workers=2))


# -- shared properties of the noise-adaptive denoisers ------------------------------------
ADAPTIVE = ["bilateral", "total_variation", "wavelet", "non_local_means"]


@pytest.mark.parametrize("name", ADAPTIVE)
def test_scale_equivariance(name):
    x = noisy_image((32, 36), seed=18)
    base = call(name, x)
    for c in (0.01, 7.0):
        np.testing.assert_allclose(call(name, (c * x).astype(np.float32)), c * base,
                                   rtol=2e-3, atol=2e-3 * c * np.abs(base).max())


@pytest.mark.parametrize("name", ADAPTIVE + ["gaussian", "mean", "median"])
def test_uint16_nuclei_denoised_exactly_like_float32(name):
    image = nuclei_2d()
    assert image.dtype == np.uint16  # every uint16 value is exact in float32
    crop = image[100:196, 120:232]
    np.testing.assert_array_equal(call(name, crop), call(name, crop.astype(np.float32)))


@pytest.mark.parametrize("name", ADAPTIVE)
def test_noise_estimated_per_independent_slice(name):
    quiet = noisy_image((24, 28), seed=19, noise=1.0)
    loud = noisy_image((24, 28), seed=20, noise=25.0)
    stack = np.stack([quiet, loud, quiet * 3])
    out = call(name, stack, spatial_axes=(1, 2))
    for t in range(3):
        np.testing.assert_array_equal(out[t], call(name, stack[t]))
    # 4-D default: last three axes are one volume, the first is independent
    four = np.stack([stack, stack[::-1] * 0.5])
    out = call(name, four)
    for t in range(2):
        np.testing.assert_array_equal(out[t], call(name, four[t]))


@pytest.mark.parametrize("name", ["gaussian", "mean", "median"] + ADAPTIVE)
def test_denoisers_reduce_noise_on_synthetic(name):
    clean = noisy_image((64, 64), seed=0, noise=0.0)
    noisy = clean + np.random.default_rng(21).normal(0, 8, clean.shape).astype(np.float32)
    out = call(name, noisy)
    assert np.mean((out - clean) ** 2) < 0.6 * np.mean((noisy - clean) ** 2)


@pytest.mark.filterwarnings("ignore::RuntimeWarning", "ignore::UserWarning")
@pytest.mark.parametrize("name", ADAPTIVE)
def test_nan_and_empty(name):
    x = noisy_image((16, 18), seed=22)
    x[4, 4] = np.nan
    out = call(name, x)  # documented: NaN spreads; never a crash
    assert out.shape == x.shape and out.dtype == np.float32
    for shape in [(0, 6), (6, 0), (1, 1), (2, 2), (0, 4, 4, 4)]:
        e = np.ones(shape, np.float32)
        assert call(name, e).shape == shape


@pytest.mark.parametrize("name", ["non_local_means", "bilateral", "mean", "gradient_magnitude"])
def test_stack_slice_equals_single_image_despite_different_tiling(name):
    # a lone slice is cut into tiles for two workers; inside a stack it is not
    a = noisy_image((400, 560), seed=23)
    stack = np.stack([a * 0.3, a])
    f = getattr(nd, name)
    assert len(tiles_of(f, a)) > 1
    out = f(stack, spatial_axes=(1, 2), workers=2)
    if name == "non_local_means":  # fast-mode integral images: tiles shift the rounding only
        assert_float32_close(out[1], f(a, workers=2), rtol=1e-5, atol_rel=1e-6)
    else:
        np.testing.assert_array_equal(out[1], f(a, workers=2))
    np.testing.assert_array_equal(out[0], f(stack[0], workers=1))


@pytest.mark.parametrize("workers", [1, 2])
def test_cancel_and_progress_with_per_slice_estimate(workers):
    # progress comes every 50 ms: slices enough for a run of several times that
    x = noisy_image((16, 200, 300), seed=24)
    seen = []
    with pytest.raises(nd.Cancelled, match="non_local_means"):
        nd.non_local_means(x, spatial_axes=(1, 2), workers=workers,
                           progress=lambda d, t: seen.append((d, t)), cancel=lambda: len(seen) >= 2)
    assert seen and seen[-1][0] < seen[-1][1]  # stopped before the end


# -- noise-free input (issue #11): never NaN with default parameters ---------------------------
def _piecewise_constant(shape):
    x = np.zeros(shape, np.float32)
    x[tuple(slice(n // 4, n // 2) for n in shape)] = 120.0
    x[tuple(slice(n // 2, n - 2) for n in shape)] = 35.0
    return x


NOISE_FREE = {
    "constant 2-D": lambda: np.full((40, 44), 17.0, np.float32),
    "constant 3-D": lambda: np.full((6, 20, 22), 3.0, np.float32),
    "piecewise constant 2-D": lambda: _piecewise_constant((48, 52)),
    "piecewise constant 3-D": lambda: _piecewise_constant((12, 24, 26)),
    "blank frame in a time-lapse": lambda: np.stack(
        [noisy_image((32, 36), seed=30), np.zeros((32, 36), np.float32), noisy_image((32, 36), seed=31)]
    ),
}


@pytest.mark.parametrize("case", list(NOISE_FREE))
@pytest.mark.parametrize("name", ADAPTIVE)
def test_noise_free_input_gives_finite_results(name, case):
    x = NOISE_FREE[case]()
    kwargs = {"spatial_axes": (1, 2)} if "time-lapse" in case else {}
    out = getattr(nd, name)(x, **kwargs)
    assert np.isfinite(out).all()
    if "time-lapse" in case:
        np.testing.assert_array_equal(out[1], 0)  # the blank frame stays blank
    else:
        # no noise: the image comes back (to rounding; TV may round edges off a little)
        assert np.abs(out - x).max() <= (2.0 if name == "total_variation" else 1e-3) + 1e-5 * np.abs(x).max()


@pytest.mark.parametrize("name", ["total_variation", "wavelet"])
def test_denormal_noise_estimate_is_harmless(name, monkeypatch):
    # a nearly flat image can estimate its noise as a subnormal number
    from napari_denoise.filters import denoise

    monkeypatch.setattr(denoise, "noise_of_slice", lambda piece, token=None: 1e-48)
    x = _piecewise_constant((30, 34))
    out = getattr(nd, name)(x)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, x, atol=1e-5)
