"""Make the README's screenshots of the widgets, from the real program.

* ``napari-denoise-panel.png``: the "Denoise & edges" panel on the noisy
  nuclei z-stack, non-local means chosen, its "auto" fields showing the values
  they will use, the live preview on and the estimated run time;
* ``napari-denoise-canny.png``: the Canny dock after a run, the edges as a
  Labels layer drawn over their source;
* ``napari-denoise-gaussian.png``: the Gaussian dock after a run, source and
  result side by side.

Run under a display (or ``xvfb-run -a -s "-screen 0 1600x1000x24"``) from the
repository root: ``python docs/images/widgets_screenshot.py [FOLDER]``.
"""

from __future__ import annotations

import sys
from pathlib import Path

PLUGIN = "napari-denoise"


def _settle(widget=None, rounds=30, until=None):
    from qtpy.QtCore import QThread
    from qtpy.QtWidgets import QApplication

    app = QApplication.instance()
    while (widget is not None and widget.running) or (until is not None and not until()):
        app.processEvents()
        QThread.msleep(20)
    for _ in range(rounds):
        app.processEvents()
        QThread.msleep(10)


def _viewer(title):
    import napari

    viewer = napari.Viewer(title=title)
    viewer.window.resize(1500, 900)
    viewer.open_sample(PLUGIN, "nuclei_3d")
    source = viewer.layers[-1]
    viewer.dims.set_point(0, source.data.shape[0] // 2 * source.scale[0])
    return viewer, source


def panel(target: Path) -> str:
    viewer, source = _viewer("napari-denoise: the Denoise & edges panel")
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Denoise & edges")
    widget.filter.value = "Non-local means"
    _settle(rounds=20, until=lambda: "≈" in widget.h.native.placeholderText())
    widget.preview.value = True
    _settle(until=lambda: widget.preview_layer is not None)
    viewer.reset_view()
    _settle(rounds=40)
    viewer.screenshot(str(target), canvas_only=False)
    text = f"{target.name}: {widget.info.value!r} / {widget.status.value!r}"
    viewer.close()
    return text


def canny(target: Path) -> str:
    viewer, source = _viewer("napari-denoise: Canny edges as a Labels layer")
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Canny")
    widget.sigma.value = "0.8"
    widget()
    _settle(widget)
    viewer.reset_view()
    viewer.camera.zoom *= 1.6
    _settle(rounds=40)
    viewer.screenshot(str(target), canvas_only=False)
    text = f"{target.name}: layers {[type(layer).__name__ + ' ' + layer.name for layer in viewer.layers]}"
    viewer.close()
    return text


def gaussian(target: Path) -> str:
    viewer, source = _viewer("napari-denoise: Gaussian")
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Gaussian")
    widget.sigma.value = "0.5"
    widget()
    _settle(widget)
    canvas = getattr(viewer, "canvas", None)
    grid = canvas.grid if canvas is not None and hasattr(canvas, "grid") else viewer.grid
    grid.enabled = True
    viewer.reset_view()
    _settle(rounds=40)
    viewer.screenshot(str(target), canvas_only=False)
    text = f"{target.name}: {widget.status.value!r}"
    viewer.close()
    return text


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    folder = Path(argv[0] if argv else "docs/images").resolve()
    for make, name in ((panel, "napari-denoise-panel.png"), (canny, "napari-denoise-canny.png"),
                       (gaussian, "napari-denoise-gaussian.png")):
        print("saved", make(folder / name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
