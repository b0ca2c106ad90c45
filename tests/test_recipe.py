"""Names, voxel sizes, warnings and reproducible recipes for widget runs."""

import numpy as np
import pytest

import napari_denoise
from napari_denoise._layer_axes import layer_axes
from napari_denoise._recipe import call_arguments, python_call, recipe, result_name, voxel_sizes, warnings_for
from napari_denoise._registry import FILTERS, by_name

AXES = layer_axes(3, (0.29, 0.26, 0.26), ("µm",) * 3, ("z", "y", "x"))


def test_gaussian_half_micron_in_voxels_per_axis():
    spec = by_name("Gaussian")
    sizes = voxel_sizes(spec, AXES, {"sigma": 0.5})
    assert sizes["sigma"] == pytest.approx((0.5 / 0.29, 0.5 / 0.26, 0.5 / 0.26), abs=1e-4)


def test_median_size_becomes_odd_voxel_counts():
    spec = by_name("Median")
    assert voxel_sizes(spec, AXES, {"size": 1.0})["size"] == (3, 3, 3)  # 3.45, 3.85 voxels
    assert voxel_sizes(spec, AXES, {"size": (0.87, 1.3, 1.3)})["size"] == (3, 5, 5)
    assert voxel_sizes(spec, AXES, {"size": 0.1})["size"] == (1, 1, 1)


def test_warns_for_sub_half_voxel_sigma_and_huge_kernels():
    spec = by_name("Gaussian")
    notes = warnings_for(spec, AXES, (10, 64, 64), {"sigma": (0.1, 0.5, 0.5)})
    assert any("along z" in n and "< 0.5" in n for n in notes)
    notes = warnings_for(spec, AXES, (10, 64, 64), {"sigma": 2.0})
    assert any("beyond the image" in n and "z" in n for n in notes)
    assert warnings_for(spec, AXES, (60, 256, 256), {"sigma": 0.5}) == []


def test_result_name_and_python_line_reproduce_the_run():
    spec = by_name("Gaussian")
    values = {"sigma": 0.5, "mode": "reflect", "truncate": 4.0, "cval": 0.0}
    assert result_name(spec, "nuclei", AXES, values) == "nuclei gaussian σ=0.5 µm"
    kwargs = call_arguments(spec, AXES, values)
    meta = recipe(spec, "nuclei", AXES, values, kwargs)
    assert meta["filter"] == "gaussian" and meta["source"] == "nuclei"
    assert meta["version"] == napari_denoise.__version__
    data = np.random.default_rng(0).random((6, 12, 12)).astype(np.float32)

    class layer:  # what the line refers to
        pass

    layer.data = data
    reproduced = eval(meta["python"], {"napari_denoise": napari_denoise, "layer": layer})
    np.testing.assert_array_equal(reproduced, napari_denoise.gaussian(data, 0.5, spacing=(0.29, 0.26, 0.26)))
    assert python_call(spec, kwargs).startswith("napari_denoise.gaussian(layer.data, sigma=0.5")


def test_filters_without_spacing_get_none_passed():
    spec = by_name("Wavelet")
    kwargs = call_arguments(spec, AXES, {"sigma": None})
    assert "spacing" not in kwargs and kwargs["spatial_axes"] == (0, 1, 2)


@pytest.mark.parametrize("spec", FILTERS, ids=lambda s: s.name)
def test_planar_flag_agrees_with_the_function(spec):
    # the table says which filters work plane by plane; the function decides it
    op = spec.function.op(np.zeros((6, 12, 12), np.float32))
    assert spec.planar == (op.spatial_axes == (1, 2))
