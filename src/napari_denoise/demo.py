"""Open napari with the plugin: the noisy 3D nuclei sample and a widget docked.

``python -m napari_denoise.demo`` opens the viewer; with ``--screenshot PATH``
(what ``.ci/demo`` does on a machine without a display) it also runs the
Gaussian widget once, saves a screenshot of the whole window and exits.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--screenshot", type=Path, help="save a window screenshot here and exit")
    parser.add_argument("--widget", default="Gaussian", help="display name of the widget to dock")
    parser.add_argument("--sigma", type=float, default=0.5, help="sigma in µm for the screenshot run")
    args = parser.parse_args(argv)

    import napari
    from qtpy.QtCore import QThread
    from qtpy.QtWidgets import QApplication

    viewer = napari.Viewer(title="napari-denoise demo")
    viewer.window.resize(1400, 820)  # a roomier window for the screenshot
    viewer.open_sample("napari-denoise", "nuclei_3d")
    source = viewer.layers[-1]
    _, widget = viewer.window.add_plugin_dock_widget("napari-denoise", args.widget)
    widget.image.value = source
    viewer.dims.set_point(0, source.data.shape[0] // 2 * source.scale[0])
    if args.screenshot is None:
        napari.run()
        return 0

    if hasattr(widget, "sigma"):
        widget.sigma.value = args.sigma
    worker = widget()
    if worker is None:
        print(f"napari-denoise demo: the run was refused: {widget.last_error}")
    app = QApplication.instance()
    while worker is not None and widget.running:
        app.processEvents()
        QThread.msleep(20)
    for _ in range(20):
        app.processEvents()
    # Side by side: the noisy source on the left, the result on the right.
    _grid(viewer).enabled = True
    viewer.reset_view()
    for _ in range(20):
        app.processEvents()
    path = args.screenshot.resolve()
    viewer.screenshot(str(path), canvas_only=False)
    print(f"napari-denoise demo: {len(viewer.layers)} layers "
          f"({', '.join(layer.name for layer in viewer.layers)}); screenshot saved to {path}")
    viewer.close()
    return 0


def _grid(viewer):
    """The viewer's grid settings: ``viewer.canvas.grid`` since napari 0.9, ``viewer.grid`` before."""
    canvas = getattr(viewer, "canvas", None)
    return canvas.grid if canvas is not None and hasattr(canvas, "grid") else viewer.grid


if __name__ == "__main__":
    sys.exit(main())
