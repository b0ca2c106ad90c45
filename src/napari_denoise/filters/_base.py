"""What every filter function shares: argument set-up and the public wrapper.

Each filter is written once, as a *builder* ``name(image, ...) -> FilterOp``
that checks its arguments and describes the call (see
:mod:`napari_denoise._filter_op`). :func:`filter_function` turns the builder
into the public function of the same name, signature and docstring that runs
the op through the scheduler, and keeps the builder as ``function.op`` for
the widgets and batch runs, which drive the scheduler themselves (progress,
cancellation).

``@filter_function(noise_model=True)`` also gives the filter the
``noise_model=`` parameter of the denoisers made for Gaussian noise: the op
is then run on the variance-stabilised image
(:func:`napari_denoise.filters.stabilise.stabilised`), with no change to the
builder.
"""

from __future__ import annotations

import functools
import inspect
from typing import Literal

import numpy as np

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
    "polled_library_kernel",
]

BorderMode = Literal["reflect", "nearest", "mirror", "constant", "wrap"]

_RUN_PARAMETERS = [
    inspect.Parameter("workers", inspect.Parameter.KEYWORD_ONLY, default=None),
    inspect.Parameter("progress", inspect.Parameter.KEYWORD_ONLY, default=None),
    inspect.Parameter("cancel", inspect.Parameter.KEYWORD_ONLY, default=None),
]


#: ``noise_model`` of the denoisers that take it, when not given.
DEFAULT_NOISE_MODEL = "auto"


def filter_function(builder=None, *, noise_model: bool = False):
    """Make the public filter function from its builder (docstring filled, run parameters added).

    With ``noise_model=True`` (as ``@filter_function(noise_model=True)``) the
    function and its ``op`` also take ``noise_model`` ("gaussian", "poisson",
    "auto" or a :class:`~napari_denoise.NoiseModel`), documented and in the
    signature after the builder's own parameters.
    """
    if builder is None:
        return functools.partial(filter_function, noise_model=noise_model)
    fill_doc(builder)
    if noise_model:
        builder = _with_noise_model(builder)

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
    function.__doc__ = _insert_parameter_doc(function.__doc__, PARAMETER_DOCS["run_parameters"])

    @functools.wraps(builder)
    def op(image, *args, **kwargs) -> FilterOp:
        return builder(as_image(image), *args, **kwargs)

    function.op = op
    return function


def _with_noise_model(builder):
    """The builder with a ``noise_model`` keyword that wraps its op in variance stabilisation."""
    from .stabilise import NoiseModelChoice, stabilised

    @functools.wraps(builder)
    def stabilising_builder(image, *args, noise_model=DEFAULT_NOISE_MODEL, **kwargs):
        return stabilised(builder(image, *args, **kwargs), noise_model)

    signature = inspect.signature(builder)
    parameter = inspect.Parameter(
        "noise_model", inspect.Parameter.KEYWORD_ONLY, default=DEFAULT_NOISE_MODEL, annotation=NoiseModelChoice
    )
    stabilising_builder.__signature__ = signature.replace(parameters=[*signature.parameters.values(), parameter])
    stabilising_builder.__annotations__ = {**builder.__annotations__, "noise_model": NoiseModelChoice}
    entry = PARAMETER_DOCS["noise_model"].replace("{default}", repr(DEFAULT_NOISE_MODEL))
    stabilising_builder.__doc__ = _insert_parameter_doc(builder.__doc__, entry)
    return stabilising_builder


def _insert_parameter_doc(doc: str | None, text: str) -> str | None:
    """``doc`` with the parameter entries ``text`` appended to its Parameters section."""
    if not doc or "    Returns\n" not in doc:
        return doc
    head, tail = doc.split("    Returns\n", 1)
    entry = "\n".join("    " + line for line in text.splitlines())
    return head.rstrip() + "\n" + entry + "\n\n    Returns\n" + tail


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


def polled_library_kernel(function, params) -> functools.partial:
    """A kernel calling ``function(block, **params, flag=token.flag)`` on the whole block.

    For library routines that poll the run's cancel flag themselves (chains
    of ``ndimage.correlate1d`` passes, each cut into pieces across the other
    axes: :func:`~napari_denoise.filters.smoothing.correlate_ndimage`). Unlike
    :func:`library_kernel`'s pieces, which each read the routine's reach
    around them again, they do no extra work, however far the reach (a
    σ = 40 Gaussian with mode 'wrap' cut into pieces read 300x its voxels).
    The block is given as float32; the kept part of the result is returned.
    """
    return functools.partial(_polled_library_call, function=function, params=params)


def _polled_library_call(block, keep, out, context, token, *, function, params):
    flag = None if token is None else token.flag
    result = function(np.asarray(block, dtype=np.float32), **params, flag=flag)
    result = np.reshape(result, np.shape(block))[tuple(keep)]
    if out is None:
        return result
    out[...] = result
    return out


def last_two(axes: tuple[int, ...]) -> tuple[int, ...]:
    """Spatial axes a 2-D-only method works across: the last two."""
    return axes[-2:]
