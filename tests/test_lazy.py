"""Dask input stays lazy and computes to the numpy result, across chunk borders."""

from __future__ import annotations

import numpy as np
import pytest

import napari_denoise as nd

from _numeric_helpers import FILTERS, call, noisy_image

da = pytest.importorskip("dask.array")


class Tripwire:
    """A dask array whose blocks raise while armed and count their computations."""

    def __init__(self, array, chunks):
        self.armed = True
        self.calls = 0

        def load(block):
            if self.armed:
                raise AssertionError("a block was computed while the filter was only being set up")
            self.calls += 1
            return block

        meta = np.empty((0,) * array.ndim, array.dtype)
        self.array = da.from_array(array, chunks=chunks).map_blocks(load, dtype=array.dtype, meta=meta)


@pytest.mark.parametrize("name", sorted(FILTERS))
def test_lazy_in_lazy_out_and_equal_to_numpy(name):
    x = noisy_image((3, 26, 31), seed=1)
    x[1] *= 4  # slices with different noise levels
    wire = Tripwire(x, chunks=(1, 7, 8))  # chunks smaller than most kernels
    out = call(name, wire.array)
    assert isinstance(out, da.Array)
    assert out.shape == x.shape
    assert out.dtype == (np.bool_ if name == "canny" else np.float32)
    assert wire.calls == 0
    wire.armed = False
    computed = out.compute(scheduler="synchronous")
    assert wire.calls > 0
    expected = call(name, x)
    assert computed.dtype == expected.dtype
    if name == "non_local_means":  # fast-mode integral images: rounding only
        np.testing.assert_allclose(computed, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())
    else:
        np.testing.assert_array_equal(computed, expected)


@pytest.mark.parametrize("name", ["gaussian", "median", "sobel", "gradient_magnitude", "bilateral", "wavelet", "canny"])
def test_lazy_4d_stack_with_explicit_axes(name):
    x = noisy_image((2, 3, 18, 20), seed=2)
    d = da.from_array(x, chunks=(1, 2, 5, 6))
    out = call(name, d, spatial_axes=(1, 2, 3))
    assert isinstance(out, da.Array)
    np.testing.assert_array_equal(out.compute(), call(name, x, spatial_axes=(1, 2, 3)))


@pytest.mark.parametrize("mode", ["wrap", "constant", "nearest"])
def test_lazy_border_modes(mode):
    x = noisy_image((22, 27), seed=3)
    d = da.from_array(x, chunks=(6, 5))
    for f in (nd.gaussian, nd.sobel, nd.difference_of_gaussians):
        np.testing.assert_array_equal(f(d, mode=mode).compute(), f(x, mode=mode))


def test_lazy_integer_input_and_spacing():
    x = np.clip(noisy_image((2, 20, 24), seed=4), 0, 255).astype(np.uint8)
    d = da.from_array(x, chunks=(1, 4, 5))
    out = nd.mean(d, 1.0, spacing=(0.5, 0.2, 0.25))
    np.testing.assert_array_equal(out.compute(), nd.mean(x, 1.0, spacing=(0.5, 0.2, 0.25)))


def test_lazy_input_untouched_and_progress():
    x = noisy_image((20, 24), seed=5)
    d = da.from_array(x.copy(), chunks=(5, 5))
    seen = []
    out = nd.gaussian(d, 1.0, progress=lambda done, total: seen.append((done, total)))
    assert seen and seen[-1][0] == seen[-1][1]
    out.compute()
    np.testing.assert_array_equal(d.compute(), x)
    with pytest.raises(nd.Cancelled):
        nd.gaussian(d, 1.0, cancel=lambda: True)


def test_zarr_like_chunked_input_becomes_dask():
    zarr = pytest.importorskip("zarr")
    x = noisy_image((16, 18), seed=6)
    z = zarr.zeros(x.shape, chunks=(5, 5), dtype=x.dtype)
    z[:] = x
    out = nd.gaussian(z, 1.0)
    assert isinstance(out, da.Array)
    np.testing.assert_array_equal(out.compute(), nd.gaussian(x, 1.0))


def test_tripwire_itself_fires():
    # the guard used above does catch computation at call time
    wire = Tripwire(noisy_image((8, 9)), chunks=(4, 4))
    with pytest.raises(AssertionError, match="computed"):
        nd.estimate_noise(wire.array)


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [("gaussian", {"sigma": 3.0}), ("median", {"size": 7}), ("difference_of_gaussians", {"low_sigma": 2.0}),
     ("gradient_magnitude", {"sigma": (1.0, 2.5)}), ("mean", {"size": (1, 9)}), ("median", {"size": (4, 6)})],
)
def test_lazy_kernel_wider_than_chunks(name, kwargs):
    x = noisy_image((23, 29), seed=7)
    d = da.from_array(x, chunks=(4, 5))  # halo (up to 12 px) > chunk
    out = getattr(nd, name)(d, **kwargs)
    np.testing.assert_array_equal(out.compute(), getattr(nd, name)(x, **kwargs))
