"""Batch throughput: a recipe on a 16-file folder and on one larger-than-memory Zarr,
in-process versus a local dask.distributed cluster of worker processes.

1. **Folder**: 16 OME-TIFF stacks (64×256×256 uint16, seeded Poisson noise),
   recipe ``median`` 0.8 µm (3×3×3 voxels at 0.29/0.26 µm) written as
   float32 OME-Zarr. In-process = the default path (each file read whole and
   filtered by the threaded scheduler on every core); cluster =
   ``LocalCluster(n_workers=2, threads_per_worker=1)``, every file streamed
   chunk by chunk on the workers.
2. **Larger than memory**: one OME-Zarr input (default 64×2048×2048 uint16
   = 512 MiB, 1 GiB of float32 out; chunks 16×512×512) with
   ``NAPARI_DENOISE_MEMORY_LIMIT`` set far below its size, as on a machine
   whose memory it exceeds: the in-process path then streams it on local
   threads (each chunk written by the task that computed it); the cluster
   streams it on the workers. The client's peak RSS growth shows nothing is
   gathered.

The two paths alternate (in-process, cluster, in-process, ...) and the median
of the repeats is reported. Cluster start-up is timed apart and not counted.
Every output is checked equal to the in-process result.

Run: ``python benchmarks/batch.py [--quick]``; prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import measured_call  # noqa: E402

SCALE = (0.29, 0.26, 0.26)


def make_folder(folder: Path, n: int, shape) -> int:
    import tifffile

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        data = rng.poisson(100, shape).astype(np.uint16)
        tifffile.imwrite(folder / f"stack_{i:02d}.ome.tif", data, metadata={
            "axes": "ZYX", "PhysicalSizeZ": SCALE[0], "PhysicalSizeY": SCALE[1], "PhysicalSizeX": SCALE[2]})
    return n * int(np.prod(shape)) * 2


def make_big_zarr(path: Path, shape, chunks) -> int:
    """An OME-Zarr input written chunk by chunk (seeded noise, never whole in memory)."""
    import dask.array as da

    from napari_denoise._io import ZarrOutput

    out = ZarrOutput(path, shape, np.uint16, chunks, ("z", "y", "x"), (0, 1, 2), SCALE, "µm")
    noise = da.random.default_rng(1).poisson(100, shape, chunks=chunks).astype(np.uint16)
    da.store(noise, out.array, lock=False)
    return int(np.prod(shape)) * 2


def run(recipe, inputs, output: Path, engine):
    from napari_denoise import _batch

    shutil.rmtree(output, ignore_errors=True)
    summary = _batch.run_all(recipe, _batch.plan(inputs, output), engine=engine)
    assert not summary.failed, summary.failed[0].message
    return summary


def same_outputs(a: Path, b: Path) -> bool:
    from napari_denoise import _io

    for store in sorted(a.iterdir()):
        if not np.array_equal(_io.open_image(store).load(), _io.open_image(b / store.name).load()):
            return False
    return True


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller data, two repeats (about a minute)")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--workers", type=int, default=2, help="worker processes of the local cluster")
    args = parser.parse_args(argv)
    repeats = args.repeats or (2 if args.quick else 3)
    folder_shape = (32, 128, 128) if args.quick else (64, 256, 256)
    big_shape = (32, 1024, 1024) if args.quick else (64, 2048, 2048)
    big_chunks = (16, 512, 512)

    from distributed import Client, LocalCluster

    import napari_denoise as nd
    from napari_denoise import _batch

    recipe = nd.Recipe("median", {"size": 0.8}, unit="µm")
    tmp = Path(tempfile.mkdtemp(prefix="napari-denoise-batch-bench-"))
    rows = []
    try:
        folder_bytes = make_folder(tmp / "folder", 16, folder_shape)
        big_bytes = make_big_zarr(tmp / "big.ome.zarr", big_shape, big_chunks)
        # compile the kernels once here (workers load them from numba's cache)
        nd.apply_recipe(recipe, np.zeros((8, 16, 16), np.uint16), spacing=SCALE)
        t0 = time.perf_counter()
        cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
        startup = time.perf_counter() - t0
        local, remote = _batch.LocalEngine(), _batch.ClusterEngine(client)
        cases = [
            ("16-file folder", [tmp / "folder"], folder_bytes, f"16 × {'×'.join(map(str, folder_shape))} uint16 OME-TIFF", None),
            ("larger-than-memory Zarr", [tmp / "big.ome.zarr"], big_bytes,
             f"{'×'.join(map(str, big_shape))} uint16 OME-Zarr, chunks {'×'.join(map(str, big_chunks))}",
             str(big_bytes // 8)),
        ]
        for name, inputs, nbytes, what, limit in cases:
            times = {"in-process": [], "cluster": []}
            peaks = {"in-process": [], "cluster": []}
            how = {}
            if limit is not None:
                os.environ["NAPARI_DENOISE_MEMORY_LIMIT"] = limit
            try:
                for _ in range(repeats):
                    for label, engine in (("in-process", local), ("cluster", remote)):
                        out = tmp / f"out-{label}"
                        summary, seconds, peak = measured_call(lambda e=engine, o=out: run(recipe, inputs, o, e))
                        times[label].append(seconds)
                        peaks[label].append(peak)
                        how[label] = label
            finally:
                os.environ.pop("NAPARI_DENOISE_MEMORY_LIMIT", None)
            equal = same_outputs(tmp / "out-in-process", tmp / "out-cluster")
            paths = {"in-process": "in memory, threads" if limit is None else "streamed, local threads",
                     "cluster": f"streamed, {args.workers} worker processes"}
            for label in ("in-process", "cluster"):
                t = statistics.median(times[label])
                rows.append((name, what, label, paths[label], t, nbytes / t / 2**20, max(peaks[label]) / 2**20, equal))
        client.close()
        cluster.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    import dask
    import distributed

    print(f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; Python "
          f"{platform.python_version()}, dask {dask.__version__}, distributed {distributed.__version__}.")
    print(f"Command: `python benchmarks/batch.py{' --quick' if args.quick else ''}`; recipe median 0.8 µm "
          f"(3×3×3 voxels), float32 OME-Zarr out; median of {repeats} alternated repeats; cluster start-up "
          f"{startup:.1f} s (not counted). Throughput = input bytes / wall time. Peak = the client process' RSS "
          "growth (the cluster's workers are other processes).")
    print()
    print("| data | path | how | wall time | throughput (input) | client peak RSS growth | outputs equal |")
    print("|---|---|---|---|---|---|---|")
    for name, what, label, path, t, mbps, peak, equal in rows:
        print(f"| {name}: {what} | {label} | {path} | {t:.2f} s | {mbps:.0f} MiB/s | {peak:.0f} MiB | "
              f"{'yes' if equal else 'NO'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
