"""auto_denoise: noise model, calibration of each method on one crop, the best one run."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage

import napari_denoise as nd
from napari_denoise.auto import DEFAULT_METHODS

from _numeric_helpers import load, psnr

FAST = ("gaussian", "wavelet", "total_variation", "block_matching")


def clean_plane(size=128):
    plane = ndimage.gaussian_filter(load("cells3d_nuclei.npz")[30, :size, :size].astype(np.float64), 1.0)
    return (plane - plane.min()) / np.ptp(plane)


def scored(image, clean, method, parameters):
    return psnr(clean, getattr(nd, method)(image, **parameters), 1.0)


def test_gaussian_noise_picks_a_method_near_the_best():
    rng = np.random.default_rng(0)
    clean = clean_plane()
    noisy = (clean + rng.normal(0, 0.1, clean.shape)).astype(np.float32)
    before = noisy.copy()
    result, report = nd.auto_denoise(noisy, methods=FAST)
    np.testing.assert_array_equal(noisy, before)
    assert result.dtype == np.float32 and result.shape == noisy.shape
    assert report.noise_model.kind == "gaussian"
    assert report.method in FAST and list(report.calibrations) == list(FAST)
    assert report.parameters.get("noise_model", "gaussian") == "gaussian"
    # the result is the chosen call
    np.testing.assert_array_equal(result, getattr(nd, report.method)(noisy, **report.parameters))
    # within 0.5 dB of the best calibrated method judged against the clean image, far above the input
    judged = {row[0]: scored(noisy, clean, row[0], {**row[1], **_model(row[0], report)}) for row in report.table()}
    assert max(judged.values()) - psnr(clean, result, 1.0) <= 0.5, (report.method, judged)
    assert psnr(clean, result, 1.0) > psnr(clean, noisy, 1.0) + 8
    assert report.losses[report.method] == min(report.losses.values())


def _model(method, report):
    import inspect

    takes = "noise_model" in inspect.signature(getattr(nd, method)).parameters
    return {"noise_model": report.parameters.get("noise_model", "gaussian")} if takes else {}


def test_photon_limited_data_are_stabilised():
    rng = np.random.default_rng(1)
    clean = clean_plane() * 20 + 0.5  # photons: 0.5 to 20.5
    noisy = (100 + 2.0 * rng.poisson(clean)).astype(np.uint16)  # camera: offset 100, gain 2
    result, report = nd.auto_denoise(noisy, methods=("gaussian", "wavelet", "total_variation"))
    assert report.noise_model.kind == "poisson-gaussian"
    assert report.noise_model.gain == pytest.approx(2.0, rel=0.15)
    for name in ("wavelet", "total_variation"):
        assert isinstance(report.calibrations[name].fixed["noise_model"], nd.NoiseModel)
        assert report.calibrations[name].noise == 1.0
    if report.method != "gaussian":
        assert report.parameters["noise_model"] == "poisson"
    truth = 100 + 2.0 * clean
    assert psnr(truth, result, 40.0) > psnr(truth, noisy, 40.0) + 6


def test_report_is_plain_data_and_complete():
    rng = np.random.default_rng(2)
    noisy = (clean_plane(96) + rng.normal(0, 0.1, (96, 96))).astype(np.float32)
    _, report = nd.auto_denoise(noisy, methods=["gaussian", "wavelet"])
    data = json.loads(json.dumps(report.as_dict()))
    assert data["method"] == report.method
    assert data["noise_model"]["kind"] == "gaussian"
    assert [row["method"] for row in data["losses"]] == ["gaussian", "wavelet"]
    assert all(len(row["trials"]) >= 3 for row in data["losses"])  # the middle candidate and both neighbours at least
    assert report.table()[0][0] == report.method
    assert report.seconds > 0


def test_anisotropic_stack_with_a_time_axis_and_dask():
    da = pytest.importorskip("dask.array")
    rng = np.random.default_rng(3)
    stack = load("cells3d_nuclei.npz")[20:36, :64, :64].astype(np.float32)
    series = np.stack([stack, stack]) + rng.normal(0, 2000, (2,) + stack.shape).astype(np.float32)
    spacing = (0.29, 0.26, 0.26)
    result, report = nd.auto_denoise(series, spacing=spacing, methods=("gaussian", "wavelet"))
    assert result.shape == series.shape
    assert len(report.region) == 3  # the crop is spatial; the time point is the middle one
    lazy, lazy_report = nd.auto_denoise(
        da.from_array(series, chunks=(1, 16, 64, 64)), spacing=spacing, methods=("gaussian", "wavelet")
    )
    assert isinstance(lazy, da.Array)
    assert lazy_report.method == report.method
    np.testing.assert_allclose(lazy.compute(), result, rtol=1e-5, atol=1e-2)


def test_progress_and_cancel():
    rng = np.random.default_rng(4)
    noisy = (clean_plane(96) + rng.normal(0, 0.1, (96, 96))).astype(np.float32)
    seen = []
    nd.auto_denoise(noisy, methods=("gaussian", "wavelet"), progress=lambda d, t: seen.append((d, t)))
    assert seen[-1][0] == seen[-1][1] and all(b[0] >= a[0] for a, b in zip(seen, seen[1:]))
    polls = []
    with pytest.raises(nd.Cancelled):
        nd.auto_denoise(noisy, methods=("gaussian", "total_variation"), cancel=lambda: polls.append(1) or len(polls) > 5)


def test_methods_checked():
    x = np.zeros((32, 32), np.float32)
    with pytest.raises(ValueError, match="^methods"):
        nd.auto_denoise(x, methods=("sobel",))
    with pytest.raises(ValueError, match="^methods"):
        nd.auto_denoise(x, methods=())
    with pytest.raises(ValueError, match="^methods"):
        nd.auto_denoise(x, methods=("gaussian", "gaussian"))
    assert "block_matching" in DEFAULT_METHODS
