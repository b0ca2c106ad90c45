"""Which part of a layer a live preview filters, and how, within a time budget.

Qt-free: works on the viewer's dims and camera and the layer's transform.
A preview shows the displayed plane. It is exactly the run's result on that
plane when that is cheap (the plane plus the kernel's reach along the other
spatial axes); otherwise, so that it never takes much more than a second, it
filters the plane in 2-D (whole-volume methods, slow 3-D methods such as
non-local means) and, if that is still too slow, a crop around the centre of
the view. :class:`PreviewPlan.note` then says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ._jobs import JobOutcome, contrast_limits
from ._run_time import format_duration
from ._scheduler import default_workers

__all__ = ["PreviewPlan", "plan_preview", "preview_region", "preview_job", "PREVIEW_BUDGET_S"]

#: Expected compute time of one preview update (on top of the 250 ms debounce).
PREVIEW_BUDGET_S = 0.4
# Tiles of a small region do not spread perfectly over the threads.
_PARALLEL_EFFICIENCY = 0.7


@dataclass(frozen=True)
class PreviewPlan:
    """``function(data[index], **kwargs)[keep]`` is the preview, placed at ``offset`` (data coordinates)."""

    index: tuple
    keep: tuple
    offset: list
    kwargs: dict
    note: str = ""
    seconds: float = 0.0
    op: object = field(default=None, compare=False, repr=False)


def _displayed_axes(viewer, layer) -> list[int]:
    offset_dims = viewer.dims.ndim - layer.ndim
    return [d - offset_dims for d in viewer.dims.displayed if d - offset_dims >= 0]


def _view_centre(viewer, layer, displayed) -> list[float]:
    """Data coordinates (along every layer axis) of the centre of the view."""
    point = list(viewer.dims.point)
    centre = list(viewer.camera.center)[-len(viewer.dims.displayed):]
    for world_axis, value in zip(viewer.dims.displayed, centre):
        point[world_axis] = value
    offset_dims = viewer.dims.ndim - layer.ndim
    return list(layer.world_to_data(point[offset_dims:]))


def preview_region(viewer, layer, axes, op, crop=None):
    """``(index, keep, offset)`` for the displayed plane plus the op's reach, or None in 3-D.

    ``crop`` maps displayed data axes to ``(start, stop)``: only that part of
    the plane is kept (the op's reach around it is read; a whole-slice method
    sees the crop alone, an approximation the caller notes).
    """
    if viewer.dims.ndisplay != 2:
        return None
    displayed = _displayed_axes(viewer, layer)
    position = layer.world_to_data(viewer.dims.point)
    data_shape = layer.data.shape
    spatial = list(op.spatial_axes)
    index, keep, offset = [], [], []
    for ax in range(layer.ndim):
        n = data_shape[ax]
        reach = op.halo[spatial.index(ax)] if (ax in spatial and op.halo is not None) else 0
        if ax in displayed:
            lo, hi = (0, n) if crop is None or ax not in crop else crop[ax]
        else:
            lo = int(np.clip(np.round(position[ax]), 0, n - 1))
            hi = lo + 1
        start, stop = max(0, lo - reach), min(n, hi + reach)
        index.append(slice(start, stop))
        keep.append(slice(lo - start, hi - start))
        offset.append(lo)
    if layer.rgb:
        index.append(slice(None))
        keep.append(slice(None))
    return tuple(index), tuple(keep), offset


def _seconds(op, index, data_shape, workers) -> float:
    """Expected time to filter ``data[index]`` with ``op`` (its cost model)."""
    voxels = 1
    for ax, s in enumerate(index[: len(data_shape)]):
        start, stop, _ = s.indices(data_shape[ax])
        voxels *= max(0, stop - start)
    threads = max(1.0, min(workers, voxels / (1 << 16)) * _PARALLEL_EFFICIENCY)
    return voxels * op.cost.seconds / threads


def plan_preview(viewer, layer, axes, op, kwargs, function, *, budget=PREVIEW_BUDGET_S, workers=None):
    """How to preview ``op`` (built by ``function.op(layer.data, **kwargs)``), or None in the 3-D view.

    Raises ValueError when the displayed plane is not one the filter works in
    (e.g. the view shows z and x of a volume filtered plane by plane).
    """
    if viewer.dims.ndisplay != 2:
        return None
    workers = default_workers() if workers is None else workers
    displayed = _displayed_axes(viewer, layer)
    data_shape = layer.data.shape
    notes = []
    off_plane = [ax for ax in op.spatial_axes if ax not in displayed]
    plane_axes = tuple(ax for ax in axes.spatial_axes if ax in displayed)
    if off_plane:
        exact = preview_region(viewer, layer, axes, op)
        exact_seconds = math.inf if op.halo is None else _seconds(op, exact[0], data_shape, workers)
        if exact_seconds > budget:
            if len(plane_axes) != 2:
                raise ValueError("the displayed plane is not a plane of the image's spatial axes")
            kwargs = dict(kwargs, spatial_axes=plane_axes)
            if "spacing" in kwargs:
                kwargs["spacing"] = tuple(axes.spacing[axes.spatial_axes.index(ax)] for ax in plane_axes)
            op = function.op(layer.data, **kwargs)
            if math.isinf(exact_seconds):
                notes.append("whole-volume method: preview filters this plane in 2-D")
            else:
                notes.append(f"preview in 2-D on this plane (3-D would take ~{format_duration(exact_seconds)})")
    region = preview_region(viewer, layer, axes, op)
    seconds = _seconds(op, region[0], data_shape, workers)
    if seconds > budget:
        plane_seconds = seconds
        fraction = budget / seconds
        side = {}
        for ax in displayed:
            side[ax] = max(16, int(data_shape[ax] * math.sqrt(fraction)))
        centre = _view_centre(viewer, layer, displayed)
        crop = {}
        for ax in displayed:
            n, width = data_shape[ax], min(data_shape[ax], side[ax])
            start = int(np.clip(round(centre[ax] - width / 2), 0, n - width))
            crop[ax] = (start, start + width)
        region = preview_region(viewer, layer, axes, op, crop=crop)
        seconds = _seconds(op, region[0], data_shape, workers)
        size = "×".join(str(crop[ax][1] - crop[ax][0]) for ax in displayed)
        notes.append(f"preview of a {size} crop at the view centre (the plane would take "
                     f"~{format_duration(plane_seconds)})")
    index, keep, offset = region
    return PreviewPlan(index, keep, offset, kwargs, "; ".join(notes), seconds, op)


def preview_job(function, data, index, keep, kwargs) -> JobOutcome:
    """Filter the region ``data[index]`` and keep ``[keep]`` of it; never raises."""
    try:
        region = np.asarray(data[index])
        result = np.asarray(function(region, **kwargs))[keep]
        return JobOutcome(result=result, limits=contrast_limits(result))
    except Exception as exc:  # noqa: BLE001 - shown in the widget's info line
        return JobOutcome(error=exc)
