"""Memory guard: refuse an eager run that cannot fit, with a message that helps.

An out-of-memory kill loses the user's whole napari session; a clear
``MemoryError`` before anything is allocated loses nothing.
"""

from __future__ import annotations

import math
import os

import numpy as np

from ._params import DIRECT_DTYPES

__all__ = ["available_memory", "estimate_memory", "check_memory", "format_bytes"]

# Working arrays a core holds per voxel of its tile, in float32 units
# (input copy, output, and the temporaries of the scipy/skimage routine).
_TEMPORARIES_PER_TILE = 6


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


def estimate_memory(plan, tiles, workers: int) -> int:
    """Peak bytes an eager run of ``plan`` allocates (output + tiles in flight)."""
    image = plan.image
    out = image.size * np.dtype(plan.out_dtype).itemsize
    k = len(plan.spatial_axes)
    spatial = [image.shape[ax] for ax in plan.spatial_axes]
    slice_voxels = math.prod(spatial) if spatial else 1
    if tiles == [None]:
        tile_voxels = slice_voxels
    else:
        axis, start, stop = tiles[0]
        halo = plan.halo[axis]
        tile_voxels = slice_voxels // max(1, spatial[axis]) * min(spatial[axis], stop - start + 2 * halo)
    if getattr(plan, "crop", False):
        # Compiled cropping cores (see Plan.crop): they read the input where it
        # lies (or a float32 copy of the tile with its halo for dtypes that are
        # not exact in float32), hold two float32 work arrays of at most the
        # tile plus its halo, and write into the output; edge magnitudes hold
        # one more array. Only ``workers`` tiles run at once.
        kept_voxels = slice_voxels
        if tiles != [None]:
            axis, start, stop = tiles[0]
            kept_voxels = slice_voxels // max(1, spatial[axis]) * (stop - start)
        # two work arrays + one component + allocator slack, each of the kept tile
        per_tile = 4 * kept_voxels * 4
        if np.dtype(image.dtype) not in DIRECT_DTYPES:
            per_tile += tile_voxels * 4  # float32 copy of the tile with its halo
        running = min(workers, max(1, image.size // max(1, tile_voxels)))
        return int(out + running * per_tile)
    in_flight = min(2 * workers, max(1, image.size // max(1, tile_voxels)))
    temporaries = in_flight * tile_voxels * 4 * _TEMPORARIES_PER_TILE
    if plan.prepare is not None:
        temporaries += slice_voxels * 4 * 2
    del k
    return int(out + temporaries)


def check_memory(plan, tiles, workers: int) -> None:
    """Raise ``MemoryError`` when an eager run of ``plan`` would not fit in memory."""
    available = available_memory()
    if available is None:
        return
    needed = estimate_memory(plan, tiles, workers)
    if needed > 0.9 * available:
        raise MemoryError(
            f"{plan.name}: filtering an image of shape {tuple(plan.image.shape)} needs about "
            f"{format_bytes(needed)} but only {format_bytes(available)} is available. "
            "Pass a dask array (e.g. dask.array.from_array(image, chunks=...) or a zarr "
            "store opened with dask) to stream the computation chunk by chunk, or crop "
            "or bin the image first."
        )
