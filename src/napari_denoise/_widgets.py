"""napari widgets: one per filter of the table in :mod:`._registry`.

A :class:`FilterWidget` maps an Image layer (its scale, units and axis labels)
onto a filter function. It is assembled from small pieces, each with one job:

* :mod:`._controls` — the parameter controls, from the function's signature
  and docstring;
* :mod:`._run_controller` — background runs: start, progress, cancel;
* :mod:`._result_layers` — result layers that sit exactly on their source;
* :mod:`._preview_controller` — the live preview of the displayed plane.

The widget itself reads the controls, checks them in its info line, builds
the :class:`~napari_denoise.FilterOp` and reports outcomes. The classes at the
end of this module are what ``napari.yaml`` names (one per filter; a test
checks them against the manifest).
"""

from __future__ import annotations

import contextlib
import weakref

from magicgui.widgets import CheckBox, ComboBox, Container, Label, PushButton
from napari.layers import Image
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import QEvent, QObject

from ._auto_widget import attach_calibrate_button
from ._controls import make_controls
from ._layer_axes import axes_of_layer
from ._params import as_image
from ._parsing import format_value
from ._preview_controller import PREVIEW_DELAY_MS, PREVIEW_KEY, PreviewController
from ._recipe import METADATA_KEY, call_arguments, recipe, result_name, voxel_sizes, warnings_for
from ._registry import FilterSpec, by_name
from ._result_layers import ResultLayers
from ._run_controller import RunController

__all__ = [
    "FilterWidget",
    "GaussianWidget",
    "MeanWidget",
    "MedianWidget",
    "BilateralWidget",
    "TotalVariationWidget",
    "WaveletWidget",
    "NonLocalMeansWidget",
    "BlockMatchingWidget",
    "SobelWidget",
    "ScharrWidget",
    "PrewittWidget",
    "LaplaceWidget",
    "GradientMagnitudeWidget",
    "LaplacianOfGaussianWidget",
    "DifferenceOfGaussiansWidget",
    "CannyWidget",
    "PREVIEW_KEY",
    "PREVIEW_DELAY_MS",
]

VOLUME = "volume (3D)"
PLANES = "each 2D plane"


class FilterWidget(Container):
    """Dock widget for one filter; subclasses set :attr:`spec`.

    Scripts set parameters by name (``widget.sigma.value = 0.5``) and call
    ``widget()``, which starts the same background run as the Run button and
    returns the worker (or None when the input was refused).
    """

    spec: FilterSpec

    def __init__(self, napari_viewer=None):
        super().__init__(labels=True)
        self._viewer = napari_viewer
        self._last_error = None
        self._alive = True
        self._runs = RunController(self._set_busy)
        self._results = ResultLayers(napari_viewer)

        self._image = ComboBox(name="image", label="image", choices=self._image_choices, nullable=True)
        self._image.tooltip = "Image layer to filter (never modified)."
        self._controls = make_controls(self.spec)
        self._process_as = ComboBox(name="process_as", label="process as", choices=[VOLUME, PLANES], value=VOLUME)
        self._process_as.tooltip = (
            "For a layer with three spatial axes: filter the whole volume (default for z-stacks) "
            "or each 2D plane on its own."
        )
        self._update_result = CheckBox(name="update_result", value=False, label="update result")
        self._update_result.tooltip = "Replace the data of this widget's previous result for the same layer instead of adding a new layer."
        self._preview = CheckBox(name="preview", value=False, label="preview")
        self._preview.tooltip = "Filter only the displayed plane into a temporary layer, updated as you type."
        self._info = Label(name="info", value="")
        self._run_button = PushButton(name="run_button", text="Run")
        self._cancel_button = PushButton(name="cancel_button", text="Cancel", enabled=False)
        self.extend(
            [
                self._image,
                *(c.widget for c in self._controls),
                self._process_as,
                self._update_result,
                self._preview,
                self._info,
                self._run_button,
                self._cancel_button,
            ]
        )
        # Calibrate button (denoisers only): its logic lives in _auto_widget.
        self._calibrator = attach_calibrate_button(self)
        self._previewer = PreviewController(
            napari_viewer, self.spec.display_name, self.spec.function, self._preview_job, self._show_info_line
        )

        self._run_button.changed.connect(self.run)
        self._cancel_button.changed.connect(self.cancel)
        self._preview.changed.connect(self._previewer.set_enabled)
        for watched in (self._image, self._process_as, *(c.widget for c in self._controls)):
            watched.changed.connect(self._on_any_change)
        self._viewer_events = []
        if napari_viewer is not None:
            self._viewer_events = [
                (napari_viewer.layers.events.inserted, self._refresh_choices),
                (napari_viewer.layers.events.removed, self._refresh_choices),
                (napari_viewer.dims.events.current_step, self._previewer.schedule),
                (napari_viewer.dims.events.ndisplay, self._previewer.schedule),
            ]
            for emitter, callback in self._viewer_events:
                emitter.connect(callback)
        self.native.destroyed.connect(_on_destroyed(weakref.ref(self), self._previewer, self._runs, self._viewer_events))
        # Closing the panel (its "x") takes the widget out of its dock without
        # deleting it: the preview goes away then too.
        self._removal_watcher = _RemovalWatcher(self._on_removed_from_window)
        self.native.installEventFilter(self._removal_watcher)
        self._refresh_choices()

    def _on_removed_from_window(self):
        if not self._alive:
            return
        if self._preview.value:
            self._preview.value = False  # removes the preview layer
        else:
            self._previewer.set_enabled(False)

    # -- layer choice ----------------------------------------------------------
    def _image_choices(self, *_):
        viewer = self._viewer
        if viewer is None:
            return []
        return [
            (layer.name, layer)
            for layer in viewer.layers
            if isinstance(layer, Image) and PREVIEW_KEY not in layer.metadata
        ]

    def _refresh_choices(self, *_):
        if not self._alive:
            return
        previous = self._image.value
        self._image.reset_choices()
        if previous is None and self._viewer is not None:
            active = self._viewer.layers.selection.active
            if isinstance(active, Image) and active in [v for _, v in self._image_choices()]:
                self._image.value = active
        self._refresh_info()

    def reset_choices(self, *_):
        self._refresh_choices()

    # -- reading the controls --------------------------------------------------
    @property
    def running(self) -> bool:
        return self._runs.running

    @property
    def last_error(self) -> str | None:
        """The message of the last refused or failed run, or None."""
        return self._last_error

    @property
    def preview_layer(self):
        return self._previewer.layer

    def _layer(self):
        layer = self._image.value
        if layer is None:
            raise ValueError("image: choose an Image layer (none is selected)")
        if not isinstance(layer, Image):
            raise TypeError(f"image: {layer.name!r} is a {type(layer).__name__} layer, not an Image layer")
        if layer.multiscale:
            raise ValueError(f"image: {layer.name!r} is multiscale; filter its full-resolution level as a separate layer")
        return layer

    def _axes(self, layer):
        return axes_of_layer(layer, volume=self._process_as.value == VOLUME)

    def _values(self) -> dict:
        return {c.name: c.read() for c in self._controls}

    def _job(self):
        """Validated ``(layer, axes, values, kwargs, op)`` for the current settings."""
        layer = self._layer()
        axes = self._axes(layer)
        values = self._values()
        kwargs = call_arguments(self.spec, axes, values)
        op = self.spec.function.op(layer.data, **kwargs)
        return layer, axes, values, kwargs, op

    def _preview_job(self):
        layer, axes, _, kwargs, op = self._job()
        return layer, axes, kwargs, op

    # -- info line -------------------------------------------------------------
    def _show_info_line(self, text: str) -> None:
        if self._alive:
            self._info.value = text

    def _on_any_change(self, *_):
        self._refresh_info()
        self._previewer.schedule()

    def _refresh_info(self, *_):
        layer = self._image.value
        if layer is None or not isinstance(layer, Image):
            self._info.value = "Choose an Image layer."
            return
        try:
            can_choose = axes_of_layer(layer).can_choose_volume
        except ValueError as exc:
            self._info.value = str(exc)
            return
        self._process_as.visible = can_choose
        try:
            axes = self._axes(layer)
            for control in self._controls:
                if control.name in self.spec.lengths:
                    control.widget.label = f"{control.name} ({axes.unit})"
            values = self._values()
            lines = []
            for name, per_axis in voxel_sizes(self.spec, axes, values).items():
                sizes = ", ".join(f"{label} {format_value(v)}" for label, v in zip(axes.labels[-len(per_axis):], per_axis))
                lines.append(f"{name} in voxels: {sizes}")
            if not self.spec.lengths:
                lines.append("axes: " + ", ".join(axes.labels))
            lines.extend(f"⚠ {w}" for w in warnings_for(self.spec, axes, layer.data.shape, values))
            if not layer.multiscale:
                # Let the filter check every value now (cheap: nothing is computed).
                self.spec.function.op(as_image(layer.data), **call_arguments(self.spec, axes, values))
            self._info.value = "\n".join(lines)
        except (ValueError, TypeError) as exc:
            self._info.value = f"⚠ {exc}"

    # -- running ---------------------------------------------------------------
    def __call__(self, *args, **kwargs):
        return self.run()

    def run(self, *_):
        """Start filtering in the background; returns the worker or None."""
        title = self.spec.display_name
        if self.running:
            show_info(f"{title}: a run is already going; cancel it first")
            return None
        try:
            layer, axes, values, kwargs, op = self._job()
        except (ValueError, TypeError, MemoryError) as exc:
            self._last_error = str(exc)
            show_error(f"{title}: {exc}")
            return None
        for warning in warnings_for(self.spec, axes, layer.data.shape, values):
            show_warning(f"{title}: {warning}")
        name = result_name(self.spec, layer.name, axes, values)
        meta = {METADATA_KEY: recipe(self.spec, layer.name, axes, values, kwargs)}
        source_limits = tuple(layer.contrast_limits) if self.spec.family == "denoise" else None

        def on_outcome(outcome):
            if not self._alive:
                return
            if outcome.error is not None:
                self._last_error = str(outcome.error)
                show_error(f"{title} failed: {outcome.error}")
            elif outcome.cancelled:
                show_info(f"{title}: cancelled, nothing was added")
            elif self._viewer is not None:
                self._results.place(
                    layer, outcome.result, name=name, limits=outcome.limits, metadata=meta,
                    replace_previous=self._update_result.value,
                )

        return self._runs.start(
            op, as_image(layer.data), description=f"{title}: {layer.name}",
            source_limits=source_limits, on_outcome=on_outcome,
        )

    def cancel(self, *_):
        """Stop the run: nothing is added, the computation stops within a second."""
        self._runs.cancel()

    @property
    def _progress(self):
        """The running job's progress bar (activity dock), or None."""
        return self._runs.progress_bar

    def _set_busy(self, busy: bool) -> None:
        if not self._alive:
            return
        self._run_button.enabled = not busy
        self._run_button.text = "Running…" if busy else "Run"
        self._cancel_button.enabled = busy

    def close(self):
        self.cancel()
        self._previewer.shutdown()
        super().close()


def _on_destroyed(widget_ref, previewer, runs, viewer_events):
    """Callback for the Qt widget's destruction (dock or viewer closed).

    Holds no reference to the widget itself: stops every callback that would
    touch the deleted Qt widgets, cancels a run and drops the preview layer.
    """

    def callback(*_):
        widget = widget_ref()
        if widget is not None:
            widget._alive = False
        # When the widget dies inside a garbage-collection pass, Python may
        # already have cleared the controllers' attributes (tp_clear) before
        # Qt emits ``destroyed``: there is nothing left to stop then.
        with contextlib.suppress(AttributeError, RuntimeError):
            runs.cancel()
        with contextlib.suppress(AttributeError, RuntimeError):
            previewer.shutdown()
        for emitter, handler in viewer_events:
            with contextlib.suppress(Exception):
                emitter.disconnect(handler)

    return callback


class _RemovalWatcher(QObject):
    """Calls back when the watched widget loses its parent (its dock was closed)."""

    def __init__(self, callback):
        super().__init__()
        self._callback = callback

    def eventFilter(self, obj, event):  # noqa: N802 - Qt API
        if event.type() == QEvent.Type.ParentChange and obj.parent() is None:
            self._callback()
        return False


# -- one widget class per filter: napari.yaml names these ----------------------------------
class GaussianWidget(FilterWidget):
    spec = by_name("gaussian")


class MeanWidget(FilterWidget):
    spec = by_name("mean")


class MedianWidget(FilterWidget):
    spec = by_name("median")


class BilateralWidget(FilterWidget):
    spec = by_name("bilateral")


class TotalVariationWidget(FilterWidget):
    spec = by_name("total_variation")


class WaveletWidget(FilterWidget):
    spec = by_name("wavelet")


class NonLocalMeansWidget(FilterWidget):
    spec = by_name("non_local_means")


class BlockMatchingWidget(FilterWidget):
    spec = by_name("block_matching")


class SobelWidget(FilterWidget):
    spec = by_name("sobel")


class ScharrWidget(FilterWidget):
    spec = by_name("scharr")


class PrewittWidget(FilterWidget):
    spec = by_name("prewitt")


class LaplaceWidget(FilterWidget):
    spec = by_name("laplace")


class GradientMagnitudeWidget(FilterWidget):
    spec = by_name("gradient_magnitude")


class LaplacianOfGaussianWidget(FilterWidget):
    spec = by_name("laplacian_of_gaussian")


class DifferenceOfGaussiansWidget(FilterWidget):
    spec = by_name("difference_of_gaussians")


class CannyWidget(FilterWidget):
    spec = by_name("canny")
