"""napari widgets: one per filter of the table in :mod:`._registry`.

This is the only module that touches Qt. A :class:`FilterWidget` maps an Image
layer (its scale, units and axis labels) onto a filter function, runs the
filter's :class:`~napari_denoise._execution.Plan` in a napari thread worker
with progress and cancel, and adds the result as a layer that sits exactly on
its source. Its controls are generated from the function's signature and
docstring, so each filter is described once.
"""

from __future__ import annotations

import contextlib
import inspect
import threading
import types
import typing
import weakref

import docstring_parser
import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, Label, LineEdit, PushButton, SpinBox
from napari.layers import Image
from napari.qt.threading import create_worker
from napari.utils import cancelable_progress
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import QEvent, QObject, QTimer

from ._jobs import filter_job
from ._layer_axes import axes_of_layer
from ._parsing import format_value, parse_value
from ._preview import preview_job, preview_region
from ._recipe import METADATA_KEY, call_arguments, recipe, result_name, voxel_sizes, warnings_for
from ._registry import FILTERS, FilterSpec, widget_parameters

__all__ = ["FilterWidget", *(spec.widget_class_name for spec in FILTERS)]

VOLUME = "volume (3D)"
PLANES = "each 2D plane"
PREVIEW_KEY = "napari_denoise_preview"
PREVIEW_DELAY_MS = 250


def _hints(spec: FilterSpec) -> dict:
    try:
        return typing.get_type_hints(spec.function.plan)
    except Exception:  # pragma: no cover - unresolvable annotation
        return {}


def _is_int(annotation) -> bool:
    args = typing.get_args(annotation) if isinstance(annotation, types.UnionType) else (annotation,)
    return int in args


def _tooltips(spec: FilterSpec) -> dict:
    parsed = docstring_parser.parse(inspect.getdoc(spec.function) or "")
    tips = {}
    for p in parsed.params:
        # numpydoc allows "low_threshold, high_threshold : float" for several names
        for name in p.arg_name.split(","):
            tips[name.strip()] = " ".join((p.description or "").split())
    return tips


class _Control:
    """One parameter's widget and how to read it."""

    def __init__(self, name, widget, read):
        self.name, self.widget, self.read = name, widget, read


def _make_control(spec: FilterSpec, parameter: inspect.Parameter, annotation) -> _Control:
    name, default = parameter.name, parameter.default
    optional = default is None
    if typing.get_origin(annotation) is typing.Literal:
        widget = ComboBox(name=name, choices=list(typing.get_args(annotation)), value=default)
        return _Control(name, widget, lambda w=widget: w.value)
    if isinstance(default, bool):
        widget = CheckBox(name=name, value=default, label=name)
        return _Control(name, widget, lambda w=widget: bool(w.value))
    if name == "wavelet_name":
        import pywt

        widget = ComboBox(name=name, choices=pywt.wavelist(kind="discrete"), value=default)
        return _Control(name, widget, lambda w=widget: w.value)
    if isinstance(default, int) and not isinstance(default, bool) and name not in spec.lengths:
        # Counts (iterations, patch sizes); physical lengths stay text fields.
        widget = SpinBox(name=name, value=default, min=1, max=100_000)
        return _Control(name, widget, lambda w=widget: int(w.value))
    integer = _is_int(annotation) and name not in spec.lengths
    widget = LineEdit(name=name, value="" if optional else format_value(default))
    if optional:
        with contextlib.suppress(AttributeError):
            widget.native.setPlaceholderText("auto (estimated)" if name not in spec.lengths else "auto")

    def read(w=widget):
        return parse_value(w.value, name, allow_none=optional, integer=integer)

    return _Control(name, widget, read)


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
        self._worker = None
        self._cancel_event = threading.Event()
        self._progress = None
        # source layer's unique_id -> unique_id of this widget's last result for it.
        # (Not weak references: plugins get proxies of layers, which die at once.)
        self._results: dict = {}
        self._preview_state = {"layer": None, "generation": 0, "worker": None, "alive": True}
        self._last_error = None

        self._image = ComboBox(name="image", label="image", choices=self._image_choices, nullable=True)
        self._image.tooltip = "Image layer to filter (never modified)."
        hints, tips = _hints(self.spec), _tooltips(self.spec)
        self._controls = []
        for parameter in widget_parameters(self.spec):
            control = _make_control(self.spec, parameter, hints.get(parameter.name))
            control.widget.tooltip = tips.get(parameter.name, "")
            self._controls.append(control)
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
        self._preview_timer = QTimer()
        self._preview_timer.setSingleShot(True)
        self._preview_timer.setInterval(PREVIEW_DELAY_MS)
        self._preview_timer.timeout.connect(self._start_preview)

        self._run_button.changed.connect(self.run)
        self._cancel_button.changed.connect(self.cancel)
        self._preview.changed.connect(self._on_preview_toggled)
        for watched in (self._image, self._process_as, *(c.widget for c in self._controls)):
            watched.changed.connect(self._on_any_change)
        if napari_viewer is not None:
            napari_viewer.layers.events.inserted.connect(self._refresh_choices)
            napari_viewer.layers.events.removed.connect(self._refresh_choices)
            napari_viewer.dims.events.current_step.connect(self._schedule_preview)
            napari_viewer.dims.events.ndisplay.connect(self._schedule_preview)
        preview_state = self._preview_state
        viewer = napari_viewer
        timer = self._preview_timer
        this = weakref.ref(self)

        def _on_destroyed(*_):
            # The Qt widgets are gone (dock closed, viewer closed): stop every
            # callback that would touch them, then drop the preview layer.
            preview_state["alive"] = False
            with contextlib.suppress(RuntimeError):  # the QTimer may be gone already
                timer.stop()
            widget = this()
            if widget is not None:
                widget._cancel_event.set()
                widget._disconnect_viewer()
            _remove_preview(viewer, preview_state)

        self.native.destroyed.connect(_on_destroyed)
        # Closing the panel (its "x") takes the widget out of its dock without
        # deleting it: the preview goes away then too.
        self._removal_watcher = _RemovalWatcher(self._on_removed_from_window)
        self.native.installEventFilter(self._removal_watcher)
        self._refresh_choices()

    def _on_removed_from_window(self):
        if not self._alive:
            return
        self._preview_timer.stop()
        if self._preview.value:
            self._preview.value = False  # removes the preview layer
        else:
            _remove_preview(self._viewer, self._preview_state)

    @property
    def _alive(self) -> bool:
        return self._preview_state["alive"]

    def _disconnect_viewer(self):
        viewer = self._viewer
        if viewer is None:
            return
        for emitter, callback in (
            (viewer.layers.events.inserted, self._refresh_choices),
            (viewer.layers.events.removed, self._refresh_choices),
            (viewer.dims.events.current_step, self._schedule_preview),
            (viewer.dims.events.ndisplay, self._schedule_preview),
        ):
            with contextlib.suppress(Exception):
                emitter.disconnect(callback)

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
        return self._worker is not None

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

    def _job(self, data=None):
        """Validated ``(layer, axes, values, kwargs, plan)`` for the current settings."""
        layer = self._layer()
        axes = self._axes(layer)
        values = self._values()
        kwargs = call_arguments(self.spec, axes, values)
        plan = self.spec.function.plan(layer.data if data is None else data, **kwargs)
        return layer, axes, values, kwargs, plan

    # -- info line -------------------------------------------------------------
    def _on_any_change(self, *_):
        self._refresh_info()
        self._schedule_preview()

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
                self.spec.function.plan(layer.data, **call_arguments(self.spec, axes, values))
            self._info.value = "\n".join(lines)
        except (ValueError, TypeError) as exc:
            self._info.value = f"⚠ {exc}"

    # -- running ---------------------------------------------------------------
    def __call__(self, *args, **kwargs):
        return self.run()

    def run(self, *_):
        """Start filtering in the background; returns the worker or None."""
        if self.running:
            show_info(f"{self.spec.display_name}: a run is already going; cancel it first")
            return None
        try:
            layer, axes, values, kwargs, plan = self._job()
        except (ValueError, TypeError, MemoryError) as exc:
            self._last_error = str(exc)
            show_error(f"{self.spec.display_name}: {exc}")
            return None
        for warning in warnings_for(self.spec, axes, layer.data.shape, values):
            show_warning(f"{self.spec.display_name}: {warning}")
        self._cancel_event = threading.Event()
        name = result_name(self.spec, layer.name, axes, values)
        meta = recipe(self.spec, layer.name, axes, values, kwargs)
        self._progress = _RunProgress(
            total=0, desc=f"{self.spec.display_name}: {layer.name}", cancel_callback=self.cancel
        )
        worker = create_worker(
            filter_job,
            plan,
            self._cancel_event,
            tuple(layer.contrast_limits) if self.spec.family == "denoise" else None,
            _start_thread=False,
            _ignore_errors=True,  # _on_error reports them; don't re-raise in the event loop
        )
        _quiet_relay(worker)
        worker.yielded.connect(self._on_progress)
        worker.returned.connect(lambda out: self._on_result(layer, name, meta, out))
        worker.errored.connect(self._on_error)
        worker.finished.connect(self._on_finished)
        self._worker = worker
        self._run_button.enabled = False
        self._run_button.text = "Running…"
        self._cancel_button.enabled = True
        worker.start()
        return worker

    def cancel(self, *_):
        """Stop the run after the tiles in flight (about a second); nothing is added."""
        self._cancel_event.set()

    def _on_progress(self, step):
        done, total = step
        bar = self._progress
        if bar is None:
            return
        if bar.total != total:
            bar.total = total
        bar.update(done - bar.n)
        if getattr(bar, "is_canceled", False):
            self.cancel()

    def _on_error(self, exc):
        self._last_error = str(exc)
        show_error(f"{self.spec.display_name} failed: {exc}")

    def _on_finished(self):
        self._worker = None
        if self._progress is not None:
            self._progress.close()
            self._progress = None
        if not self._alive:
            return
        self._run_button.enabled = True
        self._run_button.text = "Run"
        self._cancel_button.enabled = False

    def _on_result(self, source, name, meta, out):
        if not self._alive:
            return
        if out is None:
            show_info(f"{self.spec.display_name}: cancelled, nothing was added")
            return
        viewer = self._viewer
        result, limits = out
        if viewer is None:
            return
        previous = None
        wanted = self._results.get(source.unique_id)
        if wanted is not None:
            previous = next((lay for lay in viewer.layers if lay.unique_id == wanted), None)
        if (
            self._update_result.value
            and previous is not None
            and previous.data.shape == result.shape
        ):
            previous.data = result
            previous.contrast_limits = limits
            previous.metadata[METADATA_KEY] = meta
            previous.name = name
            return
        layer = viewer.add_image(
            result,
            **_same_place_as(source),
            name=name,
            affine=source.affine,
            contrast_limits=limits,
            blending=source.blending,
            metadata={METADATA_KEY: meta},
        )
        self._results[source.unique_id] = layer.unique_id

    # -- preview ---------------------------------------------------------------
    def _on_preview_toggled(self, on):
        if on:
            self._schedule_preview()
        else:
            self._preview_timer.stop()
            _remove_preview(self._viewer, self._preview_state)

    def _schedule_preview(self, *_):
        if self._alive and self._preview.value and self._viewer is not None:
            self._preview_timer.start()

    def _start_preview(self):
        viewer = self._viewer
        if not self._alive or not self._preview.value or viewer is None:
            return
        try:
            layer, axes, values, kwargs, plan = self._job()
            region = preview_region(viewer, layer, axes, plan)
        except (ValueError, TypeError, MemoryError) as exc:
            self._info.value = f"⚠ preview: {exc}"
            return
        if region is None:
            self._info.value = "preview needs the 2D view"
            return
        index, keep, offset = region
        state = self._preview_state
        state["generation"] += 1
        generation = state["generation"]
        if plan.halo is None and len(axes.spatial_axes) > 2:
            # Whole-volume methods are previewed plane by plane (approximation).
            kwargs = dict(kwargs, spatial_axes=axes.spatial_axes[-2:])
            if "spacing" in kwargs:
                kwargs["spacing"] = axes.spacing[-2:]
        function = self.spec.function
        worker = create_worker(
            preview_job, function, layer.data, index, keep, kwargs, _start_thread=False, _ignore_errors=True
        )
        _quiet_relay(worker)
        worker.returned.connect(
            lambda out: self._show_preview(generation, layer, offset, out)
        )
        worker.errored.connect(lambda exc: self._alive and setattr(self._info, "value", f"⚠ preview: {exc}"))
        state["worker"] = worker
        worker.start()

    def _show_preview(self, generation, source, offset, out):
        state = self._preview_state
        viewer = self._viewer
        if not state["alive"] or generation != state["generation"] or not self._preview.value or viewer is None:
            return
        data, limits = out
        translate = np.asarray(source.translate, dtype=float) + np.asarray(offset) * np.asarray(source.scale)
        layer = state["layer"]
        if layer is not None and layer in viewer.layers and layer.data.ndim == data.ndim:
            layer.data = data
            layer.translate = translate
            layer.contrast_limits = limits
            return
        state["layer"] = viewer.add_image(
            data,
            **dict(_same_place_as(source), translate=translate),
            name=f"preview: {source.name} {self.spec.display_name.lower()}",
            contrast_limits=limits,
            metadata={PREVIEW_KEY: True},
        )
        # Keep the source layer selected so the widget keeps its input.
        viewer.layers.selection.active = source

    @property
    def preview_layer(self):
        return self._preview_state["layer"]

    def close(self):
        self.cancel()
        self._preview_timer.stop()
        _remove_preview(self._viewer, self._preview_state)
        super().close()


class _RunProgress(cancelable_progress):
    """Progress bar whose cancel button (activity dock) cancels the run at once.

    ``cancelable_progress`` only calls ``cancel_callback`` while it is iterated;
    the widget updates it by hand, so the callback is called here.
    """

    def cancel(self) -> None:
        super().cancel()
        if self.cancel_callback is not None:
            self.cancel_callback()


class _RemovalWatcher(QObject):
    """Calls back when the watched widget loses its parent (its dock was closed)."""

    def __init__(self, callback):
        super().__init__()
        self._callback = callback

    def eventFilter(self, obj, event):  # noqa: N802 - Qt API
        if event.type() == QEvent.Type.ParentChange and obj.parent() is None:
            self._callback()
        return False


def _same_place_as(source) -> dict:
    """Layer keywords that put a new layer exactly on ``source``, looking alike."""
    return {
        "scale": source.scale,
        "translate": source.translate,
        "rotate": source.rotate,
        "shear": source.shear,
        "units": source.units,
        "axis_labels": source.axis_labels,
        "rgb": source.rgb,
        "colormap": None if source.rgb else source.colormap,
    }


def _quiet_relay(worker):
    """One notification per error: ours (napari's workers also relay every error)."""
    with contextlib.suppress(AttributeError, TypeError, RuntimeError):
        worker.errored.disconnect(worker._relay_error)


def _remove_preview(viewer, state):
    layer = state.get("layer")
    state["layer"] = None
    state["generation"] = state.get("generation", 0) + 1
    if viewer is not None and layer is not None:
        with contextlib.suppress(Exception):
            if layer in viewer.layers:
                viewer.layers.remove(layer)


def _widget_class(spec: FilterSpec):
    doc = f"{spec.display_name} widget: {spec.summary}"
    return type(spec.widget_class_name, (FilterWidget,), {"spec": spec, "__doc__": doc, "__module__": __name__})


for _spec in FILTERS:
    globals()[_spec.widget_class_name] = _widget_class(_spec)
del _spec
