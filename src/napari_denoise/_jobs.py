"""What runs on a widget's worker thread: one op driven by the scheduler.

Qt-free (napari's thread worker drives these generators), so the logic of
progress, cancellation and result statistics is testable without a viewer.
A job never raises: it returns a :class:`JobOutcome` (result, error or
cancelled), so the widget reports each outcome once, in its own words.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _scheduler
from ._params import is_lazy

__all__ = ["JobOutcome", "filter_job", "contrast_limits"]


def contrast_limits(array) -> list[float]:
    if array.dtype == np.bool_:
        return [0.0, 1.0]
    finite = array[np.isfinite(array)] if not np.isfinite(array).all() else array
    if finite.size == 0:
        return [0.0, 1.0]
    low, high = float(finite.min()), float(finite.max())
    return [low, high if high > low else low + 1.0]


@dataclass(frozen=True)
class JobOutcome:
    """How a job ended: ``result`` and ``limits``, or ``error``, or ``cancelled``."""

    result: Any = None
    limits: list | None = None
    error: BaseException | None = None
    cancelled: bool = False


def filter_job(op, data, token: _scheduler.CancelToken, source_limits):
    """Worker body: run ``op`` on ``data`` yielding ``(done, total)``; returns a :class:`JobOutcome`.

    A cancel through ``token`` is answered within 50 ms: tiles still in
    flight stop in the background (kernels poll the token) and are dropped.
    """
    try:
        result = yield from _scheduler.steps(op, data, token=token, wait_on_cancel=False)
    except _scheduler.Cancelled:
        return JobOutcome(cancelled=True)
    except Exception as exc:  # noqa: BLE001 - reported by the widget, once
        return JobOutcome(error=exc)
    if token.cancelled:
        return JobOutcome(cancelled=True)
    try:
        if is_lazy(result):
            # Never compute a lazy result whole: denoisers keep the source's
            # range, edge maps take theirs from one plane.
            if source_limits is not None:
                limits = list(source_limits)
            else:
                lead = tuple(n // 2 for n in result.shape[:-2])
                limits = contrast_limits(np.asarray(result[lead]))
        else:
            limits = contrast_limits(result)
    except Exception as exc:  # noqa: BLE001
        return JobOutcome(error=exc)
    return JobOutcome(result=result, limits=limits)
