"""What a widget run did, in words a user can read and a script can repeat.

Pure (no Qt): turns a filter, the layer's axes and the parameters typed in
physical units into the keyword arguments of the public function, the voxel
sizes they amount to, warnings, the result layer's name and its metadata.
"""

from __future__ import annotations

import inspect

from . import __version__
from ._layer_axes import LayerAxes
from ._params import lengths_to_pixels, sizes_to_pixels
from ._parsing import format_value
from ._registry import SYMBOLS, FilterSpec

__all__ = [
    "call_arguments",
    "voxel_sizes",
    "warnings_for",
    "result_name",
    "recipe",
    "python_call",
    "length_spacing",
]

METADATA_KEY = "napari_denoise"


def _accepts(spec: FilterSpec, name: str) -> bool:
    return name in inspect.signature(spec.function.op).parameters


def call_arguments(spec: FilterSpec, axes: LayerAxes, values: dict) -> dict:
    """Keyword arguments for ``spec.function`` (besides the image)."""
    kwargs = dict(values)
    kwargs["spatial_axes"] = axes.spatial_axes
    if _accepts(spec, "spacing"):
        kwargs["spacing"] = axes.spacing
    return kwargs


def _length_axes(spec: FilterSpec, axes: LayerAxes):
    """``(labels, data axes, spacing)`` that the filter's lengths apply to."""
    if spec.planar:
        return axes.labels[-2:], axes.spatial_axes[-2:], axes.spacing[-2:]
    return axes.labels, axes.spatial_axes, axes.spacing


def length_spacing(spec: FilterSpec, axes: LayerAxes) -> tuple[float, ...]:
    """Voxel sizes along the axes the filter's lengths apply to (the plane's for planar filters)."""
    return _length_axes(spec, axes)[2]


def _words(name: str) -> str:
    return name.replace("_", " ")


def voxel_sizes(spec: FilterSpec, axes: LayerAxes, values: dict) -> dict:
    """Per-axis size in voxels of every physical-length parameter that is set."""
    _, length_axes, spacing = _length_axes(spec, axes)
    n = len(length_axes)
    out = {}
    for name in spec.lengths:
        value = values.get(name)
        if value is None:
            continue
        try:
            if name in spec.sizes:
                out[name] = sizes_to_pixels(value, spacing, n, name)
            else:
                out[name] = tuple(round(v, 4) for v in lengths_to_pixels(value, spacing, n, name))
        except ValueError:
            continue  # out of range: the filter's own check says so, with its bound (#11)
    return out


def warnings_for(spec: FilterSpec, axes: LayerAxes, shape, values: dict) -> list[str]:
    """Things a user should know before running: sub-voxel sigmas, huge kernels."""
    notes = []
    voxels = voxel_sizes(spec, axes, values)
    truncate = values.get("truncate", 4.0) or 4.0
    labels, length_axes, _ = _length_axes(spec, axes)
    for name, per_axis in voxels.items():
        for label, ax, px in zip(labels, length_axes, per_axis):
            extent = shape[ax]
            if name in spec.sizes:
                if px > extent:
                    notes.append(f"{_words(name)} along {label} ({px} voxels) is larger than the image ({extent})")
                continue
            if 0 < px < 0.5:
                notes.append(
                    f"{_words(name)} along {label} is {px:.2f} voxel (< 0.5): hardly any smoothing along {label}"
                )
            if truncate * px + 0.5 >= extent:  # int() of it, without an OverflowError for inf
                notes.append(f"{_words(name)} kernel along {label} reaches beyond the image ({extent} voxels)")
    return notes


def _describe(spec: FilterSpec, axes: LayerAxes, values: dict) -> str:
    for name in spec.lengths:
        value = values.get(name)
        if value is not None:
            return f"{SYMBOLS.get(name, name)}={format_value(value)} {axes.unit}"
    return ""


def result_name(spec: FilterSpec, source_name: str, axes: LayerAxes, values: dict) -> str:
    """E.g. ``"nuclei gaussian σ=0.5 µm"``."""
    parts = [source_name, spec.display_name.lower(), _describe(spec, axes, values)]
    return " ".join(p for p in parts if p)


def python_call(spec: FilterSpec, kwargs: dict) -> str:
    """One line of Python that reproduces the run with the public API."""
    args = ", ".join(f"{k}={_literal(v)}" for k, v in kwargs.items())
    return f"napari_denoise.{spec.name}(layer.data, {args})"


def _literal(value):
    if isinstance(value, tuple):
        return "(" + ", ".join(_literal(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    return repr(value)  # floats exactly: the recorded call reproduces the layer (#11)


def recipe(spec: FilterSpec, source_name: str, axes: LayerAxes, values: dict, kwargs: dict) -> dict:
    """Metadata recorded on the result layer under ``metadata['napari_denoise']``."""
    return {
        "filter": spec.name,
        "display_name": spec.display_name,
        "source": source_name,
        "parameters": {k: v for k, v in values.items()},
        "unit": axes.unit,
        "spacing": axes.spacing,
        "spatial_axes": axes.spatial_axes,
        "spatial_labels": axes.labels,
        # "planes" when the user chose 2-D planes of a volume (recipes replay it by label)
        "process": "planes" if axes.can_choose_volume and len(axes.spatial_axes) == 2 else "volume",
        "parameters_voxels": voxel_sizes(spec, axes, values),
        "version": __version__,
        "python": python_call(spec, kwargs),
    }
