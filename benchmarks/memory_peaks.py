"""Peak memory of every filter against the memory guard's estimate.

Each filter runs in its own process on a (32, 256, 512) uint16 stack (16 MiB
float32 output) filtered as one volume, then as 32 planes (``spatial_axes=(1, 2)``:
a time-lapse, one noise estimate per plane), after a warm-up on a small crop (imports, compiled-kernel
cache); the peak is the growth of the process's resident high-water mark
(VmHWM, reset through /proc/self/clear_refs) during the run. Linux only.

    python benchmarks/memory_peaks.py [name ...]

prints one row per filter: peak / output, peak / estimate (the guard must not
underestimate: the tests require peak <= 1.25 x estimate).
"""

from __future__ import annotations

import json
import subprocess
import sys

SHAPE = (32, 256, 512)
#: quick settings where the parameters do not change the memory held
KWARGS = {
    "total_variation": {"max_num_iter": 20},
    "non_local_means": {"patch_size": 3, "patch_distance": 2},
}

CHILD = r"""
import gc, json, sys
import numpy as np
import napari_denoise as nd
from napari_denoise import _memory
from napari_denoise._scheduler import default_workers, tile_layout

name, kwargs, shape = sys.argv[1], json.loads(sys.argv[2]), tuple(json.loads(sys.argv[3]))
kwargs.update(json.loads(sys.argv[4]))
a = np.random.default_rng(0).integers(0, 4000, shape).astype(np.uint16)
fn = getattr(nd, name)
fn(a[:2, :24, :24], **kwargs)
gc.collect()

def status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    return 0

with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
before = status("VmRSS:")
out = fn(a, **kwargs)
peak = status("VmHWM:") - before
workers = default_workers()
op = fn.op(a, **kwargs)
estimate = _memory.estimate_memory(op, a, tile_layout(op, a.shape, workers), workers)
print(json.dumps({"peak": peak, "estimate": estimate, "out": out.nbytes}))
"""


LAYOUTS = {"volume": {}, "planes": {"spatial_axes": [1, 2]}}


def measure(name: str, layout: str = "volume", shape=SHAPE) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", CHILD, name, json.dumps(KWARGS.get(name, {})), json.dumps(shape),
         json.dumps(LAYOUTS[layout])],
        capture_output=True, text=True, check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(names):
    import napari_denoise as nd

    names = names or [n for n in nd.filters.__all__ if n != "estimate_noise"]
    print(f"{'filter':24s} {'layout':7s} {'peak MiB':>9s} {'estimate MiB':>13s} {'peak/out':>9s} {'peak/estimate':>14s}")
    for name in names:
        for layout in LAYOUTS:
            m = measure(name, layout)
            print(
                f"{name:24s} {layout:7s} {m['peak'] / 2**20:9.1f} {m['estimate'] / 2**20:13.1f} "
                f"{m['peak'] / m['out']:9.2f} {m['peak'] / m['estimate']:14.2f}"
            )


if __name__ == "__main__":
    main(sys.argv[1:])
