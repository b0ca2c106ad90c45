"""What one filter call is: a :class:`FilterOp`, the description the scheduler runs.

Every public filter is written as a *builder*: it checks its arguments
against the image and returns a FilterOp, a small immutable object holding

* ``kernel`` — the function that filters one tile, always with the signature
  ``kernel(block, keep, out, context, token) -> array`` (see :data:`Kernel`);
* ``halo`` — how far the kernel reads beyond the tile along each spatial axis;
* ``out_dtype``, ``cost`` (time and memory per voxel) and ``params`` (the
  resolved parameters, in voxels, for recipes and messages).

It knows nothing of the image's size, threads, dask or progress: the
scheduler (:mod:`napari_denoise._scheduler`) turns a FilterOp and an array
into work. Kernels are module-level functions with their parameters bound by
:func:`functools.partial`, so a FilterOp pickles (dask.distributed workers).

scipy.ndimage and scikit-image routines become kernels through one adapter,
:class:`LibraryKernel`: it filters the whole block (halo included) in float32
and keeps the wanted part.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["FilterOp", "Cost", "LibraryKernel", "Kernel"]

#: ``kernel(block, keep, out, context, token) -> numpy.ndarray``
#:
#: block
#:     The tile and its halo: a C-contiguous array whose axes are exactly the
#:     op's spatial axes, in the input's own dtype when every value of it is
#:     exact in float32 (bool, (u)int8, (u)int16, float32), else float32.
#: keep
#:     Tuple of slices of ``block``: the part whose result is wanted (the rest
#:     is halo, to be read, not filtered).
#: out
#:     An array of ``block[keep]``'s shape and the op's ``out_dtype`` to write
#:     the result into (a view of the output), or None.
#: context
#:     What the op's ``context`` function computed on the whole slice (e.g. an
#:     estimated noise level), or None.
#: token
#:     A :class:`~napari_denoise._scheduler.TileToken`: kernels that run long
#:     poll ``token.flag[0]`` (non-zero: stop, the result is dropped) and may
#:     report their progress through the tile in ``token.ticks`` (``[done,
#:     total]``, int64) or ``token.report(done, total)``.
#:
#: Returns the result for ``block[keep]``: ``out`` itself when it wrote there.
Kernel = Callable[[np.ndarray, tuple, "np.ndarray | None", Any, Any], np.ndarray]


@dataclass(frozen=True)
class Cost:
    """What filtering one voxel costs, used to cut tiles and to check memory.

    Attributes
    ----------
    seconds : float
        Time per voxel on one core (sets the tile size, so that a tile takes
        about a quarter of a second, and predicts the run time).
    work_arrays : float
        Float32 arrays of the tile's size that the kernel holds at once
        besides the output (temporaries, copies, padded buffers).
    over_halo : bool
        The kernel computes over its whole block, halo included (scipy and
        scikit-image routines, patch-based methods), so its time and memory
        scale with the tile *plus* halo; else only with the kept tile.
    """

    seconds: float
    work_arrays: float = 4.0
    over_halo: bool = False

    @classmethod
    def library(cls, seconds: float, work_arrays: float = 6.0) -> "Cost":
        """Cost of a scipy/scikit-image routine behind :class:`LibraryKernel`."""
        return cls(seconds, work_arrays, over_halo=True)


@dataclass(frozen=True)
class FilterOp:
    """One filter call, ready to run on an image of the shape it was built for.

    Attributes
    ----------
    name : str
        Public function name of the filter (recorded in recipes and messages).
    kernel : Kernel
        Filters one tile; see :data:`Kernel` for its one signature.
    spatial_axes : tuple of int
        Image axes the kernel works across, ascending; every other axis (time,
        channel) is independent: one slice at a time.
    halo : tuple of int or None
        Voxels the kernel reads beyond a tile along each spatial axis; None
        means it needs the whole slice (global methods: TV, wavelets).
    cost : Cost
        Time and memory per voxel.
    params : mapping
        Resolved parameters (lengths in voxels) for recipes and progress text.
    out_dtype : numpy dtype
        float32 for every filter but Canny (bool).
    context : callable or None
        ``context(slice) -> value`` computed once per independent slice on the
        whole slice (e.g. its noise level) and handed to every tile of it.
    """

    name: str
    kernel: Kernel
    spatial_axes: tuple[int, ...]
    halo: tuple[int, ...] | None
    cost: Cost
    params: Mapping[str, Any] = field(default_factory=dict)
    out_dtype: Any = np.float32
    context: Callable[[np.ndarray], Any] | None = None

    @property
    def needs_whole_slices(self) -> bool:
        """Lazy input must hold whole slices per chunk (global method or per-slice context)."""
        return self.halo is None or self.context is not None


@dataclass(frozen=True)
class LibraryKernel:
    """Adapter: a scipy.ndimage / scikit-image routine as a :data:`Kernel`.

    ``function(block, **params)`` (or ``function(block, context, **params)``
    with ``with_context``) gets the whole block, halo included, as float32
    and returns an array of its shape (size-1 axes may be dropped); the
    adapter keeps the wanted part and writes it into ``out``. Such routines
    cannot be stopped mid-call: the scheduler keeps their tiles short instead.
    """

    function: Callable[..., np.ndarray]
    params: Mapping[str, Any] = field(default_factory=dict)
    with_context: bool = False

    def __call__(self, block, keep, out, context, token):
        block = np.asarray(block, dtype=np.float32)
        if self.with_context:
            result = self.function(block, context, **self.params)
        else:
            result = self.function(block, **self.params)
        result = np.reshape(result, block.shape)[keep]
        if out is None:
            return result
        out[...] = result
        return out
