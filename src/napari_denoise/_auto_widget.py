"""The "Auto denoise" dock widget and the Calibrate button of the denoiser widgets.

:class:`AutoDenoiseWidget` runs :func:`~napari_denoise.auto_denoise` on a
worker thread with a cancellable progress bar, shows the fitted noise model
and a plot of the self-supervised loss against each method's parameter, and
adds the result on top of its source with the report and a replayable
recipe of the chosen call in ``layer.metadata``.

:func:`attach_calibrate_button` gives a :class:`~napari_denoise._widgets.FilterWidget`
a Calibrate button that runs :func:`~napari_denoise.calibrate` in the
background on the chosen layer and fills the widget's fields with the
calibrated values.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from magicgui.widgets import ComboBox, Container, Label, PushButton, Select
from napari.layers import Image
from napari.qt.threading import GeneratorWorker
from napari.utils.notifications import show_error, show_info

from . import _scheduler
from ._jobs import contrast_limits
from ._layer_axes import axes_of_layer
from ._params import as_image, is_lazy
from ._parsing import format_value
from ._preview_controller import PREVIEW_KEY
from ._recipe import METADATA_KEY, call_arguments, recipe
from ._registry import by_name, widget_parameters
from ._result_layers import ResultLayers
from ._run_controller import _RunProgress
from ._teardown import on_destroyed
from .auto import DEFAULT_METHODS, auto_denoise_steps
from .calibration import DEFAULT_GRIDS, calibration_steps

__all__ = ["AutoDenoiseWidget", "AUTO_METADATA_KEY", "attach_calibrate_button", "describe_noise_model"]

#: ``layer.metadata`` key of the auto-denoise report (the recipe is under ``napari_denoise``).
AUTO_METADATA_KEY = "napari_denoise_auto"
VOLUME = "volume (3D)"
PLANES = "each 2D plane"
# Every denoiser with default candidates, in the order the methods are tried.
_METHOD_CHOICES = list(DEFAULT_METHODS) + [name for name in DEFAULT_GRIDS if name not in DEFAULT_METHODS]


def describe_noise_model(model) -> str:
    """One line for a user: the model's kind and numbers, in the image's units."""
    if model.kind == "gaussian":
        return f"Gaussian, σ = {format_value(model.read_sigma)}"
    return (
        f"Poisson–Gaussian, gain = {format_value(model.gain)}, offset = {format_value(model.offset)}, "
        f"read σ = {format_value(model.read_sigma)} (stabilised before denoising)"
    )


@dataclass(frozen=True)
class _Outcome:
    value: Any = None
    error: BaseException | None = None
    cancelled: bool = False


def _job(steps):
    """Worker body: drive a ``(done, total)`` generator; never raises, returns an :class:`_Outcome`."""
    try:
        value = yield from steps
    except _scheduler.Cancelled:
        return _Outcome(cancelled=True)
    except Exception as exc:  # noqa: BLE001 - reported by the widget, once
        return _Outcome(error=exc)
    return _Outcome(value=value)


class _BackgroundRun:
    """One generator at a time on a napari worker, with a cancellable progress bar."""

    def __init__(self, on_busy: Callable[[bool], None]):
        self._on_busy = on_busy
        self._worker = None
        self.token = _scheduler.CancelToken()
        self.progress_bar = None

    @property
    def running(self) -> bool:
        return self._worker is not None

    def start(self, make_steps, *, description: str, on_outcome):
        self.token = token = _scheduler.CancelToken()
        self.progress_bar = _RunProgress(total=0, desc=description, cancel_callback=self.cancel)
        worker = GeneratorWorker(_job, make_steps(token))
        worker.yielded.connect(self._on_progress)
        worker.returned.connect(on_outcome)
        worker.errored.connect(lambda exc: on_outcome(_Outcome(error=exc)))
        worker.aborted.connect(token.cancel)
        worker.finished.connect(self._on_finished)
        self._worker = worker
        self._on_busy(True)
        worker.start()
        return worker

    def cancel(self, *_) -> None:
        self.token.cancel()

    def shutdown(self) -> None:
        """The widget is gone: cancel."""
        self.cancel()

    def _on_progress(self, step) -> None:
        done, total = step
        bar = self.progress_bar
        if bar is None:
            return
        if bar.total != total:
            bar.total = total
        if done != bar.n:
            bar.update(done - bar.n)

    def _on_finished(self) -> None:
        self._worker = None
        if self.progress_bar is not None:
            self.progress_bar.close()
            self.progress_bar = None
        self._on_busy(False)


class LossPlot:
    """Small multiples: the self-supervised loss against each method's parameter (matplotlib in Qt)."""

    def __init__(self):
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        self.figure = Figure(figsize=(4.0, 2.6), layout="constrained")
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(220)

    def show(self, report) -> None:
        self.figure.clear()
        names = list(report.calibrations)
        columns = 2 if len(names) > 1 else 1
        rows = -(-len(names) // columns)
        self.figure.set_size_inches(4.0, 1.5 * rows + 0.3)
        self.canvas.setMinimumHeight(int(110 * rows + 40))
        lowest = min(report.losses.values())
        for number, name in enumerate(names):
            result = report.calibrations[name]
            axes = self.figure.add_subplot(rows, columns, number + 1)
            parameter = _plotted_parameter(result)
            points = result.losses(parameter)
            xs = [_scalar(v) for v, _ in points]
            ys = [loss / lowest for _, loss in points]
            chosen = name == report.method
            axes.plot(xs, ys, "o-", ms=3, lw=1, color="tab:red" if chosen else "tab:blue")
            best = _scalar(result.best[parameter])
            axes.plot([best], [result.loss / lowest], "*", ms=9, color="tab:red" if chosen else "tab:orange")
            axes.set_title(f"{name}{' ✓' if chosen else ''}", fontsize=7)
            axes.set_xlabel(parameter, fontsize=6, labelpad=1)
            axes.tick_params(labelsize=5, pad=1)
        self.figure.supylabel("loss / lowest", fontsize=6)
        self.canvas.draw_idle()


def _plotted_parameter(result) -> str:
    """The parameter with the most distinct candidates (the others: best loss over them)."""
    names = list(result.trials[0].parameters)
    return max(names, key=lambda n: len({repr(t.parameters[n]) for t in result.trials}))


def _scalar(value) -> float:
    try:
        return float(value)
    except TypeError:
        return float(max(value))


class AutoDenoiseWidget(Container):
    """Dock widget: fit the noise, calibrate each method, add the best result.

    Scripts choose ``widget.image.value`` and ``widget.methods.value`` and call
    ``widget()`` (returns the worker, or None when the input was refused).
    """

    def __init__(self, napari_viewer=None):
        super().__init__(labels=True)
        self._viewer = napari_viewer
        self._alive = True
        self._last_error = None
        self.report = None
        self._runs = _BackgroundRun(self._set_busy)
        self._results = ResultLayers(napari_viewer)
        self.image = ComboBox(name="image", label="image", choices=self._image_choices, nullable=True)
        self.image.tooltip = "Image layer to denoise (never modified)."
        self.methods = Select(name="methods", label="methods", choices=_METHOD_CHOICES, value=list(DEFAULT_METHODS))
        self.methods.tooltip = (
            "Denoisers to calibrate and compare (each costs up to 10 runs on a crop of about 65 000 "
            "voxels in 2-D, 260 000 in 3-D). Block matching and non-local means are the slowest."
        )
        self.methods.native.setMaximumHeight(110)
        self.process_as = ComboBox(name="process_as", label="process as", choices=[VOLUME, PLANES], value=VOLUME)
        self.process_as.tooltip = "For a layer with three spatial axes: denoise the volume or each 2D plane."
        self.noise = Label(name="noise", label="noise", value="")
        self.chosen = Label(name="chosen", label="chosen", value="")
        for label in (self.noise, self.chosen):
            label.native.setWordWrap(True)
        self._run_button = PushButton(name="run_button", text="Run")
        self._cancel_button = PushButton(name="cancel_button", text="Cancel", enabled=False)
        self.extend([self.image, self.methods, self.process_as, self._run_button, self._cancel_button,
                     self.noise, self.chosen])
        self.plot = LossPlot()
        self.native.layout().addWidget(self.plot.canvas)
        self.plot.canvas.setVisible(False)
        self._run_button.changed.connect(self.run)
        self._cancel_button.changed.connect(self.cancel)
        self.image.changed.connect(self._refresh)
        self._events = []
        if napari_viewer is not None:
            self._events = [
                (napari_viewer.layers.events.inserted, self.reset_choices),
                (napari_viewer.layers.events.removed, self.reset_choices),
            ]
            for emitter, callback in self._events:
                emitter.connect(callback)
        self.native.destroyed.connect(on_destroyed(self, self._runs, self._events))
        self.reset_choices()

    def _image_choices(self, *_):
        if self._viewer is None:
            return []
        return [(l.name, l) for l in self._viewer.layers if isinstance(l, Image) and PREVIEW_KEY not in l.metadata]

    def reset_choices(self, *_):
        if not self._alive:
            return
        previous = self.image.value
        self.image.reset_choices()
        if previous is None and self._viewer is not None:
            active = self._viewer.layers.selection.active
            if isinstance(active, Image) and active in [v for _, v in self._image_choices()]:
                self.image.value = active
        self._refresh()

    def _refresh(self, *_):
        layer = self.image.value
        if layer is None:
            return
        with contextlib.suppress(ValueError):
            self.process_as.visible = axes_of_layer(layer).can_choose_volume

    @property
    def running(self) -> bool:
        return self._runs.running

    @property
    def last_error(self) -> str | None:
        return self._last_error

    def __call__(self, *args, **kwargs):
        return self.run()

    def run(self, *_):
        """Start in the background; returns the worker or None."""
        title = "Auto denoise"
        if self.running:
            show_info(f"{title}: a run is already going; cancel it first")
            return None
        try:
            layer = self.image.value
            if layer is None:
                raise ValueError("image: choose an Image layer (none is selected)")
            if layer.multiscale:
                raise ValueError(f"image: {layer.name!r} is multiscale; denoise its full-resolution level")
            axes = axes_of_layer(layer, volume=self.process_as.value == VOLUME)
            methods = tuple(self.methods.value)
            if not methods:
                raise ValueError("methods: choose at least one denoiser")
            data = as_image(layer.data)
        except (ValueError, TypeError) as exc:
            self._last_error = str(exc)
            show_error(f"{title}: {exc}")
            return None

        def make_steps(token):
            return auto_denoise_steps(
                data, spacing=axes.spacing, spatial_axes=axes.spatial_axes, methods=methods, token=token
            )

        def on_outcome(outcome):
            if not self._alive:
                return
            if outcome.error is not None:
                self._last_error = str(outcome.error)
                show_error(f"{title} failed: {outcome.error}")
            elif outcome.cancelled:
                show_info(f"{title}: cancelled, nothing was added")
            else:
                self._add_result(layer, axes, *outcome.value)

        self.noise.value = "fitting the noise model and calibrating…"
        self.chosen.value = ""
        return self._runs.start(make_steps, description=f"{title}: {layer.name}", on_outcome=on_outcome)

    def _add_result(self, layer, axes, result, report):
        self.report = report
        spec = by_name(report.method)
        values = {p.name: p.default for p in widget_parameters(spec)}
        values.update(report.parameters)
        kwargs = call_arguments(spec, axes, values)
        metadata = {
            METADATA_KEY: recipe(spec, layer.name, axes, values, kwargs),
            AUTO_METADATA_KEY: report.as_dict(),
        }
        self.noise.value = describe_noise_model(report.noise_model)
        settings = ", ".join(f"{k} {format_value(v)}" for k, v in report.parameters.items() if k != "noise_model")
        self.chosen.value = f"{spec.display_name} ({settings}), lowest loss; {report.seconds:.0f} s"
        self.plot.show(report)
        self.plot.canvas.setVisible(True)
        if self._viewer is None:
            return
        if is_lazy(result):
            limits = list(layer.contrast_limits)
        else:
            limits = contrast_limits(result)
        self._results.place(
            layer, result, name=f"{layer.name} auto ({spec.display_name})", limits=limits, metadata=metadata,
            replace_previous=False,
        )

    def cancel(self, *_):
        """Stop the run: nothing is added."""
        self._runs.cancel()

    def _set_busy(self, busy: bool) -> None:
        if not self._alive:
            return
        self._run_button.enabled = not busy
        self._run_button.text = "Running…" if busy else "Run"
        self._cancel_button.enabled = busy


# -- the Calibrate button of the denoiser widgets ----------------------------------------------
class CalibrateButton:
    """A FilterWidget's Calibrate button: calibrates its parameters on the chosen layer, fills the fields.

    The parameters calibrated are those of :data:`~napari_denoise.calibration.DEFAULT_GRIDS`;
    every other field (and ``noise_model``) is held at its current value.
    """

    def __init__(self, widget):
        self.widget = widget
        self.result = None
        self.button = PushButton(name="calibrate_button", text="Calibrate")
        names = ", ".join(DEFAULT_GRIDS[widget.spec.name](_any_crop()).keys())
        self.button.tooltip = (
            f"Choose {names} from the image itself (self-supervised, on a crop; a few runs of the filter) "
            "and fill the fields with them."
        )
        self._runs = _BackgroundRun(self._set_busy)
        self.button.changed.connect(self.run)

    @property
    def running(self) -> bool:
        return self._runs.running

    def run(self, *_):
        widget, title = self.widget, f"{self.widget.spec.display_name}: Calibrate"
        if self.running or widget.running:
            show_info(f"{title}: a run is already going")
            return None
        try:
            layer, axes, values, kwargs, _ = widget._job()
        except (ValueError, TypeError, MemoryError) as exc:
            show_error(f"{title}: {exc}")
            return None
        spec = widget.spec
        grid_names = set(DEFAULT_GRIDS[spec.name](_any_crop()))
        fixed = {k: v for k, v in values.items() if k not in grid_names}
        data = as_image(layer.data)
        spacing = kwargs.get("spacing")

        def make_steps(token):
            return calibration_steps(
                spec.function, data, spacing=spacing, spatial_axes=axes.spatial_axes, fixed=fixed, token=token
            )

        def on_outcome(outcome):
            if not getattr(widget, "_alive", True):
                return  # the widget was closed meanwhile: no fields to fill
            if outcome.error is not None:
                show_error(f"{title} failed: {outcome.error}")
            elif outcome.cancelled:
                show_info(f"{title}: cancelled, the fields are unchanged")
            else:
                self.fill(outcome.value)

        return self._runs.start(make_steps, description=f"{title}: {layer.name}", on_outcome=on_outcome)

    def fill(self, result) -> None:
        """Write the calibrated values into the widget's fields."""
        self.result = result
        for name, value in result.best.items():
            control = getattr(self.widget, name, None)
            if control is None:
                continue
            control.value = _field_text(value) if isinstance(control.value, str) else value


    def cancel(self, *_):
        self._runs.cancel()

    def _set_busy(self, busy: bool) -> None:
        with contextlib.suppress(RuntimeError):
            self.button.text = "Calibrating…" if busy else "Calibrate"
            self.button.enabled = not busy


def _field_text(value) -> str:
    """A value as field text, to 6 significant digits (the fields' own format keeps 4)."""
    if isinstance(value, (tuple, list)):
        return ", ".join(_field_text(v) for v in value)
    return f"{float(value):.6g}"


def _any_crop():
    from .calibration import CropInfo

    return CropInfo(noise=1.0, ndim=2)


def attach_calibrate_button(widget, row) -> CalibrateButton | None:
    """Put a Calibrate button before the Run button in ``row``, the container of
    ``widget``'s buttons (denoisers with default candidates only)."""
    if widget.spec.name not in DEFAULT_GRIDS:
        return None
    calibrator = CalibrateButton(widget)
    names = [w.name for w in row]
    row.insert(names.index("run_button"), calibrator.button)
    # Closing the widget stops a calibration in flight (the token holds no widget).
    token_of = calibrator._runs
    widget.native.destroyed.connect(lambda *_: token_of.cancel())
    return calibrator
