"""Which axes of a layer are spatial, with what spacing and unit."""

import numpy as np
import pint
import pytest

from napari_denoise._layer_axes import layer_axes

ureg = pint.UnitRegistry()


def test_unlabelled_3d_is_a_volume_by_default_or_planes_on_request():
    axes = layer_axes(3, (0.29, 0.26, 0.26))
    assert axes.spatial_axes == (0, 1, 2)
    assert axes.can_choose_volume
    assert axes.unit == "px"
    planes = layer_axes(3, (0.29, 0.26, 0.26), volume=False)
    assert planes.spatial_axes == (1, 2)
    assert planes.independent_axes == (0,)
    assert planes.spacing == (0.26, 0.26)


def test_micrometre_stack_keeps_its_unit_and_voxel_size():
    um = ureg.micrometer
    axes = layer_axes(3, (0.29, 0.26, 0.26), (um, um, um), ("z", "y", "x"))
    assert axes.unit == "µm"
    assert axes.spacing == pytest.approx((0.29, 0.26, 0.26))
    assert axes.labels == ("z", "y", "x")


def test_mixed_units_are_converted_to_the_last_axis_unit():
    axes = layer_axes(3, (290.0, 0.26, 0.26), (ureg.nanometer, ureg.micrometer, ureg.micrometer))
    assert axes.unit == "µm"
    assert axes.spacing == pytest.approx((0.29, 0.26, 0.26))


@pytest.mark.parametrize("label", ["t", "time", "T", "c", "ch", "channel", "Channels"])
def test_time_and_channel_labels_are_never_spatial(label):
    axes = layer_axes(3, (1, 1, 1), None, (label, "y", "x"))
    assert axes.spatial_axes == (1, 2)
    assert axes.independent_axes == (0,)
    assert not axes.can_choose_volume


def test_5d_tczyx_keeps_zyx():
    axes = layer_axes(5, (1, 1, 2.0, 0.5, 0.5), None, ("t", "c", "z", "y", "x"))
    assert axes.spatial_axes == (2, 3, 4)
    assert axes.spacing == (2.0, 0.5, 0.5)
    assert axes.independent_axes == (0, 1)


def test_unlabelled_4d_takes_the_last_three():
    axes = layer_axes(4, np.ones(4))
    assert axes.spatial_axes == (1, 2, 3)


def test_rgb_colour_axis_is_independent():
    axes = layer_axes(2, (1, 1), rgb=True)
    assert axes.spatial_axes == (0, 1)
    assert axes.independent_axes == (2,)


def test_too_few_spatial_axes_is_refused_with_the_reason():
    with pytest.raises(ValueError, match="image: needs at least two spatial axes"):
        layer_axes(2, (1, 1), None, ("t", "x"))


@pytest.mark.parametrize("style", ["{}", "axis {}"], ids=["napari-0.9", "napari-0.6"])
def test_unlabelled_axes_are_named_z_y_x_never_negative_indices(style):
    labels = [style.format(i - 4) for i in range(4)]  # napari's defaults for a 4-D layer
    volume = layer_axes(4, (1, 1, 1, 1), axis_labels=labels)
    assert volume.labels == ("z", "y", "x")
    planes = layer_axes(4, (1, 1, 1, 1), axis_labels=labels, volume=False)
    assert planes.labels == ("y", "x")
    assert layer_axes(2, (1, 1)).labels == ("y", "x")
    # real labels are kept
    assert layer_axes(3, (1, 1, 1), axis_labels=("depth", "row", "col")).labels == ("depth", "row", "col")
