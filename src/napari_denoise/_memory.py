"""Memory guard: refuse an eager run that cannot fit, with a message that helps.

An out-of-memory kill loses the user's whole napari session; a clear
``MemoryError`` before anything is allocated loses nothing. The estimate uses
the scheduler's own tile layout and the op's :class:`~napari_denoise.Cost`.
"""

from __future__ import annotations

import os

import numpy as np

from ._params import DIRECT_DTYPES

__all__ = ["available_memory", "estimate_memory", "check_memory", "format_bytes", "context_bytes_per_voxel"]


def available_memory() -> int | None:
    """Bytes the process can still allocate without swapping, or None if unknown.

    ``NAPARI_DENOISE_MEMORY_LIMIT`` (bytes) caps it, for tests and shared nodes.
    """
    limit = os.environ.get("NAPARI_DENOISE_MEMORY_LIMIT")
    found = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    found = int(line.split()[1]) * 1024
                    break
    except OSError:
        try:
            import psutil  # optional

            found = psutil.virtual_memory().available
        except Exception:  # pragma: no cover - platform without either
            found = None
    if limit:
        found = int(float(limit)) if found is None else min(found, int(float(limit)))
    return found


def format_bytes(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


def estimate_memory(op, image, layout, workers: int) -> int:
    """Peak bytes an eager run of ``op`` on ``image`` allocates: output + tiles in flight.

    ``layout`` is the run's :class:`~napari_denoise._scheduler.TileLayout`.
    Kernels that work on the kept tile only (``op.cost.over_halo`` False)
    hold ``cost.work_arrays`` float32 arrays of it, plus a float32 copy of the
    tile with its halo when the input dtype is not read directly; at most
    ``workers`` run at once. Kernels over the whole block hold their work
    arrays of the tile *with* its halo, for up to ``2 * workers`` tiles
    queued; a per-slice context (noise estimate) holds
    :func:`context_bytes_per_voxel` of each slice being estimated, up to one
    slice per worker at once.
    """
    out = image.size * np.dtype(op.out_dtype).itemsize
    read_voxels, kept_voxels = layout.largest_tile()
    cost = op.cost
    if cost.over_halo:
        in_flight = min(2 * workers, max(1, image.size // max(1, read_voxels)))
        per_tile = cost.work_arrays * read_voxels * 4
    else:
        in_flight = min(workers, max(1, image.size // max(1, read_voxels)))
        per_tile = cost.work_arrays * kept_voxels * 4
        if np.dtype(image.dtype) not in DIRECT_DTYPES:
            per_tile += read_voxels * 4
    extra = 0
    if op.context is not None:
        estimating = min(workers, layout.n_slices)
        extra = estimating * layout.slice_voxels * context_bytes_per_voxel(len(layout.spatial_shape))
    return int(out + in_flight * per_tile + extra)


def context_bytes_per_voxel(n_axes: int) -> int:
    """Peak bytes per voxel of the per-slice noise estimate on ``n_axes`` axes.

    Measured (benchmarks/memory_peaks.py): the float64 copy and the detail
    sub-bands of every axis' wavelet pass, 32.5 bytes per voxel in 3-D and
    20 in 2-D; counted as ``8 + 8 * n_axes``.
    """
    return 8 + 8 * n_axes


def check_memory(op, image, layout, workers: int) -> None:
    """Raise ``MemoryError`` when an eager run of ``op`` would not fit in memory."""
    available = available_memory()
    if available is None:
        return
    needed = estimate_memory(op, image, layout, workers)
    if needed > 0.9 * available:
        raise MemoryError(
            f"{op.name}: filtering an image of shape {tuple(image.shape)} needs about "
            f"{format_bytes(needed)} but only {format_bytes(available)} is available. "
            "Pass a dask array (e.g. dask.array.from_array(image, chunks=...) or a zarr "
            "store opened with dask) to stream the computation chunk by chunk, or crop "
            "or bin the image first."
        )
