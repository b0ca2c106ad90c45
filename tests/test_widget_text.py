"""What the widgets say, without a viewer: tooltips, labels, run-time estimates,
progress in words, "auto" values and default lengths (Qt-free pieces)."""

from __future__ import annotations

import re

import numpy as np
import pytest

import napari_denoise as nd
from napari_denoise._auto_values import auto_texts, sample_noise
from napari_denoise._controls import TOOLTIP_WIDTH, label_text, parameter_tooltips, plain_text, tooltip_text
from napari_denoise._registry import DEFAULT_VOXELS, FILTERS, by_name, default_voxels, widget_parameters
from napari_denoise._run_time import ProgressMeter, RunEstimate, estimate_run, format_duration
from napari_denoise.filters import denoise
from napari_denoise.filters.noise import noise_of_slice

MARKUP = re.compile(r"``|`|:\w+:|\*\*|(?<!\w)\*\w")


# -- tooltips and labels --------------------------------------------------------------
def test_plain_text_drops_restructured_text_markup():
    text = "Uses ``mode='constant'`` and :func:`~napari_denoise.estimate_noise`, *not* :class:`numpy.ndarray`."
    assert plain_text(text) == "Uses mode='constant' and estimate_noise, not numpy.ndarray."
    assert plain_text(":ref:`the guide <guide>` and `x`") == "the guide and x"


@pytest.mark.parametrize("spec", FILTERS, ids=lambda s: s.name)
def test_every_tooltip_is_plain_and_wrapped(spec):
    tips = parameter_tooltips(spec)
    for parameter in widget_parameters(spec):
        tip = tips[parameter.name]
        assert tip, parameter.name
        assert not MARKUP.search(tip), (parameter.name, tip)
        assert max(len(line) for line in tip.splitlines()) <= TOOLTIP_WIDTH, (parameter.name, tip)


def test_tooltip_paragraphs_wrap_at_sixty():
    text = tooltip_text("word " * 40, "second paragraph")
    lines = text.splitlines()
    assert max(map(len, lines)) <= 60 and "" in lines and lines[-1] == "second paragraph"


def test_labels_are_words():
    assert label_text("sigma_spatial", "µm") == "sigma spatial (µm)"
    assert label_text("patch_distance") == "patch distance"


# -- default lengths --------------------------------------------------------------------
def test_default_voxels_cover_every_length_and_stay_small():
    for spec in FILTERS:
        voxels = default_voxels(spec)
        assert set(voxels) <= set(spec.lengths)
        assert all(1 <= v <= 3 for v in voxels.values()), (spec.name, voxels)
    # every length without a function default of None has a widget default
    assert set(DEFAULT_VOXELS) == {s.name for s in FILTERS if s.lengths}
    assert default_voxels(by_name("Median")) == {"size": 3.0}


def test_quality_study_table_overrides_the_widget_table(monkeypatch):
    from napari_denoise.filters import smoothing

    monkeypatch.setattr(smoothing, "DEFAULT_VOXELS", {"gaussian": {"sigma": 2.0}}, raising=False)
    assert default_voxels(by_name("Gaussian")) == {"sigma": 2.0}
    assert default_voxels(by_name("Median")) == {"size": 3.0}


# -- run-time estimates and progress in words ------------------------------------------
def test_format_duration():
    assert format_duration(0.42) == "0.4 s"
    assert format_duration(7.4) == "7 s"
    assert format_duration(42.4) == "42 s"
    assert format_duration(125) == "2 min 5 s"
    assert format_duration(3 * 3600 + 120) == "3 h 2 min"


def test_estimate_follows_cost_and_threads():
    image = np.zeros((64, 256, 256), np.uint16)
    op = nd.median.op(image, 11)  # a library median: ~13 ns per window element and voxel
    one, two = estimate_run(op, image.shape, 1), estimate_run(op, image.shape, 2)
    assert one.seconds == pytest.approx(image.size * op.cost.seconds, rel=0.35)  # halo recomputed
    assert two.seconds == pytest.approx(one.seconds / 2, rel=0.2)
    assert one.reports_inside and one.jobs > 1  # the library median is called in reported pieces
    # the library median's cost grows with its window (it was one constant, 50x off at 11^3)
    ratio = op.cost.seconds / nd.median.op(image, 5).cost.seconds
    assert ratio == pytest.approx(11**3 / 5**3, rel=0.1)


def test_estimate_is_within_a_factor_of_the_measured_time():
    """The estimate of a mid-sized median (library routine) against a real run on this machine.

    The machine is shared: the library routine called directly on the same
    image, in the same test, measures how busy it is, and the estimate is
    scaled by that. It must not be off by the 50x the uncalibrated cost was
    (nor by the 8x of pieces one plane thick that read 7 planes each).
    """
    import time

    from scipy import ndimage

    image = np.random.default_rng(0).integers(0, 1000, (16, 96, 96), dtype=np.uint16)
    op = nd.median.op(image, 7)
    estimate = estimate_run(op, image.shape)
    nd.median(image[:2, :16, :16], 7)
    as_float = image.astype(np.float32)
    t0 = time.perf_counter()
    ndimage.median_filter(as_float, 7)
    direct = time.perf_counter() - t0
    busy = direct / (image.size * op.cost.seconds)  # > 1 on a loaded or slower machine
    t0 = time.perf_counter()
    nd.median(image, 7)
    measured = time.perf_counter() - t0
    expected = estimate.seconds * max(busy, 1.0)
    assert expected / 4 < measured < expected * 4, (estimate.seconds, busy, measured)


def test_meter_busy_until_steps_then_percent_and_time_left():
    now = [0.0]
    estimate = RunEstimate(seconds=40, tile_seconds=20, jobs=2, workers=2, reports_inside=True)
    meter = ProgressMeter(estimate, clock=lambda: now[0])
    assert meter.busy
    now[0] = 10
    assert meter.time_text() == "10 s elapsed · about 30 s left (estimate)"
    assert "%" not in meter.text()
    meter.update(0, 200)
    assert meter.busy  # no step inside a tile yet
    now[0] = 12
    assert meter.update(50, 200)  # the kernel reports inside its tile
    assert not meter.busy
    assert meter.text() == "Running: 25 % · 12 s elapsed · about 36 s left"
    now[0] = 50
    meter.update(60, 200)
    assert "left" in meter.time_text()


def test_meter_says_when_the_estimate_was_too_short():
    now = [0.0]
    meter = ProgressMeter(RunEstimate(5, 5, 1, 1, False), clock=lambda: now[0])
    now[0] = 9
    assert "longer than the 5 s estimated" in meter.time_text()


# -- "auto" values ------------------------------------------------------------------------
def test_auto_texts_show_the_values_that_will_be_used():
    sigma = 4.0
    texts = auto_texts(by_name("Bilateral"), {"sigma_spatial": 1.0, "sigma_intensity": None}, sigma)
    factor = denoise.BILATERAL_INTENSITY_FACTOR
    assert texts["sigma_intensity"] == f"auto ≈ {factor * sigma:g} ({factor:g} × noise σ)"
    # planes and volumes have their own multiples of the noise level
    texts = auto_texts(by_name("Non-local means"), {"h": None, "sigma": None, "fast_mode": True}, sigma)
    assert f"{denoise.NLM_H_FACTOR_FAST[2] * sigma:g}" in texts["h"] and "4" in texts["sigma"]
    texts = auto_texts(by_name("Non-local means"), {"h": None, "sigma": None, "fast_mode": True}, sigma,
                       shape=(60, 256, 256), spatial_axes=(0, 1, 2))
    assert f"{denoise.NLM_H_FACTOR_FAST[3] * sigma:g}" in texts["h"]
    # a typed sigma sets h exactly; a typed value has no placeholder
    texts = auto_texts(by_name("Non-local means"), {"h": None, "sigma": 10.0, "fast_mode": False}, sigma)
    slow = denoise.NLM_H_FACTOR_SLOW[2]
    assert texts == {"h": f"auto = {slow * 10:.4g} ({slow:g} × sigma)"}
    texts = auto_texts(by_name("Total variation"), {"weight": None}, sigma)
    assert texts["weight"].startswith("auto ≈ 4 ")
    texts = auto_texts(by_name("Wavelet"), {"sigma": None, "wavelet_levels": None, "wavelet_name": "db1"}, sigma,
                       shape=(60, 256, 256), spatial_axes=(0, 1, 2))
    assert texts["wavelet_levels"].startswith("auto = 2")  # max level 5 for 60 along z, minus 3
    texts = auto_texts(by_name("Difference of Gaussians"), {"low_sigma": 0.5, "high_sigma": None}, None, unit="µm")
    assert texts["high_sigma"] == "auto = 0.8 µm (1.6 × low sigma)"
    # unknown noise level: say where it will come from
    texts = auto_texts(by_name("Total variation"), {"weight": None}, None)
    assert "noise" in texts["weight"]
    texts = auto_texts(by_name("block_matching"), {"sigma": None, "profile": "normal"}, sigma)
    assert texts["sigma"] == "auto ≈ 4 (noise σ)"
    # Poisson noise: the stabilised slice has noise σ 1; 'auto' decides per slice
    texts = auto_texts(by_name("Total variation"), {"weight": None, "noise_model": "poisson"}, sigma)
    assert texts["weight"].startswith("auto ≈ 1 ")
    texts = auto_texts(by_name("Total variation"), {"weight": None, "noise_model": "auto"}, sigma)
    assert texts["weight"] == "auto (from the noise model of each slice)"


def test_noise_sample_is_a_cheap_crop_of_the_displayed_plane():
    rng = np.random.default_rng(1)
    stack = (100 + 5 * rng.standard_normal((4, 900, 700))).astype(np.float32)
    estimate = sample_noise(stack, (2, slice(None), slice(None)))
    assert estimate == pytest.approx(noise_of_slice(stack[2, 194:706, 94:606]), rel=1e-6)
    assert estimate == pytest.approx(5.0, rel=0.05)

