"""What every filter function shares: argument set-up and the public wrapper.

Each filter is written once, as a *builder* ``name(image, ...) -> FilterOp``
that checks its arguments and describes the call (see
:mod:`napari_denoise._filter_op`). :func:`filter_function` turns the builder
into the public function of the same name, signature and docstring that runs
the op through the scheduler, and keeps the builder as ``function.op`` for
the widgets and batch runs, which drive the scheduler themselves (progress,
cancellation).
"""

from __future__ import annotations

import functools
import inspect
from typing import Literal

from .. import _scheduler
from .._filter_op import Cost, FilterOp, LibraryKernel
from .._params import BORDER_MODES, as_image, check_choice, resolve_spacing, resolve_spatial_axes
from ._parameter_docs import PARAMETER_DOCS, fill_doc

__all__ = [
    "BorderMode",
    "Cost",
    "FilterOp",
    "LibraryKernel",
    "filter_function",
    "setup",
    "check_mode",
    "halo_for",
    "last_two",
    "library_kernel",
]

BorderMode = Literal["reflect", "nearest", "mirror", "constant", "wrap"]

_RUN_PARAMETERS = [
    inspect.Parameter("workers", inspect.Parameter.KEYWORD_ONLY, default=None),
    inspect.Parameter("progress", inspect.Parameter.KEYWORD_ONLY, default=None),
    inspect.Parameter("cancel", inspect.Parameter.KEYWORD_ONLY, default=None),
]


def filter_function(builder):
    """Make the public filter function from its builder (docstring filled, run parameters added)."""
    fill_doc(builder)

    @functools.wraps(builder)
    def function(image, *args, workers=None, progress=None, cancel=None, **kwargs):
        image = as_image(image)
        op = builder(image, *args, **kwargs)
        return _scheduler.run(op, image, workers=workers, progress=progress, cancel=cancel)

    signature = inspect.signature(builder)
    function.__signature__ = signature.replace(
        parameters=[*signature.parameters.values(), *_RUN_PARAMETERS],
        return_annotation="numpy.ndarray | dask.array.Array",
    )
    doc = function.__doc__
    if doc and "    Returns\n" in doc:
        head, tail = doc.split("    Returns\n", 1)
        run_doc = "\n".join("    " + line for line in PARAMETER_DOCS["run_parameters"].splitlines())
        function.__doc__ = head.rstrip() + "\n" + run_doc + "\n\n    Returns\n" + tail
    @functools.wraps(builder)
    def op(image, *args, **kwargs) -> FilterOp:
        return builder(as_image(image), *args, **kwargs)

    function.op = op
    return function


def setup(image, spatial_axes, spacing=None, *, min_axes: int = 1):
    """Validated ``(spatial_axes, spacing)`` for a builder."""
    axes = resolve_spatial_axes(image.ndim, spatial_axes, min_axes=min_axes)
    return axes, resolve_spacing(spacing, len(axes))


def check_mode(mode) -> str:
    return check_choice(mode, BORDER_MODES, "mode")


def halo_for(radius, mode):
    """Tiles need the whole axis when the border wraps around."""
    return None if mode == "wrap" else tuple(int(r) for r in radius)


def library_kernel(function, params, reach, mode, cost: Cost, *, with_context: bool = False) -> LibraryKernel:
    """A :class:`LibraryKernel` for a routine of known ``reach`` under border ``mode``.

    It cuts blocks that would take longer than a tenth of a second (by
    ``cost.seconds``) into pieces, so that a cancel stops it; with mode
    'wrap' the op gets whole slices (``halo_for``) and pieces read across
    the slice's borders.
    """
    return LibraryKernel(
        function, params, with_context=with_context, reach=tuple(int(r) for r in reach),
        seconds=cost.seconds, periodic=mode == "wrap",
    )


def last_two(axes: tuple[int, ...]) -> tuple[int, ...]:
    """Spatial axes a 2-D-only method works across: the last two."""
    return axes[-2:]
