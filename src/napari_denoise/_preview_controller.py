"""A widget's live preview: the displayed plane filtered into a temporary layer.

Debounced (a parameter typed or a slider moved restarts a 250 ms timer),
computed on a worker thread within a time budget (see :mod:`._preview`), and
shown in one preview layer that follows the displayed plane; stale results
(an older generation) are dropped. In the 3-D view there is no plane to
preview: the layer goes away and comes back on return to 2-D.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from napari.qt.threading import FunctionWorker
from qtpy.QtCore import QTimer

from ._preview import plan_preview, preview_job
from ._result_layers import add_result_layer, remove_layer, same_place_as, update_result_layer

__all__ = ["PreviewController", "PreviewInput", "PREVIEW_KEY", "PREVIEW_DELAY_MS", "NEEDS_2D"]

PREVIEW_KEY = "napari_denoise_preview"
PREVIEW_DELAY_MS = 250
NEEDS_2D = "preview needs the 2D view"


@dataclass(frozen=True)
class PreviewInput:
    """What the widget's current settings ask for (see ``build_job``)."""

    layer: object
    axes: object
    kwargs: dict
    op: object
    function: object
    title: str


class PreviewController:
    """Owns the preview layer of one widget.

    ``build_job()`` returns a :class:`PreviewInput` for the current settings
    (or raises ValueError/TypeError/MemoryError); ``report(note)`` shows the
    preview's state in the widget ("" when there is nothing to say).
    """

    def __init__(self, viewer, build_job: Callable[[], PreviewInput], report: Callable[[str], None]):
        self._viewer = viewer
        self._build_job = build_job
        self._report = report
        self.enabled = False
        self.alive = True
        self.layer = None
        self.plan = None  # the PreviewPlan of the preview on show
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
            self._report("")

    def schedule(self, *_) -> None:
        """(Re)start the debounce timer when the preview is on."""
        if self.alive and self.enabled and self._viewer is not None:
            self._timer.start()

    def remove(self) -> None:
        """Drop the preview layer; results still on their way are ignored."""
        layer, self.layer = self.layer, None
        self.plan = None
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
            job = self._build_job()
            plan = plan_preview(viewer, job.layer, job.axes, job.op, job.kwargs, job.function)
        except (ValueError, TypeError, MemoryError) as exc:
            self._report(f"⚠ preview: {exc}")
            return
        if plan is None:
            # 3-D view: a plane preview would float in the volume; it comes
            # back on return to 2-D (the ndisplay event schedules a preview).
            self.remove()
            self._report(NEEDS_2D)
            return
        self._generation += 1
        generation = self._generation
        worker = FunctionWorker(preview_job, job.function, job.layer.data, plan.index, plan.keep, plan.kwargs)
        worker.returned.connect(lambda outcome: self._show(generation, job, plan, outcome))
        worker.start()

    def _show(self, generation, job, plan, outcome) -> None:
        viewer = self._viewer
        if not self.alive or generation != self._generation or not self.enabled or viewer is None:
            return
        if outcome.error is not None:
            self._report(f"⚠ preview: {outcome.error}")
            return
        source = job.layer
        data, limits = outcome.result, outcome.limits
        translate = np.asarray(source.translate, dtype=float) + np.asarray(plan.offset) * np.asarray(source.scale)
        self.plan = plan
        self._report(plan.note)
        layer = self.layer
        if layer is not None and layer in viewer.layers and update_result_layer(layer, data, limits):
            layer.translate = translate
            return
        remove_layer(viewer, layer)
        self.layer = add_result_layer(
            viewer,
            data,
            **dict(same_place_as(source), translate=translate),
            name=f"preview: {source.name} {job.title.lower()}",
            limits=limits,
            metadata={PREVIEW_KEY: True},
        )
        # Keep the source layer selected so the widget keeps its input.
        viewer.layers.selection.active = source
