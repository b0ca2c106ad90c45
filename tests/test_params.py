"""Argument handling shared by every filter: spatial axes, per-axis values, spacing, sizes."""

from __future__ import annotations

import math

import numpy as np
import pytest

import napari_denoise as nd
from napari_denoise import _params as P

from _numeric_helpers import FILTERS, call


# -- spatial_axes ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("ndim", "expected"),
    [(1, (0,)), (2, (0, 1)), (3, (0, 1, 2)), (4, (1, 2, 3)), (5, (2, 3, 4))],
)
def test_default_spatial_axes(ndim, expected):
    assert P.resolve_spatial_axes(ndim) == expected


def test_spatial_axes_normalised():
    assert P.resolve_spatial_axes(4, (-1, 0)) == (0, 3)
    assert P.resolve_spatial_axes(3, 2) == (2,)
    assert P.resolve_spatial_axes(3, np.array([2, 1])) == (1, 2)


@pytest.mark.parametrize(
    ("axes", "exc", "fragment"),
    [
        ((0, 3), ValueError, "out of range"),
        ((-4,), ValueError, "out of range"),
        ((1, -2), ValueError, "repeated"),
        ((1, 1), ValueError, "repeated"),
        ((1.0, 2), TypeError, "not an integer"),
        ((True, 2), TypeError, "not an integer"),
        ("ab", TypeError, "not an integer"),
        ((), ValueError, "at least 1"),
        (object(), TypeError, "sequence"),
    ],
)
def test_spatial_axes_errors(axes, exc, fragment):
    with pytest.raises(exc, match=rf"^spatial_axes:.*{fragment}"):
        P.resolve_spatial_axes(3, axes)


def test_min_axes():
    with pytest.raises(ValueError, match="^spatial_axes:.*at least 2"):
        P.resolve_spatial_axes(1, None, min_axes=2)


# -- per-axis values ----------------------------------------------------------
def test_per_axis_scalar_and_sequence():
    assert P.per_axis(2, 3, "sigma") == (2.0, 2.0, 2.0)
    assert P.per_axis([1, 2, 3], 3, "sigma") == (1.0, 2.0, 3.0)
    assert P.per_axis(np.array([1, 2]), 2, "sigma") == (1.0, 2.0)
    assert P.per_axis(np.float32(1.5), 2, "sigma") == (1.5, 1.5)
    # a 0-d array is one number, like a numpy scalar
    assert P.per_axis(np.array(1.5), 2, "sigma") == (1.5, 1.5)


@pytest.mark.parametrize(
    ("value", "exc", "fragment"),
    [
        (-1, ValueError, "non-negative"),
        (float("nan"), ValueError, "finite"),
        (float("inf"), ValueError, "finite"),
        ([1, 2], ValueError, "3 values"),
        ([1, 2, 3, 4], ValueError, "3 values"),
        ([1, float("nan"), 1], ValueError, "finite"),
        ([1, -1, 1], ValueError, "non-negative"),
        ("1", TypeError, "number"),
        (None, TypeError, "number"),
        (True, TypeError, "number"),
        (1 + 2j, TypeError, "number"),
    ],
)
def test_per_axis_errors(value, exc, fragment):
    with pytest.raises(exc, match=rf"^sigma:.*{fragment}"):
        P.per_axis(value, 3, "sigma")


def test_lengths_to_pixels():
    assert P.lengths_to_pixels(1.0, None, 2, "sigma") == (1.0, 1.0)
    got = P.lengths_to_pixels(0.58, (0.29, 0.26, 0.26), 3, "sigma")
    np.testing.assert_allclose(got, (2.0, 0.58 / 0.26, 0.58 / 0.26))
    got = P.lengths_to_pixels((1.0, 2.0), (0.5, 4.0), 2, "sigma")
    np.testing.assert_allclose(got, (2.0, 0.5))


@pytest.mark.parametrize(
    ("pixels", "odd"),
    [(0.01, 1), (0.9, 1), (1.0, 1), (1.9, 1), (2.0, 3), (2.1, 3), (3.0, 3), (3.9, 3),
     (4.0, 5), (4.2, 5), (5.99, 5), (6.0, 7), (10.0, 11), (11.4, 11)],
)
def test_closest_odd(pixels, odd):
    assert P.closest_odd(pixels) == odd
    # it is the odd number closest to pixels (ties go up)
    candidates = [n for n in range(1, 30, 2)]
    best = min(candidates, key=lambda n: (abs(n - pixels), -n))
    assert odd == best


def test_sizes_to_pixels():
    assert P.sizes_to_pixels(3, None, 2, "size") == (3, 3)
    assert P.sizes_to_pixels((4, 5.0), None, 2, "size") == (4, 5)  # as scipy: even allowed
    # 1 µm with voxels (0.5, 0.26, 0.1) -> 2 -> 3, 3.85 -> 3, 10 -> 11
    assert P.sizes_to_pixels(1.0, (0.5, 0.26, 0.1), 3, "size") == (3, 3, 11)
    assert P.sizes_to_pixels(0.1, (1.0, 1.0), 2, "size") == (1, 1)  # at least 1
    assert P.sizes_to_pixels((1.0, 2.0), (0.25, 0.25), 2, "size") == (5, 9)


@pytest.mark.parametrize("value", [0, -3, 2.5, float("nan"), [3, 3, 3]])
def test_sizes_errors(value):
    with pytest.raises((ValueError, TypeError), match="^size:"):
        P.sizes_to_pixels(value, None, 2, "size")


@pytest.mark.parametrize("spacing", [(1, 2), (1, 2, 3, 4), (1, 0, 1), (1, -1, 1), (1, float("nan"), 1), "abc"])
def test_spacing_errors(spacing):
    with pytest.raises((ValueError, TypeError), match="^spacing:"):
        P.resolve_spacing(spacing, 3)


def test_spacing_scalar_broadcasts():
    assert P.resolve_spacing(0.5, 3) == (0.5, 0.5, 0.5)
    assert P.resolve_spacing(None, 3) is None


# -- image checks ----------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.complex64, np.complex128, object, "U3", "datetime64[s]"])
def test_unsupported_dtypes(dtype):
    image = np.zeros((4, 4)).astype(dtype)
    with pytest.raises(TypeError, match="^image:.*dtype"):
        P.as_image(image)


def test_as_image_accepts_lists_and_rejects_scalars():
    assert P.as_image([[1, 2], [3, 4]]).shape == (2, 2)
    with pytest.raises(ValueError, match="^image:"):
        P.as_image(np.float32(3))
    with pytest.raises(TypeError, match="^image:"):
        P.as_image(None)


# -- every filter reports bad arguments by name ---------------------------------------
IMAGE = np.random.default_rng(0).normal(size=(5, 8, 9)).astype(np.float32)

BAD_CALLS = [
    ("sigma", lambda x: nd.gaussian(x, -1.0)),
    ("sigma", lambda x: nd.gaussian(x, float("nan"))),
    ("sigma", lambda x: nd.gaussian(x, (1.0, 2.0))),
    ("spacing", lambda x: nd.gaussian(x, 1.0, spacing=(1.0, 1.0))),
    ("spacing", lambda x: nd.gaussian(x, 1.0, spacing=(1.0, 0.0, 1.0))),
    ("spatial_axes", lambda x: nd.gaussian(x, spatial_axes=(0, 5))),
    ("spatial_axes", lambda x: nd.gaussian(x, spatial_axes=(0, 0))),
    ("mode", lambda x: nd.gaussian(x, mode="symmetric")),
    ("truncate", lambda x: nd.gaussian(x, truncate=0)),
    ("cval", lambda x: nd.gaussian(x, cval=float("nan"))),
    ("size", lambda x: nd.mean(x, -3)),
    ("size", lambda x: nd.mean(x, float("nan"))),
    ("size", lambda x: nd.mean(x, 0)),
    ("size", lambda x: nd.median(x, (3, 3))),
    ("size", lambda x: nd.median(x, 1000)),  # absurd window: clear error, not MemoryError
    ("spacing", lambda x: nd.median(x, 1.0, spacing=(1.0, 1.0, 1.0, 1.0))),
    ("sigma_spatial", lambda x: nd.bilateral(x, -1.0)),
    ("sigma_intensity", lambda x: nd.bilateral(x, 1.0, float("nan"))),
    ("sigma_intensity", lambda x: nd.bilateral(x, 1.0, -2.0)),
    ("weight", lambda x: nd.total_variation(x, -1.0)),
    ("max_num_iter", lambda x: nd.total_variation(x, max_num_iter=0)),
    ("sigma", lambda x: nd.wavelet(x, sigma=-1.0)),
    ("method", lambda x: nd.wavelet(x, method="SureShrink")),
    ("wavelet_name", lambda x: nd.wavelet(x, wavelet_name="nope")),
    ("h", lambda x: nd.non_local_means(x, h=-1.0)),
    ("sigma", lambda x: nd.non_local_means(x, sigma=float("nan"))),
    ("patch_size", lambda x: nd.non_local_means(x, patch_size=0)),
    ("spatial_axes", lambda x: nd.non_local_means(x, spatial_axes=(2,))),
    ("spatial_axes", lambda x: nd.non_local_means(x[0, 0])),
    ("spatial_axes", lambda x: nd.non_local_means(x[None], spatial_axes=(0, 1, 2, 3))),
    ("spatial_axes", lambda x: nd.canny(x, spatial_axes=(1,))),
    ("spatial_axes", lambda x: nd.canny(x[0, 0])),
    ("sigma", lambda x: nd.canny(x, (1.0, 1.0, 1.0))),
    ("low_threshold", lambda x: nd.canny(x, low_threshold=-1)),
    ("low_threshold", lambda x: nd.canny(x, low_threshold=0.9, high_threshold=0.1)),
    ("high_threshold", lambda x: nd.canny(x, high_threshold=2.0, low_threshold=0.5, use_quantiles=True)),
    ("spacing", lambda x: nd.sobel(x, spacing=(1.0, 1.0))),
    ("spacing", lambda x: nd.laplace(x, spacing=(1.0, -1.0, 1.0))),
    ("sigma", lambda x: nd.gradient_magnitude(x, float("inf"))),
    ("sigma", lambda x: nd.laplacian_of_gaussian(x, -0.5)),
    ("low_sigma", lambda x: nd.difference_of_gaussians(x, (1.0, 1.0))),
    ("high_sigma", lambda x: nd.difference_of_gaussians(x, 2.0, 1.0)),
    ("spatial_axes", lambda x: nd.estimate_noise(x, spatial_axes=(3,))),
    ("image", lambda x: nd.sobel(x.astype(np.complex64))),
    ("image", lambda x: nd.median(x.astype(object))),
    ("image", lambda x: nd.estimate_noise(x.astype(np.complex128))),
]


@pytest.mark.parametrize(("name", "bad"), BAD_CALLS, ids=[f"{i}-{n}" for i, (n, _) in enumerate(BAD_CALLS)])
def test_bad_arguments_name_the_parameter(name, bad):
    with pytest.raises((ValueError, TypeError)) as info:
        bad(IMAGE.copy())
    assert str(info.value).startswith(f"{name}:"), str(info.value)


@pytest.mark.parametrize("name", sorted(FILTERS))
def test_complex_images_rejected(name):
    with pytest.raises(TypeError, match="^image:"):
        call(name, IMAGE.astype(np.complex64))


def test_size_with_spacing_reaches_the_filter():
    op = nd.mean.op(IMAGE, 1.0, spacing=(0.5, 0.26, 0.1))
    assert op.params["size"] == (3, 3, 11)
    op = nd.gaussian.op(IMAGE, 0.58, spacing=(0.29, 0.26, 0.26))
    np.testing.assert_allclose(op.params["sigma"], (2.0, 0.58 / 0.26, 0.58 / 0.26))
    assert math.isclose(nd.median.op(IMAGE, 0.26, spacing=0.26).params["size"][0], 1)


# -- #11 point 2: the parameters added with block matching, noise models and canny ------------
MORE_BAD_CALLS = [
    ("sigma", lambda x: nd.block_matching(x, sigma=5e-324)),  # divided by zero in the kernel before
    ("sigma", lambda x: nd.block_matching(x, sigma=1e30)),
    ("profile", lambda x: nd.block_matching(x, profile="slow")),
    ("noise_model", lambda x: nd.non_local_means(x, noise_model="poison")),
    ("gain", lambda x: nd.anscombe(x, nd.NoiseModel(1e-300, 0.0, 1.0))),
    ("offset", lambda x: nd.inverse_anscombe(x, nd.NoiseModel(1.0, -1e300, 1.0))),
    ("read_sigma", lambda x: nd.anscombe(x, nd.NoiseModel(1.0, 0.0, 1e300))),
    ("model", lambda x: nd.anscombe(x, nd.NoiseModel.gaussian(0.0))),
    ("method", lambda x: nd.inverse_anscombe(x, method="approximate")),
    ("low_threshold", lambda x: nd.canny(x, low_threshold=1e10)),  # above the default high threshold
    ("high_threshold", lambda x: nd.canny(x, high_threshold=0.01)),  # below the default low threshold
    ("spatial_axes", lambda x: nd.estimate_noise_model(x, spatial_axes=(0, 0))),
    ("eps", lambda x: nd.total_variation(x, eps=None)),  # crashed in the kernel before
]


@pytest.mark.parametrize(("name", "bad"), MORE_BAD_CALLS, ids=[f"{i}-{n}" for i, (n, _) in enumerate(MORE_BAD_CALLS)])
def test_more_bad_arguments_name_the_parameter(name, bad):
    with pytest.raises((ValueError, TypeError)) as info:
        bad(IMAGE.copy())
    assert str(info.value).startswith(f"{name}:"), str(info.value)


def test_recorded_call_keeps_floats_exactly():
    # the widget records the call it made; rounding (it was round(v, 10)) turned a
    # spacing of 3.3e-12 m into 0 and changed 1/3 µm
    from napari_denoise._recipe import python_call
    from napari_denoise._registry import by_name

    kwargs = {"sigma": (1 / 3, 0.1 + 2e-12), "spacing": (3.3e-12, 0.26 + 1e-15), "truncate": 4.0}
    text = python_call(by_name("gaussian"), kwargs)
    seen = {}

    class Recorder:
        def gaussian(self, data, **given):
            seen.update(given)

    eval(text, {"napari_denoise": Recorder(), "layer": type("L", (), {"data": None})})
    assert seen == kwargs


def test_huge_whole_number_typed_in_a_field_is_a_value_error():
    from napari_denoise._parsing import parse_value

    with pytest.raises(ValueError, match="^sigma: must be finite"):
        parse_value("1" + "0" * 400, "sigma")
