"""Recipes: a widget run as data, replayed on other arrays and files.

A :class:`Recipe` says what a result layer's widget did, in terms that apply
to any other image of the experiment:

* ``filter`` and its ``parameters``, exactly as typed (floats keep every bit:
  JSON and YAML write them with ``repr``);
* how lengths are read: ``"physical"`` (in ``unit``, converted with the input's
  own voxel size) or ``"pixels"`` (every voxel counts as 1);
* which axes are filtered across, by *label* (``spatial_labels``, e.g.
  ``("z", "y", "x")``; ``process`` says "volume" or "planes"), so a recipe
  made on a z-stack replays on a (t, c, z, y, x) file, plane by plane where
  the recipe says so, and refuses a file that lacks one of those axes;
* the package version that made it, and the source layer's name and voxel
  size (for the record, and ``spacing="recorded"``).

Reading a recipe (:func:`load_recipe`, :meth:`Recipe.from_dict`) validates it:
unknown keys, filters or parameters raise :class:`RecipeError` naming them,
and the values go through the filter's own checks. Nothing is ever evaluated
or unpickled: JSON is parsed with :mod:`json`, YAML with ``yaml.safe_load``.

Noise models or calibrations that a filter takes as arguments are parameters
like any other and travel the same way.

>>> import numpy as np
>>> r = Recipe("gaussian", {"sigma": 0.5}, lengths="physical", unit="µm",
...            spatial_labels=("z", "y", "x"))
>>> out = apply_recipe(r, np.ones((4, 8, 8), np.uint16), spacing=(0.29, 0.26, 0.26))
>>> out.dtype, Recipe.from_json(r.to_json()) == r
(dtype('float32'), True)
"""

from __future__ import annotations

import inspect
import json
import math
import numbers
from dataclasses import dataclass, field
from pathlib import Path
import numpy as np

from . import __version__
from ._filter_op import FilterOp
from ._layer_axes import INDEPENDENT_LABELS
from ._params import as_image
from ._recipe import METADATA_KEY
from ._registry import FILTERS, FilterSpec, widget_parameters
from ._units import convert_lengths, same_unit, unit_name

__all__ = [
    "Recipe",
    "RecipeError",
    "FORMAT_VERSION",
    "recipe_of",
    "apply_recipe",
    "load_recipe",
    "save_recipe",
    "input_labels",
]

#: Version of the file layout written by :meth:`Recipe.to_dict` (not the package's).
FORMAT_VERSION = 1
FORMAT_KEY = "napari_denoise_recipe"
LENGTHS = ("physical", "pixels")
PROCESS = ("volume", "planes")
_TOP_KEYS = {FORMAT_KEY, "filter", "parameters", "spacing", "axes", "version", "source"}
_SPACING_KEYS = {"lengths", "unit", "recorded"}
_AXES_KEYS = {"process", "spatial"}
_POSITIONAL = ("z", "y", "x")


class RecipeError(ValueError):
    """A recipe that cannot be read or does not fit the image it is applied to."""


def _spec(name) -> FilterSpec:
    for spec in FILTERS:
        if spec.name == name:
            return spec
    known = ", ".join(s.name for s in FILTERS)
    raise RecipeError(f"filter: unknown filter {name!r}; known filters: {known}")


def _accepts_spacing(spec: FilterSpec) -> bool:
    return "spacing" in inspect.signature(spec.function.op).parameters


def _plain_value(name: str, value):
    """A parameter value as plain data: None, bool, int, float, str, or a tuple of numbers."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        value = float(value)
        if not math.isfinite(value):
            raise RecipeError(f"{name}: must be finite, got {value}")
        return value
    if isinstance(value, (list, tuple, np.ndarray)):
        items = list(value.tolist() if isinstance(value, np.ndarray) else value)
        out = []
        for item in items:
            item = _plain_value(name, item)
            if isinstance(item, (bool, str)) or item is None or isinstance(item, tuple):
                raise RecipeError(f"{name}: a list may hold numbers only, got {item!r}")
            out.append(item)
        if not out:
            raise RecipeError(f"{name}: empty list")
        return tuple(out)
    raise RecipeError(f"{name}: {type(value).__name__} values cannot be stored in a recipe ({value!r})")


def _labels(value, name: str) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise RecipeError(f"{name}: expected a list of axis labels, got {value!r}")
    labels = tuple(str(v).strip().lower() for v in value)
    if not 1 <= len(labels) <= 3 or len(set(labels)) != len(labels) or not all(labels):
        raise RecipeError(f"{name}: expected one to three distinct axis labels, got {list(value)}")
    independent = [label for label in labels if label in INDEPENDENT_LABELS]
    if independent:
        raise RecipeError(f"{name}: {independent} name time/channel axes, which are never filtered across")
    return labels


@dataclass(frozen=True)
class Recipe:
    """A filter call described independently of one image.

    Attributes
    ----------
    filter : str
        Public function name (``napari_denoise.<filter>``).
    parameters : dict
        The filter's parameters besides image, spacing and spatial axes,
        as the widget read them (lengths in ``unit`` or pixels).
    lengths : {"physical", "pixels"}
        ``"physical"``: lengths are in ``unit`` and each input's voxel size
        converts them to voxels; ``"pixels"``: in voxels (spacing 1).
    unit : str or None
        Unit of the lengths when physical ("µm"); None when the source layer
        had a scale but no unit (the input's voxel size is then taken as is).
    spatial_labels : tuple of str
        Labels of the axes filtered across, in order (e.g. ``("z", "y", "x")``).
    process : {"volume", "planes"}
        "planes" when the recipe filters 2-D planes only.
    version : str
        napari-denoise version that made the recipe.
    source : str or None
        Name of the layer the recipe was made on.
    recorded_spacing : tuple of float or None
        That layer's voxel size along ``spatial_labels``, in ``unit``.
    """

    filter: str
    parameters: dict = field(default_factory=dict)
    lengths: str = "physical"
    unit: str | None = None
    spatial_labels: tuple[str, ...] = _POSITIONAL
    process: str = "volume"
    version: str = __version__
    source: str | None = None
    recorded_spacing: tuple[float, ...] | None = None

    def __post_init__(self):
        spec = _spec(self.filter)
        allowed = [p.name for p in widget_parameters(spec)]
        params = dict(self.parameters)
        unknown = sorted(set(params) - set(allowed))
        if unknown:
            raise RecipeError(
                f"parameters: {', '.join(map(repr, unknown))} "
                f"{'is not a parameter' if len(unknown) == 1 else 'are not parameters'} of {self.filter}; "
                f"its parameters are: {', '.join(allowed)}"
            )
        params = {name: _plain_value(name, params[name]) for name in allowed if name in params}
        object.__setattr__(self, "parameters", params)
        if self.lengths not in LENGTHS:
            raise RecipeError(f"lengths: expected 'physical' or 'pixels', got {self.lengths!r}")
        if self.unit is not None and not isinstance(self.unit, str):
            raise RecipeError(f"unit: expected a unit name or None, got {self.unit!r}")
        object.__setattr__(self, "unit", unit_name(self.unit) if self.unit else None)
        labels = _labels(self.spatial_labels, "spatial_labels")
        object.__setattr__(self, "spatial_labels", labels)
        if self.process not in PROCESS:
            raise RecipeError(f"process: expected 'volume' or 'planes', got {self.process!r}")
        if self.process == "planes" and len(labels) != 2:
            raise RecipeError(f"process: 'planes' filters two axes, but spatial_labels are {list(labels)}")
        if self.recorded_spacing is not None:
            recorded = _plain_value("recorded_spacing", self.recorded_spacing)
            if not isinstance(recorded, tuple) or len(recorded) != len(labels) or min(recorded) <= 0:
                raise RecipeError(
                    f"recorded_spacing: expected {len(labels)} positive voxel sizes, got {self.recorded_spacing!r}"
                )
            object.__setattr__(self, "recorded_spacing", tuple(float(v) for v in recorded))
        object.__setattr__(self, "version", str(self.version))
        # Let the filter check every value now (nothing is computed).
        k = len(labels)
        try:
            self._build(np.zeros((16,) * k, np.float32), tuple(range(k)), (1.0,) * k)
        except (ValueError, TypeError) as exc:
            raise RecipeError(f"parameters: {exc}") from None

    # -- what it does ----------------------------------------------------------------------
    @property
    def spec(self) -> FilterSpec:
        return _spec(self.filter)

    def describe(self) -> str:
        """One line for people: ``gaussian(sigma=0.5) in µm over z, y, x``."""
        params = ", ".join(f"{k}={v!r}" for k, v in self.parameters.items())
        where = "pixels" if self.lengths == "pixels" else (self.unit or "the input's scale units")
        return f"{self.filter}({params}), lengths in {where}, across {', '.join(self.spatial_labels)}"

    def _build(self, image, spatial_axes, spacing) -> FilterOp:
        kwargs = dict(self.parameters)
        kwargs["spatial_axes"] = spatial_axes
        if _accepts_spacing(self.spec):
            kwargs["spacing"] = spacing
        return self.spec.function.op(image, **kwargs)

    def spatial_axes_for(self, ndim: int, axes=None) -> tuple[int, ...]:
        """The data axes of an ``ndim``-D input labelled ``axes`` that this recipe filters across."""
        labels = input_labels(ndim, axes)
        found = [ax for ax, label in enumerate(labels) if label in self.spatial_labels]
        found_labels = tuple(labels[ax] for ax in found)
        if set(found_labels) != set(self.spatial_labels):
            missing = [label for label in self.spatial_labels if label not in found_labels]
            raise RecipeError(
                f"image: the recipe filters across the axes ({', '.join(self.spatial_labels)}) but the "
                f"input's {ndim} axes are ({', '.join(labels)}): no {', '.join(missing)} axis. "
                "Give the input's axes (axes=/--axes) if they are labelled differently."
            )
        if found_labels != self.spatial_labels:
            raise RecipeError(
                f"image: the input's spatial axes come in the order ({', '.join(found_labels)}), the "
                f"recipe's in ({', '.join(self.spatial_labels)}); transpose the input first"
            )
        return tuple(found)

    def spacing_for(self, ndim: int, spatial_axes, spacing=None, unit=None) -> tuple[float, ...] | None:
        """Voxel size along ``spatial_axes`` that the filter gets, in the recipe's unit."""
        k = len(spatial_axes)
        if not _accepts_spacing(self.spec):
            return None
        if self.lengths == "pixels":
            return (1.0,) * k
        if isinstance(spacing, str):
            if spacing != "recorded":
                raise RecipeError(f"spacing: expected voxel sizes or 'recorded', got {spacing!r}")
            if self.recorded_spacing is None:
                raise RecipeError("spacing: this recipe recorded no voxel size; give the input's")
            return self.recorded_spacing
        if spacing is None:
            where = f"in {self.unit}" if self.unit else "in the source layer's scale units"
            hint = f" or spacing='recorded' for the source layer's {self.recorded_spacing}" if self.recorded_spacing else ""
            raise RecipeError(
                f"spacing: the recipe's lengths are {where}; give the input's voxel size "
                f"(one value per axis, or per spatial axis){hint}"
            )
        values = _plain_value("spacing", spacing)
        values = values if isinstance(values, tuple) else (values,) * ndim
        if len(values) == ndim:
            values = tuple(values[ax] for ax in spatial_axes)
        elif len(values) != k:
            raise RecipeError(
                f"spacing: expected {ndim} values (one per axis) or {k} (one per spatial axis), got {len(values)}"
            )
        if any(isinstance(v, str) or v is None or v <= 0 for v in values):
            raise RecipeError(f"spacing: voxel sizes must be positive numbers, got {spacing!r}")
        values = tuple(float(v) for v in values)
        if unit is not None and self.unit is not None and not same_unit(unit, self.unit):
            values = convert_lengths(values, unit, self.unit)
        return values

    def op(self, image, *, spacing=None, unit=None, axes=None) -> FilterOp:
        """The :class:`~napari_denoise.FilterOp` this recipe makes for ``image``.

        ``spacing``: the input's voxel size, one value per axis (a napari
        layer's ``scale``) or per spatial axis, in ``unit`` (default: the
        recipe's unit), or ``"recorded"``; ignored for pixel recipes.
        ``axes``: the input's axis labels (e.g. ``"tzyx"`` or a sequence);
        default: the last three axes are z, y, x.
        """
        image = as_image(image)
        spatial = self.spatial_axes_for(image.ndim, axes)
        voxel = self.spacing_for(image.ndim, spatial, spacing, unit)
        return self._build(image, spatial, voxel)

    # -- as data -----------------------------------------------------------------------------
    def to_dict(self) -> dict:
        params = {k: list(v) if isinstance(v, tuple) else v for k, v in self.parameters.items()}
        out = {
            FORMAT_KEY: FORMAT_VERSION,
            "filter": self.filter,
            "parameters": params,
            "spacing": {"lengths": self.lengths, "unit": self.unit},
            "axes": {"process": self.process, "spatial": list(self.spatial_labels)},
            "version": self.version,
        }
        if self.recorded_spacing is not None:
            out["spacing"]["recorded"] = list(self.recorded_spacing)
        if self.source is not None:
            out["source"] = self.source
        return out

    @classmethod
    def from_dict(cls, data) -> Recipe:
        """Read and validate a recipe written by :meth:`to_dict` (or by hand)."""
        if not isinstance(data, dict):
            raise RecipeError(f"recipe: expected a mapping, got {type(data).__name__}")
        unknown = sorted(set(data) - _TOP_KEYS)
        if unknown:
            raise RecipeError(f"recipe: unknown keys {unknown}; known keys: {sorted(_TOP_KEYS)}")
        fmt = data.get(FORMAT_KEY, FORMAT_VERSION)
        if fmt != FORMAT_VERSION:
            raise RecipeError(f"{FORMAT_KEY}: this napari-denoise reads recipe format {FORMAT_VERSION}, got {fmt!r}")
        if "filter" not in data:
            raise RecipeError("filter: missing (the name of a napari-denoise filter)")
        parameters = data.get("parameters") or {}
        if not isinstance(parameters, dict):
            raise RecipeError(f"parameters: expected a mapping, got {parameters!r}")
        spacing = _section(data, "spacing", _SPACING_KEYS)
        axes = _section(data, "axes", _AXES_KEYS)
        if not isinstance(data["filter"], str):
            raise RecipeError(f"filter: expected a filter name, got {data['filter']!r}")
        return cls(
            filter=data["filter"],
            parameters=parameters,
            lengths=spacing.get("lengths", "physical"),
            unit=spacing.get("unit"),
            spatial_labels=axes.get("spatial", _POSITIONAL),
            process=axes.get("process", "volume"),
            version=data.get("version", "unknown"),
            source=None if data.get("source") is None else str(data["source"]),
            recorded_spacing=spacing.get("recorded"),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    @classmethod
    def from_json(cls, text: str) -> Recipe:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RecipeError(f"recipe: not valid JSON ({exc})") from None
        return cls.from_dict(data)

    @classmethod
    def from_yaml(cls, text: str) -> Recipe:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise RecipeError(f"recipe: not valid YAML ({exc})") from None
        return cls.from_dict(data)

    @classmethod
    def from_metadata(cls, meta: dict) -> Recipe:
        """The recipe of a widget run from what it recorded (``layer.metadata['napari_denoise']``)."""
        try:
            labels = tuple(meta["spatial_labels"])
            unit = meta.get("unit")
            spacing = tuple(float(s) for s in meta["spacing"])
            name, parameters = meta["filter"], meta["parameters"]
        except (KeyError, TypeError) as exc:
            raise RecipeError(f"layer: its napari_denoise metadata lacks {exc}") from None
        pixels = unit in (None, "px") and all(s == 1.0 for s in spacing)
        return cls(
            filter=name,
            parameters=parameters,
            lengths="pixels" if pixels else "physical",
            unit=None if unit in (None, "px") else unit,
            spatial_labels=labels,
            process=meta.get("process", "planes" if len(labels) == 2 else "volume"),
            version=meta.get("version", "unknown"),
            source=meta.get("source"),
            recorded_spacing=spacing,
        )


def _section(data: dict, name: str, keys: set) -> dict:
    section = data.get(name) or {}
    if not isinstance(section, dict):
        raise RecipeError(f"{name}: expected a mapping, got {section!r}")
    unknown = sorted(set(section) - keys)
    if unknown:
        raise RecipeError(f"{name}: unknown keys {unknown}; known keys: {sorted(keys)}")
    return section


def input_labels(ndim: int, axes=None) -> tuple[str, ...]:
    """Lower-case labels of an input's axes; unlabelled trailing axes are z, y, x.

    ``axes`` is a string of one letter per axis (``"TZYX"``), a sequence of
    labels (None for an unknown axis), or None (nothing known).
    """
    if axes is None:
        raw = [None] * ndim
    else:
        raw = list(axes) if not isinstance(axes, str) or "," not in axes else axes.split(",")
        if len(raw) != ndim:
            raise RecipeError(f"axes: {axes!r} names {len(raw)} axes, but the input has {ndim}")
    labels = []
    for ax, label in enumerate(raw):
        text = "" if label is None else str(label).strip().lower()
        if not text or text in ("q", "i"):  # tifffile's letters for an unknown axis
            from_end = ndim - ax
            text = _POSITIONAL[-from_end] if from_end <= len(_POSITIONAL) else f"axis {ax}"
        labels.append(text)
    if len(set(labels)) != len(labels):
        raise RecipeError(f"axes: repeated labels in {tuple(labels)}")
    return tuple(labels)


def recipe_of(layer) -> Recipe:
    """The recipe of a result layer made by a napari-denoise widget."""
    meta = getattr(layer, "metadata", {}).get(METADATA_KEY)
    if not isinstance(meta, dict):
        name = getattr(layer, "name", layer)
        raise RecipeError(f"layer: {name!r} was not made by a napari-denoise widget (no recipe in its metadata)")
    return Recipe.from_metadata(meta)


def apply_recipe(recipe: Recipe, image, *, spacing=None, unit=None, axes=None, workers=None, progress=None, cancel=None):
    """Run ``recipe`` on ``image``: the numbers its widget gave on the same data and voxel size.

    Parameters
    ----------
    recipe : Recipe
        From :func:`recipe_of`, :func:`load_recipe` or made by hand.
    image : array_like or dask array
        Never modified; dask in, dask out (nothing computed).
    spacing : sequence of float or "recorded", optional
        The input's voxel size, one per axis (a layer's ``scale``) or one
        per spatial axis, in ``unit``; required for physical recipes of
        filters that take a spacing. ``"recorded"`` reuses the source
        layer's.
    unit : str, optional
        Unit of ``spacing`` ("nm", "µm", ...); default the recipe's.
    axes : str or sequence of str, optional
        The input's axis labels; default: the last three axes are z, y, x.
    workers, progress, cancel
        As for every filter function.

    Returns
    -------
    numpy.ndarray or dask.array.Array
        float32 (bool for Canny), the input's shape.
    """
    from . import _scheduler

    image = as_image(image)
    op = recipe.op(image, spacing=spacing, unit=unit, axes=axes)
    return _scheduler.run(op, image, workers=workers, progress=progress, cancel=cancel)


def load_recipe(path) -> Recipe:
    """Read a recipe file: JSON (``.json``) or YAML (``.yaml``/``.yml``); anything else is tried as both."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipeError(f"recipe: cannot read {path}: {exc}") from None
    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            return Recipe.from_json(text)
        if suffix in (".yaml", ".yml"):
            return Recipe.from_yaml(text)
        return Recipe.from_yaml(text)  # YAML reads JSON too
    except RecipeError as exc:
        raise RecipeError(f"{path.name}: {exc}") from None


def save_recipe(recipe: Recipe, path) -> Path:
    """Write ``recipe`` as YAML (``.yaml``/``.yml``) or JSON (any other suffix); returns the path."""
    path = Path(path)
    text = recipe.to_yaml() if path.suffix.lower() in (".yaml", ".yml") else recipe.to_json()
    path.write_text(text, encoding="utf-8")
    return path
