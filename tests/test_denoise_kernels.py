"""The compiled denoising kernels against their references, on threads, cancelled, in tiles."""

from __future__ import annotations

import itertools
import math
import threading
import time
import warnings

import numpy as np
import pytest
from skimage import restoration

import napari_denoise as nd
from napari_denoise import _scheduler
from napari_denoise.kernels import bilateral as bilateral_kernels
from napari_denoise.kernels import nl_means, tv
from napari_denoise.kernels import wavelet as wavelet_kernels

from _numeric_helpers import assert_float32_close, noisy_image


class Token:
    """A kernel token as the scheduler makes one (flag, ticks, threads)."""

    def __init__(self, threads=1):
        self.flag = np.zeros(1, np.uint8)
        self.ticks = np.zeros(2, np.int64)
        self.threads = threads

    @property
    def cancelled(self):
        return bool(self.flag[0])

    def report(self, done, total):
        self.ticks[:] = (done, total)


# -- total variation ---------------------------------------------------------------------------
def tv_reference(image, weight, eps=2e-4, max_num_iter=200, inverse_spacing=None):
    """scikit-image 0.26's _denoise_tv_chambolle_nd with the gradient scaled per axis (float32)."""
    image = np.asarray(image, np.float32)
    ndim = image.ndim
    ih = [np.float32(1.0)] * ndim if inverse_spacing is None else [np.float32(v) for v in inverse_spacing]
    p = np.zeros((ndim,) + image.shape, np.float32)
    g = np.zeros_like(p)
    d = np.zeros_like(image)
    tau = 1.0 / (2.0 * sum(float(v) ** 2 for v in ih))
    i = 0
    while i < max_num_iter:
        if i > 0:
            d = -sum(p[ax] * ih[ax] for ax in range(ndim)) if ndim > 1 else -(p[0] * ih[0])
            for ax in range(ndim):
                dst = [slice(None)] * ndim
                src = [slice(None)] * ndim
                dst[ax] = slice(1, None)
                src[ax] = slice(0, -1)
                d[tuple(dst)] += p[ax][tuple(src)] * ih[ax]
            out = image + d
        else:
            out = image
        energy = (d**2).sum()
        for ax in range(ndim):
            dst = [slice(None)] * ndim
            dst[ax] = slice(0, -1)
            g[ax][tuple(dst)] = np.diff(out, axis=ax) * ih[ax]
        norm = np.sqrt((g**2).sum(axis=0))[np.newaxis, ...]
        energy += weight * norm.sum()
        norm *= tau / weight
        norm += 1.0
        p -= tau * g
        p /= norm
        energy /= float(image.size)
        if i == 0:
            e_init = e_previous = energy
        elif np.abs(e_previous - energy) < eps * e_init:
            break
        else:
            e_previous = energy
        i += 1
    return out


@pytest.mark.parametrize("shape", [(40, 44), (8, 20, 22), (300,), (1, 30, 31), (64, 300, 301)])
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_tv_kernel_is_skimage_value_for_value(shape, threads):
    x = noisy_image(shape, seed=7)
    for weight, eps, iterations in [(6.0, 2e-4, 200), (3.0, 1e-3, 30)]:
        expected = restoration.denoise_tv_chambolle(x, weight=weight, eps=eps, max_num_iter=iterations)
        out = tv.tv_chambolle(x, weight, eps, iterations, threads=threads)
        np.testing.assert_array_equal(out, expected)


def test_tv_reference_is_skimage():
    # the scaled reference below reduces to scikit-image without spacing
    x = noisy_image((12, 20, 22), seed=8)
    np.testing.assert_array_equal(tv_reference(x, 5.0), restoration.denoise_tv_chambolle(x, weight=5.0))


@pytest.mark.parametrize("threads", [1, 2])
def test_tv_spacing_scales_the_gradient(threads):
    x = noisy_image((9, 24, 26), seed=9)
    spacing = (2.5, 1.0, 0.5)
    inverse = tuple(min(spacing) / s for s in spacing)
    out = tv.tv_chambolle(x, 6.0, inverse_spacing=inverse, threads=threads)
    np.testing.assert_array_equal(out, tv_reference(x, 6.0, inverse_spacing=inverse))
    # through the public function (with the kernel's and scikit-image's stopping rule,
    # eps 2e-4 and 200 iterations); isotropic spacing is scikit-image
    sk_stop = {"eps": 2e-4, "max_num_iter": 200}
    np.testing.assert_array_equal(nd.total_variation(x, 6.0, spacing=spacing, workers=threads, **sk_stop), out)
    np.testing.assert_array_equal(nd.total_variation(x, 6.0, spacing=(0.3, 0.3, 0.3), **sk_stop),
                                  restoration.denoise_tv_chambolle(x, weight=6.0))
    # coarser z: less smoothing across planes than the isotropic result
    iso = nd.total_variation(x, 6.0)
    coarse_z = nd.total_variation(x, 6.0, spacing=(4.0, 1.0, 1.0))
    assert np.abs(np.diff(coarse_z, axis=0)).mean() > np.abs(np.diff(iso, axis=0)).mean()


def test_tv_reads_integers_directly_and_writes_into_out():
    x = np.clip(noisy_image((30, 33), seed=10), 0, 255).round().astype(np.uint8)
    out = np.full(x.shape, np.nan, np.float32)
    result = tv.tv_chambolle(x, 20.0, out=out)
    assert result.base is out or result is out
    np.testing.assert_array_equal(out, restoration.denoise_tv_chambolle(x.astype(np.float32), weight=20.0))


def test_tv_pairwise_pieces_give_numpy_sum():
    rng = np.random.default_rng(0)
    for n in (5, 100, 129, 1000, 65536 + 13, 1000003):
        a = (rng.random(n, dtype=np.float32) * 100) ** 2
        for parts in (1, 2, 3, 8):
            pieces, combine = tv.pairwise_pieces(n, parts)
            assert pieces[0][0] == 0 and pieces[-1][1] == n
            sums = [tv._pairwise(a, lo, hi - lo, False) for lo, hi in pieces]
            assert combine(sums) == a.sum()


# -- non-local means ---------------------------------------------------------------------------
def naive_nlm(x, h, sigma, sizes, distances, fast_mode):
    """Non-local means straight from the definition (float64), per-axis extents.

    Fast mode uses scikit-image's patch (``x - o + 1 .. x + o``, normalised by
    the patch size), with an axis of half-width 0 covering its own plane.
    Slow mode: Gaussian patch weights, search clipped to the image, weight 0
    when the partial distance exceeds 5 at the start of a patch row (2-D) or
    plane (3-D), as scikit-image.
    """
    half = [s // 2 for s in sizes]
    ndim = x.ndim
    pad = [o + d for o, d in zip(half, distances)]
    u = np.pad(x.astype(np.float64), [(p, p) for p in pad], mode="reflect")
    var2 = 2.0 * sigma * sigma
    if fast_mode:
        isotropic = len(set(half)) == 1
        box = [range(0, 1) if (o == 0 and not isotropic) else range(1 - o, o + 1) for o in half]
        weights = {p: 1.0 for p in itertools.product(*box)}
        norm = h * h * np.prod(sizes)
    else:
        w = nl_means.patch_weights(tuple(half), h).astype(np.float64)
        weights = {tuple(p - o for p, o in zip(idx, half)): w[idx] for idx in np.ndindex(*w.shape)}
        norm = 1.0
    out = np.zeros(x.shape)
    for idx in np.ndindex(*x.shape):
        acc = wsum = 0.0
        for t in itertools.product(*[range(-d, d + 1) for d in distances]):
            if not fast_mode and not all(0 <= i + a < n for i, a, n in zip(idx, t, x.shape)):
                continue
            dist = 0.0
            cut = False
            for p, wp in weights.items():
                if not fast_mode and p[1:] == tuple(-o for o in half[1:]) and dist > 5:
                    cut = True
                q = tuple(i + g + pp for i, g, pp in zip(idx, pad, p))
                q2 = tuple(a + b for a, b in zip(q, t))
                dist += wp * ((u[q] - u[q2]) ** 2 - var2)
            dist = max(dist, 0.0) / norm
            weight = 0.0 if (dist > 5 if fast_mode else cut) else float(nl_means._fast_exp(-dist))
            acc += weight * u[tuple(i + g + a for i, g, a in zip(idx, pad, t))]
            wsum += weight
        out[idx] = acc / wsum
    return out.astype(np.float32)


@pytest.mark.parametrize("fast_mode", [True, False])
def test_nlm_anisotropic_extents_follow_the_definition(fast_mode):
    x = np.random.default_rng(3).random((5, 8, 9)).astype(np.float32)
    sizes, distances = (1, 3, 5), (1, 2, 2)
    expected = naive_nlm(x, 0.4, 0.1, sizes, distances, fast_mode)
    for threads in (1, 2):
        out = nl_means.nl_means(x, 0.4, 0.1, sizes, distances, fast_mode=fast_mode, threads=threads)
        np.testing.assert_allclose(out, expected, rtol=2e-5, atol=1e-6)


def test_nlm_naive_reference_is_skimage():
    x = np.random.default_rng(4).random((9, 10)).astype(np.float32)
    for fast_mode in (True, False):
        sk = restoration.denoise_nl_means(x, h=0.3, sigma=0.1, patch_size=3, patch_distance=2,
                                          fast_mode=fast_mode, preserve_range=True)
        np.testing.assert_allclose(naive_nlm(x, 0.3, 0.1, (3, 3), (2, 2), fast_mode), sk, rtol=1e-5, atol=1e-6)


def test_nlm_spacing_rule():
    x = noisy_image((6, 30, 32), seed=5)
    op = nd.non_local_means.op(x, spacing=(2.0, 0.5, 0.5), patch_size=5, patch_distance=6)
    # z is 4x coarser: half patch round(2 / 4) = 1 -> 3, distance round(6 / 4) = 2
    assert op.params["patch_size"] == (1, 5, 5) or op.params["patch_size"] == (3, 5, 5)
    assert op.params["patch_size"] == (3, 5, 5) and op.params["patch_distance"] == (2, 6, 6)
    assert op.halo == (3, 8, 8)
    iso = nd.non_local_means(x, h=8.0, sigma=10.0, patch_size=3, patch_distance=2)
    np.testing.assert_array_equal(
        nd.non_local_means(x, h=8.0, sigma=10.0, patch_size=3, patch_distance=2, spacing=(0.7, 0.7, 0.7)), iso
    )
    sk = restoration.denoise_nl_means(x, h=8.0, sigma=10.0, patch_size=3, patch_distance=2, preserve_range=True)
    assert_float32_close(iso, sk)


def test_nlm_fast_exp_is_skimage_fast_exp():
    # Schraudolph's exponential, including C's INT_MIN for out-of-range conversions
    def reference(y):
        v = 1512775.3951951856938 * y
        hi = int(v) if -(2**31) <= v < 2**31 else -(2**31)
        hi = (hi + 1072632447 + 2**31) % 2**32 - 2**31
        return np.array([hi << 32], np.int64).view(np.float64)[0]

    for y in (0.0, -0.0, -1.0, -2.5, -5.0, -700.0, -710.0, -1500.0, -4e4):
        assert nl_means._fast_exp(y) == reference(y)


@pytest.mark.parametrize("fast_mode", [True, False])
def test_nlm_tiny_h_keeps_the_image(fast_mode):
    x = noisy_image((20, 22), seed=6)
    out = nd.non_local_means(x, h=1e-15, sigma=0.0, patch_size=3, patch_distance=2, fast_mode=fast_mode)
    np.testing.assert_allclose(out, x, rtol=1e-6)  # every other patch weighs exp(-d / h²) = 0


# -- bilateral -----------------------------------------------------------------------------------
def textbook_bilateral(image, sigma_px, sigma_i, pad_mode, cval=0.0):
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
@pytest.mark.parametrize(("shape", "sigma"), [((18, 21), (1.2, 1.2)), ((6, 12, 14), (0.5, 1.0, 2.0)), ((30,), (1.5,)),
                                              ((5, 1, 9), (1.0, 1.0, 0.0))])
def test_bilateral_kernel_is_the_textbook_filter(mode, pad_mode, shape, sigma):
    x = noisy_image(shape, seed=11)
    radius = [0 if s == 0 else max(2, int(np.ceil(3 * s))) for s in sigma]
    expected = textbook_bilateral(x, sigma, 15.0, pad_mode, cval=4.0)
    for threads in (1, 2, 3):
        out = bilateral_kernels.bilateral(x, sigma, radius, 15.0, mode, 4.0, threads=threads)
        assert out.dtype == np.float32
        assert_float32_close(out, expected, rtol=2e-6, atol_rel=2e-6)


def test_bilateral_kernel_reads_only_its_halo():
    x = noisy_image((40, 50), seed=12)
    full = bilateral_kernels.bilateral(x, (1.0, 1.0), (3, 3), 12.0)
    block = x[7:30]  # rows 10:27 kept, 3 rows of halo each side
    keep = (slice(3, 20), slice(None))
    out = np.empty((17, 50), np.float32)
    assert bilateral_kernels.bilateral(block, (1.0, 1.0), (3, 3), 12.0, keep=keep, out=out) is out
    np.testing.assert_array_equal(out, full[10:27])


def _central_difference(function, x, index, step):
    """``∂function(x)[index] / ∂x[index]``, central difference in float64 around float32 ``x``."""
    up, down = x.astype(np.float64), x.astype(np.float64)
    up[index] += step
    down[index] -= step
    return (function(up.astype(np.float32))[index].astype(np.float64)
            - function(down.astype(np.float32))[index].astype(np.float64)) / (2 * step)


@pytest.mark.parametrize("mode", ["reflect", "mirror", "nearest", "constant", "wrap"])
@pytest.mark.parametrize(("shape", "sigma", "radius"), [((40, 37), (1.2, 0.8), (4, 3)),
                                                        ((9, 12, 14), (0.7, 1.0, 1.5), (2, 3, 5)),
                                                        ((30,), (1.5,), (5,))])
def test_bilateral_slope_is_the_derivative_by_the_voxels_own_value(mode, shape, sigma, radius):
    rng = np.random.default_rng(13)
    # noise the size of the intensity σ over a ramp: weights far from 0 and 1, slopes from ~0.2 to above 1
    x = (rng.standard_normal(shape) * 3 + np.linspace(0, 10, shape[-1])).astype(np.float32)
    radius = tuple(min(r, n // 2) for r, n in zip(radius, shape)) if mode == "wrap" else radius
    slope = np.empty(shape, np.float32)
    for threads in (1, 2):
        out = bilateral_kernels.bilateral(x, sigma, radius, 2.5, mode, 1.0, slope=slope, threads=threads)
        np.testing.assert_array_equal(out, bilateral_kernels.bilateral(x, sigma, radius, 2.5, mode, 1.0))
    corners = [tuple(0 for _ in shape), tuple(n - 1 for n in shape)]  # where the border maps offsets back
    for index in corners + [tuple(int(rng.integers(0, n)) for n in shape) for _ in range(20)]:
        expected = _central_difference(
            lambda v: bilateral_kernels.bilateral(v, sigma, radius, 2.5, mode, 1.0), x, index, 1e-2)
        assert slope[index] == pytest.approx(expected, abs=2e-3), index
    # on a block with a halo, the kept part's slope is the whole image's there
    keep = tuple(slice(r, n - r) for r, n in zip(radius, shape))
    part = np.empty([s.stop - s.start for s in keep], np.float32)
    if mode != "wrap":
        bilateral_kernels.bilateral(x, sigma, radius, 2.5, mode, 1.0, keep=keep, slope=part)
        np.testing.assert_array_equal(part, slope[keep])


def test_exp_neg_accuracy():
    a = -np.linspace(0, 90, 200001).astype(np.float32)
    out = np.array([bilateral_kernels._exp_neg(v) for v in a[::50]], np.float32)
    expected = np.exp(a[::50].astype(np.float64))
    ok = a[::50] >= -87
    np.testing.assert_allclose(out[ok], expected[ok], rtol=3e-7)
    assert (out[~ok] == 0).all()


# -- wavelet -----------------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("shape", [(48, 52), (47, 33), (10, 32, 30), (7, 9, 11), (301,)])
@pytest.mark.parametrize("name", ["db1", "haar", "db2", "sym4"])
def test_wavelet_kernel_matches_skimage(shape, name):
    x = noisy_image(shape, seed=9)
    for method, mode, levels in itertools.product(["BayesShrink", "VisuShrink"], ["soft", "hard"], [None, 1, 2]):
        expected = restoration.denoise_wavelet(x, sigma=9.0, wavelet=name, method=method, mode=mode,
                                               wavelet_levels=levels, rescale_sigma=True)
        out = wavelet_kernels.denoise_wavelet(x, 9.0, wavelet_name=name, threshold_mode=mode, method=method,
                                              wavelet_levels=levels)
        assert_float32_close(out, expected)


@pytest.mark.parametrize("shape", [(301, 203), (20, 41, 37)])
def test_haar_wavelet_shares_tiles_among_threads_without_changing_the_result(shape, monkeypatch):
    # threads from small slices on, so that these are cut into tiles shared among the threads
    monkeypatch.setattr(wavelet_kernels, "_MIN_VALUES_PER_THREAD", 64)
    x = noisy_image(shape, seed=4)
    one = wavelet_kernels.denoise_wavelet(x, 9.0, threads=1)
    for threads in (2, 3):
        np.testing.assert_array_equal(wavelet_kernels.denoise_wavelet(x, 9.0, threads=threads), one)
    assert_float32_close(one, restoration.denoise_wavelet(x, sigma=9.0, rescale_sigma=True))


@pytest.mark.parametrize("shape", [(301, 203), (64, 64), (2, 97), (40, 9), (20, 41, 37), (16, 16, 64), (3, 5, 200),
                                   (33, 2, 17)])
@pytest.mark.parametrize("tile_values", [16, 600, 1 << 16])
def test_haar_wavelet_in_tiles_equals_the_transform_level_by_level(shape, tile_values, monkeypatch):
    # tiles of several sizes (at least one level, at most all), with the odd tails at the ends of
    # both axes, on one thread and several: bit for bit the untiled result
    x = noisy_image(shape, seed=5)
    for method, mode, levels in [("BayesShrink", "soft", None), ("VisuShrink", "hard", 1), ("BayesShrink", "soft", 4)]:
        whole = wavelet_kernels.denoise_wavelet(x, 9.0, threshold_mode=mode, method=method, wavelet_levels=levels)
        monkeypatch.setattr(wavelet_kernels, "_TILE_VALUES", tile_values)
        monkeypatch.setattr(wavelet_kernels, "_MIN_TILED_VALUES", 0)
        monkeypatch.setattr(wavelet_kernels, "_MIN_TILED_CONVERTED_VALUES", 0)
        monkeypatch.setattr(wavelet_kernels, "_MIN_VALUES_PER_THREAD", 16)
        depth, side, tiles = wavelet_kernels._tile_plan(
            wavelet_kernels.as_3d(x).shape, levels or wavelet_kernels.default_levels(shape, "db1"), x.ndim == 3, True, 1)
        assert depth >= 1 and tiles >= 1
        for threads in (1, 2, 3):
            tiled = wavelet_kernels.denoise_wavelet(x, 9.0, threshold_mode=mode, method=method, wavelet_levels=levels,
                                                    threads=threads)
            np.testing.assert_array_equal(tiled, whole)
        monkeypatch.undo()


def test_wavelet_tile_plan():
    plan = wavelet_kernels._tile_plan
    assert plan((1, 1, 300), 3, False, False, 2) == (0, 0, 0)  # 1-D: no tiles
    assert plan((1, 1024, 1024), 7, False, True, 1) == (0, 0, 0)  # fits the cache: level by level
    # one thread from 8 Mi values (float32) or 2 Mi (converted to float32 untiled); several
    # always: the largest tile of at most 64 Ki values
    assert plan((1, 2048, 2048), 8, False, True, 1) == (0, 0, 0)
    assert plan((1, 2048, 2048), 8, False, True, 1, float32=False) == (5, 32, 64)
    assert plan((1, 4096, 4096), 9, False, True, 1) == (4, 16, 256)
    assert plan((1, 1024, 1024), 7, False, True, 2) == (6, 64, 16)
    assert plan((64, 256, 256), 3, True, True, 2) == (3, 8, 256)
    assert plan((8, 1024, 1024), 1, True, True, 2) == (1, 2, 4 * 512)  # at least one level, at most `levels`
    assert plan((1, 1024, 100_000), 7, False, True, 2)[:2] == (1, 2)


def _cycle_spin_reference(x, **kwargs):
    """The mean of the shrinkages of x rolled by 0 or 1 along each axis, as scikit-image's cycle_spin."""
    axes = tuple(range(x.ndim))
    total = np.zeros(x.shape, np.float64)
    shifts = list(itertools.product((0, 1), repeat=x.ndim))
    for shift in shifts:
        denoised = wavelet_kernels.denoise_wavelet(np.roll(x, shift, axis=axes), 9.0, **kwargs)
        total += np.roll(denoised, tuple(-k for k in shift), axis=axes)
    return (total / len(shifts)).astype(np.float32)


@pytest.mark.parametrize("shape", [(47, 33), (2, 5), (9, 10, 11), (301,)])
@pytest.mark.parametrize("dtype", [np.float32, np.uint16, np.float64])
def test_wavelet_cycle_spin_equals_rolled_shrinkages(shape, dtype, monkeypatch):
    x = (noisy_image(shape, seed=2) + 50).clip(0, None).astype(dtype)
    shifts = list(itertools.product((0, 1), repeat=x.ndim))
    expected = _cycle_spin_reference(x)
    np.testing.assert_array_equal(wavelet_kernels.cycle_spin(x, 9.0, shifts), expected)
    # into an out, contiguous or not; on threads sharing the rows of each shift's sums
    out = np.full(shape, np.nan, np.float32)
    assert wavelet_kernels.cycle_spin(x, 9.0, shifts, out=out) is out
    np.testing.assert_array_equal(out, expected)
    strided = np.full(shape[:-1] + (2 * shape[-1],), np.nan, np.float32)[..., ::2]
    wavelet_kernels.cycle_spin(x, 9.0, shifts, out=strided)
    np.testing.assert_array_equal(strided, expected)
    monkeypatch.setattr(wavelet_kernels, "_MIN_VALUES_PER_THREAD", 8)
    np.testing.assert_array_equal(wavelet_kernels.cycle_spin(x, 9.0, shifts, threads=2), expected)


@pytest.mark.parametrize("shape", [(70, 90), (20, 37, 41), (3, 64, 17)])
@pytest.mark.parametrize("levels", [1, 3, None])
def test_wavelet_cycle_spin_in_tiles_is_the_roll_formula_for_any_shifts(shape, levels, monkeypatch):
    # the Haar path reads each tile at its rolled places and adds it back at the unshifted
    # ones: negative shifts, shifts beyond the size, and a strided input, on 1 and 3 threads
    x = (noisy_image(shape, seed=5) + 50).astype(np.float32)[..., ::-1]
    shifts = [(0,) * x.ndim, (3, -2, 40)[-x.ndim:], (-1, 7, 1)[-x.ndim:], (5, 100, -33)[-x.ndim:]]
    axes = tuple(range(x.ndim))
    total = np.zeros(x.shape, np.float64)
    for shift in shifts:
        denoised = wavelet_kernels.denoise_wavelet(np.roll(x, shift, axis=axes), 9.0, wavelet_levels=levels)
        total += np.roll(denoised, tuple(-k for k in shift), axis=axes)
    expected = (total / len(shifts)).astype(np.float32)
    monkeypatch.setattr(wavelet_kernels, "_MIN_VALUES_PER_THREAD", 8)  # tiles (and threads) from 8 values
    assert wavelet_kernels.spins_in_tiles(x.shape, "db1", levels, len(shifts))
    np.testing.assert_array_equal(wavelet_kernels.cycle_spin(x, 9.0, shifts, wavelet_levels=levels), expected)
    np.testing.assert_array_equal(wavelet_kernels.cycle_spin(x, 9.0, shifts, wavelet_levels=levels, threads=3),
                                  expected)


@pytest.mark.parametrize("in_tiles", [False, True])
def test_wavelet_cycle_spin_reports_each_shift_and_stops_when_cancelled(in_tiles, monkeypatch):
    if in_tiles:
        monkeypatch.setattr(wavelet_kernels, "_MIN_VALUES_PER_THREAD", 8)
    x = noisy_image((40, 40), seed=1)
    assert wavelet_kernels.spins_in_tiles(x.shape, "db1", None, 2) == in_tiles
    shifts = list(itertools.product((0, 1), repeat=2))
    reports = []

    class Counting(Token):
        def report(self, done, total):
            reports.append((done, total))
            if done == 2:
                self.flag[0] = 1

    assert wavelet_kernels.cycle_spin(x, 9.0, shifts, token=Counting()) is None
    assert reports == [(1, 4), (2, 4)]


def test_a_tiled_wavelet_stops_between_tiles_once_cancelled(monkeypatch):
    x = noisy_image((512, 512), seed=3)
    monkeypatch.setattr(wavelet_kernels, "_MIN_TILED_VALUES", 0)
    calls = []
    real = wavelet_kernels._tile_pass

    def counting(*args):
        calls.append(args[13])  # reconstruct
        return real(*args)

    monkeypatch.setattr(wavelet_kernels, "_tile_pass", counting)
    token = Token(threads=1)
    done = wavelet_kernels.denoise_wavelet(x, 9.0, token=token)
    assert calls == [False, True]
    np.testing.assert_array_equal(done, wavelet_kernels.denoise_wavelet(x, 9.0))
    calls.clear()
    token.flag[0] = 1  # cancelled before the first tile: no second pass, and nothing written
    out = np.full(x.shape, -1.0, np.float32)
    assert wavelet_kernels.denoise_wavelet(x, 9.0, token=token, out=out) is out
    assert calls == [False] and (out == -1.0).all()
    assert wavelet_kernels.cycle_spin(x, 9.0, [(0, 0), (0, 1)], token=token) is None


def test_wavelet_sum_of_squares_is_the_float64_sum_and_keeps_nan():
    rng = np.random.default_rng(0)
    for n in (0, 1, 3, 7, 8, 33, 1000, 4099):
        row = rng.normal(0, 30, n).astype(np.float32)
        assert wavelet_kernels._sum_squares(row) == pytest.approx(math.fsum(np.float64(row) ** 2), rel=1e-14, abs=0)
    row[5] = np.nan
    assert np.isnan(wavelet_kernels._sum_squares(row))


def test_wavelet_zero_threshold_keeps_zero_coefficients():
    # pywt's soft threshold computes d (1 - t / |d|): 0 / 0 = NaN for d = 0, t = 0
    x = np.zeros((16, 16), np.float32)
    x[4:9, 3:12] = 7.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert np.isnan(restoration.denoise_wavelet(x, sigma=1e-48, rescale_sigma=True)).any()
    np.testing.assert_allclose(wavelet_kernels.denoise_wavelet(x, 1e-48), x, atol=1e-6)


# -- threads, progress, cancellation ---------------------------------------------------------------
KERNEL_CALLS = {
    "nlm_fast": lambda x, token: nl_means.nl_means(x, 10.0, 10.0, 5, 6, fast_mode=True, threads=token.threads,
                                                   token=token),
    "nlm_slow": lambda x, token: nl_means.nl_means(x, 10.0, 10.0, 5, 6, fast_mode=False, threads=token.threads,
                                                   token=token),
    "tv": lambda x, token: tv.tv_chambolle(x, 10.0, 1e-30, 10_000, threads=token.threads, token=token),
    "bilateral": lambda x, token: bilateral_kernels.bilateral(x, (3.0, 3.0, 3.0), (9, 9, 9), 10.0,
                                                              threads=token.threads, token=token),
}


@pytest.mark.parametrize("name", list(KERNEL_CALLS))
@pytest.mark.parametrize("threads", [1, 2])
def test_kernels_report_progress_and_stop_within_a_second(name, threads):
    x = noisy_image((40, 200, 200), seed=13)
    token = Token(threads)
    KERNEL_CALLS[name](x[:2, :20, :20].copy(), Token(threads))  # compile first
    seen = []
    worker = threading.Thread(target=lambda: seen.append(KERNEL_CALLS[name](x, token)))
    worker.start()
    t0 = time.perf_counter()
    while token.ticks[0] == 0 and time.perf_counter() - t0 < 20:
        time.sleep(0.01)
    progress = token.ticks.copy()
    assert 0 < progress[0] < progress[1]
    token.flag[0] = 1
    t_cancel = time.perf_counter()
    worker.join(10)
    assert not worker.is_alive()
    assert time.perf_counter() - t_cancel < 1.0


def test_idle_workers_go_to_the_kernel(monkeypatch):
    seen = []
    original = tv.tv_chambolle

    def spy(*args, threads=1, **kwargs):
        seen.append(threads)
        return original(*args, threads=threads, **kwargs)

    monkeypatch.setattr(tv, "tv_chambolle", spy)
    x = noisy_image((30, 40), seed=14)
    nd.total_variation(x, 5.0, workers=2)
    nd.total_variation(np.stack([x, x, x]), 5.0, spatial_axes=(1, 2), workers=2)
    assert seen == [2, 1, 1, 1]
    token = _scheduler.TileToken(np.zeros(1, np.uint8))
    assert token.threads == 1
