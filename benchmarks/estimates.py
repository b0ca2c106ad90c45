"""Run-time estimates against measured times, for the widgets' defaults.

The widgets show ``estimate_run(op, shape)`` before Run (and ask for a second
press above 30 s); this checks it against the time the run really takes on
this machine, per filter, at the widget's default parameters on the 3-D
nuclei sample (60×256×256 uint16, 0.29/0.26/0.26 µm).

``python benchmarks/estimates.py [--workers N] [--crop Z] [filter ...]``

Prints, per filter: the estimate, the wall time of a run through the
scheduler, their ratio, the CPU time per voxel (summed over threads, with
the halo recomputed by tiles that compute over it) against ``Cost.seconds``,
and the longest stretch without progress (how long the bar sat still).
A ratio far from 1 means ``Cost.seconds`` of that filter needs calibrating.
"""

from __future__ import annotations

import argparse
import inspect
import resource
import sys
import time

import numpy as np

import napari_denoise as nd
from napari_denoise import _scheduler
from napari_denoise._registry import FILTERS, default_voxels
from napari_denoise._run_time import estimate_run
from napari_denoise._sample_data import noisy_nuclei_3d


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _kwargs(spec, spacing):
    finest = min(spacing)
    kwargs = {name: n * finest for name, n in default_voxels(spec).items()}
    if "spacing" in inspect.signature(spec.function.op).parameters:
        kwargs["spacing"] = spacing
    return kwargs


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("filters", nargs="*", help="filter names (default: all)")
    parser.add_argument("--workers", type=int, default=None, help="threads (default: every core)")
    parser.add_argument("--crop", type=int, default=None, help="use the first Z planes only")
    args = parser.parse_args(argv)
    data, meta, _ = noisy_nuclei_3d()[0]
    if args.crop:
        data = np.ascontiguousarray(data[: args.crop])
    spacing = meta["scale"]
    wanted = [s for s in FILTERS if not args.filters or s.name in args.filters]
    print(f"image {data.shape} {data.dtype}; workers {args.workers or _scheduler.default_workers()}")
    header = ("filter", "estimate", "measured", "measured/est", "CPU ns/voxel", "Cost ns/voxel", "longest still")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for spec in wanted:
        kwargs = _kwargs(spec, spacing)
        op = spec.function.op(data, **kwargs)
        estimate = estimate_run(op, data.shape, args.workers)
        spec.function(data[:4, :32, :32], **kwargs)  # compile (numba) outside the timing
        steps = []
        cpu0, t0 = _cpu(), time.perf_counter()
        run = _scheduler.steps(op, data, workers=args.workers)
        try:
            while True:
                steps.append((time.perf_counter() - t0, next(run)[0]))
        except StopIteration:
            pass
        wall, cpu = time.perf_counter() - t0, _cpu() - cpu0
        still, last_time, last_done = 0.0, 0.0, None
        for when, done in steps:
            if done != last_done:
                still, last_time, last_done = max(still, when - last_time), when, done
        still = max(still, wall - last_time)
        # voxels the cost model charges: tiles with their halo for over-halo kernels
        charged = estimate.seconds * estimate.workers / op.cost.seconds if op.cost.seconds else data.size
        print(f"| {spec.name} | {estimate.seconds:.2f} s | {wall:.2f} s | {wall / estimate.seconds:.2f} | "
              f"{1e9 * cpu / charged:.3g} | {1e9 * op.cost.seconds:.3g} | {still:.2f} s |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
