"""What every filter function shares: argument set-up and the public wrapper.

Each filter is written once, as a *planner* that checks its arguments and
returns a :class:`~napari_denoise._execution.Plan`. :func:`filter_function`
turns the planner into the public function (same name, signature and
docstring) that runs the plan, and keeps the planner as ``function.plan`` for
the widgets, which need progress and cancellation.
"""

from __future__ import annotations

import functools
import inspect
from typing import Literal

import numpy as np

from .._execution import Plan
from .._params import (
    BORDER_MODES,
    as_image,
    check_choice,
    resolve_spacing,
    resolve_spatial_axes,
)

BorderMode = Literal["reflect", "nearest", "mirror", "constant", "wrap"]

_RUN_PARAMETERS = [
    inspect.Parameter("workers", inspect.Parameter.KEYWORD_ONLY, default=None),
    inspect.Parameter("progress", inspect.Parameter.KEYWORD_ONLY, default=None),
    inspect.Parameter("cancel", inspect.Parameter.KEYWORD_ONLY, default=None),
]

_RUN_DOC = """
    workers : int, optional
        Threads for eager (numpy) input; default: every available core
        (``NAPARI_DENOISE_WORKERS`` overrides). Ignored for dask input.
    progress : callable, optional
        ``progress(done, total)``, called after each tile or slice.
    cancel : callable, optional
        Polled after each tile; when it returns True the run stops and
        :class:`napari_denoise.Cancelled` is raised.
"""


def filter_function(planner):
    """Make the public filter function from its planner."""

    @functools.wraps(planner)
    def function(*args, workers=None, progress=None, cancel=None, **kwargs):
        return planner(*args, **kwargs).run(workers=workers, progress=progress, cancel=cancel)

    signature = inspect.signature(planner)
    function.__signature__ = signature.replace(
        parameters=[*signature.parameters.values(), *_RUN_PARAMETERS],
        return_annotation="numpy.ndarray | dask.array.Array",
    )
    if function.__doc__ and "    Returns\n" in function.__doc__:
        head, tail = function.__doc__.split("    Returns\n", 1)
        function.__doc__ = head.rstrip() + "\n" + _RUN_DOC + "\n    Returns\n" + tail
    function.plan = planner
    return function


def setup(image, spatial_axes, spacing=None, *, min_axes: int = 1):
    """Validated ``(image, spatial_axes, spacing)`` for a planner."""
    image = as_image(image)
    axes = resolve_spatial_axes(image.ndim, spatial_axes, min_axes=min_axes)
    return image, axes, resolve_spacing(spacing, len(axes))


def check_mode(mode) -> str:
    return check_choice(mode, BORDER_MODES, "mode")


def halo_for(radius, mode):
    """Tiles need the whole axis when the border wraps around."""
    return None if mode == "wrap" else tuple(int(r) for r in radius)


def last_two(axes: tuple[int, ...]) -> tuple[int, ...]:
    """Spatial axes a 2-D-only method works across: the last two."""
    return axes[-2:]


__all__ = ["Plan", "filter_function", "setup", "check_mode", "halo_for", "BorderMode", "np"]
