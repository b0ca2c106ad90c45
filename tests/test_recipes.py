"""Recipes as data: exact round trips, validation, axes by label, spacing rules (no display needed)."""

from __future__ import annotations

import json

import dask.array as da
import numpy as np
import pytest

import napari_denoise as nd
from napari_denoise import _recipe
from napari_denoise._layer_axes import layer_axes
from napari_denoise._registry import FILTERS, by_name, widget_parameters
from napari_denoise.recipes import FORMAT_KEY, Recipe, RecipeError, input_labels, load_recipe, save_recipe

SCALE = (0.29, 0.26, 0.26)
RNG = np.random.default_rng(7)
STACK = RNG.poisson(60, (8, 24, 24)).astype(np.uint16)

# floats whose shortest repr is long, tiny, huge or just above a power of two
TRICKY = [0.1 + 0.2, 1 / 3, 2.0**-30 * 3, 1e-17 / 3, 123456789.123456789, np.nextafter(0.5, 1.0)]


@pytest.mark.parametrize("fmt", ["json", "yaml"])
@pytest.mark.parametrize("value", TRICKY)
def test_floats_survive_json_and_yaml_bit_for_bit(tmp_path, fmt, value):
    sigma = float(value) if value < 1 else 0.5  # (a huge sigma would build a huge kernel)
    recipe = Recipe("gaussian", {"sigma": (sigma, 0.5, sigma), "cval": float(value)}, unit="µm")
    path = save_recipe(recipe, tmp_path / f"r.{fmt}")
    back = load_recipe(path)
    assert back == recipe
    assert back.parameters["sigma"][0].hex() == sigma.hex()
    assert back.parameters["cval"].hex() == float(value).hex()


@pytest.mark.parametrize("spec", FILTERS, ids=lambda s: s.name)
def test_every_filter_round_trips_with_its_defaults(spec):
    params = {p.name: p.default for p in widget_parameters(spec)}
    recipe = Recipe(spec.name, params, unit="µm")
    assert Recipe.from_json(recipe.to_json()) == recipe
    assert Recipe.from_yaml(recipe.to_yaml()) == recipe
    assert recipe.to_dict()[FORMAT_KEY] == 1


def test_unknown_filter_is_named_with_the_known_ones():
    with pytest.raises(RecipeError, match=r"filter: unknown filter 'gausian'.*gaussian, mean"):
        Recipe.from_dict({"filter": "gausian", "parameters": {}})


def test_unknown_parameters_are_named_with_the_allowed_ones():
    with pytest.raises(RecipeError) as info:
        Recipe.from_dict({"filter": "median", "parameters": {"size": 3, "radius": 2, "sigma": 1}})
    message = str(info.value)
    assert "'radius', 'sigma' are not parameters of median" in message
    assert "size, mode, cval" in message


def test_unknown_keys_and_sections_are_refused():
    with pytest.raises(RecipeError, match=r"unknown keys \['colour'\]"):
        Recipe.from_dict({"filter": "mean", "colour": "red"})
    with pytest.raises(RecipeError, match=r"spacing: unknown keys \['units'\]"):
        Recipe.from_dict({"filter": "mean", "spacing": {"units": "µm"}})
    with pytest.raises(RecipeError, match="format"):
        Recipe.from_dict({FORMAT_KEY: 2, "filter": "mean"})


def test_values_are_checked_by_the_filter_itself():
    with pytest.raises(RecipeError, match="sigma: must be non-negative"):
        Recipe("gaussian", {"sigma": -1.0})
    with pytest.raises(RecipeError, match="mode: expected one of"):
        Recipe("gaussian", {"mode": "bounce"})
    with pytest.raises(RecipeError, match="patch_size"):
        Recipe("non_local_means", {"patch_size": 2.5})


def test_reading_never_evaluates_or_unpickles(tmp_path):
    hostile = tmp_path / "r.yaml"
    hostile.write_text("filter: !!python/object/apply:os.system ['echo pwned']\n", encoding="utf-8")
    with pytest.raises(RecipeError, match="not valid YAML"):
        load_recipe(hostile)
    code = tmp_path / "r.json"
    code.write_text(json.dumps({"filter": "gaussian", "parameters": {"sigma": "__import__('os')"}}))
    with pytest.raises(RecipeError, match="sigma"):
        load_recipe(code)
    garbage = tmp_path / "g.json"
    garbage.write_text("{not json", encoding="utf-8")
    with pytest.raises(RecipeError, match="g.json: recipe: not valid JSON"):
        load_recipe(garbage)


def test_apply_equals_the_filter_called_directly():
    recipe = Recipe("gaussian", {"sigma": 0.5, "mode": "nearest"}, unit="µm")
    out = nd.apply_recipe(recipe, STACK, spacing=SCALE)
    np.testing.assert_array_equal(out, nd.gaussian(STACK, 0.5, spacing=SCALE, mode="nearest"))
    lazy = nd.apply_recipe(recipe, da.from_array(STACK, chunks=(3, 12, 12)), spacing=SCALE)
    assert isinstance(lazy, da.Array)
    np.testing.assert_array_equal(lazy.compute(), out)


def test_spatial_axes_follow_labels_not_positions():
    recipe = Recipe("gaussian", {"sigma": 0.5}, unit="µm", spatial_labels=("z", "y", "x"))
    tczyx = RNG.random((2, 3, 8, 16, 16)).astype(np.float32)
    out = nd.apply_recipe(recipe, tczyx, spacing=(1.0, 1.0, *SCALE), axes="tczyx")
    np.testing.assert_array_equal(out, nd.gaussian(tczyx, 0.5, spacing=SCALE, spatial_axes=(2, 3, 4)))
    # z, y, x after a channel axis: still the last three
    czyx = tczyx[0]
    out = nd.apply_recipe(recipe, czyx, spacing=SCALE, axes=("c", "z", "y", "x"))
    np.testing.assert_array_equal(out, nd.gaussian(czyx, 0.5, spacing=SCALE, spatial_axes=(1, 2, 3)))


def test_a_plane_recipe_filters_each_plane_of_a_volume():
    recipe = Recipe("median", {"size": 0.8}, unit="µm", spatial_labels=("y", "x"), process="planes")
    out = nd.apply_recipe(recipe, STACK, spacing=SCALE)
    np.testing.assert_array_equal(out, nd.median(STACK, 0.8, spacing=SCALE[1:], spatial_axes=(1, 2)))


def test_missing_axis_and_wrong_order_are_clear_errors():
    recipe = Recipe("gaussian", {"sigma": 0.5}, unit="µm")
    with pytest.raises(RecipeError, match=r"filters across the axes \(z, y, x\).*\(y, x\): no z axis"):
        recipe.op(STACK[0], spacing=SCALE[1:])
    with pytest.raises(RecipeError, match="order"):
        recipe.op(STACK, spacing=SCALE, axes="xyz")
    with pytest.raises(RecipeError, match="axes: 'tzyx' names 4 axes, but the input has 3"):
        recipe.op(STACK, spacing=SCALE, axes="tzyx")


def test_physical_lengths_need_the_inputs_voxel_size():
    recipe = Recipe("gaussian", {"sigma": 0.5}, unit="µm", recorded_spacing=SCALE)
    with pytest.raises(RecipeError, match=r"spacing: the recipe's lengths are in µm.*'recorded'"):
        recipe.op(STACK)
    np.testing.assert_array_equal(
        nd.apply_recipe(recipe, STACK, spacing="recorded"), nd.apply_recipe(recipe, STACK, spacing=SCALE)
    )
    # the same voxel size in nm: converted, the same filter
    in_nm = recipe.op(STACK, spacing=tuple(s * 1000 for s in SCALE), unit="nm")
    assert in_nm.params["sigma"] == pytest.approx(recipe.op(STACK, spacing=SCALE).params["sigma"], rel=1e-12)
    with pytest.raises(RecipeError, match="spacing: expected 3 values"):
        recipe.op(STACK, spacing=(1.0, 1.0))


def test_pixel_recipes_ignore_the_voxel_size():
    recipe = Recipe("mean", {"size": 4}, lengths="pixels")
    # the widget passes spacing 1 for a layer without units: 4 px -> closest odd count 5
    assert recipe.op(STACK, spacing=SCALE).params["size"] == (5, 5, 5)
    np.testing.assert_array_equal(nd.apply_recipe(recipe, STACK), nd.mean(STACK, 5))


def test_filters_without_spacing_need_none():
    recipe = Recipe("wavelet", {"sigma": 5.0}, unit="µm")
    np.testing.assert_array_equal(nd.apply_recipe(recipe, STACK), nd.wavelet(STACK, sigma=5.0))


def test_recipe_from_widget_metadata_replays_the_recorded_call():
    """What a widget records (_recipe.recipe) becomes a Recipe that makes the same call."""
    spec = by_name("gaussian")
    axes = layer_axes(3, SCALE, ("µm",) * 3, ("z", "y", "x"))
    values = {"sigma": (0.5, 0.3, 0.3), "mode": "reflect", "truncate": 4.0, "cval": 0.0}
    kwargs = _recipe.call_arguments(spec, axes, values)
    meta = _recipe.recipe(spec, "nuclei", axes, values, kwargs)

    class Layer:
        metadata = {"napari_denoise": meta}

    recipe = nd.recipe_of(Layer())
    assert recipe.filter == "gaussian" and recipe.unit == "µm" and recipe.lengths == "physical"
    assert recipe.spatial_labels == ("z", "y", "x") and recipe.recorded_spacing == SCALE
    assert recipe.source == "nuclei" and recipe.version == nd.__version__
    expected = spec.function(STACK, **kwargs)
    np.testing.assert_array_equal(nd.apply_recipe(recipe, STACK, spacing=SCALE), expected)


def test_recipe_of_a_layer_without_one():
    class Layer:
        name = "raw"
        metadata = {}

    with pytest.raises(RecipeError, match="'raw' was not made by a napari-denoise widget"):
        nd.recipe_of(Layer())


def test_input_labels_name_unknown_trailing_axes_z_y_x():
    assert input_labels(4) == ("axis 0", "z", "y", "x")
    assert input_labels(3, "QYX") == ("z", "y", "x")  # tifffile's unknown axis
    assert input_labels(4, "TZYX") == ("t", "z", "y", "x")
    assert input_labels(3, "c,y,x") == ("c", "y", "x")
    with pytest.raises(RecipeError, match="repeated"):
        input_labels(3, "yyx")
