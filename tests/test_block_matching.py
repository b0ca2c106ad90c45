"""Block matching (BM3D on planes, BM4D on volumes): structure, invariances, runs.

Always-on tests use generated images or the sample data shipped in the
package; the comparison with the reference ``bm3d``/``bm4d`` packages runs
only where they can be imported, or where ``NAPARI_DENOISE_REFERENCE_PYTHON``
names an interpreter that has them (they are never a dependency).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import napari_denoise as nd
from napari_denoise import _scheduler
from napari_denoise._sample_data import _load
from napari_denoise.filters.block_matching import PROFILES
from napari_denoise.kernels import block_matching as kernel

from _numeric_helpers import psnr


def piecewise_constant(shape):
    """Rectangles (boxes) of four levels in [0, 1] on a 0 background."""
    image = np.zeros(shape, np.float32)
    n = np.array(shape)
    boxes = [(0.1, 0.45, 1.0), (0.5, 0.9, 0.6), (0.3, 0.7, 0.3)]
    for lo, hi, value in boxes:
        index = tuple(slice(int(lo * s), int(hi * s)) for s in n)
        image[index] = value
    index = tuple(slice(int(0.55 * s), int(0.8 * s)) for s in n[:-1]) + (slice(int(0.1 * n[-1]), int(0.3 * n[-1])),)
    image[index] = 0.8
    return image


def with_noise(clean, sigma, seed=0):
    rng = np.random.default_rng(seed)
    return (clean + rng.normal(0, sigma, clean.shape)).astype(np.float32)


# -- known structure ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("shape", "profile", "minimum"),
    [((96, 96), "normal", 35.0), ((96, 96), "fast", 33.0), ((24, 48, 48), "normal", 35.0)],
)
def test_piecewise_constant_image_restored(shape, profile, minimum):
    # sigma 0.1 on a [0, 1] image: the noisy input is at 20 dB
    clean = piecewise_constant(shape)
    noisy = with_noise(clean, 0.1)
    out = nd.block_matching(noisy, profile=profile)
    assert psnr(clean, noisy, 1.0) == pytest.approx(20.0, abs=0.2)
    assert psnr(clean, out, 1.0) > minimum


def test_flat_image_stays_flat():
    out = nd.block_matching(np.full((40, 40), 7.0, np.float32), sigma=1.0)
    # the Wiener factor of the group mean, B² / (B² + σ²) with B = 7 √(32·64),
    # shrinks it by 1e-5
    np.testing.assert_allclose(out, 7.0, rtol=2e-5)
    assert np.ptp(out) < 1e-5


def test_vanishing_noise_gives_the_image_back():
    # orthonormal transforms, nothing thresholded, Wiener factors ~1: the
    # block estimates are the blocks and their weighted average is the image
    x = with_noise(piecewise_constant((40, 44)), 0.1, seed=3)
    out = nd.block_matching(x, sigma=1e-7)
    np.testing.assert_allclose(out, x, atol=1e-5)
    v = with_noise(piecewise_constant((9, 20, 22)), 0.1, seed=4)
    np.testing.assert_allclose(nd.block_matching(v, sigma=1e-7), v, atol=1e-5)


def test_sigma_zero_returns_the_input():
    x = with_noise(piecewise_constant((30, 30)), 0.1)
    np.testing.assert_array_equal(nd.block_matching(x, sigma=0), x)


# -- invariances --------------------------------------------------------------------------------
def test_scale_equivariance():
    x = with_noise(piecewise_constant((48, 52)), 0.1, seed=1)
    out = nd.block_matching(x)
    # a power of two scales every step exactly
    np.testing.assert_array_equal(nd.block_matching(2 * x), 2 * out)
    scaled = nd.block_matching(np.float32(3.7) * x)
    np.testing.assert_allclose(scaled, 3.7 * out, rtol=1e-4, atol=1e-4 * 3.7)


def test_default_sigma_is_the_estimate_of_each_slice():
    x = with_noise(piecewise_constant((2, 40, 40)), 0.1, seed=2)
    x[1] = with_noise(piecewise_constant((40, 40)), 0.3, seed=5)
    out = nd.block_matching(x, spatial_axes=(1, 2))
    for t in range(2):
        sigma = nd.estimate_noise(x[t])
        np.testing.assert_array_equal(out[t], nd.block_matching(x[t], sigma=sigma))


def test_time_and_channel_axes_independent():
    rng = np.random.default_rng(6)
    x = (piecewise_constant((40, 44)) + rng.normal(0, 0.1, (2, 3, 40, 44))).astype(np.float32)
    x[1, 2] *= 5
    out = nd.block_matching(x, spatial_axes=(2, 3), profile="fast")
    for index in np.ndindex(2, 3):
        np.testing.assert_array_equal(out[index], nd.block_matching(x[index], profile="fast"))
    # a volume per time point
    volumes = x[:, :, :20, :20]
    out = nd.block_matching(volumes, spatial_axes=(1, 2, 3), profile="fast")
    for t in range(2):
        np.testing.assert_array_equal(out[t], nd.block_matching(volumes[t], profile="fast"))


def test_input_untouched_and_integer_input_as_float():
    x = np.clip(with_noise(piecewise_constant((36, 40)) * 200, 20), 0, 255).astype(np.uint8)
    before = x.copy()
    out = nd.block_matching(x)
    np.testing.assert_array_equal(x, before)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, nd.block_matching(x.astype(np.float32)))


def test_result_does_not_depend_on_the_number_of_threads(monkeypatch):
    x = with_noise(piecewise_constant((70, 90)), 0.1, seed=8)
    results = []
    for threads in ("1", "2", "3"):
        monkeypatch.setenv("NAPARI_DENOISE_WORKERS", threads)
        results.append(nd.block_matching(x))
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_array_equal(results[0], results[2])


def test_nan_stays_local():
    x = with_noise(piecewise_constant((128, 128)), 0.1, seed=9)
    x[64, 64] = np.nan
    out = nd.block_matching(x, sigma=0.1)
    assert np.isnan(out[64, 64])
    # a NaN block is never matched; it spoils only its own groups, whose
    # blocks lie within the search window (19 px) plus a block, in each stage
    reach = 2 * (19 + 8)
    far = np.ones(out.shape, bool)
    far[64 - reach : 64 + reach + 1, 64 - reach : 64 + reach + 1] = False
    assert np.all(np.isfinite(out[far]))


# -- anisotropy and parameters -------------------------------------------------------------------
def test_spacing_sets_block_and_search_per_axis():
    x = np.zeros((20, 30, 30), np.float32)
    op = nd.block_matching.op(x, spacing=(0.29, 0.26, 0.26))
    # z: 4 × 0.26/0.29 = 3.6 voxels → 4; search radius 5 × 0.26/0.29 = 4.5 → 4
    assert op.params["block"] == (4, 4, 4) and op.params["search"] == (9, 11, 11)
    op = nd.block_matching.op(x, spacing=(1.0, 0.25, 0.25))
    assert op.params["block"] == (1, 4, 4) and op.params["search"] == (3, 11, 11)
    op = nd.block_matching.op(x[0], spacing=(0.5, 0.25))  # radius 19 / 2 = 9.5 → 10
    assert op.params["block"] == (4, 8) and op.params["search"] == (21, 39)
    # isotropic spacing is no spacing
    v = with_noise(piecewise_constant((12, 30, 30)), 0.1)
    np.testing.assert_array_equal(nd.block_matching(v, spacing=0.3), nd.block_matching(v))


def test_profiles_are_consistent():
    for (ndim, _), stages in PROFILES.items():
        for stage in stages:
            assert all(1 <= s <= b for s, b in zip(stage.step, stage.block))
            assert stage.max_group & (stage.max_group - 1) == 0  # a power of two (Haar)
            if ndim == 2:
                assert stage.block[0] == 1 and stage.radius[0] == 0


@pytest.mark.parametrize(
    ("name", "call"),
    [
        ("sigma", lambda x: nd.block_matching(x, sigma=-1.0)),
        ("sigma", lambda x: nd.block_matching(x, sigma=float("nan"))),
        ("profile", lambda x: nd.block_matching(x, profile="slow")),
        ("spatial_axes", lambda x: nd.block_matching(x, spatial_axes=(2,))),
        ("spatial_axes", lambda x: nd.block_matching(x[0, 0])),
        ("spatial_axes", lambda x: nd.block_matching(x[None], spatial_axes=(0, 1, 2, 3))),
        ("spacing", lambda x: nd.block_matching(x, spacing=(1.0, 0.0, 1.0))),
    ],
)
def test_bad_arguments_name_the_parameter(name, call):
    with pytest.raises((ValueError, TypeError)) as info:
        call(np.zeros((4, 10, 10), np.float32))
    assert str(info.value).startswith(f"{name}:"), str(info.value)


# -- the kernel --------------------------------------------------------------------------------
def test_dct_matrix_is_orthonormal():
    for n in (1, 2, 4, 5, 8, 11):
        d = kernel.dct_matrix(n).astype(np.float64)
        np.testing.assert_allclose(d @ d.T, np.eye(n), atol=1e-6)


def test_reference_blocks_cover_every_voxel():
    for length, block, step in [(10, 8, 3), (8, 8, 3), (31, 4, 3), (5, 4, 4), (256, 8, 6)]:
        positions = kernel.reference_positions(length, block, step)
        covered = np.zeros(length, bool)
        for p in positions:
            covered[p : p + block] = True
        assert covered.all() and positions[-1] == length - block


def test_cancelled_within_a_second():
    x = with_noise(piecewise_constant((768, 768)), 0.1)
    started = time.perf_counter()
    stop_at = started + 0.5
    with pytest.raises(nd.Cancelled):
        nd.block_matching(x, cancel=lambda: time.perf_counter() > stop_at)
    assert time.perf_counter() - stop_at < 1.0


def test_progress_moves_inside_the_slice():
    x = with_noise(piecewise_constant((224, 224)), 0.1)
    op = nd.block_matching.op(x)
    seen = []
    run = _scheduler.steps(op, x, workers=1)
    try:
        while True:
            seen.append(next(run))
    except StopIteration as stop:
        out = stop.value
    total = seen[-1][1]
    assert total == _scheduler.TILE_STEPS  # one tile: the whole plane
    inside = {done for done, _ in seen if 0 < done < total}
    assert len(inside) >= 3, seen
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    np.testing.assert_array_equal(out, nd.block_matching(x))


def test_ticks_count_reference_blocks_of_both_stages():
    x = with_noise(piecewise_constant((30, 41)), 0.1)[None]
    first, second = PROFILES[(2, "normal")]
    ticks = np.zeros(2, np.int64)
    kernel.denoise_slice(x, 0.1, first, second, ticks=ticks)
    expected = kernel.reference_count(x.shape, first) + kernel.reference_count(x.shape, second)
    assert ticks[0] == ticks[1] == expected


# -- against the reference packages (only where they are installed) ---------------------------
def _reference_runner():
    python = os.environ.get("NAPARI_DENOISE_REFERENCE_PYTHON")
    if python:
        return python
    try:
        import bm3d  # noqa: F401
        import bm4d  # noqa: F401
    except ImportError:
        pytest.skip("bm3d/bm4d not installed (set NAPARI_DENOISE_REFERENCE_PYTHON to a venv that has them)")
    return sys.executable


def _reference(python, noisy, sigma, tmp_path):
    np.save(tmp_path / "noisy.npy", noisy)
    module = "bm3d" if noisy.ndim == 2 else "bm4d"
    code = (
        f"import json, numpy as np, {module}; x = np.load({str(tmp_path / 'noisy.npy')!r}); "
        f"np.save({str(tmp_path / 'out.npy')!r}, np.asarray({module}.{module}(x, {sigma!r}), np.float32)); "
        "print(json.dumps('ok'))"
    )
    proc = subprocess.run([python, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == "ok"
    return np.load(tmp_path / "out.npy")


@pytest.mark.parametrize("crop", [(30, slice(0, 128), slice(0, 128)), (slice(20, 36), slice(60, 124), slice(60, 124))])
def test_within_0_3_db_of_the_reference_package(crop, tmp_path):
    python = _reference_runner()
    stack = _load("cells3d_nuclei.npz").astype(np.float64)
    clean = ((stack - stack.min()) / np.ptp(stack))[crop].astype(np.float32)
    noisy = with_noise(clean, 0.1, seed=11)
    ours = psnr(clean, nd.block_matching(noisy, sigma=0.1), 1.0)
    theirs = psnr(clean, _reference(python, noisy, 0.1, tmp_path), 1.0)
    assert ours > theirs - 0.3, (ours, theirs)
