"""Cancel stops the computation itself, for every filter (#11, point 7).

Each filter is started on a run that takes several seconds, in a thread, as
the widgets do; the run is cancelled once its kernels are working, and the
thread (with every pool and kernel thread the run started) must be gone within
about a second. Kernels of whole slices (total variation, wavelet, Canny,
non-local means, block matching) are given one large slice, so that a kernel
that did not poll the cancel flag would keep the run going for seconds.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

import napari_denoise as nd
from napari_denoise._scheduler import POOL_THREAD_PREFIX, Cancelled

from _numeric_helpers import FILTERS

#: Seconds from Cancel until the run's threads have ended: the issue's one.
#: Tiles are sized to ~0.25 s, library calls are cut into ~0.1 s pieces, the
#: kernels and the noise estimates that run longer poll the flag. A single
#: timing on a loaded 2-core CI machine (the whole suite running) can stall
#: for a while, so each case takes the MEDIAN OF 3 ATTEMPTS (stopping as soon
#: as two agree on the verdict): one slow attempt does not fail it, a filter
#: that ignores Cancel does.
CANCEL_SECONDS = 1.0
ATTEMPTS = 3
#: Cancel this long after the kernels started.
RUNNING_SECONDS = 0.2

#: Per filter: the image shape and keyword arguments of a run taking several seconds.
LONG_RUNS = {
    "gaussian": ((96, 512, 512), {"sigma": 40.0}),
    # a running sum, as fast for any size: 0.2 s for 160 planes on an idle machine, too short to cancel
    "mean": ((384, 512, 512), {"size": 61}),
    "median": ((48, 256, 256), {"size": 15}),
    "bilateral": ((48, 256, 256), {"sigma_spatial": 6.0, "sigma_intensity": 60.0}),
    "total_variation": ((1, 1024, 1024), {"max_num_iter": 2000, "eps": 1e-12, "spatial_axes": (1, 2)}),
    "wavelet": ((8, 2048, 2048), {"sigma": 30.0, "spatial_axes": (1, 2)}),
    "non_local_means": ((1, 1024, 1024), {"patch_distance": 20, "spatial_axes": (1, 2)}),
    "block_matching": ((1, 1024, 1024), {"spatial_axes": (1, 2)}),
    "sobel": ((160, 512, 512), {}),
    "scharr": ((160, 512, 512), {}),
    "prewitt": ((160, 512, 512), {}),
    "laplace": ((160, 512, 512), {}),
    "gradient_magnitude": ((48, 256, 256), {"sigma": 40.0}),
    "laplacian_of_gaussian": ((48, 256, 256), {"sigma": 40.0}),
    "difference_of_gaussians": ((48, 256, 256), {"low_sigma": 20.0}),
    "canny": ((1, 2048, 2048), {"sigma": 60.0, "spatial_axes": (1, 2)}),
}
#: The Anscombe-wrapped runs (noise_model='poisson') of the edge-preserving denoisers.
STABILISED = ["total_variation", "non_local_means", "block_matching"]
#: Runs that start by estimating the noise of one large slice (the default of
#: every edge-preserving denoiser: a fitted noise model, noise_model='auto',
#: and the noise level): 1.5-4 s for 4096 x 4096 on a loaded 2-core machine,
#: cancelled while it runs.
ESTIMATING = {
    "wavelet": ("wavelet", (1, 4096, 4096), {"spatial_axes": (1, 2)}),
    "bilateral": ("bilateral", (1, 4096, 4096), {"spatial_axes": (1, 2)}),
    "total_variation poisson": ("total_variation", (1, 4096, 4096), {"spatial_axes": (1, 2), "noise_model": "poisson"}),
    "wavelet 3-D": ("wavelet", (256, 256, 256), {}),
}


def test_every_filter_has_a_long_run():
    assert set(LONG_RUNS) == set(FILTERS)


def _run_threads():
    return [t for t in threading.enumerate() if t.name.startswith(POOL_THREAD_PREFIX)]


def _cancel_latency(name, shape, kwargs):
    image = np.random.default_rng(1).standard_normal(shape, dtype=np.float32)
    image *= 30.0
    image += 1000.0
    cancel = threading.Event()
    working = threading.Event()
    outcome = {}

    def progress(done, total):
        working.set()  # the output is allocated and tiles are submitted

    def target():
        try:
            getattr(nd, name)(image, **kwargs, workers=2, progress=progress, cancel=cancel.is_set)
            outcome["finished"] = True
        except Cancelled:
            outcome["cancelled"] = True
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            outcome["error"] = exc

    thread = threading.Thread(target=target, name=f"test-cancel-{name}")
    thread.start()
    assert working.wait(60), f"{name}: the run did not start"
    time.sleep(RUNNING_SECONDS)
    started = time.perf_counter()
    cancel.set()
    thread.join(30)
    latency = time.perf_counter() - started
    # threads the kernels started end with their tile (Team is a context manager)
    while _run_threads() and time.perf_counter() - started < 30:
        time.sleep(0.01)
    latency = max(latency, time.perf_counter() - started)
    return latency, outcome


def _median_cancel_latency(name, shape, kwargs):
    """Median latency of up to :data:`ATTEMPTS` runs (fewer once the verdict is sure)."""
    latencies = []
    for _ in range(ATTEMPTS):
        latency, outcome = _cancel_latency(name, shape, kwargs)
        assert "error" not in outcome, outcome.get("error")
        assert outcome.get("cancelled"), f"{name}: the run finished before Cancel; make the run longer"
        latencies.append(latency)
        within = sum(t <= CANCEL_SECONDS for t in latencies)
        if within > ATTEMPTS // 2 or len(latencies) - within > ATTEMPTS // 2:
            break
    return sorted(latencies)[len(latencies) // 2], latencies


@pytest.mark.parametrize(
    "name, noise_model",
    [(name, None) for name in sorted(LONG_RUNS)] + [(name, "poisson") for name in STABILISED],
)
def test_cancel_stops_the_computation_within_a_second(name, noise_model):
    shape, kwargs = LONG_RUNS[name]
    if noise_model is not None:
        kwargs = {**kwargs, "noise_model": noise_model}
    latency, attempts = _median_cancel_latency(name, shape, kwargs)
    print(f"{name} noise_model={noise_model}: threads ended {attempts} s after Cancel")
    assert latency <= CANCEL_SECONDS, f"{name}: threads kept working {attempts} s after Cancel"


@pytest.mark.parametrize("case", sorted(ESTIMATING))
def test_cancel_while_estimating_the_noise_of_a_large_slice(case):
    name, shape, kwargs = ESTIMATING[case]
    latency, attempts = _median_cancel_latency(name, shape, kwargs)
    print(f"{case} (estimating): threads ended {attempts} s after Cancel")
    assert latency <= CANCEL_SECONDS, f"{case}: threads kept working {attempts} s after Cancel"
