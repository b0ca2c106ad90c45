"""One execution layer shared by every filter.

A filter is described by a :class:`Plan`: a *core* function that filters one
independent slice (or one tile of it) laid out with its spatial axes last, the
*halo* (kernel reach, in pixels) along each spatial axis, and the output dtype.
The plan knows how to run that core

* eagerly on numpy input: every slice over the non-spatial axes (time, channel,
  ...) is filtered on its own, large slices are cut into tiles with a halo and
  tiles run on a thread pool (scipy.ndimage and most of scikit-image release the
  GIL), converting to float32 one tile at a time so that no full-size float32 or
  float64 copy of the input is ever made;
* lazily on dask input, with ``map_overlap`` (depth = halo on spatial axes,
  nothing across independent axes), or with whole-slice blocks for methods that
  need the whole plane or volume.

Cores marked ``crop=True`` (the compiled kernels of ``filters/_kernels.py``
used by the Gaussian, mean, median and edge filters) read the input tile in
its own dtype, filter only the part of the block that is kept (the halo is
read, never filtered) and write straight into the output, so tiles can be
thin (small working memory) without recomputing halos; on dask input they run
on each overlapped block's interior instead of filtering and trimming it.

Because tile edges inside the image get real neighbouring data from the halo
and the border ``mode`` applies only at the true image border, tiled, untiled
and lazy results are identical.

Progress and cancellation: :meth:`Plan.iter` is a generator that yields
``(done, total)`` after each tile and returns the result; closing it stops the
run after the tiles in flight (each sized to take well under a second).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ._memory import check_memory
from ._params import as_kernel_input, is_lazy

__all__ = ["Plan", "Cancelled", "default_workers"]

# A tile should take about this long, so that cancelling answers within ~1 s
# and the progress bar moves, but not much less (per-tile overhead).
_TARGET_TILE_SECONDS = 0.25
_MIN_TILE_VOXELS = 1 << 16
_MAX_TILE_VOXELS = 1 << 22
_CROP_MIN_TILE_VOXELS = 1 << 18
_CROP_MAX_TILE_VOXELS = 1 << 21


def _release_scratch() -> None:
    """Free the calling thread's kernel work arrays (pool threads free theirs on exit)."""
    from .filters._kernels import release_scratch

    release_scratch()


class Cancelled(Exception):
    """Raised by :meth:`Plan.run` when its ``cancel`` callback returned True."""


def default_workers() -> int:
    """Threads used by default: the cores this process may run on.

    Set ``NAPARI_DENOISE_WORKERS`` to override (1 disables threading).
    """
    env = os.environ.get("NAPARI_DENOISE_WORKERS")
    if env:
        return max(1, int(env))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class Plan:
    """How to run one filter on one image.

    Attributes
    ----------
    name : str
        Public function name of the filter (recorded in recipes).
    image : numpy or dask array
        The input, untouched.
    spatial_axes : tuple of int
        Axes the core works across, ascending; all others are independent.
    core : callable
        ``core(block, context) -> array``: ``block`` is a float32 array whose
        axes are exactly the spatial axes (in order); returns an array of the
        same shape (any dtype castable to ``out_dtype``).
    halo : tuple of int or None
        Reach of the core along each spatial axis in pixels; ``None`` means the
        core needs the whole slice (global methods such as TV or wavelets).
    out_dtype : numpy dtype
        float32 for every filter but Canny (bool).
    prepare : callable or None
        ``prepare(slice) -> context`` computed once per independent slice on
        the whole slice (e.g. the estimated noise level), passed to each tile.
    cost : float
        Rough seconds per voxel of the core, used to size tiles.
    params : dict
        Resolved parameters (pixels) for recipes and progress labels.
    crop : bool
        When True the core is called as ``core(block, context, keep, out)``:
        ``block`` may then be in the input's own dtype when every value of it
        is exact in float32 (uint8, int8, uint16, int16; float32), C-contiguous,
        and ``keep`` (a tuple of slices of ``block``) is the part whose result
        is wanted; the core writes the float32 result of ``block[keep]`` into
        ``out`` (a view of the output, or None) and returns it (or returns a
        new array when ``out`` is None).
        Such cores (the compiled kernels) never filter the halo, only read it,
        so tiles can be thin and no float32 copy of the input is made.
    abort : numpy.ndarray or None
        A one-element uint8 flag that long-running compiled cores poll (e.g.
        between search offsets of non-local means). The eager run clears it
        when it starts and sets it when it is stopped early (cancel, error),
        so tiles in flight end within milliseconds; their output is dropped.
    """

    name: str
    image: Any
    spatial_axes: tuple[int, ...]
    core: Callable[[np.ndarray, Any], np.ndarray]
    halo: tuple[int, ...] | None
    out_dtype: Any = np.float32
    prepare: Callable[[np.ndarray], Any] | None = None
    cost: float = 3e-8
    params: dict = field(default_factory=dict)
    crop: bool = False
    abort: np.ndarray | None = None

    # -- public entry points -------------------------------------------------
    @property
    def lazy(self) -> bool:
        return is_lazy(self.image)

    def run(
        self,
        *,
        workers: int | None = None,
        progress: Callable[[int, int], Any] | None = None,
        cancel: Callable[[], bool] | None = None,
    ):
        """Filter and return the result (a dask array, uncomputed, for dask input).

        ``progress(done, total)`` is called after every tile; when ``cancel()``
        returns True the run stops and :class:`Cancelled` is raised.
        """
        gen = self.iter(workers=workers)
        try:
            while True:
                done, total = next(gen)
                if progress is not None:
                    progress(done, total)
                if cancel is not None and cancel():
                    self.stop()
                    gen.close()
                    raise Cancelled(f"{self.name}: cancelled after {done} of {total} tiles")
        except StopIteration as stop:
            return stop.value

    def iter(self, *, workers: int | None = None) -> Iterator[tuple[int, int]]:
        """Generator form of :meth:`run`: yields ``(done, total)``, returns the result."""
        if self.lazy:
            yield (0, 1)
            result = self._lazy()
            yield (1, 1)
            return result
        return (yield from self._eager(workers))

    # -- eager (numpy) path --------------------------------------------------
    def _layout(self, array: np.ndarray):
        """Views of ``array`` with the spatial axes moved last."""
        k = len(self.spatial_axes)
        return np.moveaxis(array, self.spatial_axes, range(array.ndim - k, array.ndim))

    def _tiles(self, spatial_shape: tuple[int, ...], n_slices: int, workers: int):
        """Split one slice into ``(axis, start, stop)`` tiles along one spatial axis."""
        voxels = math.prod(spatial_shape)
        if self.halo is None or voxels == 0:
            return [None]
        seconds = voxels * self.cost
        wanted = max(1, math.ceil(seconds / _TARGET_TILE_SECONDS))
        max_voxels = _MAX_TILE_VOXELS
        if self.crop:
            # Cropping cores hold ~2 float32 copies of a tile: tiles of at most
            # 1/16 of the slice keep the working memory of two threads within
            # a quarter of the output (the memory target is 1.25x the output).
            max_voxels = max(_CROP_MIN_TILE_VOXELS, min(_CROP_MAX_TILE_VOXELS, voxels // 16))
        wanted = max(wanted, math.ceil(voxels / max_voxels))
        if n_slices < workers and voxels >= 2 * _MIN_TILE_VOXELS:
            wanted = max(wanted, math.ceil(workers / n_slices))
        wanted = min(wanted, max(1, voxels // _MIN_TILE_VOXELS))
        if wanted <= 1:
            return [None]
        # Cut along the first (slowest-varying, contiguous) axis when its tiles
        # stay at least twice as thick as the halo; otherwise along the axis
        # where the halo costs least relative to its length.
        if self.crop or math.ceil(spatial_shape[0] / wanted) >= 2 * self.halo[0]:
            axis = 0
        else:
            axis = max(
                range(len(spatial_shape)),
                key=lambda a: (spatial_shape[a] / (1 + 2 * self.halo[a]), -a),
            )
        length, halo = spatial_shape[axis], self.halo[axis]
        if self.crop:
            # cropping cores only read the halo: any thickness is fine
            thickness = max(math.ceil(length / wanted), 1)
        else:
            # Other cores recompute the halo (and scikit-image pads each tile
            # again): keep it within ~25 % of a tile (tiles at least 8 halos
            # thick), and use a multiple of the workers so that no thread
            # idles at the end. Expensive methods (non-local means) then run
            # long tiles: that is the price of not recomputing the halo.
            count = min(wanted, max(1, length // max(1, 8 * halo)))
            if count >= workers:
                count -= count % workers
            elif length >= workers * 2 * halo and wanted >= workers:
                count = workers
            thickness = max(math.ceil(length / max(1, count)), 1)
        if thickness >= length:
            return [None]
        return [(axis, start, min(start + thickness, length)) for start in range(0, length, thickness)]

    def _eager(self, workers: int | None):
        image = self.image
        out = np.empty(image.shape, dtype=self.out_dtype)
        if image.size == 0:
            yield (0, 0)
            return out
        workers = default_workers() if workers is None else max(1, int(workers))
        src = self._layout(image)
        dst = self._layout(out)
        k = len(self.spatial_axes)
        lead = src.shape[: src.ndim - k]
        spatial_shape = src.shape[src.ndim - k :]
        n_slices = math.prod(lead)
        tiles = self._tiles(spatial_shape, n_slices, workers)
        check_memory(self, tiles, workers)

        contexts: dict[tuple, Any] = {}

        def context_for(index):
            if self.prepare is None:
                return None
            if index not in contexts:
                contexts[index] = self.prepare(src[index])
            return contexts[index]

        def task(index, tile):
            # cut_in: the block read (tile + halo); keep: the block's part whose
            # result is wanted; cut_out: where that part goes in the slice.
            cut_in, keep, cut_out = [[slice(None)] * k for _ in range(3)]
            if tile is not None:
                axis, start, stop = tile
                halo = self.halo[axis]
                lo, hi = max(0, start - halo), min(spatial_shape[axis], stop + halo)
                cut_in[axis] = slice(lo, hi)
                keep[axis] = slice(start - lo, stop - lo)
                cut_out[axis] = slice(start, stop)
            region = src[index][tuple(cut_in)]
            view = dst[index][tuple(cut_out)]
            if self.crop:
                result = self.core(as_kernel_input(region), context_for(index), tuple(keep), view)
                if result is not view:
                    view[...] = result
            else:
                result = self.core(np.asarray(region, dtype=np.float32), context_for(index))
                view[...] = result[tuple(keep)]

        jobs = [(index, tile) for index in np.ndindex(*lead) for tile in tiles]
        total = len(jobs)
        if self.abort is not None:
            self.abort[0] = 0
        finished_all = False
        yield (0, total)
        if workers == 1 or total == 1:
            try:
                for done, job in enumerate(jobs, 1):
                    task(*job)
                    yield (done, total)
                finished_all = True
            finally:
                if not finished_all:
                    self.stop()
                _release_scratch()
            return out

        if self.prepare is not None and tiles != [None]:
            # Per-slice contexts are computed once, before the tiles that need them.
            for index in np.ndindex(*lead):
                context_for(index)
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="napari-denoise")
        pending: set = set()
        queue = iter(jobs)
        done = 0
        try:
            while True:
                while len(pending) < 2 * workers:
                    job = next(queue, None)
                    if job is None:
                        break
                    pending.add(pool.submit(task, *job))
                if not pending:
                    break
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    future.result()
                    done += 1
                yield (done, total)
            finished_all = True
        finally:
            for future in pending:
                future.cancel()
            if not finished_all:  # cores still running: their results are dropped
                self.stop()
            pool.shutdown(wait=True)
        return out

    def stop(self) -> None:
        """Ask cores that poll :attr:`abort` to return now (the run is being dropped).

        Safe from any thread; a no-op for cores that do not poll. Tiles stopped
        this way leave unfinished values in the output, so call it only when
        the result will be discarded (cancel).
        """
        if self.abort is not None:
            self.abort[0] = 1

    # -- lazy (dask) path ----------------------------------------------------
    def _block(self, block: np.ndarray) -> np.ndarray:
        return replace(self, image=block).run(workers=1)

    def _interior(self, block: np.ndarray, depth: dict, block_counts, block_id=None) -> np.ndarray:
        """Filter the interior of one overlapped dask block (cropping cores only)."""
        try:
            return self._interior_of(block, depth, block_id, block_counts)
        finally:
            _release_scratch()

    def _interior_of(self, block, depth, location, count):
        # (block_id rather than block_info: dask builds block_info eagerly for
        # every chunk, which made the call itself slow on huge arrays)
        keep = []
        for ax in range(block.ndim):
            d = depth[ax]
            lo = d if d and location[ax] > 0 else 0
            hi = block.shape[ax] - (d if d and location[ax] < count[ax] - 1 else 0)
            keep.append(slice(lo, hi))
        out_shape = [s.stop - s.start for s in keep]
        k = len(self.spatial_axes)
        if k == block.ndim and 0 not in out_shape:
            # one spatial slice: the core's result is the block (no copy)
            piece = as_kernel_input(block)
            context = None if self.prepare is None else self.prepare(piece)
            result = self.core(piece, context, tuple(keep))
            return np.moveaxis(result, range(k), self.spatial_axes).astype(self.out_dtype, copy=False)
        out = np.empty(out_shape, dtype=self.out_dtype)
        if out.size == 0:
            return out
        src = self._layout(block)
        dst = self._layout(out)
        keep_lead = [keep[ax] for ax in range(block.ndim) if ax not in self.spatial_axes]
        keep_spatial = tuple(keep[ax] for ax in self.spatial_axes)
        lead = dst.shape[: dst.ndim - k]
        for index in np.ndindex(*lead):
            source = tuple(s.start + i for s, i in zip(keep_lead, index))
            piece = as_kernel_input(src[source])
            context = None if self.prepare is None else self.prepare(piece)
            dst[index] = self.core(piece, context, keep_spatial)
        return out

    def _lazy(self):
        import dask.array as da

        image = self.image
        meta = np.empty((0,) * image.ndim, dtype=self.out_dtype)
        whole_slices = self.halo is None or self.prepare is not None
        if whole_slices:
            # Methods that need the whole plane/volume (or a per-slice estimate)
            # are chunked only along the independent axes.
            rechunked = image.rechunk({ax: -1 for ax in self.spatial_axes})
            return da.map_blocks(self._block, rechunked, dtype=self.out_dtype, meta=meta)
        depth = {ax: 0 for ax in range(image.ndim)}
        for ax, reach in zip(self.spatial_axes, self.halo):
            depth[ax] = 0 if len(image.chunks[ax]) == 1 else min(reach, image.shape[ax])
        if not any(depth.values()):
            return da.map_blocks(self._block, image, dtype=self.out_dtype, meta=meta)
        if self.crop:
            # Cropping cores filter only the interior of each overlapped block
            # (the halo is read, never filtered, and nothing is trimmed away).
            from dask.array.overlap import ensure_minimum_chunksize, overlap

            chunks = tuple(
                ensure_minimum_chunksize(depth[ax], c) if depth[ax] else c
                for ax, c in enumerate(image.chunks)
            )
            if chunks != image.chunks:
                image = image.rechunk(chunks)
            expanded = overlap(image, depth=depth, boundary="none")
            return da.map_blocks(
                self._interior,
                expanded,
                depth=depth,
                block_counts=image.numblocks,
                chunks=image.chunks,
                dtype=self.out_dtype,
                meta=meta,
            )
        return da.map_overlap(
            self._block,
            image,
            depth=depth,
            boundary="none",
            trim=True,
            dtype=self.out_dtype,
            meta=meta,
        )
