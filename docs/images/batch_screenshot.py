"""Make docs/images/napari-denoise-batch.png: the "Apply recipe to files" dock after a run.

Run under a display (or ``xvfb-run -a -s "-screen 0 1600x1000x24"``) from the
repository root: ``python docs/images/batch_screenshot.py [PATH]``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import tifffile


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    target = Path(argv[0] if argv else "docs/images/napari-denoise-batch.png").resolve()
    import napari
    from qtpy.QtCore import QThread
    from qtpy.QtWidgets import QApplication

    app_wait = QApplication.instance

    def settle(widget=None, rounds=20):
        app = app_wait()
        while widget is not None and widget.running:
            app.processEvents()
            QThread.msleep(20)
        for _ in range(rounds):
            app.processEvents()

    work = Path(tempfile.mkdtemp(prefix="napari-denoise-batch-"))
    viewer = napari.Viewer(title="napari-denoise: apply a recipe to files")
    viewer.window.resize(1500, 900)
    viewer.open_sample("napari-denoise", "nuclei_3d")
    source = viewer.layers[-1]
    # the other stacks of the "experiment": the same nuclei with fresh noise
    (work / "experiment").mkdir()
    rng = np.random.default_rng(1)
    clean = np.asarray(source.data, np.float32)
    for i in range(6):
        noisy = np.clip(clean + rng.normal(0, 6 + i, clean.shape), 0, 65535).astype(np.uint16)
        tifffile.imwrite(work / "experiment" / f"embryo_{i + 1:02d}.ome.tif", noisy, metadata={
            "axes": "ZYX", "PhysicalSizeZ": float(source.scale[0]), "PhysicalSizeY": float(source.scale[1]),
            "PhysicalSizeX": float(source.scale[2])})
    _, gaussian = viewer.window.add_plugin_dock_widget("napari-denoise", "Gaussian")
    gaussian.image.value = source
    gaussian.sigma.value = "0.5"
    gaussian()
    settle(gaussian)
    viewer.window.remove_dock_widget(gaussian.native) if hasattr(viewer.window, "remove_dock_widget") else None
    _, batch = viewer.window.add_plugin_dock_widget("napari-denoise", "Apply recipe to files")
    batch.input_folder.value = work / "experiment"
    batch.output_folder.value = work / "denoised"
    batch.run()
    settle(batch)
    batch.results.value = [batch.written[2]]
    batch.open_selected()
    viewer.layers.selection.active = viewer.layers[-1]
    for layer in viewer.layers[:-1]:
        layer.visible = layer is source
    canvas = getattr(viewer, "canvas", None)
    grid = canvas.grid if canvas is not None and hasattr(canvas, "grid") else viewer.grid
    grid.enabled = True
    viewer.dims.set_point(0, source.data.shape[0] // 2 * source.scale[0])
    viewer.reset_view()
    settle(rounds=40)
    viewer.screenshot(str(target), canvas_only=False)
    print(f"saved {target}; {batch.status.value}")
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
