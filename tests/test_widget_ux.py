"""The widgets as a microscopist meets them (issue 14), in a real viewer.

One test (or more) per point: progress that moves, run-time estimates and
the question before a long run, defaults in voxels, previews within about a
second that follow the 2-D/3-D switch, axis names, hidden controls, the image
field's choice, tooltips and labels, the "auto" values, and the one
"Denoise & edges" panel.
"""

from __future__ import annotations

import re
import time

import numpy as np
import pytest
from magicgui.widgets import CheckBox
from napari.layers import Image

from napari_denoise import _widgets
from napari_denoise._controls import TOOLTIP_WIDTH
from napari_denoise._registry import FILTERS, PANEL_NAME, by_name
from napari_denoise._run_time import CONFIRM_S, SHOW_ESTIMATE_S

from conftest import noisy_stack, wait_done

MARKUP = re.compile(r"``|`|:\w+:|\*\*")
SAMPLE = ("napari-denoise", "nuclei_3d")


def _sample(viewer):
    viewer.open_sample(*SAMPLE)
    return viewer.layers[-1]


def _panel(viewer, qtbot):
    _, panel = viewer.window.add_plugin_dock_widget("napari-denoise", PANEL_NAME)
    qtbot.wait(10)
    return panel


def _estimates(panel):
    """{filter name: estimated seconds} of every filter's defaults on the panel's image."""
    seconds = {}
    for spec in FILTERS:
        panel.filter.value = spec.display_name
        assert panel.estimate is not None, (spec.name, panel.info.value)
        seconds[spec.name] = panel.estimate.seconds
    return seconds


# -- 1. progress that moves; the estimate before Run; a question before a long run --------
def test_progress_advances_during_a_run_of_the_slowest_filter_on_the_3d_sample(viewer, qtbot):
    source = _sample(viewer)
    panel = _panel(viewer, qtbot)
    assert panel.image.value is source
    seconds = _estimates(panel)
    slowest = max(seconds, key=seconds.get)
    panel.filter.value = by_name(slowest).display_name
    assert seconds[slowest] > CONFIRM_S  # block matching on 60 x 256 x 256: minutes

    worker = panel.run(confirmed=True)
    assert worker is not None, panel.last_error
    seen = []  # (time, steps done, status line)
    t0 = time.monotonic()
    try:
        while time.monotonic() - t0 < 6.0 and panel.running:
            qtbot.wait(100)
            meter = panel.progress_meter
            seen.append((time.monotonic() - t0, meter.done, panel.status.value))
    finally:
        panel.cancel()
        wait_done(qtbot, panel, 30_000)
    moves = [t for (t, done), (_, before) in zip(
        [(t, d) for t, d, _ in seen[1:]], [(t, d) for t, d, _ in seen[:-1]]) if done != before]
    # Steps from the kernel at least once a second (1.5 on a shared machine)
    # once it has started (the noise level is estimated first: a few seconds
    # at most); meanwhile the status line counts the seconds.
    assert moves, seen[-1]
    assert moves[0] < 5.0, moves
    gaps = np.diff(moves + [seen[-1][0]])
    assert gaps.max() <= 1.5, (moves, seen[-1])
    changes = [t for (t, _, text), (_, _, before) in zip(seen[1:], seen[:-1]) if text != before]
    assert np.diff([0.0] + changes + [seen[-1][0]]).max() <= 1.5, changes
    last_status = seen[-1][2]
    assert "%" in last_status and "left" in last_status, last_status
    assert len(viewer.layers) == 1  # cancelled: nothing added


def test_estimate_shown_before_run_and_long_runs_ask_first(viewer, qtbot):
    source = _sample(viewer)
    panel = _panel(viewer, qtbot)
    panel.filter.value = "Gaussian"
    assert panel.estimate.seconds < SHOW_ESTIMATE_S and panel.status.value == ""
    panel.filter.value = by_name("block_matching").display_name
    estimate = panel.estimate.seconds
    assert estimate > CONFIRM_S
    assert panel.status.value.startswith("Estimated run time: about")
    assert "second press" in panel.status.value
    # the first press only asks; a change of settings asks again
    assert panel.run() is None
    assert panel.run_button.text.startswith("Run anyway (~")
    assert "press Run again" in panel.status.value
    panel.profile.value = "fast"
    assert panel.run_button.text == "Run"
    assert len(viewer.layers) == 1 and source.data is not None


# -- 2. defaults in voxels --------------------------------------------------------------------
@pytest.mark.parametrize(("scale", "expected"), [((0.29, 0.26, 0.26), "0.78"), ((2.0, 2.0, 2.0), "6")])
def test_default_lengths_are_a_few_voxels_of_the_layer(scale, expected, viewer, dock):
    viewer.add_image(noisy_stack(), scale=scale, units="µm", axis_labels=("z", "y", "x"))
    widget = dock("Median")
    assert widget.size.value == expected
    assert "size in voxels: z 3, y 3, x 3" in widget.info.value
    gaussian = dock("Gaussian")
    assert float(gaussian.sigma.value) == pytest.approx(min(scale))


def test_typed_lengths_stay_when_the_image_changes(viewer, dock):
    first = viewer.add_image(noisy_stack(), scale=(1, 1, 1), name="fine")
    coarse = viewer.add_image(noisy_stack(), scale=(4, 4, 4), name="coarse")
    widget = dock("Median")
    widget.image.value = first
    assert widget.size.value == "3"
    widget.image.value = coarse
    assert widget.size.value == "12"  # not typed: follows the layer
    widget.size.value = "5"
    widget.image.value = first
    assert widget.size.value == "5"  # typed: kept


# -- 3. preview within about a second, following the 2-D / 3-D switch --------------------------
def _preview_layers(viewer):
    return [layer for layer in viewer.layers if _widgets.PREVIEW_KEY in layer.metadata]


def test_preview_of_a_slow_3d_method_takes_about_a_second_and_says_how(viewer, dock, qtbot):
    import napari_denoise

    source = _sample(viewer)
    napari_denoise.non_local_means(np.asarray(source.data[:3, :32, :32]))  # compile once
    widget = dock("Non-local means")
    qtbot.wait(50)
    t0 = time.perf_counter()
    widget.preview.value = True
    qtbot.waitUntil(lambda: widget.preview_layer is not None, timeout=20_000)
    elapsed = time.perf_counter() - t0
    # 250 ms debounce + a ~0.4 s budget + adding the layer; loose for a shared machine
    assert elapsed < 2.5, f"preview took {elapsed:.2f} s"
    assert "preview" in widget.info.value and ("2-D" in widget.info.value or "crop" in widget.info.value)


def test_preview_follows_the_2d_3d_switch_both_ways(viewer, dock, qtbot):
    viewer.add_image(noisy_stack(), scale=(0.29, 0.26, 0.26), units="µm", axis_labels=("z", "y", "x"))
    widget = dock("Gaussian")
    widget.preview.value = True
    qtbot.waitUntil(lambda: widget.preview_layer is not None, timeout=10_000)
    viewer.dims.ndisplay = 3
    qtbot.waitUntil(lambda: _widgets.NEEDS_2D in widget.info.value, timeout=5_000)
    assert not _preview_layers(viewer)  # no plane floating in the volume
    viewer.dims.ndisplay = 2
    qtbot.waitUntil(lambda: widget.preview_layer is not None, timeout=10_000)
    assert _widgets.NEEDS_2D not in widget.info.value
    assert len(_preview_layers(viewer)) == 1


# -- 4. axis names; controls that do nothing are hidden ---------------------------------------
def test_unlabelled_axes_are_named_z_y_x(viewer, dock):
    viewer.add_image(noisy_stack())  # no axis labels
    widget = dock("Sobel")
    assert "axes: z, y, x" in widget.info.value
    gaussian = dock("Gaussian")
    assert "sigma in voxels: z 1, y 1, x 1" in gaussian.info.value
    for text in (widget.info.value, gaussian.info.value):
        assert not re.search(r"(^|[ ,:])-\d", text), text


def test_process_as_is_offered_only_where_it_changes_something(viewer, dock):
    viewer.add_image(noisy_stack())  # unlabelled 3-D: volume or planes
    assert not dock("Gaussian").process_as.native.isHidden()
    assert dock("Canny").process_as.native.isHidden()  # Canny works plane by plane anyway
    viewer.add_image(noisy_stack()[0], name="plane")  # 2-D: nothing to choose
    widget = dock("Gaussian")
    widget.image.value = viewer.layers["plane"]
    assert widget.process_as.native.isHidden()


# -- 5. the image field -----------------------------------------------------------------------
def test_image_field_picks_the_only_image_whatever_layer_is_selected(viewer, dock):
    source = viewer.add_image(noisy_stack(), scale=(0.29, 0.26, 0.26), units="µm")
    viewer.add_points(np.zeros((1, 3)))
    viewer.add_labels(np.zeros((12, 40, 40), np.uint8))
    assert not isinstance(viewer.layers.selection.active, Image)
    widget = dock("Gaussian")
    assert widget.image.value is source
    assert widget.sigma.label == "sigma (µm)"  # unit label kept


def test_image_field_picks_the_active_image(viewer, dock):
    first = viewer.add_image(noisy_stack(), name="first")
    viewer.add_image(noisy_stack(seed=1), name="second")
    viewer.layers.selection.active = first
    assert dock("Median").image.value is first


# -- 6. tooltips, labels, "auto" values -------------------------------------------------------
def _form_labels(widget):
    from qtpy.QtWidgets import QLabel

    layout = widget._form.native.layout()
    labels = []
    for i in range(layout.count()):
        row = layout.itemAt(i).widget()
        inner = row.layout() if row is not None else None
        first = inner.itemAt(0).widget() if inner is not None and inner.count() == 2 else None
        if isinstance(first, QLabel) and not row.isHidden():
            labels.append(first)
    return labels


def test_tooltips_plain_wrapped_and_labels_words_aligned(viewer, qtbot):
    viewer.add_image(noisy_stack(), scale=(0.29, 0.26, 0.26), units="µm")
    panel = _panel(viewer, qtbot)
    for spec in FILTERS:
        panel.filter.value = spec.display_name
        qtbot.wait(5)
        for control in panel._controls:
            tip = control.widget.tooltip
            assert tip and not MARKUP.search(tip), (spec.name, control.name, tip)
            assert max(map(len, tip.splitlines())) <= TOOLTIP_WIDTH, (spec.name, control.name, tip)
            text = control.widget.text if isinstance(control.widget, CheckBox) else control.widget.label
            assert "_" not in text, (spec.name, text)
        labels = _form_labels(panel)
        assert len(labels) >= 2
        assert len({label.minimumWidth() for label in labels}) == 1, spec.name  # one label column
        assert all(label.minimumWidth() >= label.sizeHint().width() for label in labels)


def test_auto_fields_show_the_value_used_once_an_image_is_chosen(viewer, dock, qtbot):
    rng = np.random.default_rng(3)
    data = (1000 + 20 * rng.standard_normal((6, 96, 96))).astype(np.float32)
    widget = dock("Total variation")
    # noise_model 'auto' (the default): stabilised or not per slice, unknown before an image
    assert widget.weight.native.placeholderText() == "auto (from the noise model of each slice)"
    viewer.add_image(data, name="noisy")
    qtbot.waitUntil(lambda: "≈" in widget.weight.native.placeholderText(), timeout=10_000)
    shown = float(re.search(r"≈ ([\d.]+)", widget.weight.native.placeholderText()).group(1))
    from napari_denoise.filters import denoise

    # the volumes' multiple of the noise σ of 20 (Gaussian noise: 'auto' does not stabilise)
    assert shown == pytest.approx(denoise.TV_WEIGHT_FACTOR[3] * 20, rel=0.15)
    widget.noise_model.value = "poisson"
    assert widget.weight.native.placeholderText().startswith(f"auto ≈ {denoise.TV_WEIGHT_FACTOR[3]:g} ")  # × σ = 1


# -- 7. one panel for every filter --------------------------------------------------------------
def test_panel_controls_change_with_the_filter_and_reset(viewer, qtbot):
    viewer.add_image(noisy_stack(), scale=(0.29, 0.26, 0.26), units="µm")
    panel = _panel(viewer, qtbot)
    assert panel.filter.choices == tuple(spec.display_name for spec in FILTERS)
    panel.filter.value = "Median"
    visible = {c.name for c in panel._controls if not c.widget.native.isHidden()}
    assert visible == {"size", "mode", "cval"} or visible == {"size", "mode"}
    panel.size.value = "1.5"
    panel.filter.value = "Total variation"
    assert panel.spec is by_name("total_variation")
    assert not panel.weight.native.isHidden()
    hidden = [c for name, cs in panel._control_sets.items() if name != "total_variation" for c in cs]
    assert all(c.widget.native.isHidden() for c in hidden)
    panel.filter.value = "Median"
    assert panel.size.value == "1.5"  # each filter keeps its values
    panel.mode.value = "nearest"
    panel.reset_button.changed.emit(True)
    assert panel.size.value == "0.78" and panel.mode.value == "reflect"
    panel.size.value = "0.6"
    worker = panel()
    assert worker is not None, panel.last_error
    wait_done(qtbot, panel)
    qtbot.wait(1200)  # a status tick later, the line still says how the run ended
    assert panel.status.value.startswith("Done in"), panel.status.value
    result = viewer.layers[-1]
    assert result.name.startswith("noisy") or "median" in result.name.lower()
    assert result.metadata["napari_denoise"]["filter"] == "median"


def test_panel_is_first_in_layers_filter_menu():
    from napari_denoise._manifest import build_manifest

    menus = build_manifest()["contributions"]["menus"]
    assert menus["napari/layers/filter"][0] == {"command": "napari-denoise.panel"}


# -- 8. the README matches the menus and result types ---------------------------------------------
def test_readme_menu_paths_exist_and_screenshots_are_there():
    from pathlib import Path

    from napari_denoise._manifest import build_manifest

    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text(encoding="utf-8")
    contributions = build_manifest()["contributions"]
    commands = {c["id"]: c for c in contributions["commands"]}
    names = {w["command"]: w["display_name"] for w in contributions["widgets"]}
    submenus = {s["id"]: s["label"] for s in contributions["submenus"]}

    def entries(items):
        out = {}
        for item in items:
            if "submenu" in item:
                out[submenus[item["submenu"]]] = entries(contributions["menus"][item["submenu"]])
            else:
                out[names[item["command"]]] = None
        return out

    tree = {"Filter": entries(contributions["menus"]["napari/layers/filter"])}
    paths = re.findall(r"\*\*Layers ▸ ([^*]+)\*\*", readme)
    assert paths and "Layers ▸ Filters" not in readme
    for path in paths:
        node = tree
        for part in path.split(" ▸ "):
            assert node is not None and part in node, (path, part)
            node = node[part]
    assert "**Canny** gives a **Labels** layer" in readme
    assert commands["napari-denoise.canny"]
    for image in re.findall(r"\]\((docs/images/[^)]+\.png)\)", readme):
        assert (root / image).stat().st_size > 10_000, image
