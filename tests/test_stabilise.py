"""Generalised Anscombe transform, its exact unbiased inverse, and noise_model= on the denoisers."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import napari_denoise as nd
from napari_denoise import _recipe, _scheduler
from napari_denoise._layer_axes import layer_axes
from napari_denoise._registry import by_name
from napari_denoise.filters.stabilise import stabilised

from _numeric_helpers import assert_float32_close, noisy_image, psnr, tiles_of
from test_noise_model import blobs

#: the denoisers with noise_model=, each with explicit intensity parameters in units of the noise σ
STABILISED = {
    "bilateral": {"sigma_spatial": 1.0, "sigma_intensity": 2.0},
    "total_variation": {"weight": 1.0, "max_num_iter": 30},
    "wavelet": {"sigma": 1.0},
    "non_local_means": {"h": 0.8, "sigma": 1.0, "patch_size": 3, "patch_distance": 3},
    "block_matching": {"sigma": 1.0, "profile": "fast"},
}
# intensity parameters, which scale with the noise and so are left to the defaults in some tests
INTENSITY = {"sigma_intensity", "weight", "sigma", "h"}


def photon_image(shape=(96, 96), peak=20.0, gain=1.0, offset=0.0, read_sigma=0.0, seed=0):
    clean = blobs(shape, peak=peak, background=1.0, seed=seed)
    rng = np.random.default_rng(seed + 100)
    noisy = offset + gain * rng.poisson(clean) + rng.normal(0, read_sigma, shape)
    return (offset + gain * clean), noisy.astype(np.float32)


# -- the transform -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "model",
    [nd.NoiseModel(1.0, 0.0, 0.0), nd.NoiseModel(2.5, 100.0, 4.0), nd.NoiseModel(0.01, 0.0, 0.02)],
    ids=["counts", "camera", "scaled-float"],
)
def test_variance_is_one_across_intensities(model):
    rng = np.random.default_rng(1)
    for photons in (5.0, 20.0, 100.0, 1000.0):
        samples = model.offset + model.gain * rng.poisson(photons, 200_000) + rng.normal(0, model.read_sigma, 200_000)
        stabilised_samples = nd.anscombe(samples, model)
        assert stabilised_samples.dtype == np.float32
        assert np.std(stabilised_samples) == pytest.approx(1.0, abs=0.06), photons


def test_classic_anscombe_and_gaussian_limit():
    x = np.arange(0, 50, dtype=np.float64)
    np.testing.assert_allclose(nd.anscombe(x), 2 * np.sqrt(x + 3 / 8), rtol=1e-6)
    gaussian = nd.NoiseModel.gaussian(4.0, offset=10.0)
    np.testing.assert_allclose(nd.anscombe(x, gaussian), (x - 10.0) / 4.0, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(nd.inverse_anscombe(nd.anscombe(x, gaussian), gaussian), x, rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("read_sigma", [0.0, 0.5, 2.0])
def test_exact_inverse_is_unbiased_at_low_counts(read_sigma):
    """inverse(E[f(z)]) = λ for the exact inverse; the algebraic inverse is biased below ~10 photons."""
    rng = np.random.default_rng(2)
    model = nd.NoiseModel(1.0, 0.0, read_sigma)
    for photons in (0.5, 1.0, 2.0, 5.0, 20.0, 100.0):
        samples = rng.poisson(photons, 400_000) + rng.normal(0, read_sigma, 400_000)
        mean_transform = np.array([np.mean(nd.anscombe(samples, model).astype(np.float64))])
        exact = float(nd.inverse_anscombe(mean_transform, model)[0])
        closed = float(nd.inverse_anscombe(mean_transform, model, method="closed-form")[0])
        algebraic = float(nd.inverse_anscombe(mean_transform, model, method="algebraic")[0])
        assert exact == pytest.approx(photons, abs=0.02 + 0.005 * photons), photons
        if photons >= 2:
            assert closed == pytest.approx(photons, abs=0.05 + 0.005 * photons), photons
        if photons <= 5 and read_sigma < 1:
            # the plain inverse of the mean of the transform underestimates markedly
            assert abs(algebraic - photons) > 3 * abs(exact - photons) + 0.05, photons


def test_inverse_scales_with_the_model():
    model = nd.NoiseModel(3.0, 200.0, 6.0)
    values = np.linspace(0, 40, 50)
    photons = nd.inverse_anscombe(values, nd.NoiseModel(1.0, 0.0, 2.0))
    np.testing.assert_allclose(nd.inverse_anscombe(values, model), 200.0 + 3.0 * photons, rtol=1e-5)


def test_transform_dask_in_dask_out_and_arguments_checked():
    da = pytest.importorskip("dask.array")
    x = np.random.default_rng(3).poisson(10, (20, 20)).astype(np.float32)
    lazy = nd.anscombe(da.from_array(x, chunks=10))
    assert isinstance(lazy, da.Array)
    np.testing.assert_array_equal(lazy.compute(), nd.anscombe(x))
    np.testing.assert_array_equal(nd.inverse_anscombe(lazy).compute(), nd.inverse_anscombe(nd.anscombe(x)))
    with pytest.raises(TypeError, match="^model"):
        nd.anscombe(x, "poisson")
    with pytest.raises(ValueError, match="^model"):
        nd.anscombe(x, nd.NoiseModel(0.0, 0.0, 0.0, "gaussian"))
    with pytest.raises(ValueError, match="^method"):
        nd.inverse_anscombe(x, method="fast")


@pytest.mark.parametrize("shape", [(7,), (5, 9), (3, 4, 6), (2, 1, 3, 5)])
def test_transforms_piece_by_piece_equal_the_whole_array_formulas(shape, monkeypatch):
    # pieces of 4 values (across whole rows, or within one): the float64 formulas are
    # elementwise, so the float32 results are the same bit for bit, into a strided out too
    from napari_denoise.filters import stabilise

    monkeypatch.setattr(stabilise, "_PIECE_VALUES", 4)
    pieces = list(stabilise._pieces(shape, 4))
    covered = np.zeros(shape, int)
    for index in pieces:
        covered[index] += 1
    assert (covered == 1).all()
    rng = np.random.default_rng(len(shape))
    model = nd.NoiseModel(2.5, 100.0, 4.0)
    x = np.array(100 + 2.5 * rng.poisson(6.0, shape) + rng.normal(0, 4, shape), np.float32).reshape(shape)
    x[(0,) * len(shape)] = np.nan
    forward = stabilise._forward64(x, model).astype(np.float32)
    np.testing.assert_array_equal(nd.anscombe(x, model), forward)
    np.testing.assert_array_equal(stabilise._forward_block(x, model, threads=3), forward)  # pieces on threads
    for method in stabilise.INVERSE_METHODS:
        whole = stabilise._inverse64(forward, model, method).astype(np.float32)
        np.testing.assert_array_equal(nd.inverse_anscombe(forward, model, method=method), whole)
        np.testing.assert_array_equal(stabilise._inverse_block(forward, model, method, threads=3), whole)
        strided = np.full(shape[:-1] + (2 * shape[-1],), -1.0, np.float32)[..., ::2]
        stabilise._inverse_block(forward, model, method, strided)
        np.testing.assert_array_equal(strided, whole)


# -- noise_model= on the denoisers -----------------------------------------------------------------
@pytest.mark.parametrize("name", list(STABILISED))
def test_gaussian_choice_is_bit_identical_to_the_plain_denoiser(name):
    function = getattr(nd, name)
    x = noisy_image((48, 52), seed=4)
    builder = inspect.unwrap(function.op)  # the denoiser as it was before noise_model existed
    assert "noise_model" not in inspect.signature(builder).parameters
    kwargs = {k: v for k, v in STABILISED[name].items() if k not in INTENSITY}
    plain = _scheduler.run(builder(x, **kwargs), x)
    np.testing.assert_array_equal(function(x, noise_model="gaussian", **kwargs), plain)
    op = builder(x, **kwargs)
    assert stabilised(op, "gaussian") is op


@pytest.mark.parametrize("name", list(STABILISED))
def test_slice_context_does_not_transform_the_slice_it_does_not_read(name, monkeypatch):
    # the contexts only ask a stabilised slice for its noise level (1): the transform runs on
    # the tiles the kernel denoises, not once more on the whole slice for the context
    from napari_denoise.filters import stabilise

    _, x = photon_image(peak=15.0, gain=2.0, offset=100.0, read_sigma=1.0)
    op = getattr(nd, name).op(x, noise_model="poisson", **STABILISED[name])
    transformed = []
    real = stabilise._forward_block
    monkeypatch.setattr(stabilise, "_forward_block", lambda *a: transformed.append(a[0].shape) or real(*a))
    model, _ = op.context(x, _scheduler.TileToken(np.zeros(1, np.uint8)))
    assert model.kind == "poisson-gaussian" and transformed == []
    lazy = stabilise._StabilisedSlice(x, model)  # read as an array, it is the transform
    np.testing.assert_array_equal(np.asarray(lazy), real(x, model))
    assert lazy.shape == x.shape and np.asarray(lazy, np.float64).dtype == np.float64


@pytest.mark.parametrize("name", list(STABILISED))
def test_poisson_is_stabilise_denoise_invert(name):
    function = getattr(nd, name)
    clean, x = photon_image(peak=15.0, gain=2.0, offset=100.0, read_sigma=1.0)
    kwargs = STABILISED[name]
    got = function(x, noise_model="poisson", **kwargs)
    model = nd.estimate_noise_model(x)
    assert model.kind == "poisson-gaussian"
    expected = nd.inverse_anscombe(function(nd.anscombe(x, model), **kwargs), model)
    assert got.dtype == np.float32
    assert_float32_close(got, expected, rtol=1e-5, atol_rel=1e-5)
    # a NoiseModel given as it is gives the same
    np.testing.assert_array_equal(function(x, noise_model=model, **kwargs), got)
    assert psnr(clean, got) > psnr(clean, x) + 3


def test_bilateral_slope_through_the_transforms_is_the_derivative():
    clean, x = photon_image(shape=(40, 44), peak=15.0, gain=2.0, offset=100.0, read_sigma=1.0)
    model = nd.NoiseModel(2.0, 100.0, 1.0, "poisson-gaussian")
    for noise_model in (model, "gaussian"):
        op = nd.bilateral.op(x, 1.5, 2.0 if noise_model is model else 20.0, noise_model=noise_model)
        both = _scheduler.run(op.with_slope(), x)
        np.testing.assert_array_equal(both["value"], _scheduler.run(op, x))
        rng = np.random.default_rng(5)
        for index in [(0, 0), (39, 43)] + [tuple(int(rng.integers(0, n)) for n in x.shape) for _ in range(10)]:
            up, down = x.astype(np.float64), x.astype(np.float64)
            up[index] += 0.05
            down[index] -= 0.05
            expected = (_scheduler.run(op, up)[index] - _scheduler.run(op, down)[index]) / 0.1
            # the exact inverse is a table interpolated linearly: its slope is the segment's
            assert both["slope"][index] == pytest.approx(expected, abs=0.01, rel=0.02), (noise_model, index)
    # only filters that compute it have one; stabilising drops a linear filter's diagonal
    with pytest.raises(ValueError, match="slope"):
        nd.total_variation.op(x).with_slope()
    assert stabilised(nd.gaussian.op(x), model).diagonal is None


@pytest.mark.parametrize("name", list(STABILISED))
def test_auto_picks_by_the_fitted_model(name):
    function = getattr(nd, name)
    kwargs = {k: v for k, v in STABILISED[name].items() if k not in INTENSITY}
    gaussian_data = noisy_image((64, 64), seed=5, noise=5.0)
    assert nd.estimate_noise_model(gaussian_data).kind == "gaussian"
    np.testing.assert_array_equal(
        function(gaussian_data, noise_model="auto", **kwargs), function(gaussian_data, noise_model="gaussian", **kwargs)
    )
    _, photons = photon_image(peak=15.0, seed=6)
    np.testing.assert_array_equal(
        function(photons, noise_model="auto", **kwargs), function(photons, noise_model="poisson", **kwargs)
    )


def test_defaults_inside_use_unit_noise():
    """Noise-derived defaults are computed from σ = 1 on the stabilised image, not re-estimated there."""
    _, x = photon_image(peak=15.0, seed=7)
    model = nd.estimate_noise_model(x)
    by_default = nd.bilateral(x, 1.0, noise_model="poisson")
    explicit = nd.bilateral(x, 1.0, 4.0, noise_model="poisson")  # default sigma_intensity is 4 σ̂
    np.testing.assert_array_equal(by_default, explicit)
    assert model.kind == "poisson-gaussian"


def test_stacks_are_fitted_per_slice():
    _, a = photon_image(peak=10.0, gain=1.0, seed=8)
    _, b = photon_image(peak=10.0, gain=5.0, offset=50.0, seed=9)
    stack = np.stack([a, b])
    got = nd.wavelet(stack, sigma=1.0, spatial_axes=(1, 2), noise_model="poisson")
    np.testing.assert_array_equal(got[0], nd.wavelet(a, sigma=1.0, noise_model="poisson"))
    np.testing.assert_array_equal(got[1], nd.wavelet(b, sigma=1.0, noise_model="poisson"))


@pytest.mark.parametrize("name", ["bilateral", "non_local_means"])
def test_tiled_equals_untiled_and_lazy(name):
    da = pytest.importorskip("dask.array")
    function = getattr(nd, name)
    kwargs = STABILISED[name]
    _, x = photon_image(shape=(420, 650), peak=15.0, seed=10)
    assert len(tiles_of(function, x, noise_model="poisson", **kwargs)) > 1
    one = function(x, noise_model="poisson", workers=1, **kwargs)
    two = function(x, noise_model="poisson", workers=2, **kwargs)
    assert_float32_close(two, one, rtol=1e-5, atol_rel=1e-6)
    lazy = function(da.from_array(x, chunks=(210, 325)), noise_model="poisson", **kwargs)
    assert isinstance(lazy, da.Array)
    assert_float32_close(lazy.compute(), one, rtol=1e-5, atol_rel=1e-6)


def test_noise_model_argument_checked():
    x = noisy_image((32, 32))
    with pytest.raises(ValueError, match="^noise_model"):
        nd.wavelet(x, noise_model="photon")
    with pytest.raises(TypeError, match="^noise_model"):
        nd.wavelet(x, noise_model=3)
    assert "noise_model" not in inspect.signature(nd.gaussian).parameters


def test_input_not_modified():
    _, x = photon_image(peak=15.0, seed=11)
    before = x.copy()
    nd.total_variation(x, noise_model="poisson", max_num_iter=10)
    np.testing.assert_array_equal(x, before)


@pytest.mark.parametrize("choice", ["poisson", "auto", "gaussian"])
def test_recipe_records_and_replays_the_choice(choice):
    spec = by_name("non_local_means")
    _, x = photon_image(peak=15.0, seed=12)
    axes = layer_axes(2, (1.0, 1.0), ("pixel",) * 2, ("y", "x"))
    values = {"h": None, "sigma": None, "patch_size": 3, "patch_distance": 3, "fast_mode": True, "noise_model": choice}
    kwargs = _recipe.call_arguments(spec, axes, values)
    assert kwargs["noise_model"] == choice
    meta = _recipe.recipe(spec, "photons", axes, values, kwargs)
    assert meta["parameters"]["noise_model"] == choice
    assert f"noise_model={choice!r}" in meta["python"]

    class Layer:
        metadata = {"napari_denoise": meta}

    recipe = nd.recipe_of(Layer())
    assert recipe.parameters["noise_model"] == choice
    np.testing.assert_array_equal(nd.apply_recipe(recipe, x), nd.non_local_means(x, **kwargs))
