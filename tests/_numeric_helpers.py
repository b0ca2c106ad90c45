"""Shared helpers for the numeric (napari-free) tests."""

from __future__ import annotations

import numpy as np

import napari_denoise as nd
from napari_denoise._sample_data import _load

#: every public filter returning an image, with small, quick keyword arguments
FILTERS = {
    "gaussian": {},
    "mean": {},
    "median": {},
    "bilateral": {},
    "total_variation": {"max_num_iter": 20},
    "wavelet": {},
    "non_local_means": {"patch_size": 3, "patch_distance": 2},
    "block_matching": {"profile": "fast"},
    "sobel": {},
    "scharr": {},
    "prewitt": {},
    "laplace": {},
    "gradient_magnitude": {},
    "laplacian_of_gaussian": {},
    "difference_of_gaussians": {},
    "canny": {},
}
DENOISERS = [
    "gaussian", "mean", "median", "bilateral", "total_variation", "wavelet", "non_local_means", "block_matching",
]


def call(name, image, **kwargs):
    return getattr(nd, name)(image, **{**FILTERS[name], **kwargs})


def noisy_image(shape, seed=0, scale=100.0, noise=10.0, dtype=np.float32):
    """A smooth pattern plus seeded Gaussian noise (so denoisers have work to do)."""
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*[np.linspace(0, 3, n) for n in shape], indexing="ij")
    clean = scale * (1 + np.sin(sum(grids))) / 2
    return (clean + rng.normal(0, noise, shape)).astype(dtype)


def load(name):
    """A real image shipped in the package (``napari_denoise/data``), so every clone runs the
    real-data tests: "cells3d_nuclei.npz", "timelapse_2d.npz" or "neuron_4ch.npz"."""
    return _load(name)


def nuclei_2d():
    """A 2-D uint16 plane of the confocal nuclei stack (naturally noisy, values up to 65535)."""
    return load("cells3d_nuclei.npz")[30]


def psnr(reference, image, data_range=None):
    reference = np.asarray(reference, np.float64)
    image = np.asarray(image, np.float64)
    if data_range is None:
        data_range = reference.max() - reference.min()
    mse = np.mean((reference - image) ** 2)
    return 10 * np.log10(data_range**2 / mse)


def assert_float32_close(actual, expected, rtol=1e-5, atol_rel=1e-5):
    """Agreement to float32 precision: tolerance relative to the data's magnitude."""
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape
    assert actual.dtype == np.float32
    scale = float(np.nanmax(np.abs(expected))) if expected.size else 0.0
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol_rel * max(scale, 1e-30))


def tiles_of(function, image, workers=2, **kwargs):
    """The tiles an eager run of ``function(image, **kwargs)`` on ``workers`` threads uses."""
    from napari_denoise import _scheduler

    op = function.op(image, **kwargs)
    return _scheduler.tile_layout(op, np.shape(image), workers).tiles
