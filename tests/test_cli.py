"""The ``napari-denoise`` command: apply, list, dry runs, progress, failures, clusters."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

import napari_denoise as nd
from napari_denoise import _io, cli
from napari_denoise._registry import FILTERS, widget_parameters
from napari_denoise.recipes import Recipe, save_recipe

from test_batch import SCALE, stack, write_ome_zarr

ROOT = Path(__file__).resolve().parents[1]
GAUSS = Recipe("gaussian", {"sigma": 0.5}, unit="µm")


def command(*args, cwd=None):
    """Run the command as a user does, in a fresh process."""
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "napari_denoise.cli", *map(str, args)], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=300)


@pytest.fixture
def setup(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    images = {name: stack(seed=i) for i, name in enumerate(("a", "b", "c"))}
    for name, data in images.items():
        tifffile.imwrite(src / f"{name}.ome.tif", data, metadata={
            "axes": "ZYX", "PhysicalSizeX": 0.26, "PhysicalSizeY": 0.26, "PhysicalSizeZ": 0.29})
    (src / "broken.tif").write_bytes(b"MM\x00*" + b"\xff" * 64)
    recipe = save_recipe(GAUSS, tmp_path / "recipe.yaml")
    return src, images, recipe


def test_console_script_is_declared():
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["scripts"]["napari-denoise"] == "napari_denoise.cli:main"
    assert any(dep.startswith("distributed") for dep in project["optional-dependencies"]["cluster"])


def test_list_shows_every_filter_and_its_parameters(capsys):
    assert cli.main(["list"]) == 0
    text = capsys.readouterr().out
    for spec in FILTERS:
        assert f"{spec.name}  ({spec.display_name}" in text
        for p in widget_parameters(spec):
            assert f"    {p.name} = " in text
    assert "sigma = 1.0  [length: recipe unit or pixels]" in text
    assert cli.main(["list", "median"]) == 0
    assert "gaussian" not in capsys.readouterr().out
    assert cli.main(["list", "nope"]) == 2


def test_apply_writes_outputs_reports_failures_and_skips_on_rerun(setup, tmp_path):
    src, images, recipe = setup
    out = tmp_path / "out"
    run = command("apply", recipe, src, "--output", out, "--progress")
    assert run.returncode == 1, run.stderr  # one file failed
    err = run.stderr
    assert "failed: broken.tif" in err and "not a readable TIFF file" in err
    for name in "abc":
        assert f"written: {name}.ome.tif -> {out / (name + '.ome.zarr')}" in err
    # progress bars: overall (files) and per file
    assert "files: 100%" in err and "3/4" in err and "a.ome.tif (in memory)" in err
    assert "napari-denoise: 3 written, 1 failed" in err
    for name, data in images.items():
        result = _io.open_image(out / f"{name}.ome.zarr").load()
        np.testing.assert_array_equal(result, nd.apply_recipe(GAUSS, data, spacing=SCALE))
    again = command("apply", recipe, src, "--output", out, "--no-progress")
    assert again.returncode == 1
    assert again.stderr.count("skipped:") == 3 and "3 skipped, 1 failed" in again.stderr
    good = command("apply", recipe, src / "a.ome.tif", "--output", out)
    assert good.returncode == 0 and "1 skipped" in good.stderr


def test_dry_run_lists_and_computes_nothing(setup, tmp_path):
    src, _, recipe = setup
    run = command("apply", recipe, src, "--output", tmp_path / "out", "--dry-run")
    lines = run.stdout.splitlines()
    assert run.returncode == 1  # broken.tif would fail
    assert any(line.startswith("error") and "broken.tif" in line for line in lines)
    a = next(line for line in lines if "a.ome.tif" in line)
    assert a.startswith("write") and "10x48x40 uint16" in a and "axes z,y,x" in a
    assert "voxel (0.29, 0.26, 0.26) µm" in a and "in memory" in a
    assert not (tmp_path / "out").exists()


def test_overrides_for_files_without_metadata(tmp_path):
    data = stack((3, 6, 20, 20), seed=9)
    tifffile.imwrite(tmp_path / "plain.tif", data, photometric="minisblack")
    recipe = save_recipe(GAUSS, tmp_path / "r.json")
    missing = command("apply", recipe, tmp_path / "plain.tif", "-o", tmp_path / "out")
    assert missing.returncode == 1 and "give the input's voxel size" in missing.stderr
    run = command("apply", recipe, tmp_path / "plain.tif", "-o", tmp_path / "out", "--format", "tiff",
                  "--spacing", "290,260,260", "--unit", "nm", "--axes", "TZYX")
    assert run.returncode == 0, run.stderr
    out = tifffile.imread(tmp_path / "out" / "plain.tif")
    expected = nd.gaussian(data, 0.5, spacing=SCALE, spatial_axes=(1, 2, 3))
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-4)


def test_bad_recipe_and_unwritable_output_are_usage_errors(setup, tmp_path):
    src, _, recipe = setup
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"filter": "gaussian", "parameters": {"sigmaa": 1}}))
    run = command("apply", bad, src, "-o", tmp_path / "out")
    assert run.returncode == 2 and "'sigmaa' is not a parameter of gaussian" in run.stderr
    blocker = tmp_path / "out.txt"
    blocker.write_text("a file")
    run = command("apply", recipe, src, "-o", blocker)
    assert run.returncode == 2 and "is a file, not a folder" in run.stderr
    assert "Traceback" not in run.stderr
    run = command("apply", recipe, src, "-o", blocker / "sub")
    assert run.returncode == 2 and "output: cannot write in" in run.stderr


def test_missing_distributed_gives_install_advice(setup, tmp_path, monkeypatch, capsys):
    src, _, recipe = setup
    monkeypatch.setitem(sys.modules, "distributed", None)  # import fails as if not installed
    with pytest.raises(SystemExit) as info:
        cli.main(["apply", str(recipe), str(src / "a.ome.tif"), "-o", str(tmp_path / "out"), "--workers", "2"])
    assert "pip install 'napari-denoise[cluster]'" in str(info.value)


def test_local_cluster_of_two_processes_equals_in_process(tmp_path):
    pytest.importorskip("distributed")
    big = stack((24, 64, 64), seed=11)
    write_ome_zarr(tmp_path / "big.ome.zarr", big, "zyx", SCALE, chunks=(6, 32, 64))  # 8 chunks
    recipe = save_recipe(Recipe("median", {"size": 0.8}, unit="µm"), tmp_path / "r.json")
    there = command("apply", recipe, tmp_path / "big.ome.zarr", "-o", tmp_path / "cluster", "--workers", "2")
    assert there.returncode == 0, there.stderr
    assert "dask cluster" in there.stderr and "2 workers" in there.stderr
    result = _io.open_image(tmp_path / "cluster" / "big.ome.zarr").load()
    # the same numbers as the in-process (single machine) run
    np.testing.assert_array_equal(result, nd.median(big, 0.8, spacing=SCALE))


def test_napari_ome_zarr_reads_the_output(setup, tmp_path):
    """napari's OME-Zarr reader plugin (napari-ome-zarr, through npe2) opens what we write."""
    pytest.importorskip("napari_ome_zarr")
    import npe2

    src, images, recipe = setup
    assert command("apply", recipe, src / "a.ome.tif", "-o", tmp_path / "out").returncode == 0
    npe2.PluginManager.instance().discover()
    layers = npe2.read([str(tmp_path / "out" / "a.ome.zarr")], plugin_name="napari-ome-zarr", stack=False)
    assert len(layers) == 1
    data, meta, kind = layers[0]
    assert kind == "image"
    data = data[0] if isinstance(data, list) else data
    np.testing.assert_array_equal(np.asarray(data), nd.apply_recipe(GAUSS, images["a"], spacing=SCALE))
    np.testing.assert_allclose(meta["scale"], SCALE)
    assert tuple(meta["axis_labels"]) == ("z", "y", "x")
    assert tuple(meta["units"]) == ("micrometer",) * 3
