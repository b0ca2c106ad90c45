"""GUI tests: full runs of every widget, checked against scipy / scikit-image.

The source is an anisotropic z-stack (scale (0.29, 0.26, 0.26) µm); parameters
are typed in µm and the reference library is called with the converted
voxel values, on the float32 image.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from napari.layers import Labels
from scipy import ndimage
from skimage import feature, filters, restoration

import napari_denoise
from conftest import ANISO_SCALE, noisy_stack, wait_done
from napari_denoise import _widgets
from napari_denoise._registry import FILTERS, by_name

SP = np.array(ANISO_SCALE)


def _per_axis_edge(kind):
    def reference(f):
        parts = [getattr(filters, kind)(f, axis=ax, mode="reflect") / SP[ax] for ax in range(3)]
        return np.sqrt(np.mean([p**2 for p in parts], axis=0))

    return reference


def _gauss_derivatives(f, sigma_px, order):
    total = 0
    for ax in range(3):
        orders = [0, 0, 0]
        orders[ax] = order
        term = ndimage.gaussian_filter(f, sigma_px, order=orders) / SP[ax] ** order
        total = total + (term**2 if order == 1 else term)
    return np.sqrt(total) if order == 1 else total


def _bilateral_planes(f):
    """The bilateral filter by its definition, on each plane (float64).

    0.52 µm on 0.26 µm pixels = 2 px; window radius max(2, ceil(3σ)) = 6;
    border 'reflect' (scipy) = numpy 'symmetric'. (skimage's denoise_bilateral
    bins intensity differences and was seen to differ from the definition by
    ~10 % of the range on this data, so it is not the reference here.)
    """
    f = f.astype(np.float64)
    r, s, si = 6, 2.0, 20.0
    out = np.empty_like(f)
    for z, plane in enumerate(f):
        p = np.pad(plane, r, mode="symmetric")
        num = np.zeros_like(plane)
        den = np.zeros_like(plane)
        for dy in range(-r, r + 1):
            for dx in range(-r, r + 1):
                shifted = p[r + dy : r + dy + plane.shape[0], r + dx : r + dx + plane.shape[1]]
                w = np.exp(-(dy * dy + dx * dx) / (2 * s * s)) * np.exp(-((shifted - plane) ** 2) / (2 * si * si))
                num += w * shifted
                den += w
        out[z] = num / den
    return out


def _canny_planes(f):
    return np.stack(
        [
            feature.canny(plane, sigma=0.5 / 0.26, low_threshold=0.8, high_threshold=0.9,
                          use_quantiles=True, mode="reflect")
            for plane in f
        ]
    )


# name -> (values typed in the widget, process_as, reference(f32), relative tolerance,
#          expected voxel sizes in the recipe)
CASES = {
    "gaussian": ({"sigma": "0.5"}, None,
                 lambda f: ndimage.gaussian_filter(f, 0.5 / SP), 1e-5, {"sigma": tuple(0.5 / SP)}),
    "mean": ({"size": "1.1"}, None,
             lambda f: ndimage.uniform_filter(f, (3, 5, 5)), 1e-5, {"size": (3, 5, 5)}),
    "median": ({"size": "1.1"}, None,
               lambda f: ndimage.median_filter(f, (3, 5, 5)), 1e-6, {"size": (3, 5, 5)}),
    "bilateral": ({"sigma_spatial": "0.52", "sigma_intensity": "20"}, _widgets.PLANES,
                  _bilateral_planes, 1e-5, {"sigma_spatial": (2.0, 2.0)}),
    # TV and non-local means weigh their neighbours by the voxel size (no
    # in-process reference does): the widget must pass the layer's spacing
    "total_variation": ({"weight": "10"}, None,
                        lambda f: napari_denoise.total_variation(f, weight=10.0, spacing=SP), 1e-5, {}),
    "wavelet": ({"sigma": "10", "cycle_spin": False}, None,
                lambda f: restoration.denoise_wavelet(
                    f, sigma=10.0, wavelet="db1", mode="soft", method="BayesShrink",
                    rescale_sigma=True, channel_axis=None),
                1e-4, {}),
    "non_local_means": ({"h": "15", "sigma": "10"}, None,
                        lambda f: napari_denoise.non_local_means(f, h=15.0, sigma=10.0, spacing=SP), 1e-5, {}),
    # no in-process reference exists (the bm4d package is a closed binary):
    # the widget must call the function with the layer's voxel size
    "block_matching": ({"sigma": "10"}, None,
                       lambda f: napari_denoise.block_matching(f, sigma=10.0, spacing=SP), 1e-5, {}),
    "sobel": ({}, None, _per_axis_edge("sobel"), 1e-4, {}),
    "scharr": ({}, None, _per_axis_edge("scharr"), 1e-4, {}),
    "prewitt": ({}, None, _per_axis_edge("prewitt"), 1e-4, {}),
    "laplace": ({}, None,
                lambda f: sum(ndimage.correlate1d(f, [1.0, -2.0, 1.0], axis=ax) / SP[ax] ** 2
                              for ax in range(3)),
                1e-4, {}),
    "gradient_magnitude": ({"sigma": "0.5"}, None,
                           lambda f: _gauss_derivatives(f, 0.5 / SP, 1), 1e-4,
                           {"sigma": tuple(0.5 / SP)}),
    "laplacian_of_gaussian": ({"sigma": "0.5"}, None,
                              lambda f: _gauss_derivatives(f, 0.5 / SP, 2), 1e-4,
                              {"sigma": tuple(0.5 / SP)}),
    "difference_of_gaussians": ({"low_sigma": "0.3", "high_sigma": "0.6"}, None,
                                lambda f: filters.difference_of_gaussians(
                                    f, 0.3 / SP, 0.6 / SP, mode="reflect"),
                                1e-4, {"low_sigma": tuple(0.3 / SP), "high_sigma": tuple(0.6 / SP)}),
    "canny": ({"sigma": "0.5"}, None, _canny_planes, 0, {"sigma": (0.5 / 0.26, 0.5 / 0.26)}),
}
assert set(CASES) == {spec.name for spec in FILTERS}

ROT = np.array([[1, 0, 0], [0, np.cos(0.2), -np.sin(0.2)], [0, np.sin(0.2), np.cos(0.2)]])


def _add_source(viewer, data=None, **kwargs):
    kwargs = {
        "name": "nuclei",
        "scale": ANISO_SCALE,
        "units": "µm",
        "axis_labels": ("z", "y", "x"),
        "translate": (1.0, 2.0, -3.0),
        "rotate": ROT,
        "shear": (0.1, 0.0, 0.0),
        **kwargs,
    }
    return viewer.add_image(noisy_stack() if data is None else data, **kwargs)


def _run(qtbot, widget, timeout=60_000):
    worker = widget()
    assert worker is not None, widget._last_error
    wait_done(qtbot, widget, timeout)
    return worker


@pytest.mark.parametrize("spec", FILTERS, ids=[s.name for s in FILTERS])
def test_run_on_anisotropic_stack(spec, viewer, dock, qtbot, notifications):
    values, process_as, reference, rtol, voxels = CASES[spec.name]
    source = _add_source(viewer)
    before = source.data.copy()
    widget = dock(spec.display_name)
    widget.image.value = source
    for name, value in values.items():
        getattr(widget, name).value = value
    if process_as is not None:
        widget.process_as.value = process_as
    # "process as" is offered for volume filters only: Canny works plane by plane
    assert widget.process_as.native.isHidden() == spec.planar
    _run(qtbot, widget)

    assert len(viewer.layers) == 2, [n for _, n in notifications]
    result = viewer.layers[-1]
    expected = reference(before.astype(np.float32))
    if spec.name == "canny":
        # edges as a Labels layer (coloured edges, transparent elsewhere), not an opaque image
        assert isinstance(result, Labels)
        assert set(np.unique(result.data)) <= {0, 1}
        assert np.mean(result.data.astype(bool) != expected) < 1e-3
    else:
        assert result.data.dtype == np.float32
        span = float(np.ptp(expected)) or 1.0
        np.testing.assert_allclose(result.data, expected, rtol=0, atol=max(rtol, 1e-6) * span)

    # the source is untouched
    np.testing.assert_array_equal(source.data, before)

    # spatial properties follow the source
    np.testing.assert_allclose(result.scale, source.scale)
    np.testing.assert_allclose(result.translate, source.translate)
    np.testing.assert_allclose(result.rotate, source.rotate)
    np.testing.assert_allclose(result.shear, source.shear)
    np.testing.assert_allclose(result.affine.affine_matrix, source.affine.affine_matrix)
    assert tuple(result.units) == tuple(source.units)
    assert tuple(result.axis_labels) == tuple(source.axis_labels)
    np.testing.assert_allclose(result._data_to_world.affine_matrix, source._data_to_world.affine_matrix)

    # name, contrast limits from the result
    assert result.name.startswith(f"nuclei {spec.display_name.lower()}")
    if spec.name == "gaussian":
        assert result.name == "nuclei gaussian σ=0.5 µm"
    if spec.name != "canny":
        lo, hi = result.contrast_limits
        if spec.family == "edges":
            assert lo == pytest.approx(float(result.data.min()), rel=1e-5, abs=1e-6)
            assert hi == pytest.approx(float(result.data.max()), rel=1e-5, abs=1e-6)
        else:
            assert lo >= float(result.data.min()) - 1e-3 and hi <= float(result.data.max()) + 1e-3

    # recipe
    meta = result.metadata["napari_denoise"]
    assert meta["filter"] == spec.name
    assert meta["source"] == "nuclei"
    assert meta["version"] == napari_denoise.__version__
    assert meta["unit"] == "µm"
    widget_names = {c.name for c in widget._controls}
    assert set(meta["parameters"]) == widget_names
    for name, value in values.items():
        assert meta["parameters"][name] == pytest.approx(float(value))
    for name, per_axis in voxels.items():
        np.testing.assert_allclose(meta["parameters_voxels"][name], per_axis, rtol=1e-3)
    # the line of Python reproduces the result
    scope = {"napari_denoise": napari_denoise, "layer": source, "np": np}
    again = eval(meta["python"], scope)
    np.testing.assert_array_equal(np.asarray(again), result.data)
    assert not [m for s, m in notifications if s.lower() == "error"]


def test_update_result_replaces_previous(viewer, dock, qtbot):
    source = _add_source(viewer)
    widget = dock("Gaussian")
    widget.sigma.value = "0.5"
    _run(qtbot, widget)
    first = viewer.layers[-1]
    widget.update_result.value = True
    widget.sigma.value = "1.0"
    _run(qtbot, widget)
    assert len(viewer.layers) == 2
    assert viewer.layers[-1] is first
    assert first.name == "nuclei gaussian σ=1 µm"
    assert first.metadata["napari_denoise"]["parameters"]["sigma"] == 1.0
    expected = ndimage.gaussian_filter(source.data.astype(np.float32), 1.0 / SP)
    np.testing.assert_allclose(first.data, expected, rtol=1e-5, atol=1e-3)
    # without the box, a new layer is stacked
    widget.update_result.value = False
    _run(qtbot, widget)
    assert len(viewer.layers) == 3


def test_scripted_values_by_name_and_per_axis(viewer, dock, qtbot):
    source = _add_source(viewer)
    widget = dock("Gaussian")
    widget.sigma.value = (0.58, 0.26, 0.52)  # a tuple, one value per axis
    _run(qtbot, widget)
    expected = ndimage.gaussian_filter(source.data.astype(np.float32), (2.0, 1.0, 2.0))
    np.testing.assert_allclose(viewer.layers[-1].data, expected, rtol=1e-5, atol=1e-3)
    widget.sigma.value = "0.58, 0.26, 0.52"  # the same as text
    _run(qtbot, widget)
    np.testing.assert_allclose(viewer.layers[-1].data, expected, rtol=1e-5, atol=1e-3)
    assert viewer.layers[-1].metadata["napari_denoise"]["parameters_voxels"]["sigma"] == (2.0, 1.0, 2.0)


def test_unlabelled_3d_each_plane(viewer, dock, qtbot):
    data = noisy_stack()
    viewer.add_image(data, scale=ANISO_SCALE, units="µm")
    widget = dock("Gaussian")
    assert not widget.process_as.native.isHidden()
    assert widget.process_as.value == _widgets.VOLUME
    widget.sigma.value = "0.52"
    widget.process_as.value = _widgets.PLANES
    # only the plane axes are listed, named y and x (the layer has no axis labels)
    assert "sigma in voxels: y 2, x 2" in widget.info.value
    _run(qtbot, widget)
    expected = ndimage.gaussian_filter(data.astype(np.float32), (0, 2.0, 2.0))
    np.testing.assert_allclose(viewer.layers[-1].data, expected, rtol=1e-5, atol=1e-3)
    assert viewer.layers[-1].metadata["napari_denoise"]["spatial_axes"] == (1, 2)


@pytest.mark.parametrize("spec", FILTERS, ids=[s.name for s in FILTERS])
def test_time_and_channel_axes_never_mixed(spec, viewer, dock, qtbot):
    """A (t, y, x) time-lapse and a (c, y, x) stack: each plane is filtered alone."""
    data = noisy_stack((3, 32, 32), seed=3)
    data[1] = data[1] // 2 + 100  # planes differ in level and noise
    widget = dock(spec.display_name)
    values = CASES[spec.name][0]
    if spec.name == "bilateral":
        values = {"sigma_spatial": "0.52"}  # intensity sigma estimated per plane
    for name, value in values.items():
        getattr(widget, name).value = value
    for label, unit in (("t", "s"), ("c", "pixel")):
        source = viewer.add_image(
            data, scale=(1.0, 0.26, 0.26), units=(unit, "µm", "µm"),
            axis_labels=(label, "y", "x"), name=f"series-{label}",
        )
        widget.image.value = source
        assert widget.process_as.native.isHidden()  # no volume/plane choice here
        _run(qtbot, widget)
        result = viewer.layers[-1]
        assert result.name.startswith(f"series-{label}")
        assert result.data.shape == data.shape
        meta = result.metadata["napari_denoise"]
        assert meta["spatial_axes"] == (1, 2)
        kwargs = dict(meta["parameters"])
        if "spacing" in meta["python"]:
            kwargs["spacing"] = (0.26, 0.26)
        for i in range(3):
            alone = spec.function(data[i], **kwargs)
            np.testing.assert_allclose(result.data[i], alone, rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(result.scale, source.scale)
        assert tuple(result.axis_labels) == (label, "y", "x")


def test_rgb_filtered_per_colour(viewer, dock, qtbot):
    rng = np.random.default_rng(4)
    data = rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)
    source = viewer.add_image(data, rgb=True, name="photo")
    widget = dock("Gaussian")
    widget.sigma.value = "1.5"
    _run(qtbot, widget)
    result = viewer.layers[-1]
    assert result.rgb
    expected = ndimage.gaussian_filter(data.astype(np.float32), (1.5, 1.5, 0))
    np.testing.assert_allclose(result.data, expected, rtol=1e-5, atol=1e-3)
    assert result.metadata["napari_denoise"]["unit"] == "px"
    assert source.data.dtype == np.uint8


@pytest.mark.parametrize(
    ("shape", "labels"),
    [((2, 6, 24, 24), ("t", "z", "y", "x")), ((2, 2, 6, 24, 24), ("t", "c", "z", "y", "x"))],
    ids=["4d", "5d"],
)
def test_4d_5d_every_time_point_and_channel(shape, labels, viewer, dock, qtbot):
    data = np.random.default_rng(5).random(shape, dtype=np.float32)
    scale = (1.0,) * (len(shape) - 3) + ANISO_SCALE
    source = viewer.add_image(data, scale=scale, units=("s",) + ("pixel",) * (len(shape) - 4) + ("µm",) * 3,
                              axis_labels=labels)
    widget = dock("Gaussian")
    widget.image.value = source
    widget.sigma.value = "0.5"
    _run(qtbot, widget)
    result = viewer.layers[-1]
    sigma = (0.0,) * (len(shape) - 3) + tuple(0.5 / SP)
    np.testing.assert_allclose(result.data, ndimage.gaussian_filter(data, sigma), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(result.scale, source.scale)


def test_dask_layer_stays_lazy(viewer, dock, qtbot):
    import dask.array as da

    data = noisy_stack((12, 40, 40)).astype(np.float32)
    computed = []

    def count(block, block_info=None):
        computed.append(block_info[None]["chunk-location"] if block_info else None)
        return block

    lazy = da.from_array(data, chunks=(1, 40, 40)).map_blocks(count, dtype=np.float32)
    source = viewer.add_image(lazy, scale=ANISO_SCALE, units="µm", name="lazy", contrast_limits=(0, 250))
    qtbot.wait(20)
    computed.clear()
    widget = dock("Gaussian")
    widget.image.value = source
    widget.sigma.value = "0.5"
    _run(qtbot, widget)
    result = viewer.layers[-1]
    assert isinstance(result.data, da.Array)
    qtbot.wait(20)
    # only what the canvas shows (one plane and the kernel's reach) was read
    assert len(computed) < 12, computed
    expected = ndimage.gaussian_filter(data, 0.5 / SP)
    np.testing.assert_allclose(result.data.compute(), expected, rtol=1e-5, atol=1e-3)


def _feeders():
    return [t for t in threading.enumerate() if t.name == "napari-denoise-run" and t.is_alive()]


def _pool_threads():
    return [t for t in threading.enumerate() if t.name.startswith("napari-denoise_") and t.is_alive()]


@pytest.mark.parametrize(
    ("display_name", "shape", "dtype", "values"),
    [
        # ~1.5 s of work on two cores in ~0.25 s tiles: a 3-D median on 50 M voxels
        ("Median", (192, 512, 512), np.uint8, {"size": "3"}),
        # ~10 s: 3-D non-local means in a few long tiles, which poll the abort flag
        ("Non-local means", (32, 256, 256), np.float32, {"h": "0.1", "sigma": "0.05"}),
    ],
    ids=["median", "nlm"],
)
def test_cancel_stops_quickly_and_adds_nothing(display_name, shape, dtype, values, viewer, dock, qtbot, notifications):
    rng = np.random.default_rng(6)
    data = rng.integers(0, 255, shape, dtype=np.uint8) if dtype == np.uint8 else rng.random(shape, dtype=dtype)
    viewer.add_image(data, name="big")
    widget = dock(display_name)
    for name, value in values.items():
        getattr(widget, name).value = value
    steps = []
    worker = widget()
    assert worker is not None
    worker.yielded.connect(steps.append)
    assert widget.running
    # busy state: Run disabled and relabelled, Cancel enabled
    assert not widget.run_button.enabled and widget.run_button.text != "Run"
    assert widget.cancel_button.enabled
    # a second run while busy is refused
    assert widget() is None
    if display_name == "Median":
        qtbot.waitUntil(lambda: len(steps) >= 2 and steps[-1][0] >= 1, timeout=30_000)
        done, total = steps[-1]
        assert total >= 2 and done < total  # progress per chunk, still running
    else:
        # cancel in the middle of a long tile
        qtbot.waitUntil(lambda: len(steps) >= 1, timeout=30_000)
        qtbot.wait(500)
        assert widget.running
    t0 = time.perf_counter()
    widget.cancel()
    wait_done(qtbot, widget, timeout=10_000)
    elapsed = time.perf_counter() - t0
    assert elapsed < 1.5, f"cancel took {elapsed:.2f} s"
    qtbot.wait(50)
    assert len(viewer.layers) == 1
    assert widget.run_button.enabled and widget.run_button.text == "Run"
    assert not widget.cancel_button.enabled
    assert any("cancel" in m for _, m in notifications)
    # the computation itself has stopped too: median tiles are ~0.25 s and the
    # non-local means kernel polls the abort flag between search offsets
    qtbot.waitUntil(lambda: not _feeders() and not _pool_threads(), timeout=1500)


def test_cancel_button(viewer, dock, qtbot):
    data = np.random.default_rng(7).integers(0, 255, (192, 512, 512), dtype=np.uint8)
    viewer.add_image(data, name="big")
    widget = dock("Median")
    widget.run_button.changed.emit(True)  # what a click does
    qtbot.waitUntil(lambda: widget.running, timeout=5000)
    qtbot.wait(200)
    assert widget.running
    widget.cancel_button.changed.emit(True)
    wait_done(qtbot, widget, timeout=1500)
    assert len(viewer.layers) == 1
    qtbot.waitUntil(lambda: not _feeders(), timeout=2000)
    # the cancel button of the progress bar in the activity dock does the same
    assert widget() is not None
    qtbot.wait(200)
    assert widget.running
    t0 = time.perf_counter()
    widget._progress.cancel()
    wait_done(qtbot, widget, timeout=5000)
    assert time.perf_counter() - t0 < 1.5
    assert len(viewer.layers) == 1
    qtbot.waitUntil(lambda: not _feeders(), timeout=2000)


def test_registry_names_resolve():
    for spec in FILTERS:
        assert by_name(spec.display_name) is spec
