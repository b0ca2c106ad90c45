"""The numerics import and run without Qt, napari or a display."""

import subprocess
import sys
import textwrap


def test_import_does_not_pull_in_qt_or_napari():
    code = textwrap.dedent(
        """
        import sys
        import numpy as np
        import napari_denoise
        out = napari_denoise.gaussian(np.ones((4, 5, 6), np.uint16), 1.0)
        assert out.dtype == np.float32
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in {"qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "napari", "magicgui", "vispy"})
        print(heavy)
        assert not heavy, heavy
        """
    )
    env = {"QT_QPA_PLATFORM": "", "DISPLAY": "", "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr + result.stdout
