"""Where a widget's results go: new layers that sit exactly on their source.

Qt-free: works on the viewer's layer list and the layers' public attributes.
"""

from __future__ import annotations

import contextlib

__all__ = ["same_place_as", "ResultLayers", "remove_layer"]


def same_place_as(source) -> dict:
    """Layer keywords that put a new layer exactly on ``source``, looking alike."""
    return {
        "scale": source.scale,
        "translate": source.translate,
        "rotate": source.rotate,
        "shear": source.shear,
        "affine": source.affine,
        "units": source.units,
        "axis_labels": source.axis_labels,
        "rgb": source.rgb,
        "colormap": None if source.rgb else source.colormap,
        "blending": source.blending,
    }


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
        if previous is not None and previous.data.shape == data.shape:
            previous.data = data
            previous.contrast_limits = limits
            previous.metadata.update(metadata)
            previous.name = name
            return previous
        layer = self._viewer.add_image(
            data, **same_place_as(source), name=name, contrast_limits=limits, metadata=metadata
        )
        self._last[source.unique_id] = layer.unique_id
        return layer
