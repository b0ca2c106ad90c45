"""Where a widget's results go: new layers that sit exactly on their source.

Qt-free: works on the viewer's layer list and the layers' public attributes.
Float results become Image layers that look like their source; boolean
results (Canny's edge maps) become Labels layers, drawn as coloured edges
over a transparent background so that the source stays visible under them.
"""

from __future__ import annotations

import contextlib

import numpy as np

__all__ = [
    "same_place_as",
    "ResultLayers",
    "remove_layer",
    "add_result_layer",
    "update_result_layer",
    "EDGE_COLOUR",
]

#: Colour of edge pixels in a boolean result (Labels layer).
EDGE_COLOUR = "magenta"

_PLACEMENT = ("scale", "translate", "rotate", "shear", "affine", "units", "axis_labels")


def same_place_as(source) -> dict:
    """Layer keywords that put a new layer exactly on ``source``, looking alike."""
    return {
        **{key: getattr(source, key) for key in _PLACEMENT},
        "rgb": source.rgb,
        "colormap": None if source.rgb else source.colormap,
        "blending": source.blending,
    }


def _is_mask(data) -> bool:
    return np.dtype(data.dtype) == np.bool_


def add_result_layer(viewer, data, *, name, limits, metadata, **place):
    """Add ``data`` as an Image layer (or a Labels layer for a boolean mask)."""
    if _is_mask(data) and not place.get("rgb"):  # (an RGB source keeps an RGB image)
        placement = {key: place[key] for key in _PLACEMENT if key in place}
        return viewer.add_labels(
            data,
            **placement,
            name=name,
            metadata=metadata,
            colormap={0: "transparent", 1: EDGE_COLOUR, None: "transparent"},
            opacity=1.0,
            blending="translucent",
        )
    return viewer.add_image(data, **place, name=name, contrast_limits=limits, metadata=metadata)


def update_result_layer(layer, data, limits) -> bool:
    """Put ``data`` into ``layer`` if it is the same kind of layer and shape; True if done."""
    from napari.layers import Image, Labels

    if _is_mask(data) and not isinstance(layer, Image):
        if not isinstance(layer, Labels) or layer.data.ndim != data.ndim:
            return False
        layer.data = data
        return True
    if not isinstance(layer, Image) or layer.data.ndim != data.ndim:
        return False
    layer.data = data
    layer.contrast_limits = limits
    return True


def remove_layer(viewer, layer) -> None:
    """Take ``layer`` out of ``viewer`` if it is still there (never raises)."""
    if viewer is not None and layer is not None:
        with contextlib.suppress(Exception):
            if layer in viewer.layers:
                viewer.layers.remove(layer)


class ResultLayers:
    """A widget's result layers: one per run, or the previous one updated in place.

    Layers are remembered by ``unique_id`` (plugins get proxies of layers,
    which die at once, so weak references would not do).
    """

    def __init__(self, viewer):
        self._viewer = viewer
        self._last: dict = {}  # source unique_id -> unique_id of its last result

    def previous(self, source):
        wanted = self._last.get(source.unique_id)
        if wanted is None or self._viewer is None:
            return None
        return next((layer for layer in self._viewer.layers if layer.unique_id == wanted), None)

    def place(self, source, data, *, name, limits, metadata, replace_previous: bool):
        """Add ``data`` on top of ``source`` (or replace the previous result); return the layer."""
        previous = self.previous(source) if replace_previous else None
        if (
            previous is not None
            and previous.data.shape == data.shape
            and update_result_layer(previous, data, limits)
        ):
            previous.metadata.update(metadata)
            previous.name = name
            return previous
        layer = add_result_layer(
            self._viewer, data, **same_place_as(source), name=name, limits=limits, metadata=metadata
        )
        self._last[source.unique_id] = layer.unique_id
        return layer
