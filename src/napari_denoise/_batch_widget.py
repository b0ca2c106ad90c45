"""The "Apply recipe to files" dock: replay a result layer's recipe on a folder of files.

Choose a recipe (a result layer made by a napari-denoise widget, or a recipe
file; **Save recipe…** writes a layer's recipe to JSON or YAML), input files
or a folder, an output folder and a format, then **Run**. The files are
processed one after the other on a napari thread worker by the Qt-free batch
runner (:mod:`napari_denoise._batch`), with a progress bar in the activity
dock that moves through each file (its text names the file) and a status
line; **Cancel** stops within a second and
leaves no partial output under a final name. Written results are listed and
can be opened in the viewer with their voxel size, axes and units.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, Label, LineEdit, PushButton, Select
from napari.qt.threading import GeneratorWorker
from napari.utils.notifications import show_error, show_info, show_warning

from ._batch import (
    FileDone,
    FileProgress,
    FileStarted,
    LocalEngine,
    check_output_folder,
    parse_axes,
    parse_spacing,
    plan,
    run_batch,
)
from ._io import open_image
from ._jobs import contrast_limits
from ._layer_axes import INDEPENDENT_LABELS
from ._recipe import METADATA_KEY
from ._run_controller import _RunProgress
from ._scheduler import CancelToken
from .recipes import RecipeError, input_labels, load_recipe, recipe_of, save_recipe

__all__ = ["BatchWidget", "open_result"]

TITLE = "Apply recipe to files"
BAR_STEPS = 1000


def open_result(viewer, path):
    """Add an output (or any input the batch reads) to ``viewer`` with its voxel size, axes and units."""
    image = open_image(path)
    data = image.lazy() if image.kind.endswith("zarr") else image.load()
    labels = input_labels(len(image.shape), image.axes)
    # contrast from the middle plane: a lazy result is never computed whole
    middle = tuple(n // 2 for n in image.shape[:-2])
    kwargs = {
        "name": Path(path).name.split(".")[0],
        "axis_labels": labels,
        "contrast_limits": contrast_limits(np.asarray(data[middle])),
    }
    if image.spacing is not None:
        kwargs["scale"] = image.spacing
        if image.unit:
            kwargs["units"] = tuple("pixel" if label in INDEPENDENT_LABELS else image.unit for label in labels)
    return viewer.add_image(data, **kwargs)


class BatchWidget(Container):
    """Dock widget: apply a recipe to files in the background, with progress and cancel.

    Scripts set ``recipe_layer`` or ``recipe_file``, ``input_files`` or
    ``input_folder``, ``output_folder`` and call :meth:`run` (returns the
    worker, or None when the settings were refused).
    """

    def __init__(self, napari_viewer=None):
        super().__init__(labels=True)
        self._viewer = napari_viewer
        self._worker = None
        # The run's token, in a holder that the destroyed-callback can reach
        # without keeping the widget alive.
        self._tokens = [CancelToken()]
        self._bar = None
        self._files_done = 0
        self._written: list[Path] = []
        self.last_summary = None
        self.last_error: str | None = None

        self._recipe_layer = ComboBox(name="recipe_layer", label="recipe layer", choices=self._result_layers,
                                      nullable=True)
        self._recipe_layer.tooltip = "A result layer made by a napari-denoise widget: its recipe is applied."
        self._save_button = PushButton(name="save_recipe_button", text="Save recipe…")
        self._save_button.tooltip = "Write the chosen layer's recipe to a JSON or YAML file (for napari-denoise apply)."
        self._recipe_file = FileEdit(name="recipe_file", label="or recipe file", mode="r",
                                     filter="Recipes (*.json *.yaml *.yml)", nullable=True)
        self._recipe_file.tooltip = "A recipe saved earlier (used when no layer is chosen above)."
        self._recipe_info = Label(name="recipe_info", value="")
        self._recipe_info.native.setWordWrap(True)  # long parameter lists must not widen the dock
        self._input_files = FileEdit(name="input_files", label="input files", mode="rm",
                                     filter="TIFF (*.tif *.tiff)", nullable=True)
        self._input_files.tooltip = "TIFF / OME-TIFF files (OME-Zarr stores: choose their folder below)."
        self._input_folder = FileEdit(name="input_folder", label="or input folder", mode="d", nullable=True)
        self._input_folder.tooltip = "Every .tif/.tiff file and .zarr store directly in this folder (or an OME-Zarr store)."
        self._output_folder = FileEdit(name="output_folder", label="output folder", mode="d", nullable=True)
        self._output_folder.tooltip = "Where the results go (one per input; finished ones are skipped on a re-run)."
        self._format = ComboBox(name="output_format", label="format", choices=[("OME-Zarr", "zarr"), ("TIFF", "tiff")],
                                value="zarr")
        self._format.tooltip = "OME-Zarr: float32 with scale and axes, streamed for large inputs. TIFF: written from memory."
        self._spacing = LineEdit(name="spacing", label="voxel size", value="")
        self._spacing.native.setPlaceholderText("from the files")
        self._spacing.tooltip = "Override the files' voxel size: one value per axis or per spatial axis (recipe's unit)."
        self._axes = LineEdit(name="axes", label="axes", value="")
        self._axes.native.setPlaceholderText("from the files")
        self._axes.tooltip = "Override the files' axis labels, e.g. TZYX or t,c,z,y,x."
        self._open_results = CheckBox(name="open_results", label="open results in the viewer", value=False)
        self._status = Label(name="status", value="")
        self._status.native.setWordWrap(True)
        self._run_button = PushButton(name="run_button", text="Run")
        self._cancel_button = PushButton(name="cancel_button", text="Cancel", enabled=False)
        self._results = Select(name="results", label="written", choices=self._result_choices)
        self._results.native.setMaximumHeight(140)
        self._open_button = PushButton(name="open_button", text="Open selected in viewer")
        self.extend([
            self._recipe_layer, self._save_button, self._recipe_file, self._recipe_info,
            self._input_files, self._input_folder, self._output_folder, self._format,
            self._spacing, self._axes, self._open_results,
            self._run_button, self._cancel_button, self._status, self._results, self._open_button,
        ])
        self._save_button.changed.connect(self._ask_and_save)
        self._run_button.changed.connect(self.run)
        self._cancel_button.changed.connect(self.cancel)
        self._open_button.changed.connect(self.open_selected)
        self._recipe_layer.changed.connect(self._refresh_recipe)
        self._recipe_file.changed.connect(self._refresh_recipe)
        if napari_viewer is not None:
            napari_viewer.layers.events.inserted.connect(self.reset_choices)
            napari_viewer.layers.events.removed.connect(self.reset_choices)
        tokens = self._tokens
        self.native.destroyed.connect(lambda *_: tokens[0].cancel())
        self.reset_choices()

    # -- choices ---------------------------------------------------------------------------------
    def _result_layers(self, *_):
        if self._viewer is None:
            return []
        return [(layer.name, layer) for layer in self._viewer.layers if METADATA_KEY in layer.metadata]

    def _result_choices(self, *_):
        return [(path.name, path) for path in self._written]

    def reset_choices(self, *_):
        previous = self._recipe_layer.value
        self._recipe_layer.reset_choices()
        if previous is None:
            layers = [layer for _, layer in self._result_layers()]
            if layers:
                self._recipe_layer.value = layers[-1]
        self._refresh_recipe()

    # -- the recipe ------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._worker is not None

    def recipe(self):
        """The recipe to apply (from the chosen layer, else the file); raises ``RecipeError``."""
        layer = self._recipe_layer.value
        if layer is not None:
            return recipe_of(layer)
        path = self._recipe_file.value
        if path is None or str(path) in ("", "."):
            raise RecipeError("recipe: choose a result layer or a recipe file")
        return load_recipe(path)

    def _refresh_recipe(self, *_):
        try:
            self._recipe_info.value = self.recipe().describe()
            self._save_button.enabled = self._recipe_layer.value is not None
        except (RecipeError, ValueError) as exc:
            self._recipe_info.value = f"⚠ {exc}"
            self._save_button.enabled = False

    def save_recipe(self, path) -> Path:
        """Write the chosen layer's recipe to ``path`` (.json, .yaml or .yml) and select that file."""
        layer = self._recipe_layer.value
        if layer is None:
            raise RecipeError("recipe from layer: choose the result layer whose recipe to save")
        saved = save_recipe(recipe_of(layer), path)
        self._recipe_file.value = saved
        return saved

    def _ask_and_save(self, *_):
        from qtpy.QtWidgets import QFileDialog

        layer = self._recipe_layer.value
        default = f"{layer.name}.json" if layer is not None else "recipe.json"
        path, _ = QFileDialog.getSaveFileName(self.native, "Save recipe", default,
                                              "JSON (*.json);;YAML (*.yaml *.yml)")
        if not path:
            return
        try:
            saved = self.save_recipe(path)
        except (RecipeError, OSError) as exc:
            show_error(f"{TITLE}: {exc}")
            return
        show_info(f"{TITLE}: recipe saved to {saved}")

    # -- running ---------------------------------------------------------------------------------
    def _inputs(self) -> list:
        inputs = []
        files = self._input_files.value
        if files:
            inputs.extend(p for p in (files if isinstance(files, tuple) else (files,)) if str(p) not in ("", "."))
        folder = self._input_folder.value
        if folder is not None and str(folder) not in ("", "."):
            inputs.append(folder)
        if not inputs:
            raise ValueError("input: choose input files or an input folder")
        return inputs

    def _plan(self):
        recipe = self.recipe()
        inputs = self._inputs()
        output = self._output_folder.value
        if output is None or str(output) in ("", "."):
            raise ValueError("output: choose an output folder")
        items = plan(inputs, output, self._format.value)
        if not items:
            raise ValueError("input: no TIFF files or Zarr stores among the inputs")
        check_output_folder(output)
        return recipe, items, parse_spacing(self._spacing.value), parse_axes(self._axes.value)

    def run(self, *_):
        """Start the batch in the background; returns the worker, or None when refused."""
        if self.running:
            show_info(f"{TITLE}: a run is already going; cancel it first")
            return None
        try:
            recipe, items, spacing, axes = self._plan()
        except (RecipeError, ValueError, FileNotFoundError) as exc:
            self.last_error = str(exc)
            self._status.value = f"⚠ {exc}"
            show_error(f"{TITLE}: {exc}")
            return None
        self.last_error = None
        self.last_summary = None
        self._tokens[0] = token = CancelToken()
        # One bar for the whole run, BAR_STEPS per file, moving within each file.
        # (napari's nested bars were seen to crash its activity dock on close.)
        self._bar = _RunProgress(total=BAR_STEPS * len(items), desc=TITLE, cancel_callback=self.cancel)
        self._files_done, self._n_files = 0, len(items)
        worker = GeneratorWorker(
            run_batch, recipe, items, spacing=spacing, axes=axes, fmt=self._format.value,
            engine=LocalEngine(), token=token,
        )
        worker.yielded.connect(self._on_event)
        worker.returned.connect(self._on_summary)
        worker.errored.connect(self._on_error)
        worker.aborted.connect(token.cancel)
        worker.finished.connect(self._on_finished)
        self._worker = worker
        self._set_busy(True)
        self._status.value = f"0 of {len(items)} files"
        worker.start()
        return worker

    def cancel(self, *_):
        """Stop the run: the file in progress is dropped (no partial output), the rest not started."""
        self._tokens[0].cancel()

    def _move_bar(self, fraction: float) -> None:
        bar = self._bar
        if bar is None:
            return
        position = int(BAR_STEPS * (self._files_done + min(1.0, fraction)))
        if position > bar.n:
            bar.update(position - bar.n)

    def _on_event(self, event):
        if isinstance(event, FileStarted):
            text = f"{event.index + 1} of {self._n_files}: {event.item.source.name} ({event.how})"
            self._status.value = text
            if self._bar is not None:
                self._bar.set_description(f"{TITLE}: {text}")
        elif isinstance(event, FileProgress):
            self._move_bar(event.done / event.total if event.total else 0.0)
        elif isinstance(event, FileDone):
            self._files_done += 1
            self._move_bar(0.0)
            if event.status == "written":
                self._written.append(event.item.output)
                self._results.reset_choices()
                if self._open_results.value and self._viewer is not None:
                    self._open(event.item.output)
            elif event.status == "failed":
                show_warning(f"{TITLE}: {event.item.source.name} failed: {event.message}")

    def _on_summary(self, summary):
        self.last_summary = summary
        self._status.value = summary.line()
        (show_warning if summary.failed else show_info)(f"{TITLE}: {summary.line()}")

    def _on_error(self, exc):
        self.last_error = str(exc)
        self._status.value = f"⚠ {exc}"
        show_error(f"{TITLE} failed: {exc}")

    def _on_finished(self):
        self._worker = None
        if self._bar is not None:
            self._bar.close()
        self._bar = None
        self._set_busy(False)

    def _set_busy(self, busy: bool):
        self._run_button.enabled = not busy
        self._run_button.text = "Running…" if busy else "Run"
        self._cancel_button.enabled = busy

    # -- results -----------------------------------------------------------------------------------
    @property
    def written(self) -> list[Path]:
        """Outputs written by this dock's runs, in order."""
        return list(self._written)

    def _open(self, path):
        try:
            return open_result(self._viewer, path)
        except (ValueError, OSError) as exc:
            show_error(f"{TITLE}: cannot open {path}: {exc}")
            return None

    def open_selected(self, *_):
        """Open the results selected in the list (all of them when none is) in the viewer."""
        chosen = list(self._results.value) or self.written
        return [layer for layer in (self._open(path) for path in chosen) if layer is not None]
