"""GUI tests: the "Auto denoise" dock and the Calibrate button of the denoiser widgets."""

from __future__ import annotations

import numpy as np
import pytest

import napari_denoise as nd
from conftest import ANISO_SCALE, noisy_stack, wait_done
from napari_denoise._auto_widget import AUTO_METADATA_KEY

TITLE = "Auto denoise"


def _blobs_2d(seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:96, :96]
    clean = 0.2 + 0.8 * np.exp(-((y - 40) ** 2 + (x - 55) ** 2) / 300.0) + 0.5 * (x > 70)
    return clean, (clean + rng.normal(0, 0.1, clean.shape)).astype(np.float32)


def test_auto_denoise_dock_adds_the_result_with_report_and_recipe(viewer, dock, qtbot):
    data = noisy_stack(shape=(10, 48, 48))
    source = viewer.add_image(data, name="nuclei", scale=ANISO_SCALE, units="µm", axis_labels=("z", "y", "x"))
    widget = dock(TITLE)
    widget.image.value = source
    widget.methods.value = ["gaussian", "wavelet", "total_variation"]
    assert widget() is not None, widget.last_error
    wait_done(qtbot, widget, timeout=120_000)
    result = viewer.layers[-1]
    assert result is not source and result.name.startswith("nuclei auto")
    report = result.metadata[AUTO_METADATA_KEY]
    assert report["method"] in ("gaussian", "wavelet", "total_variation")
    assert report["noise_model"]["kind"] == "poisson-gaussian"  # Poisson counts
    assert [row["method"] for row in report["losses"]] == ["gaussian", "wavelet", "total_variation"]
    # the recipe replays the chosen call exactly, and it is the call auto_denoise makes
    recipe = nd.recipe_of(result)
    assert recipe.filter == report["method"]
    np.testing.assert_array_equal(nd.apply_recipe(recipe, data, spacing=ANISO_SCALE), result.data)
    direct, direct_report = nd.auto_denoise(data, spacing=ANISO_SCALE, methods=("gaussian", "wavelet", "total_variation"))
    assert direct_report.method == report["method"]
    np.testing.assert_array_equal(direct, result.data)
    np.testing.assert_array_equal(result.scale, source.scale)
    # the dock shows the model and one plot per method
    assert widget.noise.value.startswith("Poisson–Gaussian, gain = ")
    assert widget.chosen.value.startswith(nd._registry.by_name(report["method"]).display_name + " (")
    assert len(widget.plot.figure.axes) == 3
    assert not widget.plot.canvas.isHidden()


def test_auto_denoise_cancel_adds_nothing(viewer, dock, qtbot):
    _, noisy = _blobs_2d()
    viewer.add_image(np.tile(noisy, (3, 3)), name="big")
    widget = dock(TITLE)
    widget.image.value = viewer.layers["big"]
    widget.methods.value = ["total_variation", "non_local_means"]
    count = len(viewer.layers)
    assert widget() is not None
    qtbot.waitUntil(lambda: widget._runs.progress_bar is not None and widget._runs.progress_bar.n > 0, timeout=60_000)
    widget.cancel()
    wait_done(qtbot, widget)
    assert len(viewer.layers) == count
    assert widget._run_button.enabled


def test_no_layer_is_a_clear_error(viewer, dock):
    widget = dock(TITLE)
    assert widget() is None
    assert widget.last_error.startswith("image")


@pytest.mark.parametrize("display_name, parameter", [("Gaussian", "sigma"), ("Total variation", "weight")])
def test_calibrate_button_fills_the_fields(viewer, dock, qtbot, display_name, parameter):
    clean, noisy = _blobs_2d(seed=1)
    viewer.add_image(noisy, name="noisy")
    widget = dock(display_name)
    widget.image.value = viewer.layers["noisy"]
    assert widget.calibrate_button.text == "Calibrate"
    from magicgui.widgets import Container

    row = next(c for c in widget if isinstance(c, Container) and "run_button" in [w.name for w in c])
    names = [w.name for w in row]  # the dock's row of buttons
    assert names.index("calibrate_button") == names.index("run_button") - 1
    calibrator = widget._calibrator
    assert calibrator.run() is not None
    wait_done(qtbot, calibrator)
    function = getattr(nd, widget.spec.name)
    expected = nd.calibrate(function, noisy, fixed={k: v for k, v in widget._values().items() if k != parameter})
    assert calibrator.result.best == expected.best
    assert float(getattr(widget, parameter).value) == pytest.approx(expected.best[parameter], rel=1e-5)
    # and Run then uses them
    assert widget() is not None
    wait_done(qtbot, widget)
    np.testing.assert_allclose(viewer.layers[-1].data, function(noisy, **expected.kwargs), rtol=1e-4, atol=1e-4)


def test_edge_filters_have_no_calibrate_button(viewer, dock):
    widget = dock("Sobel")
    assert widget._calibrator is None
    assert "calibrate_button" not in [w.name for w in widget]


def test_closing_the_widget_stops_a_calibration(viewer, dock, qtbot):
    _, noisy = _blobs_2d(seed=2)
    viewer.add_image(np.tile(noisy, (4, 4)), name="noisy")
    widget = dock("Non-local means")
    widget.image.value = viewer.layers["noisy"]
    calibrator = widget._calibrator
    assert calibrator.run() is not None
    token = calibrator._runs.token
    viewer.window.remove_dock_widget(widget.native)
    widget.native.deleteLater()
    qtbot.waitUntil(lambda: token.cancelled, timeout=10_000)
    qtbot.waitUntil(lambda: not calibrator.running, timeout=60_000)
