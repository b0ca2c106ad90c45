"""Shared helpers for the GUI tests (tests/test_widget*.py).

Kept light on purpose: nothing here is autouse and nothing imports Qt or napari
at module level, so the numeric tests in other files are not affected.
"""

from __future__ import annotations

import numpy as np
import pytest

PLUGIN = "napari-denoise"
ANISO_SCALE = (0.29, 0.26, 0.26)


@pytest.fixture
def viewer(make_napari_viewer):
    """A napari viewer (cleaned up by napari's own fixture)."""
    return make_napari_viewer()


@pytest.fixture
def dock(viewer, qtbot):
    """``dock(display_name)`` -> the docked widget (through the plugin manifest)."""

    def _dock(display_name):
        _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, display_name)
        qtbot.wait(10)
        return widget

    return _dock


@pytest.fixture
def notifications(monkeypatch):
    """List of ``(severity, message)`` of every napari notification shown."""
    from napari.utils.notifications import notification_manager

    seen = []

    def _record(notification):
        seen.append((str(notification.severity), str(notification.message)))

    notification_manager.notification_ready.connect(_record)
    yield seen
    notification_manager.notification_ready.disconnect(_record)


def wait_done(qtbot, widget, timeout=60_000):
    """Wait until the widget's background run (if any) has finished."""
    qtbot.waitUntil(lambda: not widget.running, timeout=timeout)
    qtbot.wait(10)


def noisy_stack(shape=(12, 40, 40), seed=0, dtype=np.uint16):
    """Smooth blobs plus Poisson noise, small enough for NLM/TV/bilateral."""
    rng = np.random.default_rng(seed)
    grid = np.indices(shape, dtype=np.float32)
    centre = np.array(shape, dtype=np.float32)[:, None, None, None][: len(shape)] / 2
    centre = centre.reshape((len(shape),) + (1,) * len(shape))
    r2 = ((grid - centre) ** 2 / (np.array(shape).reshape(centre.shape) / 3) ** 2).sum(0)
    clean = 40 + 160 * np.exp(-r2)
    return rng.poisson(clean).astype(dtype)


def docked_names(viewer):
    """Names of the viewer's docked widgets (public ``dock_widgets`` from napari 0.9 on;
    older versions keep the mapping in a private attribute, read here by tests only)."""
    window = viewer.window
    for attribute in ("dock_widgets", "_wrapped_dock_widgets", "_dock_widgets"):
        mapping = getattr(window, attribute, None)
        if mapping is not None:
            return set(mapping)
    raise AttributeError("this napari's Window lists no docked widgets")
