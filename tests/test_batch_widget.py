"""GUI tests: a widget's recipe replays exactly; the "Apply recipe to files" dock runs, cancels, opens results."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from napari.layers import Labels

import napari_denoise as nd
from conftest import ANISO_SCALE, PLUGIN, docked_names, noisy_stack, wait_done
from napari_denoise import _batch_widget, _io
from napari_denoise._registry import FILTERS, by_name
from napari_denoise.recipes import load_recipe, save_recipe
from test_widget_runs import CASES

TITLE = "Apply recipe to files"


def _run_widget(viewer, dock, qtbot, spec, data, **layer_kwargs):
    source = viewer.add_image(data, name="nuclei", **layer_kwargs)
    widget = dock(spec.display_name)
    widget.image.value = source
    values, process_as, *_ = CASES[spec.name]
    for name, value in values.items():
        getattr(widget, name).value = value
    if process_as is not None:
        widget.process_as.value = process_as
    assert widget() is not None, widget.last_error
    wait_done(qtbot, widget)
    return source, viewer.layers[-1]


@pytest.mark.parametrize("spec", FILTERS, ids=[s.name for s in FILTERS])
def test_saved_recipe_gives_exactly_the_widgets_numbers(spec, viewer, dock, qtbot, tmp_path):
    """Run the widget in napari, save its recipe (JSON and YAML), apply it to the same data."""
    source, result = _run_widget(viewer, dock, qtbot, spec, noisy_stack(), scale=ANISO_SCALE, units="µm",
                                 axis_labels=("z", "y", "x"))
    recipe = nd.recipe_of(result)
    for suffix in ("json", "yaml"):
        loaded = load_recipe(save_recipe(recipe, tmp_path / f"recipe.{suffix}"))
        assert loaded == recipe
        replayed = nd.apply_recipe(loaded, source.data, spacing=source.scale)
        # Canny's edges are shown as a Labels layer, which stores them as 0/1 integers
        expected = result.data.astype(bool) if isinstance(result, Labels) else result.data
        assert replayed.dtype == expected.dtype
        np.testing.assert_array_equal(replayed, expected)


def test_a_layer_without_units_gives_a_pixel_recipe(viewer, dock, qtbot):
    spec = by_name("median")
    source, result = _run_widget(viewer, dock, qtbot, spec, noisy_stack())
    recipe = nd.recipe_of(result)
    assert recipe.lengths == "pixels" and recipe.unit is None
    np.testing.assert_array_equal(nd.apply_recipe(recipe, source.data), result.data)
    # on a stack of another size and layout it still works: 4-D, the last three axes
    bigger = np.stack([noisy_stack(seed=s) for s in range(2)])
    np.testing.assert_array_equal(nd.apply_recipe(recipe, bigger)[1], nd.apply_recipe(recipe, bigger[1]))


def test_dock_is_listed_and_saves_the_recipe_of_a_result_layer(viewer, dock, qtbot, tmp_path):
    _, result = _run_widget(viewer, dock, qtbot, by_name("gaussian"), noisy_stack(), scale=ANISO_SCALE, units="µm")
    widget = dock(TITLE)
    assert isinstance(widget, _batch_widget.BatchWidget)
    assert f"{TITLE} ({PLUGIN})" in docked_names(viewer)
    # the newest result layer is chosen; raw layers are not offered
    assert widget.recipe_layer.value is result
    assert [name for name, _ in widget._result_layers()] == [result.name]
    assert widget.recipe_info.value.startswith("gaussian(sigma=0.5")
    saved = widget.save_recipe(tmp_path / "r.yaml")
    assert load_recipe(saved) == nd.recipe_of(result)
    assert widget.recipe_file.value == saved
    # without a layer the file is used
    widget.recipe_layer.value = None
    assert widget.recipe() == nd.recipe_of(result)


def _files(folder, n=3, shape=(8, 40, 40)):
    folder.mkdir()
    images = {}
    for i in range(n):
        images[f"f{i}"] = noisy_stack(shape, seed=i)
        tifffile.imwrite(folder / f"f{i}.ome.tif", images[f"f{i}"], metadata={
            "axes": "ZYX", "PhysicalSizeX": 0.26, "PhysicalSizeY": 0.26, "PhysicalSizeZ": 0.29})
    return images


def test_dock_applies_the_recipe_to_a_folder_and_opens_results(viewer, dock, qtbot, tmp_path, notifications):
    _, result = _run_widget(viewer, dock, qtbot, by_name("gaussian"), noisy_stack(), scale=ANISO_SCALE, units="µm")
    images = _files(tmp_path / "in")
    (tmp_path / "in" / "broken.tif").write_bytes(b"II*\x00nonsense")
    widget = dock(TITLE)
    widget.input_folder.value = tmp_path / "in"
    widget.output_folder.value = tmp_path / "out"
    worker = widget.run()
    assert worker is not None, widget.last_error
    assert widget.running and not widget.run_button.enabled and widget.cancel_button.enabled
    wait_done(qtbot, widget)
    summary = widget.last_summary
    assert summary.count("written") == 3 and summary.count("failed") == 1
    assert "3 written, 1 failed" in widget.status.value
    assert any("broken.tif failed" in message for _, message in notifications)
    recipe = nd.recipe_of(result)
    for name, data in images.items():
        out = _io.open_image(tmp_path / "out" / f"{name}.ome.zarr").load()
        np.testing.assert_array_equal(out, nd.apply_recipe(recipe, data, spacing=ANISO_SCALE))
    # results are listed and open with their voxel size, axes and units
    assert [p.name for p in widget.written] == ["f0.ome.zarr", "f1.ome.zarr", "f2.ome.zarr"]
    before = len(viewer.layers)
    widget.results.value = [widget.written[1]]
    opened = widget.open_selected()
    assert len(viewer.layers) == before + 1 and opened[0].name == "f1"
    np.testing.assert_allclose(opened[0].scale, ANISO_SCALE)
    assert tuple(opened[0].axis_labels) == ("z", "y", "x")
    assert str(opened[0].units[-1]) in ("micrometer", "µm")
    np.testing.assert_array_equal(np.asarray(opened[0].data), np.asarray(
        _io.open_image(tmp_path / "out" / "f1.ome.zarr").load()))
    # a second run skips everything that is finished
    widget.run()
    wait_done(qtbot, widget)
    assert widget.last_summary.count("skipped") == 3


def test_dock_cancel_leaves_no_finished_looking_output(viewer, dock, qtbot, tmp_path):
    source = viewer.add_image(noisy_stack(), scale=ANISO_SCALE, units="µm")
    nlm = dock("Non-local means")
    nlm.image.value = source
    nlm.h.value = "5"
    nlm()
    wait_done(qtbot, nlm)
    _files(tmp_path / "in", n=2, shape=(24, 128, 128))  # seconds of non-local means each
    widget = dock(TITLE)
    widget.recipe_layer.value = viewer.layers[-1]
    widget.input_folder.value = tmp_path / "in"
    widget.output_folder.value = tmp_path / "out"
    assert widget.run() is not None
    qtbot.waitUntil(lambda: "f0" in widget.status.value, timeout=30_000)
    qtbot.wait(300)
    widget.cancel_button.native.click()  # as a person does
    wait_done(qtbot, widget, timeout=30_000)
    assert widget.last_summary.cancelled
    assert "cancelled" in widget.status.value
    assert list((tmp_path / "out").iterdir()) == []  # no output, not even a partial one


def test_dock_refuses_bad_settings_with_clear_messages(viewer, dock, qtbot, tmp_path):
    widget = dock(TITLE)
    assert widget.run() is None and "recipe: choose a result layer or a recipe file" in widget.last_error
    recipe = save_recipe(nd.Recipe("gaussian", {"sigma": 0.5}, unit="µm"), tmp_path / "r.json")
    widget.recipe_file.value = recipe
    assert widget.run() is None and "input: choose input files or an input folder" in widget.last_error
    _files(tmp_path / "in", n=1)
    widget.input_files.value = (tmp_path / "in" / "f0.ome.tif",)
    blocker = tmp_path / "out"
    blocker.write_text("a file, not a folder")
    widget.output_folder.value = blocker
    assert widget.run() is None and "is a file, not a folder" in widget.last_error
    assert "⚠" in widget.status.value
