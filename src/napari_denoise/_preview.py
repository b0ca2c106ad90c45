"""Which part of a layer a live preview filters: the displayed plane plus halo.

Qt-free: works on the viewer's dims and the layer's transform.
"""

from __future__ import annotations

import numpy as np

from ._jobs import JobOutcome, contrast_limits

__all__ = ["preview_region", "preview_job"]


def preview_region(viewer, layer, axes, op):
    """Index into the layer's data for the displayed plane (+ halo), or None in 3D."""
    if viewer.dims.ndisplay != 2:
        return None
    offset_dims = viewer.dims.ndim - layer.ndim
    displayed = [d - offset_dims for d in viewer.dims.displayed if d - offset_dims >= 0]
    position = layer.world_to_data(viewer.dims.point)
    data_shape = layer.data.shape
    index, keep, offset = [], [], []
    for ax in range(layer.ndim):
        n = data_shape[ax]
        if ax in displayed:
            index.append(slice(None))
            keep.append(slice(None))
            offset.append(0)
            continue
        i = int(np.clip(np.round(position[ax]), 0, n - 1))
        reach = 0
        if ax in axes.spatial_axes and op.halo is not None:
            reach = op.halo[axes.spatial_axes.index(ax)]
        start, stop = max(0, i - reach), min(n, i + reach + 1)
        index.append(slice(start, stop))
        keep.append(slice(i - start, i - start + 1))
        offset.append(i)
    if layer.rgb:
        index.append(slice(None))
        keep.append(slice(None))
    return tuple(index), tuple(keep), offset


def preview_job(function, data, index, keep, kwargs) -> JobOutcome:
    """Filter the region ``data[index]`` and keep ``[keep]`` of it; never raises."""
    try:
        region = np.asarray(data[index])
        result = np.asarray(function(region, **kwargs))[keep]
        return JobOutcome(result=result, limits=contrast_limits(result))
    except Exception as exc:  # noqa: BLE001 - shown in the widget's info line
        return JobOutcome(error=exc)


