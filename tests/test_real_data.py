"""Denoisers denoise real microscopy images (shipped in the package) with seeded added noise."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import restoration

import napari_denoise as nd

from _numeric_helpers import DENOISERS, load, nuclei_2d, psnr


@pytest.fixture(scope="module")
def nuclei_pair():
    """A confocal nuclei plane + seeded Gaussian noise (sd 4000, ~4x its own), float32."""
    clean = nuclei_2d().astype(np.float32)
    rng = np.random.default_rng(2024)
    return clean, (clean + rng.normal(0, 4000.0, clean.shape)).astype(np.float32)


@pytest.mark.parametrize("name", DENOISERS)
def test_denoisers_raise_psnr_on_nuclei(nuclei_pair, name):
    clean, noisy = nuclei_pair
    out = getattr(nd, name)(noisy)
    gain = psnr(clean, out) - psnr(clean, noisy)
    assert gain > 1.0, f"{name}: PSNR gain {gain:.2f} dB"


@pytest.mark.parametrize("name", DENOISERS)
def test_denoisers_raise_psnr_on_anisotropic_3d_with_spacing(name):
    # cells3d nuclei, z-step 0.29 µm vs 0.26 µm in-plane; Poisson-like noise (seeded)
    clean = load("cells3d_nuclei.npz")[20:36, 64:160, 64:160].astype(np.float32)
    rng = np.random.default_rng(7)
    # the stack is itself noisy (estimated sd ~15 % of its spread): add clearly more
    noisy = (clean + rng.normal(0, 0.5 * clean.std(), clean.shape)).astype(np.float32)
    kwargs = {}
    if name in ("gaussian", "mean", "median", "bilateral"):
        kwargs["spacing"] = (0.29, 0.26, 0.26)
        if name in ("mean", "median"):
            kwargs["size"] = 0.78  # µm: 3 pixels on each axis
        elif name == "gaussian":
            kwargs["sigma"] = 0.3
        else:
            kwargs["sigma_spatial"] = 0.3
    if name == "non_local_means":
        kwargs.update(patch_size=3, patch_distance=3)
    out = getattr(nd, name)(noisy, **kwargs)
    assert psnr(clean, out) > psnr(clean, noisy) + 2.0, name


def test_timelapse_time_axis_never_smoothed():
    stack = load("timelapse_2d.npz")[:4, :128, :128]
    assert stack.dtype == np.uint8
    for f in (nd.gaussian, nd.median, nd.sobel, nd.total_variation):
        out = f(stack, spatial_axes=(1, 2))
        for t in range(stack.shape[0]):
            np.testing.assert_array_equal(out[t], f(stack[t]))


def test_neuron_channels_processed_independently():
    image = load("neuron_4ch.npz")[:, :160, :160]
    assert image.shape[0] == 4
    out = nd.non_local_means(image, spatial_axes=(1, 2), patch_size=3, patch_distance=3)
    for c in range(4):
        np.testing.assert_array_equal(out[c], nd.non_local_means(image[c], patch_size=3, patch_distance=3))
    # each channel's noise is estimated on its own: scaling one channel only scales that channel
    scaled = image.astype(np.float32)
    scaled[2] *= 10
    out2 = nd.wavelet(scaled, spatial_axes=(1, 2))
    ref = nd.wavelet(image, spatial_axes=(1, 2))
    np.testing.assert_allclose(out2[2], 10 * ref[2], rtol=1e-3, atol=1e-3 * 10 * np.abs(ref[2]).max())
    np.testing.assert_array_equal(out2[0], ref[0])


def test_naturally_noisy_nuclei_are_smoothed():
    image = nuclei_2d()  # the confocal stack's own noise: sd ~1000 grey levels
    sigma = nd.estimate_noise(image)
    np.testing.assert_allclose(sigma, restoration.estimate_sigma(image.astype(np.float64)),
                               rtol=1e-5, atol=1e-6 * image.max())
    for name in ("bilateral", "total_variation", "wavelet", "non_local_means"):
        out = getattr(nd, name)(image)
        assert nd.estimate_noise(out) < 0.7 * sigma, name


# -- scikit-image gallery figures (NOTES: seeded noise lands within ±0.25 dB) ----------
def test_nlm_astronaut_gallery():
    from skimage import data, img_as_float, util

    astro = img_as_float(data.astronaut())[30:180, 150:300]
    noisy = util.random_noise(astro, var=0.08**2, rng=1)
    sigma_est = np.mean(restoration.estimate_sigma(noisy, channel_axis=-1))
    gallery = restoration.denoise_nl_means(noisy, h=0.8 * sigma_est, fast_mode=True, patch_size=5,
                                           patch_distance=6, channel_axis=-1)
    assert abs(psnr(astro, gallery, 1.0) - 29.05) < 0.25  # the setup reproduces the gallery
    # ours treats the colour axis as independent (patches do not span channels),
    # so it lands a little below the joint-RGB figure, far above the noisy input
    ours = nd.non_local_means(noisy, spatial_axes=(0, 1))
    assert psnr(astro, ours, 1.0) > 29.05 - 1.0
    assert psnr(astro, ours, 1.0) > psnr(astro, noisy, 1.0) + 5


def test_wavelet_chelsea_gallery():
    from skimage import data, img_as_float, util

    cat = img_as_float(data.chelsea()[100:250, 50:300])
    noisy = util.random_noise(cat, var=0.12**2, rng=1)
    gallery = restoration.denoise_wavelet(noisy, channel_axis=-1, convert2ycbcr=True,
                                          method="BayesShrink", mode="soft", rescale_sigma=True)
    assert abs(psnr(cat, gallery, 1.0) - 27.32) < 0.25
    ours = nd.wavelet(noisy, spatial_axes=(0, 1))  # per channel, no YCbCr
    assert psnr(cat, ours, 1.0) > 27.32 - 1.2
    assert psnr(cat, ours, 1.0) > psnr(cat, noisy, 1.0) + 6
