"""Property-based tests: random shapes (2-D to 5-D), dtypes and spatial-axis choices."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import ndimage
from skimage import filters

import napari_denoise as nd

from _numeric_helpers import DENOISERS, FILTERS, call

DTYPES = [np.uint8, np.uint16, np.int16, np.float32, np.float64, np.bool_]
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def images(draw, min_dims=2, max_dims=5, min_side=1, max_side=6):
    ndim = draw(st.integers(min_dims, max_dims))
    shape = tuple(draw(st.lists(st.integers(min_side, max_side), min_size=ndim, max_size=ndim)))
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    if dtype == np.bool_:
        x = rng.random(shape) > 0.5
    elif dtype.kind in "ui":
        lo = 0 if dtype.kind == "u" else -100
        x = rng.integers(lo, 200, shape).astype(dtype)
    else:
        x = (rng.normal(50, 20, shape)).astype(dtype)
    return x


@st.composite
def image_and_axes(draw, min_axes=1, max_axes=3, **kwargs):
    x = draw(images(min_dims=max(2, min_axes), **kwargs))
    k = draw(st.integers(min_axes, min(max_axes, x.ndim)))
    axes = tuple(sorted(draw(st.permutations(range(x.ndim)))[:k]))
    return x, axes


def independent_index(draw, x, axes):
    """A random index over the non-spatial axes (slices for the spatial ones)."""
    return tuple(
        slice(None) if ax in axes else draw(st.integers(0, x.shape[ax] - 1)) for ax in range(x.ndim)
    )


@SETTINGS
@given(data=st.data(), name=st.sampled_from(sorted(FILTERS)))
def test_independent_axes_are_exact(data, name):
    min_axes = 2 if name in ("canny", "non_local_means", "block_matching") else 1
    x, axes = data.draw(image_and_axes(min_axes=min_axes, max_side=5))
    before = x.copy()
    out = call(name, x, spatial_axes=axes)
    np.testing.assert_array_equal(x, before)
    assert out.shape == x.shape
    assert out.dtype == (np.bool_ if name == "canny" else np.float32)
    index = independent_index(data.draw, x, axes)
    # x[index] keeps the spatial axes in their original order
    np.testing.assert_array_equal(out[index], call(name, x[index]))


@SETTINGS
@given(data=st.data(), mode=st.sampled_from(["reflect", "nearest", "mirror", "constant", "wrap"]))
def test_gaussian_mean_median_equal_scipy(data, mode):
    x, axes = data.draw(image_and_axes())
    k = len(axes)
    sigma = tuple(data.draw(st.floats(0, 3)) for _ in range(k))
    size = tuple(data.draw(st.integers(1, 4)) for _ in range(k))
    f32 = x.astype(np.float32)
    full_sigma = [0.0] * x.ndim
    full_size = [1] * x.ndim
    for ax, s, n in zip(axes, sigma, size):
        full_sigma[ax] = s
        full_size[ax] = n
    g = nd.gaussian(x, sigma, spatial_axes=axes, mode=mode, cval=1.5)
    np.testing.assert_allclose(
        g, ndimage.gaussian_filter(f32, full_sigma, mode=mode, cval=1.5), rtol=1e-5, atol=1e-4
    )
    m = nd.mean(x, size, spatial_axes=axes, mode=mode)
    np.testing.assert_allclose(m, ndimage.uniform_filter(f32, full_size, mode=mode), rtol=1e-5, atol=1e-4)
    med = nd.median(x, size, spatial_axes=axes, mode=mode)
    np.testing.assert_array_equal(med, ndimage.median_filter(f32, full_size, mode=mode))


@SETTINGS
@given(data=st.data(), name=st.sampled_from(["sobel", "scharr", "prewitt"]),
       mode=st.sampled_from(["reflect", "nearest", "mirror", "constant", "wrap"]))
def test_edge_magnitude_equals_skimage(data, name, mode):
    x, axes = data.draw(image_and_axes(min_axes=1, max_axes=3))
    out = getattr(nd, name)(x, spatial_axes=axes, mode=mode)
    f32 = np.moveaxis(x.astype(np.float32), axes, range(x.ndim - len(axes), x.ndim))
    lead = f32.shape[: x.ndim - len(axes)]
    moved_out = np.moveaxis(out, axes, range(x.ndim - len(axes), x.ndim))
    for index in np.ndindex(*lead):
        piece = f32[index]
        expected = getattr(filters, name)(piece, mode=mode)
        if piece.ndim == 1:  # skimage returns the signed derivative in 1-D
            expected = np.abs(expected)
        np.testing.assert_allclose(moved_out[index], expected, rtol=1e-5, atol=1e-4)


@SETTINGS
@given(x=images(min_dims=2, max_dims=4, min_side=2, max_side=6), c=st.floats(0.1, 10))
def test_spacing_equals_pixel_sigma(x, c):
    # sigma c * s in units with voxel size s is sigma c in pixels
    k = min(3, x.ndim)
    spacing = tuple(0.25 + 0.5 * i for i in range(k))
    out = nd.gaussian(x, [c * s for s in spacing], spacing=spacing)
    np.testing.assert_allclose(out, nd.gaussian(x, c), rtol=1e-6, atol=1e-5)


@SETTINGS
@given(x=images(min_dims=2, max_dims=3, min_side=4, max_side=8))
def test_denoisers_finite_and_bounded(x):
    # edge-preserving denoisers are weighted averages (or near): stay within the data range
    f32 = x.astype(np.float32)
    lo, hi = float(f32.min()), float(f32.max())
    span = max(hi - lo, 1.0)
    for name in ("bilateral", "non_local_means", "median", "mean", "gaussian"):
        out = call(name, x)
        assert np.all(np.isfinite(out))
        assert out.min() >= lo - 1e-4 * span and out.max() <= hi + 1e-4 * span, name


# -- the contract of every public function (#11, point 5) ------------------------------------
#
# Any input a user can pass (every dtype, 1-D to 5-D with empty and single-voxel
# axes, constant and piecewise-constant content, NaN/inf, any memory layout, and
# extreme parameter values) gives either a finite result (for finite input) that
# equals the same call on a C-contiguous copy, with the input left unchanged, or
# a ValueError/TypeError/MemoryError whose message starts with the name of the
# offending parameter (the filter's name for the memory guard), within bounded
# time. The compiled kernels run in a child process, so that a crash in one
# fails this test with its output instead of killing the test session.

import atexit  # noqa: E402
import dataclasses  # noqa: E402
import shutil  # noqa: E402
from collections import Counter  # noqa: E402
import inspect  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from datetime import timedelta  # noqa: E402
from pathlib import Path  # noqa: E402

from napari_denoise import NoiseModel, Recipe, apply_recipe  # noqa: E402
from napari_denoise._registry import widget_parameters  # noqa: E402
from napari_denoise.recipes import _spec  # noqa: E402

CONTRACT_DTYPES = [np.bool_, np.uint8, np.uint16, np.int16, np.int32, np.float32, np.float64]
_CHILD = "NAPARI_DENOISE_PROPERTY_CHILD"
#: Examples per public function; the child process runs them all in about a minute on 2 cores.
CONTRACT_EXAMPLES = int(os.environ.get("NAPARI_DENOISE_PROPERTY_EXAMPLES", "20"))
#: Most seconds one example (a few calls on arrays of at most 5**5 voxels) may take.
EXAMPLE_SECONDS = 20
OUTCOMES: Counter = Counter()  # (function, "ran" | "refused") -> examples
_MEMMAPS = Path(tempfile.mkdtemp(prefix="napari-denoise-properties-"))
atexit.register(shutil.rmtree, _MEMMAPS, ignore_errors=True)

#: Extreme and wrong values every number-like parameter is tried with.
EXTREME_NUMBERS = [
    0, 0.0, -1.0, 5e-324, 1e-45, 1e-30, 1e-12, 0.3, 1, 2, 3, 7, 1e5, 1e10, 1e30, 1e308,
    float("inf"), float("-inf"), float("nan"), 10**5, 10**400, -(10**400), True, "abc", (1.0, 2.0), None,
]
EXTREME_WORKERS = [None, 1, 2, 0, -1, 3.5, 10**6, 10**400, True, "2"]
EXTREME_AXES = [None, 0, -1, (0,), (-2, -1), (0, 0), (5,), (1.5,), "x", ()]
EXTREME_MODELS = [
    None,
    lambda: NoiseModel.gaussian(1.0),
    lambda: NoiseModel(1e-300, 0.0, 1e-300),
    lambda: NoiseModel(1e300, -1e300, 1e300),
    lambda: NoiseModel(2.0, 100.0, 0.0),
    lambda: NoiseModel(0.0, 0.0, 5e-324, "gaussian"),
    "poisson",
]
#: Parameters whose values come from a list of names.
CHOICES = {
    "mode": ["reflect", "nearest", "mirror", "constant", "wrap", "bogus"],
    "method": ["BayesShrink", "VisuShrink", "exact", "closed-form", "algebraic", "bogus"],
    "threshold_mode": ["soft", "hard", "bogus"],
    "wavelet_name": ["db1", "haar", "bogus"],
    "noise_model": ["gaussian", "poisson", "auto", "bogus", None],
    "profile": ["normal", "fast", "bogus"],
    "fast_mode": [True, False, 1, "yes"],
    "use_quantiles": [True, False],
}

PUBLIC = [*sorted(FILTERS), "estimate_noise", "estimate_noise_model", "anscombe", "inverse_anscombe", "recipe"]


def _parameters(name):
    """The parameters of a public function that a caller may set (besides the image)."""
    if name == "recipe":
        return []
    skip = {"image", "progress", "cancel"}
    return [p for p in inspect.signature(getattr(nd, name)).parameters if p not in skip]


@st.composite
def contents(draw):
    """An array of any dtype, 1-D to 5-D (sides 0 to 5), random, constant or piecewise constant, maybe NaN/inf."""
    ndim = draw(st.integers(1, 5))
    shape = tuple(draw(st.lists(st.integers(0, 5), min_size=ndim, max_size=ndim)))
    dtype = np.dtype(draw(st.sampled_from(CONTRACT_DTYPES)))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    kind = draw(st.sampled_from(["random", "constant", "piecewise", "extreme"]))
    if dtype == np.bool_:
        x = rng.random(shape) > 0.5 if kind == "random" else np.full(shape, kind != "constant")
        return x
    info = np.iinfo(dtype) if dtype.kind in "ui" else np.finfo(dtype)
    if kind == "random":
        x = rng.integers(max(info.min, -300), 300, shape) if dtype.kind in "ui" else rng.normal(50, 20, shape)
    elif kind == "constant":
        x = np.full(shape, draw(st.sampled_from([0, 1, 37])))
    elif kind == "piecewise":  # noise-free: a few flat regions
        x = np.zeros(shape)
        if x.size:
            x[tuple(slice(0, max(1, s // 2)) for s in shape)] = 100
            x.flat[-1] = 7
    elif dtype.kind in "ui":  # the dtype's extremes
        x = rng.choice(np.array([info.min, info.max, 0], dtype=dtype), shape)
    else:  # large and tiny magnitudes, within the intensity range whose squares stay finite in float32
        x = rng.choice(np.array([-1e15, 1e15, 1e-30, 0.0]), shape)
    x = np.asarray(x).astype(dtype)
    if dtype.kind == "f" and x.size and draw(st.booleans()):
        x.flat[draw(st.integers(0, x.size - 1))] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    return x


def _laid_out(x, layout, index):
    """``x`` with the same values in another memory layout."""
    if layout == "fortran":
        return np.asfortranarray(x)
    if layout == "strided":  # a non-contiguous view of a larger array
        big = np.repeat(x, 2, axis=-1) if x.ndim else x
        return big[..., ::2]
    if layout == "reversed":  # negative strides
        return np.flip(np.flip(x).copy())
    if layout == "read-only":
        y = x.copy()
        y.setflags(write=False)
        return y
    if layout == "memmap":
        if x.size == 0:
            return x
        path = _MEMMAPS / f"{index}.dat"
        m = np.memmap(path, dtype=x.dtype, mode="w+", shape=x.shape)
        m[...] = x
        m.flush()
        return np.memmap(path, dtype=x.dtype, mode="r", shape=x.shape)
    return x


def _value(draw, parameter):
    if parameter == "workers":
        return draw(st.sampled_from(EXTREME_WORKERS))
    if parameter == "spatial_axes":
        return draw(st.sampled_from(EXTREME_AXES))
    if parameter == "model":
        return draw(st.sampled_from(EXTREME_MODELS))  # made in the call: NoiseModel checks its fields
    if parameter in CHOICES:
        return draw(st.sampled_from(CHOICES[parameter]))
    return draw(st.sampled_from(EXTREME_NUMBERS))


def _call(name, image, kwargs):
    if name == "recipe":
        return apply_recipe(Recipe(**kwargs["recipe"]), image, workers=kwargs.get("workers"))
    kwargs = {k: v() if callable(v) else v for k, v in kwargs.items()}
    return getattr(nd, name)(image, **kwargs)


def _names_a_parameter(name, kwargs, message):
    names = set(_parameters(name)) | {"image", "spatial_axes", "workers", name}
    if name == "recipe":
        recipe = kwargs["recipe"]
        names |= {"parameters", "filter", "lengths", "process", "spatial_labels", "axes", "spacing", recipe["filter"]}
        names |= {p.name for p in widget_parameters(_spec(recipe["filter"]))}
    if name in ("anscombe", "inverse_anscombe"):
        names |= {f.name for f in dataclasses.fields(NoiseModel)}
    return any(message.startswith(f"{n}:") or message.startswith(f"{n} ") for n in names)


def _finite(result):
    if isinstance(result, NoiseModel):
        return all(np.isfinite([result.gain, result.offset, result.read_sigma]))
    return bool(np.all(np.isfinite(np.asarray(result, dtype=np.float64))))


def _same(a, b):
    if isinstance(a, NoiseModel):
        return a == b
    return np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True)


@st.composite
def calls(draw, name):
    """``(name, image, kwargs)`` for the public function ``name`` with some parameters set to extreme values."""
    x = draw(contents())
    kwargs = dict(FILTERS.get(name, {}))
    if name == "recipe":
        filter_name = draw(st.sampled_from(sorted(FILTERS)))
        spec = _spec(filter_name)
        params = {p.name: _value(draw, p.name) for p in widget_parameters(spec) if draw(st.booleans())}
        kwargs = {"recipe": {"filter": filter_name, "parameters": {**FILTERS[filter_name], **params},
                             "lengths": "pixels", "spatial_labels": ("y", "x")}}
        x = x if x.ndim >= 2 else x.reshape((1,) * (2 - x.ndim) + x.shape)
    else:
        # half the calls keep the defaults, so that every function is also seen giving a result
        extreme = min(len(_parameters(name)), draw(st.sampled_from([0, 0, 1, 2])))
        for parameter in draw(st.lists(st.sampled_from(_parameters(name)), min_size=extreme, max_size=extreme,
                                       unique=True)):
            kwargs[parameter] = _value(draw, parameter)
    layout = draw(st.sampled_from(["C", "fortran", "strided", "reversed", "read-only", "memmap"]))
    return x, _laid_out(x, layout, draw(st.integers(0, 10**9))), kwargs


@settings(
    max_examples=CONTRACT_EXAMPLES,
    deadline=timedelta(seconds=EXAMPLE_SECONDS),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def _contract(name, data):
    values, image, kwargs = data.draw(calls(name))
    before = np.array(image, copy=True)
    try:
        result = _call(name, image, kwargs)
    except (ValueError, TypeError, MemoryError) as exc:
        message = str(exc)
        assert _names_a_parameter(name, kwargs, message), f"{name}({kwargs}): {type(exc).__name__} {message!r}"
        OUTCOMES[name, "refused"] += 1
        return
    np.testing.assert_array_equal(image, before)  # input unchanged (NaN equal to NaN)
    if name not in ("estimate_noise", "estimate_noise_model"):
        assert np.shape(result) == image.shape
    if _finite(values):
        assert _finite(result), f"{name}({kwargs}) of finite {values.dtype} {values.shape}: not finite"
    again = _call(name, np.ascontiguousarray(values).copy(), kwargs)
    assert _same(result, again), f"{name}({kwargs}): differs from the same call on a C-contiguous copy"
    OUTCOMES[name, "ran"] += 1


def test_public_functions_keep_the_contract():
    if os.environ.get(_CHILD):
        OUTCOMES.clear()
        for name in PUBLIC:
            _contract(name)
        print(sorted(OUTCOMES.items()))
        # the examples reach every function, both with a result and refused
        assert {name for name, outcome in OUTCOMES if outcome == "ran"} == set(PUBLIC)
        return
    here = Path(__file__)
    env = {**os.environ, _CHILD: "1"}
    child = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "--no-header",
         f"{here}::test_public_functions_keep_the_contract"],
        cwd=here.parent.parent, env=env, capture_output=True, text=True, timeout=900,
    )
    assert child.returncode == 0, f"child process exited with {child.returncode}:\n{child.stdout[-6000:]}\n{child.stderr[-3000:]}"


# -- blank and noise-free data (#11, point 1), every filter and noise model ------------------
def _blank_cases():
    rng = np.random.default_rng(3)
    timelapse = rng.poisson(50, (4, 32, 32)).astype(np.uint16)
    timelapse[2] = 0  # a blank frame (shutter closed, dropped frame)
    piecewise = np.zeros((32, 36), np.float32)
    piecewise[8:20, 5:25] = 100
    piecewise[20:, :10] = 37
    piecewise_3d = np.zeros((8, 24, 24), np.uint8)
    piecewise_3d[2:6, 4:12, 4:20] = 200
    return {
        "constant 2-D": (np.full((32, 32), 7, np.uint16), {}),
        "zero 3-D": (np.zeros((8, 24, 24), np.float32), {}),
        "constant 3-D": (np.full((8, 24, 24), 1000.5, np.float32), {}),
        "blank frame in a Poisson time-lapse": (timelapse, {"spatial_axes": (1, 2)}),
        "piecewise constant 2-D": (piecewise, {}),
        "piecewise constant 3-D": (piecewise_3d, {}),
    }


BLANK = _blank_cases()
NOISE_MODELS = ["bilateral", "total_variation", "wavelet", "non_local_means", "block_matching"]


@pytest.mark.parametrize("case", list(BLANK))
@pytest.mark.parametrize(
    "name, noise_model",
    [(name, None) for name in sorted(FILTERS)] + [(n, m) for n in NOISE_MODELS for m in ("poisson", "auto")],
)
def test_blank_and_noise_free_input_gives_finite_results(name, noise_model, case):
    image, kwargs = BLANK[case]
    if noise_model is not None:
        kwargs = {**kwargs, "noise_model": noise_model}
    out = call(name, image, **kwargs)
    assert out.shape == image.shape
    assert np.isfinite(out).all()
    if "time-lapse" in case and name in DENOISERS:
        np.testing.assert_array_equal(out[2], 0)  # the blank frame stays blank


@pytest.mark.parametrize("case", list(BLANK))
def test_noise_estimates_of_blank_input(case):
    image, kwargs = BLANK[case]
    if "time-lapse" in case:
        assert nd.estimate_noise(image[2]) == 0.0
        assert nd.estimate_noise_model(image[2]) == NoiseModel.gaussian(0.0, 0.0)
        assert np.isfinite(nd.estimate_noise(image, **kwargs))
    else:
        assert nd.estimate_noise(image) == 0.0  # exactly, as documented
        model = nd.estimate_noise_model(image)
        assert model.gain == 0 and model.read_sigma == 0
        with pytest.raises(ValueError, match="^model: a noise-free model"):
            nd.anscombe(image, model)
