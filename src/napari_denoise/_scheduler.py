"""The scheduler: turns a :class:`~napari_denoise.FilterOp` and an array into work.

* :func:`tile_layout` cuts each independent slice (one time point, one
  channel, ...) into tiles along one spatial axis, each with the op's halo and
  sized to take about a quarter of a second; it is the one tiling model, used
  by the runs below and by the memory estimate (:mod:`._memory`).
* :func:`steps` runs an op eagerly on a numpy array: tiles on a thread pool
  (the kernels release the GIL), each written straight into the float32
  output, the input read in its own dtype one tile at a time so that no
  full-size copy of it is made. It yields ``(done, total)`` as tiles finish
  (and at least every 50 ms while they work) and returns the result.
* :func:`lazy` builds the same computation on a dask array: ``map_blocks``
  over overlapped chunks (depth = halo, nothing across independent axes), or
  over chunks holding whole slices for ops that need them.
* :func:`run` is what the public functions call: the result, eager or lazy,
  with an optional ``progress(done, total)`` callback and ``cancel()`` poll.

Because tile edges inside the image get real neighbouring data from the halo
and the border mode applies only at the true image border, tiled, untiled and
lazy results are identical.

Cancellation is one :class:`CancelToken` per run: the scheduler checks it
between tiles, and long-running compiled kernels poll its ``flag`` inside a
tile, so a cancel stops the computation itself within a fraction of a second.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from ._filter_op import FilterOp
from ._memory import check_memory
from ._params import MAX_WORKERS, as_kernel_input, check_workers, is_lazy
from .kernels import scratch

__all__ = [
    "Cancelled",
    "CancelToken",
    "TileToken",
    "TILE_STEPS",
    "Tile",
    "TileLayout",
    "tile_layout",
    "drive",
    "steps",
    "lazy",
    "run",
    "default_workers",
]

# A tile should take about this long, so that cancelling answers within ~1 s
# and the progress bar moves, but not much less (per-tile overhead).
_TARGET_TILE_SECONDS = 0.25
_MIN_TILE_VOXELS = 1 << 16
_MAX_TILE_VOXELS = 1 << 22
# Kernels that only read their halo work on the kept tile: thinner tiles,
# within these bounds, keep their working memory small.
_KEPT_MIN_TILE_VOXELS = 1 << 18
_KEPT_MAX_TILE_VOXELS = 1 << 21
# While tiles work, steps() yields at least this often (a consumer can cancel).
_HEARTBEAT_SECONDS = 0.05
#: Progress units per tile: steps() reports ``(done, total)`` in these, so a
#: kernel that reports its own progress moves the bar within a tile.
TILE_STEPS = 100
POOL_THREAD_PREFIX = "napari-denoise"


class Cancelled(Exception):
    """Raised by a run whose ``cancel`` callback returned True (or whose token was cancelled)."""


class CancelToken:
    """One run's cancellation, shared by the scheduler and the kernels.

    ``cancel()`` may be called from any thread. Compiled kernels that run long
    poll ``flag[0]`` (a one-element uint8 array numba can read) and return
    early once it is non-zero; their partial results are dropped.
    """

    def __init__(self) -> None:
        self.flag = np.zeros(1, np.uint8)

    def cancel(self) -> None:
        self.flag[0] = 1

    @property
    def cancelled(self) -> bool:
        return bool(self.flag[0])


class TileToken:
    """What a kernel gets as ``token``: the run's cancel flag and its own progress.

    ``flag`` is the run's :attr:`CancelToken.flag` (poll ``flag[0]``);
    ``ticks`` is this tile's ``[done, total]`` (int64) that a long kernel may
    fill in (search offsets, iterations, planes): numba kernels write it
    directly, Python code calls :meth:`report`. ``threads`` is how many
    threads the kernel may use for this tile: the run's workers that would
    otherwise idle because there are fewer tiles than workers (1 for most
    runs; kernels that cannot be tiled well use it, see ``kernels/threads.py``).
    """

    __slots__ = ("flag", "ticks", "threads")

    def __init__(self, flag: np.ndarray, threads: int = 1):
        self.flag = flag
        self.ticks = np.zeros(2, np.int64)
        self.threads = max(1, int(threads))

    @property
    def cancelled(self) -> bool:
        return bool(self.flag[0])

    def report(self, done: int, total: int) -> None:
        self.ticks[1] = total
        self.ticks[0] = done

    def fraction(self) -> float:
        done, total = (int(v) for v in self.ticks)
        return min(1.0, done / total) if total > 0 else 0.0


def default_workers() -> int:
    """Threads used by default: the cores this process may run on.

    Set ``NAPARI_DENOISE_WORKERS`` to override (1 disables threading).
    """
    env = os.environ.get("NAPARI_DENOISE_WORKERS")
    if env:
        try:
            return min(MAX_WORKERS, max(1, int(env)))
        except ValueError:
            raise ValueError(f"workers: NAPARI_DENOISE_WORKERS={env!r} is not a whole number") from None
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


# -- the tiling model -----------------------------------------------------------------------
@dataclass(frozen=True)
class Tile:
    """Positions ``start:stop`` along spatial axis ``axis`` (an index into the spatial axes)."""

    axis: int
    start: int
    stop: int


@dataclass(frozen=True)
class TileLayout:
    """How an eager run cuts the image: every independent slice into the same tiles.

    ``tiles`` is ``(None,)`` when each slice is processed whole.
    """

    spatial_shape: tuple[int, ...]
    n_slices: int
    tiles: tuple[Tile | None, ...]
    halo: tuple[int, ...] | None

    @property
    def jobs(self) -> int:
        return self.n_slices * len(self.tiles)

    @property
    def slice_voxels(self) -> int:
        return math.prod(self.spatial_shape)

    def regions(self, tile: Tile | None):
        """``(read, keep, write)``: the block read (tile + halo), the part of it
        whose result is wanted, and where that goes in the slice."""
        k = len(self.spatial_shape)
        read, keep, write = ([slice(None)] * k for _ in range(3))
        if tile is not None:
            halo = self.halo[tile.axis]
            lo = max(0, tile.start - halo)
            hi = min(self.spatial_shape[tile.axis], tile.stop + halo)
            read[tile.axis] = slice(lo, hi)
            keep[tile.axis] = slice(tile.start - lo, tile.stop - lo)
            write[tile.axis] = slice(tile.start, tile.stop)
        return tuple(read), tuple(keep), tuple(write)

    def largest_tile(self) -> tuple[int, int]:
        """Voxels of the largest tile ``(read, kept)``: with its halo, and without."""
        if self.tiles == (None,):
            return self.slice_voxels, self.slice_voxels
        tile = self.tiles[0]  # tiles are cut to equal thickness, the last one thinner
        length = self.spatial_shape[tile.axis]
        across = self.slice_voxels // max(1, length)
        kept = tile.stop - tile.start
        return across * min(length, kept + 2 * self.halo[tile.axis]), across * kept


def tile_layout(op: FilterOp, image_shape, workers: int) -> TileLayout:
    """The tiles an eager run of ``op`` on an image of ``image_shape`` uses."""
    spatial_shape = tuple(image_shape[ax] for ax in op.spatial_axes)
    n_slices = math.prod(n for ax, n in enumerate(image_shape) if ax not in op.spatial_axes)
    return TileLayout(spatial_shape, n_slices, _tiles(op, spatial_shape, n_slices, workers), op.halo)


def _tiles(op: FilterOp, spatial_shape, n_slices: int, workers: int) -> tuple:
    voxels = math.prod(spatial_shape)
    if op.halo is None or voxels == 0:
        return (None,)
    over_halo = op.cost.over_halo
    seconds = voxels * op.cost.seconds
    wanted = max(1, math.ceil(seconds / _TARGET_TILE_SECONDS))
    max_voxels = _MAX_TILE_VOXELS
    if not over_halo:
        # Such kernels hold ~2 float32 copies of a tile: tiles of at most
        # 1/16 of the slice keep the working memory of two threads within
        # a quarter of the output (the memory target is 1.25x the output).
        max_voxels = max(_KEPT_MIN_TILE_VOXELS, min(_KEPT_MAX_TILE_VOXELS, voxels // 16))
    wanted = max(wanted, math.ceil(voxels / max_voxels))
    if n_slices < workers and voxels >= 2 * _MIN_TILE_VOXELS:
        wanted = max(wanted, math.ceil(workers / n_slices))
    wanted = min(wanted, max(1, voxels // _MIN_TILE_VOXELS))
    if wanted <= 1:
        return (None,)
    # Cut along the first (slowest-varying, contiguous) axis when its tiles
    # stay at least twice as thick as the halo; otherwise along the axis
    # where the halo costs least relative to its length.
    if not over_halo or math.ceil(spatial_shape[0] / wanted) >= 2 * op.halo[0]:
        axis = 0
    else:
        axis = max(
            range(len(spatial_shape)),
            key=lambda a: (spatial_shape[a] / (1 + 2 * op.halo[a]), -a),
        )
    length, halo = spatial_shape[axis], op.halo[axis]
    if not over_halo:
        # the halo is only read: any thickness is fine
        thickness = max(math.ceil(length / wanted), 1)
    else:
        # The halo is recomputed (and scikit-image pads each tile again):
        # keep it within ~25 % of a tile (tiles at least 8 halos thick), and
        # use a multiple of the workers so that no thread idles at the end.
        # Expensive methods (non-local means) then run long tiles: that is
        # the price of not recomputing the halo.
        count = min(wanted, max(1, length // max(1, 8 * halo)))
        if count >= workers:
            count -= count % workers
        elif length >= workers * 2 * halo and wanted >= workers:
            count = workers
        thickness = max(math.ceil(length / max(1, count)), 1)
    if thickness >= length:
        return (None,)
    return tuple(Tile(axis, start, min(start + thickness, length)) for start in range(0, length, thickness))


# -- eager runs -------------------------------------------------------------------------------
def _spatial_last(array, spatial_axes):
    """View of ``array`` with the spatial axes moved last."""
    k = len(spatial_axes)
    return np.moveaxis(array, spatial_axes, range(array.ndim - k, array.ndim))


class _SliceContexts:
    """``op.context`` of each independent slice, computed once, on first use, thread-safely."""

    def __init__(self, op: FilterOp, src):
        self._op, self._src = op, src
        self._values: dict = {}
        self._locks: dict = {}
        self._guard = threading.Lock()

    def __call__(self, index, token: TileToken):
        if self._op.context is None:
            return None
        with self._guard:
            lock = self._locks.setdefault(index, threading.Lock())
        with lock:
            if index not in self._values:
                # raises Cancelled when the run is cancelled while it estimates
                self._values[index] = self._op.context(self._src[index], token)
            return self._values[index]


class _EagerRun:
    """The pieces of one eager run: output, views, tiles and the task of one tile."""

    def __init__(self, op: FilterOp, image: np.ndarray, workers: int, token: CancelToken):
        self.op, self.token = op, token
        self.layout = tile_layout(op, image.shape, workers)
        # Fewer tiles than workers: each tile's kernel may use the idle ones.
        check_memory(op, image, self.layout, workers)  # before the output is allocated
        self.out = np.empty(image.shape, dtype=op.out_dtype)
        self.src = _spatial_last(image, op.spatial_axes)
        self.dst = _spatial_last(self.out, op.spatial_axes)
        lead = self.src.shape[: self.src.ndim - len(op.spatial_axes)]
        self.jobs = [(index, tile) for index in np.ndindex(*lead) for tile in self.layout.tiles]
        self.contexts = _SliceContexts(op, self.src)
        self.in_flight: dict = {}  # job -> its TileToken, while it runs
        self.threads_per_tile = max(1, workers // max(1, min(workers, len(self.jobs))))

    def task(self, index, tile) -> None:
        if self.token.cancelled:
            return
        tile_token = self.in_flight[(index, tile)] = TileToken(self.token.flag, self.threads_per_tile)
        try:
            read, keep, write = self.layout.regions(tile)
            view = self.dst[index][write]
            block = as_kernel_input(self.src[index][read])
            result = self.op.kernel(block, keep, view, self.contexts(index, tile_token), tile_token)
            if result is not view:
                view[...] = result
        finally:
            self.in_flight.pop((index, tile), None)

    def progress(self, finished_jobs: int) -> int:
        """Work done in :data:`TILE_STEPS` units: finished tiles plus the running ones' share."""
        running = sum(int(TILE_STEPS * t.fraction()) for t in list(self.in_flight.values()))
        return finished_jobs * TILE_STEPS + running


def filter_now(op: FilterOp, image: np.ndarray, token: CancelToken | None = None) -> np.ndarray:
    """Filter ``image`` tile after tile in the calling thread (dask blocks, previews, short calls).

    With a ``token``, a cancelled run stops between tiles (and inside kernels
    that poll it) and raises :class:`Cancelled`.
    """
    if image.size == 0:
        return np.empty(image.shape, dtype=op.out_dtype)
    token = CancelToken() if token is None else token
    job = _EagerRun(op, image, 1, token)
    try:
        for index, tile in job.jobs:
            job.task(index, tile)
    finally:
        scratch.release()
    if token.cancelled:
        raise Cancelled(f"{op.name}: cancelled")
    return job.out


def steps(
    op: FilterOp,
    image,
    *,
    workers: int | None = None,
    token: CancelToken | None = None,
    wait_on_cancel: bool = True,
) -> Iterator[tuple[int, int]]:
    """Run ``op`` on ``image``: a generator that yields ``(done, total)`` and returns the result.

    Eager (numpy) input is filtered on ``workers`` threads (default: every
    core); the generator yields ``(done, total)`` in :data:`TILE_STEPS` units
    per tile (running tiles counted by the progress their kernels report)
    every 50 ms and once all tiles are done, so its consumer can cancel at any time through
    ``token``. A cancelled run raises :class:`Cancelled`, after the tiles in
    flight have stopped when ``wait_on_cancel`` (kernels that poll the token
    stop within milliseconds), else at once. Closing the generator cancels
    the run. Lazy (dask) input yields ``(0, 1)`` and ``(1, 1)`` and returns
    the uncomputed dask array.
    """
    token = CancelToken() if token is None else token
    workers = check_workers(workers)
    if is_lazy(image):
        for done in (0, 1):
            if done:
                result = lazy(op, image)
            yield (done, 1)
            if token.cancelled:
                raise Cancelled(f"{op.name}: cancelled")
        return result
    workers = default_workers() if workers is None else workers
    if image.size == 0:
        yield (0, 0)
        return np.empty(image.shape, dtype=op.out_dtype)
    job = _EagerRun(op, image, workers, token)
    total = len(job.jobs) * TILE_STEPS
    yield (0, total)
    pool = ThreadPoolExecutor(max_workers=min(workers, len(job.jobs)), thread_name_prefix=POOL_THREAD_PREFIX)
    # Every tile is queued at once (a tile allocates nothing until it runs; a cancel drops the
    # queue): the pool's threads take the next one as they free up, and this thread wakes only
    # to report progress, every heartbeat, or on a kernel's error, or at the end. Waking it for
    # each finished tile cost a sixth of a run of 30 short tiles on two cores (the GIL it takes).
    pending = {pool.submit(job.task, *next_job) for next_job in job.jobs}
    done = 0
    finished = False
    try:
        while not token.cancelled:
            if not pending:
                finished = True
                break
            ready, pending = wait(pending, timeout=_HEARTBEAT_SECONDS, return_when=FIRST_EXCEPTION)
            for future in ready:
                try:
                    future.result()  # a kernel's error ends the run here
                except Cancelled:  # a slice's context stopped by this run's cancel: reported below
                    if not token.cancelled:
                        raise
            done += len(ready)
            yield (job.progress(done), total)
    finally:
        if not finished:
            token.cancel()  # kernels in flight return early; their output is dropped
        pool.shutdown(wait=finished or wait_on_cancel, cancel_futures=True)
    if not finished:
        raise Cancelled(f"{op.name}: cancelled after {done} of {len(job.jobs)} tiles")
    return job.out


def run(
    op: FilterOp,
    image,
    *,
    workers: int | None = None,
    progress: Callable[[int, int], Any] | None = None,
    cancel: Callable[[], bool] | None = None,
):
    """Filter ``image`` with ``op`` and return the result (uncomputed dask for dask input).

    ``progress(done, total)`` is called as work progresses (in units of
    :data:`TILE_STEPS` per tile); ``cancel()``
    is polled every 50 ms; when it returns True the run
    stops and :class:`Cancelled` is raised.
    """
    token = CancelToken()
    return drive(steps(op, image, workers=workers, token=token), token, progress, cancel)


def drive(run_steps, token: CancelToken, progress=None, poll=None):
    """Run a ``(done, total)`` generator to its result: ``progress(done, total)``
    on each new step, ``token.cancel()`` once ``poll()`` returns True."""
    last = None
    try:
        while True:
            step = next(run_steps)
            if progress is not None and step != last:
                progress(*step)
            last = step
            if poll is not None and poll():
                token.cancel()
    except StopIteration as stop:
        return stop.value


# -- lazy runs --------------------------------------------------------------------------------
def lazy(op: FilterOp, image):
    """``op`` applied to a dask array, as a dask array of the same chunks (nothing computed)."""
    import dask.array as da

    meta = np.empty((0,) * image.ndim, dtype=op.out_dtype)
    whole = partial(filter_now, op)
    if op.needs_whole_slices:
        # Methods that need the whole plane/volume (or a per-slice estimate)
        # are chunked only along the independent axes.
        rechunked = image.rechunk({ax: -1 for ax in op.spatial_axes})
        return da.map_blocks(whole, rechunked, dtype=op.out_dtype, meta=meta)
    depth = {ax: 0 for ax in range(image.ndim)}
    for ax, reach in zip(op.spatial_axes, op.halo):
        depth[ax] = 0 if len(image.chunks[ax]) == 1 else min(reach, image.shape[ax])
    if not any(depth.values()):
        return da.map_blocks(whole, image, dtype=op.out_dtype, meta=meta)
    # Each overlapped block's interior is filtered (the halo is read, never
    # filtered by kernels that can avoid it, and nothing is trimmed away).
    from dask.array.overlap import ensure_minimum_chunksize, overlap

    chunks = tuple(
        ensure_minimum_chunksize(depth[ax], c) if depth[ax] else c for ax, c in enumerate(image.chunks)
    )
    if chunks != image.chunks:
        image = image.rechunk(chunks)
    expanded = overlap(image, depth=depth, boundary="none")
    return da.map_blocks(
        partial(_filter_interior, op, depth, image.numblocks),
        expanded,
        chunks=image.chunks,
        dtype=op.out_dtype,
        meta=meta,
    )


def _filter_interior(op: FilterOp, depth: dict, block_counts, block, block_id=None) -> np.ndarray:
    """Filter the interior of one overlapped dask block.

    (``block_id`` rather than ``block_info``: dask builds block_info eagerly
    for every chunk, which made the call itself slow on huge arrays.)
    """
    try:
        return _interior(op, depth, block_counts, block, block_id)
    finally:
        scratch.release()


def _interior(op, depth, count, block, location):
    token = TileToken(CancelToken().flag)
    keep = []
    for ax in range(block.ndim):
        d = depth[ax]
        lo = d if d and location[ax] > 0 else 0
        hi = block.shape[ax] - (d if d and location[ax] < count[ax] - 1 else 0)
        keep.append(slice(lo, hi))
    out_shape = [s.stop - s.start for s in keep]
    k = len(op.spatial_axes)
    if k == block.ndim and 0 not in out_shape:
        # one spatial slice: the kernel's result is the block (no copy)
        piece = as_kernel_input(block)
        context = None if op.context is None else op.context(piece, token)
        result = op.kernel(piece, tuple(keep), None, context, token)
        return np.asarray(result).astype(op.out_dtype, copy=False)
    out = np.empty(out_shape, dtype=op.out_dtype)
    if out.size == 0:
        return out
    src = _spatial_last(block, op.spatial_axes)
    dst = _spatial_last(out, op.spatial_axes)
    keep_lead = [keep[ax] for ax in range(block.ndim) if ax not in op.spatial_axes]
    keep_spatial = tuple(keep[ax] for ax in op.spatial_axes)
    lead = dst.shape[: dst.ndim - k]
    for index in np.ndindex(*lead):
        source = tuple(s.start + i for s, i in zip(keep_lead, index))
        piece = as_kernel_input(src[source])
        context = None if op.context is None else op.context(piece, token)
        view = dst[index]
        result = op.kernel(piece, keep_spatial, view, context, token)
        if result is not view:
            view[...] = result
    return out
