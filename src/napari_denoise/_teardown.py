"""What a dock widget stops when its Qt widget is destroyed (dock or viewer closed).

Qt-free: the callback only marks the widget dead, stops its background
controllers and disconnects the viewer events it listens to. Shared by the
filter widgets (which also have a preview) and the Auto denoise dock.
"""

from __future__ import annotations

import contextlib
import weakref

__all__ = ["on_destroyed"]


def on_destroyed(widget, runs, viewer_events, previewer=None):
    """Callback for ``widget.native.destroyed``.

    Holds no reference to the widget itself (a weak one): sets its
    ``_alive`` to False so that no callback touches the deleted Qt widgets,
    calls ``runs.shutdown()`` (cancels a run), ``previewer.shutdown()`` when
    there is a previewer (drops the preview layer), and disconnects each
    ``(emitter, handler)`` of ``viewer_events``.
    """
    widget_ref = weakref.ref(widget)

    def callback(*_):
        alive = widget_ref()
        if alive is not None:
            alive._alive = False
        # When the widget dies inside a garbage-collection pass, Python may
        # already have cleared the controllers' attributes (tp_clear) before
        # Qt emits ``destroyed``: there is nothing left to stop then.
        with contextlib.suppress(AttributeError, RuntimeError):
            runs.shutdown()
        if previewer is not None:
            with contextlib.suppress(AttributeError, RuntimeError):
                previewer.shutdown()
        for emitter, handler in viewer_events:
            with contextlib.suppress(Exception):
                emitter.disconnect(handler)

    return callback
