"""The root napari.yaml is what napari loads, and it agrees with the code."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import napari_denoise
from napari_denoise import _docs, _manifest
from napari_denoise._registry import FAMILIES, FILTERS

ROOT = Path(__file__).resolve().parents[1]
ROOT_MANIFEST = ROOT / "napari.yaml"


def _root():
    return yaml.safe_load(ROOT_MANIFEST.read_text(encoding="utf-8"))


def test_root_manifest_is_generated_from_the_filter_table():
    assert _root() == _manifest.build_manifest(), (
        "napari.yaml is out of date: run `python -m napari_denoise._manifest --write napari.yaml`"
    )


def test_docs_page_is_generated_from_the_code():
    page = ROOT / "docs" / "filters.md"
    assert page.read_text(encoding="utf-8") == _docs.render(), (
        "docs/filters.md is out of date: run `python -m napari_denoise._docs --write`"
    )


def test_name_is_the_distribution_name():
    assert _root()["name"] == "napari-denoise"


def test_installed_manifest_is_the_root_file():
    import npe2

    manager = npe2.PluginManager.instance()
    manager.discover()
    installed = manager.get_manifest("napari-denoise")
    assert installed.name == "napari-denoise"
    root = npe2.PluginManifest.from_file(ROOT_MANIFEST)
    assert installed.contributions.model_dump() == root.contributions.model_dump()
    packaged = Path(napari_denoise.__file__).with_name("napari.yaml")
    assert packaged.read_text(encoding="utf-8") == ROOT_MANIFEST.read_text(encoding="utf-8")


def test_every_referenced_command_exists_and_imports():
    manifest = _root()["contributions"]
    commands = {c["id"]: c for c in manifest["commands"]}
    referenced = [w["command"] for w in manifest["widgets"]]
    referenced += [s["command"] for s in manifest["sample_data"]]
    submenus = {s["id"] for s in manifest["submenus"]}
    for menu_id, items in manifest["menus"].items():
        assert menu_id == "napari/layers/filter" or menu_id in submenus, menu_id
        for item in items:
            if "command" in item:
                referenced.append(item["command"])
            else:
                assert item["submenu"] in submenus
    missing = sorted(set(referenced) - set(commands))
    assert not missing, f"manifest entries name commands that do not exist: {missing}"
    import importlib

    for command in commands.values():
        module, _, attribute = command["python_name"].partition(":")
        assert callable(getattr(importlib.import_module(module), attribute)), command["python_name"]


def test_one_widget_per_filter_in_the_right_submenu():
    manifest = _root()["contributions"]
    names = {w["display_name"] for w in manifest["widgets"]}
    assert names == {spec.display_name for spec in FILTERS} | {w.display_name for w in _manifest.APP_WIDGETS}
    for spec in FILTERS:
        assert {"command": spec.command_id} in manifest["menus"][f"napari-denoise.{spec.family}"]
    assert {s["label"] for s in manifest["submenus"]} == set(FAMILIES.values()) == {"Denoise", "Edges"}
    assert {"Gaussian", "Median", "Non-local means", "Sobel"} <= names


def test_every_public_filter_has_a_widget():
    public = set(napari_denoise.filters.__all__) - {"estimate_noise", "estimate_noise_model", "NoiseModel", "anscombe", "inverse_anscombe"}  # not filters
    assert public == {spec.name for spec in FILTERS}


@pytest.mark.parametrize("spec", FILTERS, ids=lambda s: s.name)
def test_filters_are_exported_under_their_public_names(spec):
    assert getattr(napari_denoise, spec.name) is spec.function


def test_widget_classes_written_in_the_source_agree_with_the_manifest():
    """napari.yaml names one FilterWidget subclass per filter, each for its own filter."""
    import inspect as _inspect

    from napari_denoise import _widgets

    manifest = _root()["contributions"]
    commands = {c["id"]: c["python_name"] for c in manifest["commands"]}
    named = set()
    for spec in FILTERS:
        module, _, attribute = commands[spec.command_id].partition(":")
        assert module == "napari_denoise._widgets"
        cls = getattr(_widgets, attribute)
        assert issubclass(cls, _widgets.FilterWidget) and cls.spec is spec
        # written out in the module (findable with grep), not made at import time
        assert f"class {attribute}(FilterWidget):" in _inspect.getsource(_widgets)
        named.add(cls)
    every = {
        obj for obj in vars(_widgets).values()
        if isinstance(obj, type) and issubclass(obj, _widgets.FilterWidget) and obj is not _widgets.FilterWidget
    }
    assert every == named


@pytest.mark.parametrize("name", napari_denoise.filters.__all__)
def test_public_functions_are_written_out_and_documented(name):
    import inspect as _inspect

    function = getattr(napari_denoise, name)
    source = _inspect.getsource(_inspect.getmodule(function))
    if _inspect.isclass(function):
        assert f"class {name}" in source
        assert "%(" not in function.__doc__
        return
    assert f"def {name}(" in source
    doc = function.__doc__
    assert "%(" not in doc, "an unfilled shared parameter documentation entry"
    assert "Parameters" in doc and "image" in doc
