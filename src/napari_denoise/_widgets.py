"""napari widgets: one per filter of the table in :mod:`._registry`.

A :class:`FilterWidget` maps an Image layer (its scale, units and axis labels)
onto a filter function. It is assembled from small pieces, each with one job:

* :mod:`._controls` — the parameter controls, from the function's signature
  and docstring (plain wrapped tooltips, labels in words);
* :mod:`._run_controller` — background runs: start, progress, cancel;
* :mod:`._run_time` — the expected run time, shown before Run;
* :mod:`._result_layers` — result layers that sit exactly on their source;
* :mod:`._preview_controller` — the live preview of the displayed plane;
* :mod:`._auto_values` — what the empty "auto" fields will use.

The widget itself reads the controls, checks them in its info line, builds
the :class:`~napari_denoise.FilterOp` and reports outcomes. The classes at the
end of this module are what ``napari.yaml`` names (one per filter; a test
checks them against the manifest); :mod:`._panel` holds the one dock that
serves every filter.
"""

from __future__ import annotations

import contextlib

from magicgui.widgets import CheckBox, ComboBox, Container, Label, PushButton
from napari.layers import Image
from napari.qt.threading import FunctionWorker
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import QEvent, QObject, QTimer
from qtpy.QtWidgets import QSizePolicy

from ._auto_values import auto_texts, sample_noise, uses_noise_level
from ._auto_widget import attach_calibrate_button
from ._controls import Control, align_labels, label_text, make_controls, tooltip_text
from ._layer_axes import axes_of_layer
from ._params import as_image, is_lazy
from ._parsing import format_value
from ._preview_controller import NEEDS_2D, PREVIEW_DELAY_MS, PREVIEW_KEY, PreviewController, PreviewInput
from ._recipe import (
    METADATA_KEY,
    call_arguments,
    length_spacing,
    recipe,
    result_name,
    voxel_sizes,
    warnings_for,
)
from ._registry import FilterSpec, by_name, default_voxels
from ._result_layers import ResultLayers
from ._run_controller import RunController
from ._run_time import CONFIRM_S, SHOW_ESTIMATE_S, estimate_run, format_duration
from ._teardown import on_destroyed

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
    "NEEDS_2D",
]

# Wide enough for the fields and a readable info line (which wraps).
MIN_WIDTH = 360

VOLUME = "volume (3D)"
PLANES = "each 2D plane"


class FilterWidget(Container):
    """Dock widget for one filter; subclasses set :attr:`spec`.

    Scripts set parameters by name (``widget.sigma.value = 0.5``) and call
    ``widget()``, which does what the Run button does and returns the worker
    (or None when the input was refused, or when a long run waits for a second
    press: ``widget.run(confirmed=True)`` skips that question).
    """

    spec: FilterSpec
    #: Filters this widget can show (the one-panel dock offers them all).
    specs: tuple[FilterSpec, ...] | None = None

    def __init__(self, napari_viewer=None):
        super().__init__(labels=False)
        self._viewer = napari_viewer
        self._last_error = None
        self._alive = True
        self._setting_defaults = False
        self._armed = False  # a long run waits for a second press of Run
        self._estimate = None
        self._preview_note = ""
        self._noise = {}  # layer unique_id -> noise level on a sample of the displayed plane
        self._noise_workers = []
        self._runs = RunController(self._set_busy, self._show_status)
        self._results = ResultLayers(napari_viewer)

        self._image = ComboBox(name="image", label="image", choices=self._image_choices, nullable=True)
        self._image.tooltip = tooltip_text("Image layer to filter (never modified).")
        self._control_sets = {spec.name: make_controls(spec) for spec in (self.specs or (self.spec,))}
        self._process_as = ComboBox(name="process_as", label="process as", choices=[VOLUME, PLANES], value=VOLUME)
        self._process_as.tooltip = tooltip_text(
            "For a layer with three spatial axes: filter the whole volume (default for z-stacks) "
            "or each 2D plane on its own."
        )
        self._update_result = CheckBox(name="update_result", value=False, text="update result")
        self._update_result.tooltip = tooltip_text(
            "Replace the data of this widget's previous result for the same layer instead of adding a new layer."
        )
        self._preview = CheckBox(name="preview", value=False, text="preview")
        self._preview.tooltip = tooltip_text(
            "Filter only the displayed plane into a temporary layer, updated as you type. "
            "Slow methods are previewed in 2-D or on a crop (the info line says so)."
        )
        self._info = Label(name="info", value="")
        self._status = Label(name="status", value="")
        for line in (self._info, self._status):
            # long messages wrap at the dock's width instead of widening it
            line.native.setWordWrap(True)
            line.native.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Minimum)
        self._run_button = PushButton(name="run_button", text="Run")
        self._cancel_button = PushButton(name="cancel_button", text="Cancel", enabled=False)
        self._reset_button = PushButton(name="reset_button", text="Reset to defaults")
        self._reset_button.tooltip = tooltip_text("Put every parameter of this filter back to its default.")
        # Labelled fields in one aligned form; the text lines and buttons below
        # span the dock's width.
        self._form = Container(
            labels=True,
            widgets=[
                *self._header_widgets(),
                self._image,
                *(c.widget for controls in self._control_sets.values() for c in controls),
                self._process_as,
            ],
        )
        toggles = Container(layout="horizontal", labels=False, widgets=[self._preview, self._update_result])
        buttons = Container(layout="horizontal", labels=False,
                            widgets=[self._run_button, self._cancel_button, self._reset_button])
        for box in (self._form, toggles, buttons):
            box.margins = (0, 0, 0, 0)
        self._named = {
            w.name: w
            for w in (self._image, self._process_as, self._update_result, self._preview, self._info,
                      self._status, self._run_button, self._cancel_button, self._reset_button,
                      *self._header_widgets_made())
        }
        # Calibrate button (one-filter denoiser docks): its logic lives in _auto_widget.
        self._calibrator = None if self.specs else attach_calibrate_button(self, buttons)
        if self._calibrator is not None:
            self._named[self._calibrator.button.name] = self._calibrator.button
        self.extend([self._form, toggles, self._info, self._status, buttons])
        self._previewer = PreviewController(napari_viewer, self._preview_input, self._show_preview_note)

        self._run_button.changed.connect(self.run)
        self._cancel_button.changed.connect(self.cancel)
        self._reset_button.changed.connect(self.reset_defaults)
        self._preview.changed.connect(self._previewer.set_enabled)
        self._image.changed.connect(self._on_image_changed)
        self._process_as.changed.connect(self._on_any_change)
        for controls in self._control_sets.values():
            for control in controls:
                control.widget.changed.connect(self._control_callback(control))
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
        self.native.destroyed.connect(on_destroyed(self, self._runs, self._viewer_events, self._previewer))
        # Closing the panel (its "x") takes the widget out of its dock without
        # deleting it: the preview goes away then too. Once napari's style
        # sheet applies (on show), the labels are measured as drawn.
        self._removal_watcher = _WindowWatcher(self._on_removed_from_window, self._realign)
        self.native.installEventFilter(self._removal_watcher)
        self.native.setMinimumWidth(MIN_WIDTH)
        self._show_spec()
        self._refresh_choices()
        if self._image.value is not None and not self._noise:
            self._on_image_changed()

    def _header_widgets(self) -> list:
        """Widgets above the image field (the panel's filter picker), made once."""
        return []

    def _header_widgets_made(self) -> list:
        return []

    def __getattr__(self, name):
        # The current filter's controls first: the panel holds several
        # filters' controls with the same names (sigma, mode, ...).
        if not name.startswith("_"):
            sets = self.__dict__.get("_control_sets")
            spec = self.__dict__.get("spec") or getattr(type(self), "spec", None)
            if sets is not None and spec is not None:
                for control in sets.get(spec.name, ()):
                    if control.name == name:
                        return control.widget
            named = self.__dict__.get("_named")
            if named and name in named:
                return named[name]
        return super().__getattr__(name)

    @property
    def _controls(self) -> list[Control]:
        return self._control_sets[self.spec.name]

    def _control_callback(self, control: Control):
        def callback(*_):
            if not self._setting_defaults:
                control.user_set = True
            if any(c is control for c in self._controls):  # the filter on show
                self._on_any_change()

        return callback

    def _show_spec(self) -> None:
        """Show the current filter's controls (and hide the others')."""
        for name, controls in self._control_sets.items():
            for control in controls:
                control.widget.visible = name == self.spec.name
        align_labels(self._form)

    def _realign(self) -> None:
        if self._alive:
            with contextlib.suppress(RuntimeError):  # Qt objects deleted meanwhile
                align_labels(self._form)

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

    def _default_image(self):
        """The active Image layer, else a selected one, else the only (or top-most) one."""
        images = [layer for _, layer in self._image_choices()]
        if not images:
            return None
        selection = self._viewer.layers.selection
        if selection.active in images:
            return selection.active
        selected = [layer for layer in images if layer in selection]
        if selected:
            return selected[-1]
        return images[-1]

    def _refresh_choices(self, *_):
        if not self._alive:
            return
        previous = self._image.value
        self._image.reset_choices()
        if previous is None and self._image.value is None and self._viewer is not None:
            choice = self._default_image()
            if choice is not None:
                self._image.value = choice
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

    @property
    def estimate(self):
        """The :class:`~napari_denoise._run_time.RunEstimate` of the current settings, or None."""
        return self._estimate

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
        volume = self._process_as.value == VOLUME or self.spec.planar
        return axes_of_layer(layer, volume=volume)

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

    def _preview_input(self) -> PreviewInput:
        layer, axes, _, kwargs, op = self._job()
        return PreviewInput(layer, axes, kwargs, op, self.spec.function, self.spec.display_name)

    # -- defaults --------------------------------------------------------------
    def _length_defaults(self, layer, spec) -> dict:
        """Physical default of each length of ``spec`` for ``layer``: voxels × its finest voxel size."""
        voxels = default_voxels(spec)
        if not voxels or layer is None:
            return {}
        try:
            spacing = length_spacing(spec, axes_of_layer(layer))
        except ValueError:
            return {}
        finest = min(spacing)
        return {name: format_value(float(f"{n * finest:.4g}")) for name, n in voxels.items()}

    def _apply_length_defaults(self, *, force: bool = False) -> None:
        """Length fields not typed by the user follow the layer's voxel size."""
        layer = self._image.value if isinstance(self._image.value, Image) else None
        self._setting_defaults = True
        try:
            for spec_name, controls in self._control_sets.items():
                defaults = self._length_defaults(layer, by_name(spec_name))
                for control in controls:
                    if control.name in defaults and (force or not control.user_set):
                        control.set_value(defaults[control.name])
        finally:
            self._setting_defaults = False

    def reset_defaults(self, *_) -> None:
        """Every parameter of the filter on show back to its default (lengths: for this layer)."""
        layer = self._image.value if isinstance(self._image.value, Image) else None
        defaults = self._length_defaults(layer, self.spec)
        self._setting_defaults = True
        try:
            for control in self._controls:
                control.set_value(defaults.get(control.name, control.default))
            self._process_as.value = VOLUME
        finally:
            self._setting_defaults = False
        self._on_any_change()

    # -- info line -------------------------------------------------------------
    def _show_preview_note(self, text: str) -> None:
        if self._alive and text != self._preview_note:
            self._preview_note = text
            self._refresh_info()

    def _show_status(self, text: str) -> None:
        if self._alive:
            self._status.value = text

    def _on_image_changed(self, *_):
        self._apply_length_defaults()
        self._sample_noise()
        self._on_any_change()

    def _on_any_change(self, *_):
        if not self._alive:
            return
        if self._armed:
            self._armed = False
            self._run_button.text = "Run"
        self._refresh_info()
        self._previewer.schedule()

    def _refresh_labels(self, axes) -> None:
        changed = False
        for control in self._controls:
            if control.name in self.spec.lengths:
                label = label_text(control.name, axes.unit if axes is not None else None)
                if control.widget.label != label:
                    control.widget.label = label
                    changed = True
        if changed:
            align_labels(self._form)

    def _refresh_info(self, *_):
        if not self._alive:
            return
        self._estimate = None
        layer = self._image.value
        lines = self._info_lines(layer)
        if self._preview_note:
            lines.append(self._preview_note)
        self._info.value = "\n".join(lines)
        self._refresh_auto_texts(layer)
        if not self.running:
            self._show_status(self._idle_status())

    def _info_lines(self, layer) -> list[str]:
        if layer is None or not isinstance(layer, Image):
            self._refresh_labels(None)
            return ["Choose an Image layer."]
        try:
            can_choose = axes_of_layer(layer).can_choose_volume
        except ValueError as exc:
            return [str(exc)]
        self._process_as.visible = can_choose and not self.spec.planar
        lines = []
        try:
            axes = self._axes(layer)
            self._refresh_labels(axes)
            values = self._values()
            for name, per_axis in voxel_sizes(self.spec, axes, values).items():
                sizes = ", ".join(f"{label} {format_value(v)}" for label, v in zip(axes.labels[-len(per_axis):], per_axis))
                lines.append(f"{label_text(name)} in voxels: {sizes}")
            if not self.spec.lengths:
                lines.append("axes: " + ", ".join(axes.labels))
            lines.extend(f"⚠ {w}" for w in warnings_for(self.spec, axes, layer.data.shape, values))
            if not layer.multiscale:
                # Let the filter check every value now (cheap: nothing is computed).
                op = self.spec.function.op(as_image(layer.data), **call_arguments(self.spec, axes, values))
                if not is_lazy(layer.data):
                    self._estimate = estimate_run(op, layer.data.shape)
        except (ValueError, TypeError) as exc:
            lines.append(f"⚠ {exc}")
        return lines

    def _idle_status(self) -> str:
        estimate = self._estimate
        if estimate is None or estimate.seconds <= SHOW_ESTIMATE_S:
            return ""
        cores = "core" if estimate.workers == 1 else "cores"
        text = f"Estimated run time: about {format_duration(estimate.seconds)} on {estimate.workers} {cores}."
        if estimate.seconds > CONFIRM_S:
            text += "\n⚠ A long run: Run asks for a second press."
        return text

    # -- auto values -------------------------------------------------------------
    def _plane_index(self, layer):
        """Index of the displayed plane of ``layer`` (its last two spatial axes whole)."""
        axes = axes_of_layer(layer, volume=False)
        if self._viewer is not None:
            position = layer.world_to_data(self._viewer.dims.point)
        else:
            position = [n // 2 for n in layer.data.shape]
        index = []
        for ax in range(layer.ndim):
            if ax in axes.spatial_axes:
                index.append(slice(None))
            else:
                index.append(int(min(max(round(position[ax]), 0), layer.data.shape[ax] - 1)))
        if layer.rgb:
            index.append(0)
        return tuple(index)

    def _sample_noise(self) -> None:
        """Estimate the noise level on the displayed plane, off the GUI thread."""
        layer = self._image.value
        if not isinstance(layer, Image) or layer.multiscale or layer.unique_id in self._noise:
            return
        if not uses_noise_level(self.spec):
            return  # nothing to show (and lazy data is not read for nothing)
        try:
            index = self._plane_index(layer)
        except (ValueError, TypeError):
            return
        key = layer.unique_id
        worker = FunctionWorker(sample_noise, layer.data, index)
        worker.returned.connect(lambda sigma: self._noise_ready(key, sigma))
        worker.errored.connect(lambda exc: None)  # the fields then say "auto (estimated ...)"
        self._noise_workers = [w for w in getattr(self, "_noise_workers", []) if w.is_running] + [worker]
        worker.start()

    def _noise_ready(self, key, sigma) -> None:
        if not self._alive:
            return
        self._noise[key] = sigma  # a SampledNoise: the level and whether 'auto' stabilises it
        self._refresh_auto_texts(self._image.value)

    def _refresh_auto_texts(self, layer) -> None:
        values = {}
        for control in self._controls:
            try:
                values[control.name] = control.read()
            except ValueError:
                values[control.name] = None
        sigma_hat = self._noise.get(layer.unique_id) if isinstance(layer, Image) else None
        kwargs = {}
        if isinstance(layer, Image):
            with contextlib.suppress(ValueError):
                axes = self._axes(layer)
                kwargs = {"shape": layer.data.shape, "spatial_axes": axes.spatial_axes, "unit": axes.unit}
        texts = auto_texts(self.spec, values, sigma_hat, **kwargs)
        for control in self._controls:
            if control.optional:
                control.set_auto_text(texts.get(control.name, "auto"))

    # -- running ---------------------------------------------------------------
    def __call__(self, *args, **kwargs):
        return self.run()

    def run(self, *_, confirmed: bool = False):
        """Start filtering in the background; returns the worker or None.

        A run expected to take longer than ~30 s starts on the second press
        (or with ``confirmed=True``); until then Run says how long it will be.
        """
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
        estimate = None if is_lazy(layer.data) else estimate_run(op, layer.data.shape)
        if estimate is not None and estimate.seconds > CONFIRM_S and not (confirmed or self._armed):
            self._armed = True
            self._run_button.text = f"Run anyway (~{format_duration(estimate.seconds)})"
            self._show_status(
                f"⚠ estimated {format_duration(estimate.seconds)} on {estimate.workers} cores: "
                "press Run again to start, or choose smaller sizes"
            )
            return None
        self._armed = False
        for warning in warnings_for(self.spec, axes, layer.data.shape, values):
            show_warning(f"{title}: {warning}")
        name = result_name(self.spec, layer.name, axes, values)
        meta = {METADATA_KEY: recipe(self.spec, layer.name, axes, values, kwargs)}
        source_limits = tuple(layer.contrast_limits) if self.spec.family == "denoise" else None

        def on_outcome(outcome):
            if not self._alive:
                return
            took = format_duration(self._runs.meter.elapsed) if self._runs.meter is not None else ""
            if outcome.error is not None:
                self._last_error = str(outcome.error)
                self._show_status(f"⚠ failed after {took}")
                show_error(f"{title} failed: {outcome.error}")
            elif outcome.cancelled:
                self._show_status(f"Cancelled after {took}; nothing was added.")
                show_info(f"{title}: cancelled, nothing was added")
            elif self._viewer is not None:
                added = self._results.place(
                    layer, outcome.result, name=name, limits=outcome.limits, metadata=meta,
                    replace_previous=self._update_result.value,
                )
                self._show_status(f"Done in {took}: {added.name!r}")

        return self._runs.start(
            op, as_image(layer.data), description=f"{title}: {layer.name}",
            source_limits=source_limits, on_outcome=on_outcome, estimate=estimate,
        )

    def cancel(self, *_):
        """Stop the run: nothing is added, the computation stops within a second."""
        self._runs.cancel()

    @property
    def _progress(self):
        """The running job's progress bar (activity dock), or None."""
        return self._runs.progress_bar

    @property
    def progress_meter(self):
        """The running (or last) run's :class:`~napari_denoise._run_time.ProgressMeter`."""
        return self._runs.meter

    def _set_busy(self, busy: bool) -> None:
        if not self._alive:
            return
        self._run_button.enabled = not busy
        self._run_button.text = "Running…" if busy else "Run"
        self._cancel_button.enabled = busy
        self._reset_button.enabled = not busy

    def close(self):
        self._runs.shutdown()
        self._previewer.shutdown()
        super().close()


class _WindowWatcher(QObject):
    """Calls ``on_removed`` when the watched widget loses its parent (its dock
    was closed) and ``on_restyled`` when it is shown or restyled."""

    def __init__(self, on_removed, on_restyled):
        super().__init__()
        self._on_removed = on_removed
        self._on_restyled = on_restyled

    def eventFilter(self, obj, event):  # noqa: N802 - Qt API
        kind = event.type()
        if kind == QEvent.Type.ParentChange and obj.parent() is None:
            self._on_removed()
        elif kind in (QEvent.Type.Show, QEvent.Type.StyleChange, QEvent.Type.FontChange):
            QTimer.singleShot(0, self._on_restyled)
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
