"""Lazy end to end: filter a zarr-backed dask array far larger than memory.

1. A zarr store of shape 2000×4096×4096 uint16 (62.5 GiB if written; here
   sparse: only a 20×1024×1024 block of seeded noise is written, every other
   chunk reads as the fill value 0) is opened with dask.
2. ``gaussian(lazy, (1, 2, 2))`` must return (uncomputed) in < 0.1 s.
3. Computing one z-plane of the result must take < 1 s; it is compared with
   the eager filter of a crop around it (bit-identical expected).
4. The filtered sub-volume ``[:GB_PLANES]`` (a few GB of float32) is written to
   a new zarr store with ``dask.array.to_zarr``; the process' peak RSS growth
   while streaming is recorded (bounded: a few chunks per thread, not the
   volume).

Run: ``python benchmarks/lazy.py [--quick]``; prints one JSON line.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import measured_call, rss  # noqa: E402

SHAPE = (2000, 4096, 4096)
CHUNKS = (4, 1024, 1024)
Z = 1000


def main(quick: bool = False) -> dict:
    import dask
    import dask.array as da
    import zarr

    import napari_denoise as nd

    # full: 256×2048×2048 = 2 GiB of uint16 in, 4 GiB of float32 out
    write_shape = (64, 1024, 1024) if quick else (256, 2048, 2048)
    tmp = Path(tempfile.mkdtemp(prefix="napari-denoise-lazy-"))
    report: dict = {"shape": SHAPE, "chunks": CHUNKS}
    try:
        src = zarr.create_array(
            store=str(tmp / "big.zarr"), shape=SHAPE, chunks=CHUNKS, dtype="uint16", fill_value=0
        )
        rng = np.random.default_rng(1)
        block = rng.integers(0, 4000, size=(20, 1024, 1024), dtype=np.uint16)
        src[Z - 10 : Z + 10, :1024, :1024] = block
        lazy = da.from_zarr(src)
        report["virtual_bytes"] = int(np.prod(SHAPE)) * 2

        # 2. the call itself
        t0 = time.perf_counter()
        result = nd.gaussian(lazy, (1, 2, 2))
        report["call_seconds"] = time.perf_counter() - t0
        report["result_type"] = type(result).__name__

        # 3. one plane (median of 3; first includes dask graph optimisation)
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            plane = result[Z].compute()
            times.append(time.perf_counter() - t0)
        report["plane_seconds"] = float(np.median(times))
        report["plane_seconds_all"] = times
        crop = np.asarray(src[Z - 20 : Z + 20, :1100, :1100])
        eager = nd.gaussian(crop, (1, 2, 2))[20]
        report["plane_identical"] = bool(np.array_equal(plane[:1000, :1000], eager[:1000, :1000]))

        # 4. stream a few GB to a zarr store with bounded memory
        part = da.from_zarr(
            zarr.create_array(
                store=str(tmp / "part.zarr"), shape=write_shape, chunks=CHUNKS, dtype="uint16",
                fill_value=0,
            )
        )
        # real content, so compression does not make the write trivial: a
        # seeded noise stack generated chunk by chunk (never whole in memory)
        noisy = part + da.random.default_rng(2).integers(
            0, 4000, size=write_shape, chunks=CHUNKS, dtype=np.uint16
        )
        filtered = nd.gaussian(noisy, (1, 2, 2))
        out_bytes = int(np.prod(write_shape)) * 4
        base = rss()
        with dask.config.set(scheduler="threads"):
            _, seconds, peak = measured_call(
                lambda: filtered.to_zarr(str(tmp / "out.zarr"), overwrite=True)
            )
        report.update(
            write_shape=write_shape,
            write_output_bytes=out_bytes,
            write_seconds=seconds,
            write_peak_growth=peak,
            rss_before_write=base,
        )
        check = zarr.open_array(str(tmp / "out.zarr"), mode="r")
        report["written_shape"] = list(check.shape)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return report


if __name__ == "__main__":
    print(json.dumps(main("--quick" in sys.argv[1:])))
