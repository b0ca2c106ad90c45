"""What runs on the worker thread: a plan driven tile by tile, cancellable.

Qt-free (napari's thread worker drives these generators), so the logic of
progress, cancellation and result statistics is testable without a viewer.
"""

from __future__ import annotations

import queue
import threading

import numpy as np

__all__ = ["FilterError", "filter_job", "contrast_limits"]


def contrast_limits(array) -> list[float]:
    if array.dtype == np.bool_:
        return [0.0, 1.0]
    finite = array[np.isfinite(array)] if not np.isfinite(array).all() else array
    if finite.size == 0:
        return [0.0, 1.0]
    low, high = float(finite.min()), float(finite.max())
    return [low, high if high > low else low + 1.0]


class FilterError(Exception):
    """A filter failed in the worker (wraps RuntimeErrors, see :func:`filter_job`)."""


def filter_job(plan, cancel_event, source_limits):
    """Worker body: run the plan tile by tile, yielding progress; None if cancelled.

    superqt's GeneratorWorker swallows a RuntimeError raised by the generator
    (it takes it for a deleted Qt object): neither ``errored`` nor ``finished``
    is emitted and the widget would stay busy forever. Such errors are re-raised
    as :class:`FilterError`.
    """
    try:
        return (yield from _filter_steps(plan, cancel_event, source_limits))
    except RuntimeError as exc:
        raise FilterError(f"{type(exc).__name__}: {exc}") from exc


_POLL_SECONDS = 0.05


def _feed(plan, cancel_event, inbox):
    """Run ``plan.iter()`` on its own thread, posting its steps to ``inbox``."""
    steps = plan.iter()
    try:
        while True:
            if cancel_event.is_set():
                steps.close()  # waits for the tiles in flight
                inbox.put(("cancelled", None))
                return
            try:
                step = next(steps)
            except StopIteration as stop:
                inbox.put(("done", stop.value))
                return
            inbox.put(("step", step))
    except BaseException as exc:  # noqa: BLE001 - handed to the worker
        inbox.put(("error", exc))


def _filter_steps(plan, cancel_event, source_limits):
    # The plan runs on a helper thread so that a cancel is answered within
    # _POLL_SECONDS even while a long tile is being computed; tiles already in
    # flight finish in the background and their result is dropped.
    inbox: queue.SimpleQueue = queue.SimpleQueue()
    feeder = threading.Thread(
        target=_feed, args=(plan, cancel_event, inbox), name="napari-denoise-run", daemon=True
    )
    feeder.start()
    try:
        while True:
            try:
                kind, value = inbox.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                if cancel_event.is_set():
                    plan.stop()
                    return None
                continue
            if kind == "step":
                if cancel_event.is_set():
                    plan.stop()
                    return None
                yield value
            elif kind == "error":
                raise value
            elif kind == "cancelled":
                return None
            else:
                result = value
                break
    except GeneratorExit:
        # The worker was quit (e.g. napari closing): stop the helper thread too.
        cancel_event.set()
        plan.stop()
        raise
    if cancel_event.is_set():
        return None
    if plan.lazy:
        # Never compute a lazy result whole: denoisers keep the source's range,
        # edge maps take theirs from one plane.
        if source_limits is not None:
            limits = list(source_limits)
        else:
            lead = tuple(n // 2 for n in result.shape[:-2])
            limits = contrast_limits(np.asarray(result[lead]))
    else:
        limits = contrast_limits(result)
    return result, limits


