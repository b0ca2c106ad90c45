"""A widget's live preview: the displayed plane filtered into a temporary layer.

Debounced (a parameter typed or a slider moved restarts a 250 ms timer),
computed on a worker thread, and shown in one preview layer that follows the
displayed plane; stale results (an older generation) are dropped.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import numpy as np
from napari.qt.threading import FunctionWorker
from qtpy.QtCore import QTimer

from ._preview import preview_job, preview_region
from ._result_layers import remove_layer, same_place_as

__all__ = ["PreviewController", "PREVIEW_KEY", "PREVIEW_DELAY_MS"]

PREVIEW_KEY = "napari_denoise_preview"
PREVIEW_DELAY_MS = 250


class PreviewController:
    """Owns the preview layer of one widget.

    ``build_job()`` returns ``(layer, axes, kwargs, op)`` for the current
    settings (or raises ValueError/TypeError/MemoryError); ``function`` is the
    public filter function; ``report(text)`` shows a message in the widget.
    """

    def __init__(self, viewer, title: str, function, build_job: Callable, report: Callable[[str], None]):
        self._viewer = viewer
        self._title = title
        self._function = function
        self._build_job = build_job
        self._report = report
        self.enabled = False
        self.alive = True
        self.layer = None
        self._generation = 0
        self._timer = QTimer()
        self._timer.setSingleShot(True)
        self._timer.setInterval(PREVIEW_DELAY_MS)
        self._timer.timeout.connect(self._start)

    def set_enabled(self, on: bool) -> None:
        self.enabled = bool(on)
        if self.enabled:
            self.schedule()
        else:
            self._stop_timer()
            self.remove()

    def schedule(self, *_) -> None:
        """(Re)start the debounce timer when the preview is on."""
        if self.alive and self.enabled and self._viewer is not None:
            self._timer.start()

    def remove(self) -> None:
        """Drop the preview layer; results still on their way are ignored."""
        layer, self.layer = self.layer, None
        self._generation += 1
        remove_layer(self._viewer, layer)

    def shutdown(self) -> None:
        """The widget is gone: no more callbacks, no preview layer."""
        self.alive = False
        self._stop_timer()
        self.remove()

    def _stop_timer(self) -> None:
        with contextlib.suppress(RuntimeError):  # the QTimer may be deleted already
            self._timer.stop()

    def _start(self) -> None:
        viewer = self._viewer
        if not self.alive or not self.enabled or viewer is None:
            return
        try:
            layer, axes, kwargs, op = self._build_job()
            region = preview_region(viewer, layer, axes, op)
        except (ValueError, TypeError, MemoryError) as exc:
            self._report(f"⚠ preview: {exc}")
            return
        if region is None:
            self._report("preview needs the 2D view")
            return
        index, keep, offset = region
        self._generation += 1
        generation = self._generation
        if op.halo is None and len(axes.spatial_axes) > 2:
            # Whole-volume methods are previewed plane by plane (approximation).
            kwargs = dict(kwargs, spatial_axes=axes.spatial_axes[-2:])
            if "spacing" in kwargs:
                kwargs["spacing"] = axes.spacing[-2:]
        worker = FunctionWorker(preview_job, self._function, layer.data, index, keep, kwargs)
        worker.returned.connect(lambda outcome: self._show(generation, layer, offset, outcome))
        worker.start()

    def _show(self, generation, source, offset, outcome) -> None:
        viewer = self._viewer
        if not self.alive or generation != self._generation or not self.enabled or viewer is None:
            return
        if outcome.error is not None:
            self._report(f"⚠ preview: {outcome.error}")
            return
        data, limits = outcome.result, outcome.limits
        translate = np.asarray(source.translate, dtype=float) + np.asarray(offset) * np.asarray(source.scale)
        layer = self.layer
        if layer is not None and layer in viewer.layers and layer.data.ndim == data.ndim:
            layer.data = data
            layer.translate = translate
            layer.contrast_limits = limits
            return
        self.layer = viewer.add_image(
            data,
            **dict(same_place_as(source), translate=translate),
            name=f"preview: {source.name} {self._title.lower()}",
            contrast_limits=limits,
            metadata={PREVIEW_KEY: True},
        )
        # Keep the source layer selected so the widget keeps its input.
        viewer.layers.selection.active = source
