"""Which axes of a napari layer are spatial, their voxel size and unit.

Pure: works on the layer's attributes (``ndim``, ``scale``, ``units``,
``axis_labels``, ``rgb``) and never imports Qt, so it is tested on its own.
Axes labelled as time or channel (or position/scene) are never filtered across;
of the remaining axes the last three (or two, for "each 2D plane") are spatial.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LayerAxes", "layer_axes", "axes_of_layer", "TIME_LABELS", "CHANNEL_LABELS"]

TIME_LABELS = frozenset({"t", "time", "times", "frame", "frames", "timepoint", "timepoints"})
CHANNEL_LABELS = frozenset(
    {"c", "ch", "chan", "channel", "channels", "wavelength", "lambda", "rgb", "colour", "color"}
)
OTHER_INDEPENDENT = frozenset({"p", "pos", "position", "positions", "s", "scene", "series", "view", "fov", "well"})
INDEPENDENT_LABELS = TIME_LABELS | CHANNEL_LABELS | OTHER_INDEPENDENT

PIXEL_UNITS = frozenset({"pixel", "pixels", "px", ""})


@dataclass(frozen=True)
class LayerAxes:
    """Spatial layout of a layer's data.

    spatial_axes: data axes filtered across (ascending).
    spacing: voxel size along each of them, in ``unit``.
    unit: common unit of the spacing ('µm'), or 'px' when the layer has none.
    labels: axis labels of the spatial axes.
    independent_axes: data axes processed one slice at a time.
    can_choose_volume: the layer has three spatial candidates, so the user may
        pick "volume (3D)" or "each 2D plane".
    """

    spatial_axes: tuple[int, ...]
    spacing: tuple[float, ...]
    unit: str
    labels: tuple[str, ...]
    independent_axes: tuple[int, ...]
    can_choose_volume: bool

    @property
    def physical(self) -> bool:
        return self.unit != "px"


def _is_independent(label: str) -> bool:
    return str(label).strip().lower() in INDEPENDENT_LABELS


def _unit_text(unit) -> str:
    text = str(unit).strip()
    if text in PIXEL_UNITS:
        return "px"
    try:
        return format(unit, "~") or text
    except (TypeError, ValueError):
        return text


def _convert(value: float, unit, target) -> float:
    """``value`` in ``unit`` expressed in ``target`` (pint units); unchanged if unknown."""
    if unit == target or getattr(unit, "dimensionality", None) is None:  # not a pint unit
        return float(value)
    try:
        return float((value * unit).to(target).magnitude)
    except Exception:
        return float(value)


def _is_default_label(label: str, ax: int, ndim: int) -> bool:
    """napari's name for an axis the user did not label: ``-2`` (0.9) or ``axis -2`` (older)."""
    return label in (str(ax - ndim), f"axis {ax - ndim}")


def _readable_labels(labels, spatial, ndim) -> tuple[str, ...]:
    """Labels of the spatial axes; unlabelled ones are named z, y, x from the last."""
    names = ("z", "y", "x")[-len(spatial):] if len(spatial) <= 3 else ()
    out = []
    for i, ax in enumerate(spatial):
        if _is_default_label(labels[ax], ax, ndim):
            out.append(names[i] if names else f"axis {ax}")
        else:
            out.append(labels[ax])
    return tuple(out)


def layer_axes(ndim, scale, units=None, axis_labels=None, rgb=False, *, volume=True) -> LayerAxes:
    """Spatial axes, spacing and unit for a layer of ``ndim`` world dimensions.

    ``rgb`` layers have one more data axis (the colour channel, last) which is
    always independent. ``volume=False`` keeps only the last two spatial axes
    ("each 2D plane"). Raises ``ValueError`` when fewer than two spatial axes
    remain.
    """
    labels = tuple(str(a) for a in (axis_labels or [str(i - ndim) for i in range(ndim)]))
    units = tuple(units) if units is not None else ("pixel",) * ndim
    scale = tuple(float(s) for s in scale)
    candidates = [ax for ax in range(ndim) if not _is_independent(labels[ax])]
    can_choose = len(candidates) >= 3
    keep = 3 if volume else 2
    spatial = tuple(candidates[-keep:])
    if len(spatial) < 2:
        raise ValueError(
            f"image: needs at least two spatial axes, but its axes are labelled {labels}; "
            "rename an axis (layer.axis_labels) if it is spatial"
        )
    texts = [_unit_text(units[ax]) for ax in spatial]
    if all(t == "px" for t in texts):
        unit, spacing = "px", tuple(scale[ax] for ax in spatial)
    else:
        target = units[spatial[-1]]
        unit = texts[-1]
        spacing = tuple(_convert(scale[ax], units[ax], target) for ax in spatial)
    data_ndim = ndim + (1 if rgb else 0)
    independent = tuple(ax for ax in range(data_ndim) if ax not in spatial)
    return LayerAxes(
        spatial_axes=spatial,
        spacing=spacing,
        unit=unit,
        labels=_readable_labels(labels, spatial, ndim),
        independent_axes=independent,
        can_choose_volume=can_choose,
    )


def axes_of_layer(layer, *, volume=True) -> LayerAxes:
    """:func:`layer_axes` for a napari layer (or anything with its attributes)."""
    return layer_axes(
        layer.ndim,
        layer.scale,
        getattr(layer, "units", None),
        getattr(layer, "axis_labels", None),
        bool(getattr(layer, "rgb", False)),
        volume=volume,
    )
