"""The batch runner on real files written here: TIFF, OME-TIFF, ImageJ TIFF, OME-Zarr 0.4 and 0.5."""

from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest
import tifffile
import zarr

import napari_denoise as nd
from napari_denoise import _batch, _io
from napari_denoise._scheduler import CancelToken
from napari_denoise.recipes import Recipe

SCALE = (0.29, 0.26, 0.26)
GAUSS = Recipe("gaussian", {"sigma": 0.5}, unit="µm", spatial_labels=("z", "y", "x"))


def stack(shape=(10, 48, 40), seed=0):
    return np.random.default_rng(seed).poisson(80, shape).astype(np.uint16)


def write_ome_zarr(path, data, axes, scale, unit="micrometer", chunks=None, version="0.4"):
    """An OME-Zarr image as other software writes it (Zarr v2 + NGFF 0.4, or Zarr v3 + NGFF 0.5)."""
    entries = []
    for name in axes:
        entry = {"name": name, "type": {"t": "time", "c": "channel"}.get(name, "space")}
        if entry["type"] == "space":
            entry["unit"] = unit
        entries.append(entry)
    multiscales = [{
        "version": version, "axes": entries,
        "datasets": [{"path": "s0", "coordinateTransformations": [{"type": "scale", "scale": list(scale)}]}],
    }]
    group = zarr.open_group(str(path), mode="w", zarr_format=2 if version == "0.4" else 3)
    if version == "0.4":
        group.attrs["multiscales"] = multiscales
    else:
        group.attrs["ome"] = {"version": "0.5", "multiscales": multiscales}
    array = group.create_array("s0", shape=data.shape, chunks=chunks or data.shape, dtype=data.dtype)
    array[...] = data
    return path


@pytest.fixture
def folder(tmp_path):
    """A folder as a microscope leaves it: good files of three kinds, a corrupt one, a 2-D one."""
    src = tmp_path / "in"
    src.mkdir()
    data = {
        "ome": stack(seed=1),
        "imagej": stack(seed=2),
        "zarr": stack(seed=3),
    }
    tifffile.imwrite(src / "ome.ome.tif", data["ome"], metadata={
        "axes": "ZYX", "PhysicalSizeX": 0.26, "PhysicalSizeY": 0.26, "PhysicalSizeZ": 0.29})
    tifffile.imwrite(src / "imagej.tif", data["imagej"], imagej=True, resolution=(1 / 0.26, 1 / 0.26),
                     metadata={"axes": "ZYX", "spacing": 0.29, "unit": "micron"})
    write_ome_zarr(src / "zarr.ome.zarr", data["zarr"], "zyx", SCALE, chunks=(4, 24, 40))
    (src / "corrupt.tif").write_bytes(b"II*\x00" + os.urandom(200))
    tifffile.imwrite(src / "flat.tif", data["ome"][0], photometric="minisblack", metadata={"axes": "YX"})
    (src / "notes.txt").write_text("not an image")
    return src, data


def statuses(summary):
    return {r.item.source.name: r.status for r in summary.results}


def read_output(path):
    image = _io.open_image(path)
    return image, image.load()


def test_a_folder_is_filtered_and_bad_files_are_skipped(folder, tmp_path):
    src, data = folder
    items = _batch.plan([src], tmp_path / "out")
    assert [i.source.name for i in items] == ["corrupt.tif", "flat.tif", "imagej.tif", "ome.ome.tif", "zarr.ome.zarr"]
    summary = _batch.run_all(GAUSS, items)
    assert statuses(summary) == {"corrupt.tif": "failed", "flat.tif": "failed", "imagej.tif": "written",
                                 "ome.ome.tif": "written", "zarr.ome.zarr": "written"}
    messages = {r.item.source.name: r.message for r in summary.failed}
    assert "corrupt.tif is not a readable TIFF file" in messages["corrupt.tif"]
    assert "the input's 2 axes are (y, x): no z axis" in messages["flat.tif"]
    for key, name in (("ome", "ome"), ("imagej", "imagej"), ("zarr", "zarr")):
        image, out = read_output(tmp_path / "out" / f"{name}.ome.zarr")
        # voxel size and axes came from each file's metadata: the same numbers as in napari
        np.testing.assert_array_equal(out, nd.apply_recipe(GAUSS, data[key], spacing=SCALE))
        assert out.dtype == np.float32
        assert image.axes == ("z", "y", "x") and image.unit == "µm"
        np.testing.assert_allclose(image.spacing, SCALE)
    # nothing half-written, nothing for the failed files
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["imagej.ome.zarr", "ome.ome.zarr", "zarr.ome.zarr"]


def test_output_metadata_is_ome_zarr_0_4(folder, tmp_path):
    src, _ = folder
    _batch.run_all(GAUSS, _batch.plan([src / "ome.ome.tif"], tmp_path / "out"))
    store = tmp_path / "out" / "ome.ome.zarr"
    attrs = json.loads((store / ".zattrs").read_text())
    image = attrs["multiscales"][0]
    assert image["version"] == "0.4"
    assert image["axes"] == [{"name": n, "type": "space", "unit": "micrometer"} for n in "zyx"]
    assert image["datasets"] == [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": list(SCALE)}]}]
    assert Recipe.from_dict(attrs["napari_denoise"]["recipe"]) == GAUSS
    assert json.loads((store / "0" / ".zarray").read_text())["dtype"] == "<f4"


def test_a_rerun_skips_finished_outputs_and_redoes_partial_ones(folder, tmp_path):
    src, data = folder
    items = _batch.plan([src / "ome.ome.tif", src / "imagej.tif"], tmp_path / "out")
    # a run killed while writing imagej.tif left a partial output
    stale = _io.partial_path(items[1].output)
    stale.mkdir(parents=True)
    (stale / "junk").write_text("half")
    assert not items[1].finished
    first = _batch.run_all(GAUSS, items[:1])
    assert statuses(first) == {"ome.ome.tif": "written"}
    mtime = items[0].output.stat().st_mtime_ns
    second = _batch.run_all(GAUSS, items)
    assert statuses(second) == {"ome.ome.tif": "skipped", "imagej.tif": "written"}
    assert items[0].output.stat().st_mtime_ns == mtime
    assert not stale.exists()
    np.testing.assert_array_equal(read_output(items[1].output)[1], nd.apply_recipe(GAUSS, data["imagej"], spacing=SCALE))
    third = _batch.run_all(GAUSS, items, overwrite=True)
    assert statuses(third) == {"ome.ome.tif": "written", "imagej.tif": "written"}


def test_streamed_chunk_by_chunk_equals_in_memory(folder, tmp_path):
    src, data = folder
    for recipe in (GAUSS, Recipe("median", {"size": 0.8}, unit="µm"), Recipe("non_local_means", {"h": 20.0})):
        eager = _batch.run_all(recipe, _batch.plan([src], tmp_path / "eager"), engine=_batch.LocalEngine(stream=False),
                               overwrite=True)
        streamed = _batch.run_all(recipe, _batch.plan([src], tmp_path / "stream"),
                                  engine=_batch.LocalEngine(stream=True), overwrite=True)
        assert statuses(eager) == statuses(streamed)
        for name in ("ome", "imagej", "zarr"):
            a = read_output(tmp_path / "eager" / f"{name}.ome.zarr")[1]
            b = read_output(tmp_path / "stream" / f"{name}.ome.zarr")[1]
            np.testing.assert_array_equal(a, b, err_msg=f"{recipe.filter} {name}")


def test_inputs_larger_than_the_memory_limit_are_streamed(folder, tmp_path, monkeypatch):
    src, data = folder
    expected = nd.apply_recipe(GAUSS, data["zarr"], spacing=SCALE)
    monkeypatch.setenv("NAPARI_DENOISE_MEMORY_LIMIT", str(100_000))  # far less than one input
    events = list(_batch.run_batch(GAUSS, _batch.plan([src / "zarr.ome.zarr"], tmp_path / "out")))
    started = [e for e in events if isinstance(e, _batch.FileStarted)]
    assert [e.how for e in started] == ["streamed"]
    progress = [e for e in events if isinstance(e, _batch.FileProgress)]
    chunks = json.loads((tmp_path / "out" / "zarr.ome.zarr" / "0" / ".zarray").read_text())["chunks"]
    n_chunks = int(np.prod([-(-n // c) for n, c in zip(data["zarr"].shape, chunks)]))
    assert n_chunks > 1 and progress[-1].done == progress[-1].total == n_chunks  # one step per chunk written
    np.testing.assert_array_equal(read_output(tmp_path / "out" / "zarr.ome.zarr")[1], expected)
    # TIFF output cannot stream: a clear failure, no output
    tiff = _batch.run_all(GAUSS, _batch.plan([src / "zarr.ome.zarr"], tmp_path / "tif", "tiff"))
    assert "TIFF output is written from memory" in tiff.failed[0].message
    assert not (tmp_path / "tif" / "zarr.tif").exists()


def test_ome_zarr_0_5_and_nanometres_and_time_axes(tmp_path):
    data = np.random.default_rng(4).random((3, 6, 20, 20)).astype(np.float32)
    write_ome_zarr(tmp_path / "v05.zarr", data, "tzyx", (1.0, 290.0, 260.0, 260.0), unit="nanometer", version="0.5")
    image = _io.open_image(tmp_path / "v05.zarr")
    assert image.axes == ("t", "z", "y", "x") and image.unit == "nm"
    summary = _batch.run_all(GAUSS, _batch.plan([tmp_path / "v05.zarr"], tmp_path / "out"))
    assert statuses(summary) == {"v05.zarr": "written"}, summary.failed
    out_image, out = read_output(tmp_path / "out" / "v05.ome.zarr")
    expected = nd.gaussian(data, 0.5, spacing=SCALE, spatial_axes=(1, 2, 3))  # nm -> µm
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)
    assert out_image.axes == ("t", "z", "y", "x")
    np.testing.assert_allclose(out_image.spacing, (1.0, 290.0, 260.0, 260.0))


def test_tiff_output_with_spacing_and_axes_overrides(tmp_path):
    data = stack((2, 6, 30, 30), seed=5)
    tifffile.imwrite(tmp_path / "plain.tif", data, photometric="minisblack")  # no voxel size, no axes
    items = _batch.plan([tmp_path / "plain.tif"], tmp_path / "out", "tiff")
    failed = _batch.run_all(GAUSS, items)
    assert "spacing: the recipe's lengths are in µm" in failed.failed[0].message
    summary = _batch.run_all(GAUSS, items, spacing=SCALE, axes="tzyx")
    assert statuses(summary) == {"plain.tif": "written"}
    with tifffile.TiffFile(items[0].output) as tif:
        assert tif.is_ome and tif.series[0].axes == "TZYX"
        out = tif.series[0].asarray()
    np.testing.assert_array_equal(out, nd.gaussian(data, 0.5, spacing=SCALE, spatial_axes=(1, 2, 3)))
    image = _io.open_image(items[0].output)
    np.testing.assert_allclose(image.spacing, (1.0, *SCALE))


def test_an_output_folder_that_is_a_file_or_read_only(tmp_path):
    src = tmp_path / "a.tif"
    tifffile.imwrite(src, stack((4, 8, 8)), photometric="minisblack")
    blocker = tmp_path / "results"
    blocker.write_text("I am a file")
    with pytest.raises(ValueError, match="output: .*results is a file, not a folder"):
        _batch.plan([src], blocker)
    with pytest.raises(ValueError, match="output: .*results is a file, not a folder"):
        _batch.check_output_folder(blocker)
    with pytest.raises(ValueError, match="output: cannot write in"):
        _batch.check_output_folder(blocker / "sub")  # its parent is a file: no folder can be made
    if os.geteuid() != 0:  # root writes into read-only folders
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        try:
            with pytest.raises(ValueError, match="output: cannot write in .*locked"):
                _batch.check_output_folder(locked)
        finally:
            locked.chmod(0o700)


def test_output_collisions_and_overwriting_inputs_are_refused(tmp_path):
    tifffile.imwrite(tmp_path / "a.tif", stack((4, 8, 8)), photometric="minisblack")
    tifffile.imwrite(tmp_path / "a.ome.tif", stack((4, 8, 8)), photometric="minisblack")
    with pytest.raises(ValueError, match="would both be written to a.ome.zarr"):
        _batch.plan([tmp_path], tmp_path / "out")
    write_ome_zarr(tmp_path / "b.ome.zarr", stack((4, 8, 8)), "zyx", SCALE)
    with pytest.raises(ValueError, match="would overwrite its input"):
        _batch.plan([tmp_path / "b.ome.zarr"], tmp_path)


@pytest.mark.parametrize("stream", [False, True], ids=["in memory", "streamed"])
def test_a_cancelled_run_leaves_no_output_under_a_final_name(tmp_path, stream):
    big = np.random.default_rng(6).random((16, 96, 96)).astype(np.float32)
    write_ome_zarr(tmp_path / "big.zarr", big, "zyx", SCALE, chunks=(2, 96, 96))
    tifffile.imwrite(tmp_path / "later.tif", stack((4, 8, 8)), ome=True, photometric="minisblack", metadata={
        "axes": "ZYX", "PhysicalSizeX": 0.26, "PhysicalSizeY": 0.26, "PhysicalSizeZ": 0.29})
    items = _batch.plan([tmp_path / "big.zarr", tmp_path / "later.tif"], tmp_path / "out")
    # seconds of work: non-local means polls the token inside its tiles; streamed
    # runs stop between chunks (8 of them here)
    slow = Recipe("median", {"size": 1.5}, unit="µm") if stream else Recipe("non_local_means", {"h": 0.1, "patch_distance": 7})
    token = CancelToken()
    run = _batch.run_batch(slow, items, token=token, engine=_batch.LocalEngine(stream=stream))
    for event in run:
        if isinstance(event, _batch.FileProgress):
            token.cancel()
            break
    events = list(run)  # the runner finishes the cancellation and reports it
    assert [(e.item.source.name, e.status) for e in events if isinstance(e, _batch.FileDone)] == [("big.zarr", "cancelled")]
    assert list((tmp_path / "out").iterdir()) == []
    assert not items[0].finished and not items[1].finished
    # the next run does everything
    summary = _batch.run_all(GAUSS, items)
    assert statuses(summary) == {"big.zarr": "written", "later.tif": "written"}


def test_cancel_reported_in_the_summary(tmp_path):
    tifffile.imwrite(tmp_path / "a.tif", stack((6, 64, 64)), metadata={"axes": "ZYX"})
    items = _batch.plan([tmp_path / "a.tif"], tmp_path / "out")
    token = CancelToken()
    token.cancel()
    summary = _batch.run_all(GAUSS, items, token=token, spacing=SCALE)
    assert summary.cancelled and summary.results == []
    assert "cancelled" in summary.line()


def test_filter_ops_and_lazy_inputs_pickle(folder, monkeypatch):
    """What the cluster ships to workers: FilterOps with compiled kernels and path-based readers."""
    src, data = folder
    monkeypatch.setattr(_io, "_TIFF_CHUNK_BYTES", 3 * 48 * 40 * 2)  # three planes per chunk
    for recipe in (GAUSS, Recipe("median", {"size": 0.8}, unit="µm"), Recipe("non_local_means", {}),
                   Recipe("sobel", {}, unit="µm"), Recipe("canny", {"sigma": 0.5}, unit="µm")):
        op = recipe.op(data["ome"], spacing=SCALE)
        again = pickle.loads(pickle.dumps(op))
        np.testing.assert_array_equal(nd._scheduler.run(again, data["ome"]), nd._scheduler.run(op, data["ome"]))
    for name in ("ome.ome.tif", "zarr.ome.zarr"):
        lazy = _io.open_image(src / name).lazy()
        assert lazy.npartitions > 1
        restored = pickle.loads(pickle.dumps(lazy))
        np.testing.assert_array_equal(restored.compute(), data["ome" if name.startswith("ome") else "zarr"])


def test_cluster_result_equals_the_single_machine_result(folder, tmp_path):
    distributed = pytest.importorskip("distributed")
    src, data = folder
    median = Recipe("median", {"size": 0.8}, unit="µm")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        engine = _batch.ClusterEngine(client)
        assert "2 workers" in engine.describe()
        for recipe in (GAUSS, median):
            summary = _batch.run_all(recipe, _batch.plan([src], tmp_path / recipe.filter), engine=engine)
            assert statuses(summary)["zarr.ome.zarr"] == "written" and statuses(summary)["ome.ome.tif"] == "written"
            assert statuses(summary)["corrupt.tif"] == "failed"
            for key, name in (("ome", "ome"), ("imagej", "imagej"), ("zarr", "zarr")):
                out = read_output(tmp_path / recipe.filter / f"{name}.ome.zarr")[1]
                np.testing.assert_array_equal(out, nd.apply_recipe(recipe, data[key], spacing=SCALE))


def test_apply_to_files_from_python(folder, tmp_path):
    src, data = folder
    summary = nd.apply_to_files(GAUSS, [src / "ome.ome.tif", src / "corrupt.tif"], tmp_path / "out", fmt="tiff")
    assert statuses(summary) == {"ome.ome.tif": "written", "corrupt.tif": "failed"}
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "out" / "ome.tif"),
                                  nd.apply_recipe(GAUSS, data["ome"], spacing=SCALE))
