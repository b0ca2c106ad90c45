"""Measurement helpers shared by the benchmark scripts.

Peak memory: Linux keeps the process' resident-set high-water mark in
``/proc/self/status`` (VmHWM). Writing ``5`` to ``/proc/self/clear_refs``
resets it to the current RSS. Before each measured call we collect garbage,
reset the mark and read VmRSS; after the call ``VmHWM - VmRSS(before)`` is how
much the process grew at its peak during the call, output included. Every
case runs in a fresh subprocess, so one case's allocator state does not leak
into the next.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
if not DATA.is_dir():  # running from a clone elsewhere
    DATA = Path(os.environ.get("NAPARI_DENOISE_DATA", "/work/shared/data"))


def _status() -> dict[str, int]:
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":")
                out[key] = int(value.split()[0]) * 1024
    return out


def rss() -> int:
    return _status()["VmRSS"]


def reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:  # pragma: no cover - not Linux / not permitted
        return False


def measured_call(fn):
    """``(result, seconds, peak_growth_bytes)`` of one call of ``fn()``."""
    gc.collect()
    ok = reset_peak()
    before = rss()
    t0 = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - t0
    peak = _status()["VmHWM"] - before if ok else -1
    return result, seconds, peak


def synthetic(shape, seed=0) -> np.ndarray:
    """Seeded uint16 stack: smooth blobs on a background plus Poisson-like noise."""
    rng = np.random.default_rng(seed)
    out = np.empty(shape, np.uint16)
    # fill plane by plane to keep the generator's own memory small
    base = rng.normal(0, 1, size=(8,) + tuple(shape[1:])).astype(np.float32)
    for z in range(shape[0]):
        plane = 400 + 300 * np.sin(z / 7.0) + 150 * base[z % 8]
        plane += rng.normal(0, 60, size=shape[1:]).astype(np.float32)
        np.clip(plane, 0, 65535, out=plane)
        out[z] = plane.astype(np.uint16)
    return out


def real(name: str) -> np.ndarray:
    import tifffile

    return tifffile.imread(DATA / name)


def load(spec) -> np.ndarray:
    kind, arg = spec
    if kind == "synthetic":
        return synthetic(tuple(arg))
    return real(arg)


def median_of(values):
    return float(np.median(values)) if values else float("nan")


def in_fresh_process(script, *args, timeout=1800) -> dict:
    """Run ``python script *args`` in a new interpreter; its last line of output, as JSON.

    A fresh process per case keeps one case's compiled kernels, allocator
    state and threads out of the next. Raises RuntimeError with the end of
    the child's stderr when it fails.
    """
    proc = subprocess.run([sys.executable, str(script), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=Path(__file__).resolve().parents[1], check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{Path(script).name} {' '.join(map(str, args))} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def load_average() -> list[str]:
    """The 1, 5 and 15 minute load averages (printed with timings: a busy machine skews them)."""
    with open("/proc/loadavg") as f:
        return f.read().split()[:3]
