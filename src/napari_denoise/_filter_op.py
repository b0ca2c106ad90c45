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
and keeps the wanted part. Such a routine cannot be stopped mid-call, so a
LibraryKernel that knows its ``reach`` and time per voxel cuts a block that
would take longer than :data:`PIECE_SECONDS` into pieces (each with its
reach around it) and checks the run's cancel flag between them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

__all__ = ["FilterOp", "Cost", "LibraryKernel", "Kernel", "PIECE_SECONDS", "VALUE_AND_SLOPE"]

#: A library call that cannot be interrupted should take about this long at
#: most, so that a cancel is answered well within a second.
PIECE_SECONDS = 0.1

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

#: ``out_dtype`` of :meth:`FilterOp.with_slope`: each output voxel's value and
#: its derivative by its own input voxel, side by side.
VALUE_AND_SLOPE = np.dtype([("value", np.float32), ("slope", np.float32)])


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


class SeparableDiagonal:
    """The diagonal of a separable filter's matrix: the outer product of one vector per axis.

    Array-like (``np.asarray`` gives the full product, multiplied axis by
    axis in order); ``factors`` lets a reader (calibration's SURE) use the
    product without writing it out.
    """

    def __init__(self, factors):
        self.factors = tuple(np.asarray(f, np.float64).reshape(-1) for f in factors)
        self.shape = tuple(f.size for f in self.factors)

    def __array__(self, dtype=None, copy=None):
        product = np.ones((1,) * len(self.factors))
        for axis, factor in enumerate(self.factors):  # (one factor per axis: the product has the full shape)
            product = product * factor.reshape([-1 if a == axis else 1 for a in range(len(self.factors))])
        return product if dtype is None else product.astype(dtype)


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
    diagonal : callable or None
        Linear filters only: ``diagonal(shape) -> array`` of that shape (the
        spatial axes of one slice), the derivative of each output voxel by
        its own input voxel (the diagonal of the filter's matrix, border
        mode included), or a :class:`SeparableDiagonal` (array-like) for a
        separable filter. Calibration's SURE reads it instead of probing
        the filter with a second call.
    selection : bool
        Rank filters (the median): every output value is one of its
        window's input values, so its derivative by its own input voxel is
        1 where it equals that voxel's value and 0 elsewhere (inputs without
        ties). Calibration's SURE reads that instead of a second call.
    slope_kernel : Kernel or None
        Non-linear filters whose kernel can compute it in the same pass (the
        bilateral): a kernel like ``kernel`` whose result, of dtype
        :data:`VALUE_AND_SLOPE`, also holds each output voxel's derivative by
        its own input voxel. Run through :meth:`with_slope`; calibration's
        SURE reads it instead of probing the filter with a second call.
    context : callable or None
        ``context(slice, token) -> value`` computed once per independent slice
        on the whole slice (e.g. its noise level) and handed to every tile of
        it; ``token`` is the first tile's (see :data:`Kernel`): a context that
        runs long polls ``token.flag[0]`` and raises
        :class:`~napari_denoise.Cancelled` once it is set.
    """

    name: str
    kernel: Kernel
    spatial_axes: tuple[int, ...]
    halo: tuple[int, ...] | None
    cost: Cost
    params: Mapping[str, Any] = field(default_factory=dict)
    out_dtype: Any = np.float32
    context: Callable[[np.ndarray, Any], Any] | None = None
    diagonal: Callable[[tuple[int, ...]], np.ndarray] | None = None
    selection: bool = False
    slope_kernel: Kernel | None = None

    def with_slope(self) -> "FilterOp":
        """This op computing :data:`VALUE_AND_SLOPE` (needs ``slope_kernel``)."""
        if self.slope_kernel is None:
            raise ValueError(f"{self.name}: this filter cannot compute its own slope")
        return replace(self, kernel=self.slope_kernel, slope_kernel=None, out_dtype=VALUE_AND_SLOPE)

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
    adapter keeps the wanted part and writes it into ``out``.

    Such routines cannot be stopped mid-call. With ``reach`` (voxels the
    routine reads either side of an output voxel, per block axis) and
    ``seconds`` (its time per voxel of what it is given), a block that would
    take longer than :data:`PIECE_SECONDS` is filtered in pieces, each read
    with ``reach`` around it, the cancel flag checked and progress reported
    between them: same result, cancellable. ``periodic``: the block is a
    whole slice filtered with mode 'wrap', so pieces read across its borders.
    """

    function: Callable[..., np.ndarray]
    params: Mapping[str, Any] = field(default_factory=dict)
    with_context: bool = False
    reach: tuple[int, ...] | None = None
    seconds: float = 0.0
    periodic: bool = False

    def _call(self, block, context):
        if self.with_context:
            return self.function(block, context, **self.params)
        return self.function(block, **self.params)

    def __call__(self, block, keep, out, context, token):
        block = np.asarray(block, dtype=np.float32)
        keep = tuple(keep) if keep is not None else (slice(None),) * block.ndim
        grid = None
        if self.reach is not None and len(self.reach) == block.ndim:
            grid = piece_grid(block.shape, keep, self.reach, self.seconds, self.periodic)
        if grid is None:
            result = np.reshape(self._call(block, context), block.shape)[keep]
            if out is None:
                return result
            out[...] = result
            return out
        return self._in_pieces(block, keep, out, context, token, grid)

    def _in_pieces(self, block, keep, out, context, token, grid):
        pieces = list(_pieces(grid))
        for done, piece in enumerate(pieces):
            if token is not None and token.flag[0]:
                break  # cancelled: the run drops this tile's result
            read, inner, write = _piece_regions(block.shape, keep, self.reach, piece, self.periodic)
            source = block
            for axis, index in enumerate(read):
                source = source[(slice(None),) * axis + (index,)] if isinstance(index, slice) else np.take(
                    source, index, axis=axis
                )
            part = np.reshape(self._call(np.ascontiguousarray(source), context), source.shape)[inner]
            if out is None:
                out = np.empty([s.stop - s.start for s in _bounds(block.shape, keep)], dtype=part.dtype)
            out[write] = part
            if token is not None:
                token.report(done + 1, len(pieces))
        if out is None:
            out = np.empty([s.stop - s.start for s in _bounds(block.shape, keep)], dtype=np.float32)
        return out


def _bounds(shape, keep) -> list[slice]:
    return [slice(*s.indices(n)[:2]) for s, n in zip(keep, shape)]


def piece_grid(shape, keep, reach, seconds: float, periodic: bool = False):
    """Per axis, the ``(start, stop)`` ranges (in block coordinates) that cut the kept
    part of a block into pieces of about :data:`PIECE_SECONDS` each; None for one piece."""
    bounds = _bounds(shape, keep)
    kept = [b.stop - b.start for b in bounds]
    if seconds <= 0 or 0 in kept:
        return None

    def piece_time(counts):
        voxels = 1.0
        for n, k, r, c in zip(shape, kept, reach, counts):
            t = math.ceil(k / c) + 2 * r
            voxels *= t if periodic else min(n, t)
        return seconds * voxels

    counts = [1] * len(shape)
    if piece_time(counts) <= PIECE_SECONDS:
        return None
    # Cut the slowest-varying axes first (contiguous pieces). A piece reads
    # its reach on both sides: first keep pieces at least 4 reaches thick
    # (at most 1.5x the reading), then, only if still too slow, as thin as needed
    # (a 7^3 median cut into one-plane pieces read 7 planes each and ran 8x slower).
    for thinnest in ([max(1, 4 * r) for r in reach], [1] * len(shape)):
        for axis in range(len(shape)):
            most = max(1, kept[axis] // thinnest[axis])
            while counts[axis] < most and piece_time(counts) > PIECE_SECONDS:
                ratio = piece_time(counts) / PIECE_SECONDS
                counts[axis] = min(most, max(counts[axis] + 1, math.ceil(counts[axis] * ratio)))
            if piece_time(counts) <= PIECE_SECONDS:
                break
        if piece_time(counts) <= PIECE_SECONDS:
            break
    grid = []
    for b, k, c in zip(bounds, kept, counts):
        step = math.ceil(k / c)
        grid.append([(start, min(start + step, b.stop)) for start in range(b.start, b.stop, step)])
    return grid


def _pieces(grid):
    import itertools

    return itertools.product(*grid)


def _piece_regions(shape, keep, reach, piece, periodic):
    """``(read, inner, write)`` of one piece: what to read of the block (slices, or
    index arrays across a periodic border), what of the read part is the piece,
    and where the piece goes in the kept part."""
    bounds = _bounds(shape, keep)
    read, inner, write = [], [], []
    for n, b, r, (start, stop) in zip(shape, bounds, reach, piece):
        if periodic and (start - r < 0 or stop + r > n):
            read.append(np.arange(start - r, stop + r) % n)
            lo = start - r
        else:
            lo, hi = max(0, start - r), min(n, stop + r)
            read.append(slice(lo, hi))
        inner.append(slice(start - lo, stop - lo))
        write.append(slice(start - b.start, stop - b.start))
    return tuple(read), tuple(inner), tuple(write)
