"""The execution layer: tiles with halos, threads, compiled kernels, lazy input."""

from __future__ import annotations

import time

import numpy as np
import pytest
from scipy import ndimage

import napari_denoise as nd
from napari_denoise import _scheduler
from napari_denoise.kernels import borders, median as median_kernels, separable

from _numeric_helpers import tiles_of

MODES = ["reflect", "mirror", "nearest", "constant"]


def stack(shape=(12, 40, 36), seed=0, dtype=np.uint16):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 4000, size=shape).astype(dtype)


@pytest.fixture
def small_tiles(monkeypatch):
    """Make the planner cut even small images into several tiles."""
    monkeypatch.setattr(_scheduler, "_MIN_TILE_VOXELS", 256)
    monkeypatch.setattr(_scheduler, "_KEPT_MIN_TILE_VOXELS", 256)
    monkeypatch.setattr(_scheduler, "_KEPT_MAX_TILE_VOXELS", 2048)
    monkeypatch.setattr(_scheduler, "_MAX_TILE_VOXELS", 2048)


# -- compiled kernels equal scipy.ndimage exactly ------------------------------------------
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape", [(7, 9, 11), (1, 3, 5), (2, 30), (5,)])
def test_kernels_bit_identical_to_ndimage(mode, shape):
    a = stack(shape, seed=1).astype(np.float32)
    n = a.ndim
    sigma = (0.7, 1.5, 2.0)[-n:]
    radius = [int(4 * s + 0.5) for s in sigma]
    for order in (0, 1):
        orders = [0] * n
        orders[-1] = order
        passes = [(ax, separable.gaussian_weights(s, o, r)) for ax, (s, o, r) in enumerate(zip(sigma, orders, radius))]
        ref = ndimage.gaussian_filter(a, sigma, order=orders, mode=mode, cval=3.5)
        assert np.array_equal(separable.separable(a, passes, mode, 3.5), ref)
    size = (3, 5, 2)[-n:]
    ref = ndimage.uniform_filter(a, size, mode=mode, cval=1.5)
    assert np.array_equal(separable.uniform(a, size, mode, 1.5), ref)
    for size in [(3,) * n, (1, 3, 5)[-n:]]:
        if median_kernels.median_supported(size, mode):
            ai = np.round(a / 100).astype(np.float32)  # many ties
            ref = ndimage.median_filter(ai, size=size, mode=mode, cval=1.5)
            assert np.array_equal(median_kernels.median(ai, size, mode, 1.5), ref)


# -- tiled == untiled ----------------------------------------------------------------------
LINEAR = {
    "gaussian": (lambda a, **k: nd.gaussian(a, (1, 2, 2), **k),
                 lambda f: ndimage.gaussian_filter(f, (1, 2, 2))),
    "mean": (lambda a, **k: nd.mean(a, 3, **k), lambda f: ndimage.uniform_filter(f, 3)),
    "sobel": (lambda a, **k: nd.sobel(a, **k), None),
    "gradient_magnitude": (lambda a, **k: nd.gradient_magnitude(a, 1.0, **k),
                           lambda f: ndimage.gaussian_gradient_magnitude(f, 1.0)),
    "median": (lambda a, **k: nd.median(a, 3, **k), lambda f: ndimage.median_filter(f, 3)),
}


@pytest.mark.parametrize("name", list(LINEAR))
def test_tiled_threads_equal_untiled(name, small_tiles):
    fn, ref = LINEAR[name]
    a = stack()
    tiles = tiles_of(getattr(nd, name), a)
    assert len(tiles) > 2
    whole = fn(a, workers=1)
    tiled = fn(a, workers=2)
    assert tiled.dtype == np.float32
    assert np.array_equal(tiled, whole)
    if ref is not None:
        assert np.array_equal(tiled, ref(a.astype(np.float32)))


def test_tiles_along_y_without_kernels(monkeypatch, small_tiles):
    """The scipy fallback (no numba / other modes) tiles too, bit-identically."""
    monkeypatch.setattr(borders, "supported", lambda mode, ndim: False)
    a = stack((3, 60, 50))
    assert nd.gaussian.op(a, 1.0).cost.over_halo  # the scipy routine filters its halo too
    tiles = tiles_of(nd.gaussian, a, sigma=1.0)
    assert len(tiles) > 1 and tiles[0].axis != 0  # z too thin for its halo: cut along y
    assert np.array_equal(nd.gaussian(a, 1.0, workers=2), ndimage.gaussian_filter(a.astype(np.float32), 1.0))


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.float32, np.float64, np.int32])
def test_input_dtypes(dtype, small_tiles):
    a = stack((6, 30, 20), dtype=dtype)
    f = a.astype(np.float32)
    assert np.array_equal(nd.gaussian(a, 1.0, workers=2), ndimage.gaussian_filter(f, 1.0))
    assert np.array_equal(nd.median(a, 3, workers=2), ndimage.median_filter(f, 3))


def test_median_2d_size_5_per_plane(small_tiles):
    a = stack((4, 50, 40))
    out = nd.median(a, 5, spatial_axes=(1, 2), workers=2)
    assert np.array_equal(out, ndimage.median_filter(a.astype(np.float32), (1, 5, 5)))


def test_time_axis_not_mixed(small_tiles):
    a = stack((3, 5, 30, 20))  # t, z, y, x
    out = nd.gaussian(a, 1.0, workers=2)
    for t in range(3):
        assert np.array_equal(out[t], ndimage.gaussian_filter(a[t].astype(np.float32), 1.0))


def test_float32_input_not_modified(small_tiles):
    a = stack().astype(np.float32)
    before = a.copy()
    nd.gaussian(a, 1.0, workers=2)
    nd.sobel(a, workers=2)
    assert np.array_equal(a, before)


def test_workers_from_environment(monkeypatch):
    monkeypatch.setenv("NAPARI_DENOISE_WORKERS", "3")
    assert _scheduler.default_workers() == 3
    monkeypatch.delenv("NAPARI_DENOISE_WORKERS")
    assert _scheduler.default_workers() >= 1


def test_progress_and_cancel(small_tiles):
    a = stack()
    seen = []
    nd.gaussian(a, 1.0, workers=2, progress=lambda d, t: seen.append((d, t)))
    assert seen[-1][0] == seen[-1][1] > 2
    with pytest.raises(_scheduler.Cancelled):
        nd.gaussian(a, 1.0, workers=2, cancel=lambda: True)


# -- lazy ----------------------------------------------------------------------------------
def test_lazy_zarr_returns_fast_and_plane_is_right(tmp_path):
    zarr = pytest.importorskip("zarr")
    da = pytest.importorskip("dask.array")
    store = zarr.create_array(
        store=str(tmp_path / "big.zarr"), shape=(400, 1024, 1024), chunks=(4, 256, 256),
        dtype="uint16", fill_value=0,
    )  # 800 MiB if written; sparse here
    block = stack((24, 300, 300), seed=3)
    store[188:212, 100:400, 100:400] = block
    lazy = da.from_zarr(store)
    t0 = time.perf_counter()
    result = nd.gaussian(lazy, (1, 2, 2))
    assert time.perf_counter() - t0 < 0.5
    assert isinstance(result, da.Array) and result.dtype == np.float32
    plane = result[200].compute()
    crop = np.asarray(store[180:220, 80:420, 80:420]).astype(np.float32)
    expected = ndimage.gaussian_filter(crop, (1, 2, 2))[20]
    assert np.array_equal(plane[100:400, 100:400], expected[20:320, 20:320])
    assert not plane[:50].any()


@pytest.mark.parametrize("name", ["gaussian", "median", "sobel"])
def test_lazy_equals_eager(name):
    da = pytest.importorskip("dask.array")
    a = stack((10, 40, 30), seed=4)
    eager = getattr(nd, name)(a)
    lazy = getattr(nd, name)(da.from_array(a, chunks=(3, 17, 30)))
    assert np.array_equal(lazy.compute(), eager)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", ["sobel", "scharr", "prewitt"])
def test_edge_kernels_equal_scipy_fallback(monkeypatch, name, mode):
    a = stack((5, 20, 16), seed=6)
    fast = getattr(nd, name)(a, mode=mode, cval=7.0)
    monkeypatch.setattr(borders, "supported", lambda mode, ndim: False)
    slow = getattr(nd, name)(a, mode=mode, cval=7.0)
    assert np.array_equal(fast, slow)


def test_a_kernel_error_reaches_the_caller_and_stops_the_run(small_tiles):
    from dataclasses import replace

    x = stack()
    op = nd.gaussian.op(x, 1.0)
    tiles = len(_scheduler._EagerRun(op, x, 2, _scheduler.CancelToken()).jobs)
    calls = []

    def failing(block, keep, out, context, token):
        calls.append(1)
        time.sleep(0.01)
        raise RuntimeError("kernel failed")

    with pytest.raises(RuntimeError, match="kernel failed"):
        _scheduler.run(replace(op, kernel=failing), x, workers=2)
    assert 1 <= len(calls) < tiles // 2, (len(calls), tiles)  # the rest never started
