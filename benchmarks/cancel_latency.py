"""Seconds from Cancel until no thread of the run is working, per filter (#11, point 7).

Each case starts a run that takes several seconds, in a thread as the widgets
do, cancels it ``delay`` seconds after it started (0.2, 0.8 and 1.6 s: the
three attempts land in different stages, e.g. the noise estimate and the
kernels) and measures until the run's thread and every pool thread it started
have ended. Prints one table row per case: the median and the largest of the
three attempts.

Baseline against a candidate, alternated case by case (each in its own
process, so that both import their own ``napari_denoise``)::

    python benchmarks/cancel_latency.py --baseline /path/to/old/src --candidate src

or one tree only: ``python benchmarks/cancel_latency.py --candidate src``.
``--only NAME`` (repeatable) keeps the cases whose label starts with NAME.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time

#: label -> (filter, image shape, keyword arguments). Inputs are float32
#: N(1000, 30²) noise. Images with a leading axis of 1 and spatial_axes (1, 2)
#: are one 2-D slice (filters of whole slices get one large one).
CASES = {
    "gaussian": ("gaussian", (96, 512, 512), {"sigma": 40.0}),
    "gaussian wrap (scipy)": ("gaussian", (96, 512, 512), {"sigma": 40.0, "mode": "wrap"}),
    "mean": ("mean", (32, 512, 512), {"size": 1001}),  # longer than the image: folded weights
    "mean wrap (scipy)": ("mean", (160, 512, 512), {"size": 61, "mode": "wrap"}),
    "median": ("median", (48, 256, 256), {"size": 15}),
    "median wrap (scipy)": ("median", (48, 256, 256), {"size": 9, "mode": "wrap"}),
    "bilateral": ("bilateral", (48, 256, 256), {"sigma_spatial": 6.0, "sigma_intensity": 60.0}),
    "bilateral 2-D estimating": ("bilateral", (1, 4096, 4096), {"spatial_axes": (1, 2)}),
    "bilateral 3-D estimating": ("bilateral", (256, 256, 256), {}),
    "bilateral 2-D poisson": ("bilateral", (1, 4096, 4096), {"spatial_axes": (1, 2), "noise_model": "poisson"}),
    "total_variation": ("total_variation", (1, 1024, 1024),
                        {"max_num_iter": 2000, "eps": 1e-12, "spatial_axes": (1, 2)}),
    "total_variation poisson": ("total_variation", (1, 1024, 1024),
                                {"max_num_iter": 2000, "eps": 1e-12, "spatial_axes": (1, 2), "noise_model": "poisson"}),
    "total_variation 2-D estimating": ("total_variation", (1, 4096, 4096), {"spatial_axes": (1, 2)}),
    "wavelet": ("wavelet", (8, 2048, 2048), {"sigma": 30.0, "spatial_axes": (1, 2)}),
    "wavelet db4 (pywt)": ("wavelet", (8, 2048, 2048), {"sigma": 30.0, "wavelet_name": "db4", "spatial_axes": (1, 2)}),
    "wavelet 2-D estimating": ("wavelet", (1, 4096, 4096), {"spatial_axes": (1, 2)}),
    "wavelet 3-D estimating": ("wavelet", (256, 256, 256), {}),
    "wavelet 2-D poisson": ("wavelet", (1, 4096, 4096), {"spatial_axes": (1, 2), "noise_model": "poisson"}),
    "non_local_means": ("non_local_means", (1, 1024, 1024), {"patch_distance": 20, "spatial_axes": (1, 2)}),
    "non_local_means poisson": ("non_local_means", (1, 1024, 1024),
                                {"patch_distance": 20, "spatial_axes": (1, 2), "noise_model": "poisson"}),
    "non_local_means slow": ("non_local_means", (1, 1024, 1024), {"fast_mode": False, "spatial_axes": (1, 2)}),
    "non_local_means 2-D estimating": ("non_local_means", (1, 4096, 4096), {"spatial_axes": (1, 2)}),
    "block_matching": ("block_matching", (1, 1024, 1024), {"spatial_axes": (1, 2)}),
    "block_matching poisson": ("block_matching", (1, 1024, 1024), {"spatial_axes": (1, 2), "noise_model": "poisson"}),
    "block_matching 2-D estimating": ("block_matching", (1, 4096, 4096), {"spatial_axes": (1, 2)}),
    "block_matching 3-D": ("block_matching", (64, 256, 256), {}),
    "sobel": ("sobel", (160, 512, 512), {}),
    "sobel wrap (scipy)": ("sobel", (160, 512, 512), {"mode": "wrap"}),
    "scharr": ("scharr", (160, 512, 512), {}),
    "prewitt": ("prewitt", (160, 512, 512), {}),
    "laplace": ("laplace", (160, 512, 512), {}),
    "gradient_magnitude": ("gradient_magnitude", (48, 256, 256), {"sigma": 40.0}),
    "gradient_magnitude wrap (scipy)": ("gradient_magnitude", (48, 256, 256), {"sigma": 40.0, "mode": "wrap"}),
    "laplacian_of_gaussian": ("laplacian_of_gaussian", (48, 256, 256), {"sigma": 40.0}),
    "difference_of_gaussians": ("difference_of_gaussians", (48, 256, 256), {"low_sigma": 20.0}),
    "canny": ("canny", (1, 2048, 2048), {"sigma": 60.0, "spatial_axes": (1, 2)}),
    "canny wrap (scipy)": ("canny", (1, 2048, 2048), {"sigma": 60.0, "mode": "wrap", "spatial_axes": (1, 2)}),
}
DELAYS = (0.2, 0.8, 1.6)


def cancel_latency(name, shape, kwargs, delay):
    """Seconds from Cancel to the end of the run's threads, and how the run ended."""
    import numpy as np

    import napari_denoise as nd
    from napari_denoise._scheduler import POOL_THREAD_PREFIX, Cancelled

    image = np.random.default_rng(1).standard_normal(shape, dtype=np.float32)
    image *= 30.0
    image += 1000.0
    cancel = threading.Event()
    working = threading.Event()
    outcome = {}

    def target():
        try:
            getattr(nd, name)(image, **kwargs, workers=2, progress=lambda d, t: working.set(), cancel=cancel.is_set)
            outcome["finished"] = True
        except Cancelled:
            outcome["cancelled"] = True
        except BaseException as exc:  # noqa: BLE001 - reported
            outcome["error"] = repr(exc)

    thread = threading.Thread(target=target)
    thread.start()
    while not working.wait(0.01) and thread.is_alive():
        pass
    time.sleep(delay)
    started = time.perf_counter()
    cancel.set()
    thread.join(120)
    while any(t.name.startswith(POOL_THREAD_PREFIX) for t in threading.enumerate()):
        if time.perf_counter() - started > 120:
            break
        time.sleep(0.005)
    return time.perf_counter() - started, outcome


def _measure(label):
    name, shape, kwargs = CASES[label]
    cancel_latency(name, (1, 64, 64), {k: v for k, v in kwargs.items() if k not in ("spatial_axes",)}
                   | {"spatial_axes": (1, 2)}, 0.0)  # compile / load the kernels first
    results = [cancel_latency(name, shape, kwargs, delay) for delay in DELAYS]
    print(json.dumps({"latencies": [r[0] for r in results], "outcomes": [r[1] for r in results]}))


def _run(label, source):
    env = dict(os.environ, PYTHONPATH=os.path.abspath(source))
    done = subprocess.run([sys.executable, __file__, "--measure", label], env=env, capture_output=True, text=True,
                          check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        return None, done.stderr[-300:]
    data = json.loads(lines[-1])
    bad = [o for o in data["outcomes"] if not o.get("cancelled")]
    return data["latencies"], (str(bad[0]) if bad else "")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline")
    parser.add_argument("--candidate", default="src")
    parser.add_argument("--only", action="append")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        return _measure(args.measure)
    labels = [lab for lab in CASES if not args.only or any(lab.startswith(o) for o in args.only)]
    trees = [("baseline", args.baseline)] if args.baseline else []
    trees.append(("candidate", args.candidate))
    header = " | ".join(f"{t} median (max) s" for t, _ in trees)
    print(f"| case | {header} | note |")
    print("|---" * (len(trees) + 2) + "|")
    for label in labels:
        cells, notes = [], []
        for tree, source in trees:  # alternated case by case
            latencies, note = _run(label, source)
            cells.append("failed" if latencies is None else
                         f"{statistics.median(latencies):.3f} ({max(latencies):.3f})")
            if note:
                notes.append(f"{tree}: {note}")
        print(f"| {label} | {' | '.join(cells)} | {'; '.join(notes)} |", flush=True)


if __name__ == "__main__":
    main()
