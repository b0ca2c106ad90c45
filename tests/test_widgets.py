"""GUI tests: registration, controls, info/warnings, bad input, preview, errors.

Run under a virtual X server (see .ci/test); every test uses napari's
``make_napari_viewer`` fixture (through ``viewer`` in conftest.py).
"""

from __future__ import annotations

import inspect
import time

import numpy as np
import pytest
from scipy import ndimage

from conftest import ANISO_SCALE, PLUGIN, docked_names, noisy_stack, wait_done
import napari_denoise
from napari_denoise import _manifest, _scheduler, _widgets
from napari_denoise._registry import COMMON_PARAMETERS, FAMILIES, FILTERS, widget_parameters

IDS = [spec.name for spec in FILTERS]


def _errors(notes):
    return [msg for severity, msg in notes if severity.lower() in ("error",)]


# -- 1. registration ------------------------------------------------------------
@pytest.mark.parametrize("spec", FILTERS, ids=IDS)
def test_dock_by_display_name_with_named_controls(spec, viewer, dock):
    layer = viewer.add_image(noisy_stack(), scale=ANISO_SCALE, units="µm")
    widget = dock(spec.display_name)
    assert type(widget) is getattr(_widgets, spec.widget_class_name)
    assert isinstance(widget, _widgets.FilterWidget)
    assert widget.spec is spec
    # the active Image layer is picked up
    assert widget.image.value is layer
    full_name = f"{spec.display_name} ({PLUGIN})"
    assert full_name in docked_names(viewer)

    # 2. controls carry the library's parameter names, each with a tooltip
    names = [p.name for p in widget_parameters(spec)]
    assert names, spec.name
    for name in ["image", *names]:
        control = getattr(widget, name)
        assert control.tooltip, f"{spec.name}.{name} has no tooltip"
    # every parameter of the public function except the layer-filled ones has a control
    signature = inspect.signature(spec.function.op)
    assert set(signature.parameters) - set(COMMON_PARAMETERS) == set(names)
    for control in ("process_as", "update_result", "preview", "info", "run_button", "cancel_button"):
        assert getattr(widget, control) is not None


def test_menus_list_every_widget(viewer):
    from napari._app_model import get_app_model

    app = get_app_model()
    menus = app.menus
    # Layers > Filters holds the two submenus, labelled per family.
    filter_items = list(menus.get_menu("napari/layers/filter"))
    submenus = {
        item.submenu: item.title for item in filter_items if hasattr(item, "submenu")
    }
    for family, label in FAMILIES.items():
        assert submenus.get(f"napari-denoise.{family}") == label
    # Each submenu lists exactly the commands of its family, in the registry's order.
    for family in FAMILIES:
        ids = [item.command.id for item in menus.get_menu(f"napari-denoise.{family}")]
        assert ids == [_menu_id(app, spec) for spec in FILTERS if spec.family == family] + [
            _menu_id(app, w) for w in _manifest.APP_WIDGETS if w.family == family
        ]
    # Plugins menu: one submenu for the plugin with every widget.
    plugin_items = [item for item in menus.get_menu("napari/plugins") if hasattr(item, "submenu")]
    assert f"napari/plugins/{PLUGIN}" in [item.submenu for item in plugin_items]
    plugin_ids = {item.command.id for item in menus.get_menu(f"napari/plugins/{PLUGIN}")}
    assert {_menu_id(app, spec) for spec in FILTERS} <= plugin_ids
    # Every command has a title naming the filter.
    for spec in FILTERS:
        assert spec.display_name in app.commands[_menu_id(app, spec)].title


def _menu_id(app, spec):
    """The app-model command that docks ``spec``'s widget: the manifest's command id
    (napari >= 0.7), or ``plugin:display name`` (napari 0.6)."""
    for candidate in (spec.command_id, f"{PLUGIN}:{spec.display_name}"):
        if candidate in app.commands:
            return candidate
    raise KeyError(spec.command_id)


def test_menu_command_docks_widget(viewer, qtbot):
    from napari._app_model import get_app_model

    app = get_app_model()
    for spec in (FILTERS[0], FILTERS[-1]):
        app.commands.execute_command(_menu_id(app, spec))
        qtbot.wait(10)
        assert f"{spec.display_name} ({PLUGIN})" in docked_names(viewer)


# -- 3. physical units, info line and warnings -------------------------------------
def test_info_shows_voxels_and_warnings(viewer, dock, qtbot):
    viewer.add_image(noisy_stack(), scale=ANISO_SCALE, units="µm", axis_labels=("z", "y", "x"))
    widget = dock("Gaussian")
    widget.sigma.value = "0.5"
    info = widget.info.value
    assert "z 1.724" in info and "y 1.923" in info and "x 1.923" in info
    assert "µm" in widget.sigma.label
    # per-axis values, typed or set as a tuple
    widget.sigma.value = "0.5, 0.3, 0.3"
    assert "z 1.724" in widget.info.value and "x 1.154" in widget.info.value
    widget.sigma.value = (0.58, 0.26, 0.26)
    assert "z 2, y 1, x 1" in widget.info.value
    # z sigma below half a voxel warns
    widget.sigma.value = "0.12, 0.5, 0.5"
    assert "⚠" in widget.info.value and "along z" in widget.info.value
    # a kernel larger than the image warns
    widget = dock("Median")
    widget.size.value = "3.8"  # 13 x 15 x 15 voxels on a 12 x 40 x 40 stack
    assert "larger than the image" in widget.info.value


def test_pixels_without_units(viewer, dock):
    viewer.add_image(noisy_stack((30, 30)))
    widget = dock("Gaussian")
    widget.sigma.value = "2"
    assert "(px)" in widget.sigma.label
    assert "2" in widget.info.value


# -- 9. bad input ---------------------------------------------------------------------
def test_no_layer_refused(viewer, dock, notifications):
    widget = dock("Gaussian")
    assert widget.image.value is None
    assert widget() is None
    assert not widget.running
    assert len(viewer.layers) == 0
    assert "image" in widget._last_error
    assert _errors(notifications)


def test_non_image_layer_refused(viewer, dock, notifications):
    points = viewer.add_points(np.zeros((3, 2)))
    labels = viewer.add_labels(np.zeros((8, 8), np.uint8))
    widget = dock("Median")
    assert points not in widget.image.choices and labels not in widget.image.choices
    assert widget() is None
    assert len(viewer.layers) == 2
    assert _errors(notifications)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"data": np.zeros((5, 30)), "axis_labels": ("t", "x")},
        {"data": np.zeros((3, 30)), "axis_labels": ("c", "x")},
    ],
    ids=["t-x", "c-x"],
)
def test_fewer_than_two_spatial_axes_refused(kwargs, viewer, dock, notifications):
    viewer.add_image(**kwargs)
    widget = dock("Gaussian")
    assert widget() is None
    assert len(viewer.layers) == 1
    assert "spatial" in widget._last_error
    assert _errors(notifications)


@pytest.mark.parametrize(
    ("display_name", "name", "value"),
    [
        ("Gaussian", "sigma", "-1"),
        ("Gaussian", "sigma", "abc"),
        ("Gaussian", "sigma", "0.5, 0.3"),  # wrong number of axes
        ("Median", "size", "0"),
        ("Non-local means", "h", "-2"),
        ("Difference of Gaussians", "high_sigma", "0.1"),  # smaller than low_sigma
    ],
)
def test_invalid_values_refused(display_name, name, value, viewer, dock, notifications):
    source = viewer.add_image(noisy_stack(), scale=ANISO_SCALE, units="µm")
    before = source.data.copy()
    widget = dock(display_name)
    getattr(widget, name).value = value
    assert "⚠" in widget.info.value and name in widget.info.value
    assert widget() is None
    assert len(viewer.layers) == 1
    assert name in widget._last_error
    assert any(name in msg for msg in _errors(notifications))
    np.testing.assert_array_equal(source.data, before)


def test_worker_error_becomes_notification(viewer, dock, qtbot, notifications, monkeypatch):
    viewer.add_image(noisy_stack(), scale=ANISO_SCALE, units="µm")
    widget = dock("Gaussian")

    def broken(op, data, **kwargs):
        yield (0, 1)
        # a RuntimeError is what superqt's generator worker would swallow
        raise RuntimeError("boom from the filter")

    monkeypatch.setattr(_scheduler, "steps", broken)
    worker = widget()
    assert worker is not None
    wait_done(qtbot, widget)
    assert len(viewer.layers) == 1
    assert "boom" in widget._last_error
    assert any("boom" in msg for msg in _errors(notifications))
    assert widget.run_button.enabled and widget.run_button.text == "Run"


# -- 7. preview -------------------------------------------------------------------------
def _preview_layers(viewer):
    return [layer for layer in viewer.layers if _widgets.PREVIEW_KEY in layer.metadata]


@pytest.mark.parametrize(("display_name", "name", "value"), [("Gaussian", "sigma", "2"), ("Median", "size", "3")])
def test_preview_fast_on_large_plane(display_name, name, value, viewer, dock, qtbot):
    rng = np.random.default_rng(1)
    data = rng.random((1024, 1024), dtype=np.float32)
    source = viewer.add_image(data, name="big")
    widget = dock(display_name)
    getattr(widget, name).value = value
    # Warm up: the first call in a process may compile kernels (numba) once.
    getattr(napari_denoise, widget.spec.name)(data[:64, :64], float(value))
    qtbot.wait(50)  # let the canvas draw the source first
    t0 = time.perf_counter()
    widget.preview.value = True
    qtbot.waitUntil(lambda: len(_preview_layers(viewer)) == 1, timeout=10_000)
    elapsed = time.perf_counter() - t0
    # 250 ms debounce + filtering + adding the layer; generous for a loaded CI machine
    assert elapsed < 2.0, f"preview took {elapsed:.2f} s"
    preview = widget.preview_layer
    assert preview.data.shape == (1024, 1024)
    if display_name == "Gaussian":
        expected = ndimage.gaussian_filter(data, 2.0)
    else:
        expected = ndimage.median_filter(data, 3)
    np.testing.assert_allclose(preview.data, expected, rtol=1e-5, atol=1e-5)
    assert len(viewer.layers) == 2
    # the source stays the widget's input and the preview is not offered as one
    assert widget.image.value is source
    assert preview not in widget.image.choices


def test_preview_of_volume_shows_displayed_plane(viewer, dock, qtbot):
    data = np.random.default_rng(2).random((9, 128, 128), dtype=np.float32)
    viewer.add_image(data, name="vol", scale=(2.0, 1.0, 1.0), units="µm")
    viewer.dims.set_current_step(0, 3)
    widget = dock("Gaussian")
    widget.sigma.value = "2"
    widget.preview.value = True
    qtbot.waitUntil(lambda: widget.preview_layer is not None, timeout=10_000)
    preview = widget.preview_layer
    assert preview.data.shape == (1, 128, 128)
    # one plane of the 3-D filter (the halo along z is read from the neighbours)
    expected = ndimage.gaussian_filter(data, (1.0, 2.0, 2.0))[3]
    np.testing.assert_allclose(preview.data[0], expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(preview.translate, [6.0, 0, 0])
    np.testing.assert_allclose(preview.scale, [2.0, 1.0, 1.0])


def test_preview_follows_parameters_and_plane_and_goes_away(viewer, dock, qtbot):
    data = noisy_stack((6, 64, 64)).astype(np.float32)
    viewer.add_image(data, name="stack")
    widget = dock("Gaussian")
    widget.sigma.value = "1"
    widget.preview.value = True
    qtbot.waitUntil(lambda: widget.preview_layer is not None, timeout=5000)
    first = widget.preview_layer
    np.testing.assert_allclose(first.data[0], ndimage.gaussian_filter(data, 1.0)[viewer.dims.current_step[0]], rtol=1e-5, atol=1e-4)
    old = first.data.copy()
    widget.sigma.value = "2"  # debounced update of the same layer
    qtbot.waitUntil(lambda: not np.allclose(widget.preview_layer.data, old), timeout=5000)
    assert widget.preview_layer is first
    assert len(_preview_layers(viewer)) == 1
    # moving the slider updates the plane
    viewer.dims.set_current_step(0, 0)
    qtbot.waitUntil(lambda: np.allclose(first.translate[0], 0), timeout=5000)
    np.testing.assert_allclose(first.data[0], ndimage.gaussian_filter(data, 2.0)[0], rtol=1e-5, atol=1e-4)
    # preview layers are not offered as inputs
    assert first not in widget.image.choices
    # turning it off removes it
    widget.preview.value = False
    qtbot.wait(10)
    assert not _preview_layers(viewer)
    assert len(viewer.layers) == 1
    # on again, then closing the widget removes it too
    widget.preview.value = True
    qtbot.waitUntil(lambda: len(_preview_layers(viewer)) == 1, timeout=5000)
    widget.close()
    qtbot.wait(10)
    assert not _preview_layers(viewer)


def test_preview_of_invalid_value_adds_nothing(viewer, dock, qtbot, notifications):
    viewer.add_image(noisy_stack((40, 40)).astype(np.float32))
    widget = dock("Gaussian")
    widget.sigma.value = "abc"
    widget.preview.value = True
    qtbot.wait(_widgets.PREVIEW_DELAY_MS + 200)
    assert not _preview_layers(viewer)
    assert "preview" in widget.info.value


def test_closing_the_panel_removes_the_preview(viewer, qtbot):
    viewer.add_image(noisy_stack((64, 64)).astype(np.float32))
    dock_widget, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Gaussian")
    widget.preview.value = True
    qtbot.waitUntil(lambda: len(_preview_layers(viewer)) == 1, timeout=5000)
    viewer.window.remove_dock_widget(dock_widget)  # what the panel's "x" does
    qtbot.wait(10)
    assert not _preview_layers(viewer)
    assert len(viewer.layers) == 1
    # parameter changes after closing do not bring it back
    widget.sigma.value = "3"
    qtbot.wait(_widgets.PREVIEW_DELAY_MS + 100)
    assert not _preview_layers(viewer)


def test_run_warns_about_sub_voxel_sigma(viewer, dock, qtbot, notifications):
    viewer.add_image(noisy_stack(), scale=ANISO_SCALE, units="µm", axis_labels=("z", "y", "x"))
    widget = dock("Gaussian")
    widget.sigma.value = "0.12, 0.5, 0.5"
    assert widget() is not None
    wait_done(qtbot, widget)
    assert len(viewer.layers) == 2
    assert any(s.lower() == "warning" and "along z" in m for s, m in notifications)
