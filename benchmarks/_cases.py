"""The benchmark cases: ours against the reference libraries on the same data.

Run one case (in its own process, as run.py does)::

    python benchmarks/_cases.py CASE_ID [--quick] [--repeats N]

prints one JSON line: median seconds of ours and of each baseline (calls
interleaved, same process, same data), peak memory growth of each, and how the
results agree.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import load, measured_call, median_of  # noqa: E402

F32 = np.float32


def _nd():
    from scipy import ndimage

    return ndimage


def _ours():
    import napari_denoise as nd

    return nd


# -- reference implementations ("baselines") ---------------------------------------
def nd_gaussian(a, sigma):
    return _nd().gaussian_filter(a, sigma, output=F32)


def sk_gaussian(a, sigma):
    from skimage import filters

    return filters.gaussian(a, sigma=sigma)  # defaults: float64 in [0, 1], mode 'nearest'


def nd_median(a, size):
    return _nd().median_filter(a, size=size)


def nd_uniform(a, size):
    return _nd().uniform_filter(a, size, output=F32)


def nd_sobel_magnitude(a):
    """sqrt(mean_i g_i^2) from ndimage.sobel (float32 output), normalised like skimage."""
    ndi = _nd()
    total = None
    for axis in range(a.ndim):
        g = ndi.sobel(a, axis=axis, output=F32)
        np.square(g, out=g)
        total = g if total is None else total + g
    total /= F32(a.ndim * 4 ** (2 * (a.ndim - 1)))
    return np.sqrt(total, out=total)


def sk_sobel(a):
    from skimage import filters

    return filters.sobel(a.astype(F32), mode="reflect")


def nd_gradient_magnitude(a, sigma):
    return _nd().gaussian_gradient_magnitude(a, sigma, output=F32)


def sk_estimate_sigma(a):
    from skimage.restoration import estimate_sigma

    return estimate_sigma(a)


def sk_nlm(a, h, sigma):
    from skimage import restoration

    return restoration.denoise_nl_means(
        a.astype(F32), h=h, sigma=sigma, patch_size=5, patch_distance=6, fast_mode=True,
        preserve_range=True, channel_axis=None,
    )


# -- agreement ---------------------------------------------------------------------
def agreement(ours, ref, kind):
    ours = np.asarray(ours, np.float64)
    ref = np.asarray(ref, np.float64)
    scale = max(1e-30, float(np.abs(ref).max()))
    diff = float(np.abs(ours - ref).max())
    identical = bool(np.array_equal(ours, ref))
    if kind == "identical":
        ok = identical
        text = "identical" if identical else f"max |diff| {diff:.3g}"
    else:
        ok = diff <= kind * scale
        text = "identical" if identical else f"max |diff| {diff / scale:.1e} of range"
    return {"ok": ok, "text": text}


# -- cases --------------------------------------------------------------------------
SYN_M = ("synthetic", (64, 512, 512))
SYN_L = ("synthetic", (128, 1024, 1024))
SYN_S = ("synthetic", (32, 256, 256))
CELLS = ("real", "cells3d_nuclei.tif")
NUCLEI = ("real", "nuclei_2d.tif")
ZEBRA = ("real", "timelapse_2d.tif")


def _case(label, data, ours, baselines, quick_data=None, target=None, repeats=None):
    return {
        "label": label, "data": data, "quick_data": quick_data or data, "ours": ours,
        "baselines": baselines, "target": target or {}, "repeats": repeats,
    }


S = (1, 2, 2)

CASES = {
    "gaussian": _case(
        "gaussian σ=(1,2,2)", SYN_M,
        lambda a: _ours().gaussian(a, S),
        [
            ("ndimage.gaussian_filter f32", lambda a: nd_gaussian(a, S), "identical", None),
            ("skimage.filters.gaussian", lambda a: sk_gaussian(a, S), 1e-6,
             lambda a: _ours().gaussian(a, S, mode="nearest") / F32(65535)),
        ],
        target={"ndimage.gaussian_filter f32": 1.8, "skimage.filters.gaussian": 2.5},
    ),
    "gaussian_large": _case(
        "gaussian σ=(1,2,2)", SYN_L,
        lambda a: _ours().gaussian(a, S),
        [("ndimage.gaussian_filter f32", lambda a: nd_gaussian(a, S), "identical", None)],
        quick_data=SYN_M, target={"ndimage.gaussian_filter f32": 1.8}, repeats=5,
    ),
    "gaussian_cells3d": _case(
        "gaussian σ=(1,2,2)", CELLS,
        lambda a: _ours().gaussian(a, S),
        [("ndimage.gaussian_filter f32", lambda a: nd_gaussian(a, S), "identical", None)],
    ),
    "gaussian_small": _case(
        "gaussian σ=(1,2,2)", SYN_S,
        lambda a: _ours().gaussian(a, S),
        [("ndimage.gaussian_filter f32", lambda a: nd_gaussian(a, S), "identical", None)],
    ),
    "median3d": _case(
        "median 3×3×3", SYN_M,
        lambda a: _ours().median(a, 3),
        [("ndimage.median_filter", lambda a: nd_median(a, 3), "identical", None)],
        quick_data=("synthetic", (16, 512, 512)), target={"ndimage.median_filter": 3.0}, repeats=3,
    ),
    "median3d_cells3d": _case(
        "median 3×3×3", CELLS,
        lambda a: _ours().median(a, 3),
        [("ndimage.median_filter", lambda a: nd_median(a, 3), "identical", None)],
        target={"ndimage.median_filter": 3.0},
    ),
    "median2d": _case(
        "median 5×5 per plane", SYN_M,
        lambda a: _ours().median(a, 5, spatial_axes=(1, 2)),
        [("ndimage.median_filter", lambda a: nd_median(a, (1, 5, 5)), "identical", None)],
        quick_data=("synthetic", (16, 512, 512)), target={"ndimage.median_filter": 3.0}, repeats=3,
    ),
    "median2d_nuclei": _case(
        "median 5×5 (2-D)", NUCLEI,
        lambda a: _ours().median(a, 5),
        [("ndimage.median_filter", lambda a: nd_median(a, 5), "identical", None)],
        target={"ndimage.median_filter": 3.0},
    ),
    "mean": _case(
        "mean 3×3×3", SYN_M,
        lambda a: _ours().mean(a, 3),
        [("ndimage.uniform_filter f32", lambda a: nd_uniform(a, 3), "identical", None)],
        target={"ndimage.uniform_filter f32": 1.8},
    ),
    "mean_timelapse": _case(
        "mean 5×5 per frame", ZEBRA,
        lambda a: _ours().mean(a, 5, spatial_axes=(1, 2)),
        [("ndimage.uniform_filter f32", lambda a: nd_uniform(a, (1, 5, 5)), "identical", None)],
        target={"ndimage.uniform_filter f32": 1.8},
    ),
    "sobel": _case(
        "sobel (3-D magnitude)", SYN_M,
        lambda a: _ours().sobel(a),
        [
            ("ndimage.sobel ×3 f32", nd_sobel_magnitude, 1e-6, None),
            ("skimage.filters.sobel", sk_sobel, 1e-6, None),
        ],
        target={"ndimage.sobel ×3 f32": 1.8},
    ),
    "gradient_magnitude": _case(
        "gradient magnitude σ=1", SYN_M,
        lambda a: _ours().gradient_magnitude(a, 1.0),
        [("ndimage.gaussian_gradient_magnitude f32", lambda a: nd_gradient_magnitude(a, 1.0),
          "identical", None)],
        target={"ndimage.gaussian_gradient_magnitude f32": 1.8},
    ),
    "estimate_noise": _case(
        "noise level (wavelet MAD)", SYN_M,
        lambda a: _ours().estimate_noise(a),
        [("skimage estimate_sigma", sk_estimate_sigma, "identical", None)],
    ),
    "nlm3d": _case(
        "non-local means 3-D fast", SYN_S,
        lambda a: _ours().non_local_means(a, h=0.8 * 60.0, sigma=60.0),
        [("skimage denoise_nl_means", lambda a: sk_nlm(a, 0.8 * 60.0, 60.0), 1e-4, None)],
        quick_data=("synthetic", (16, 128, 128)), target={"skimage denoise_nl_means": 1.8},
        repeats=3,
    ),
}


def run_case(case_id, quick=False, repeats=None):
    case = CASES[case_id]
    data = load(case["quick_data"] if quick else case["data"])
    ours = case["ours"]
    # warm-up on a small corner: imports and, on a fresh install, JIT compilation
    corner = data[tuple(slice(0, min(n, 16)) for n in data.shape)]
    _, first_call, _ = measured_call(lambda: ours(corner))
    n = repeats or case["repeats"] or (3 if quick else 5)
    times = {"ours": []}
    peaks = {"ours": []}
    results = {}
    for label, *_ in case["baselines"]:
        times[label] = []
        peaks[label] = []
    for round_ in range(n):
        result, seconds, peak = measured_call(lambda: ours(data))
        times["ours"].append(seconds)
        peaks["ours"].append(peak)
        if round_ == 0:
            results["ours"] = result
        del result
        for label, fn, _kind, _transform in case["baselines"]:
            result, seconds, peak = measured_call(lambda: fn(data))
            times[label].append(seconds)
            peaks[label].append(peak)
            if round_ == 0:
                results[label] = result
            del result
    checks = {}
    for label, _fn, kind, transform in case["baselines"]:
        mine = results["ours"] if transform is None else transform(data)
        checks[label] = agreement(mine, results[label], kind)
    out_bytes = data.size * 4
    return {
        "case": case_id,
        "label": case["label"],
        "shape": list(data.shape),
        "dtype": str(data.dtype),
        "data": case["quick_data"][1] if quick else case["data"][1],
        "repeats": n,
        "first_call_small": first_call,
        "median": {k: median_of(v) for k, v in times.items()},
        "times": times,
        "peak": {k: max(v) for k, v in peaks.items()},
        "output_bytes": out_bytes,
        "checks": checks,
        "target": case["target"],
    }


# -- memory on the large stack (ours only, one call per fresh process) ---------------------
MEMORY_CASES = {
    "gaussian": lambda a: _ours().gaussian(a, S),
    "mean": lambda a: _ours().mean(a, 3),
    "median": lambda a: _ours().median(a, 3),
    "sobel": lambda a: _ours().sobel(a),
    "gradient_magnitude": lambda a: _ours().gradient_magnitude(a, 1.0),
}


def run_memory(name, quick=False):
    data = load(SYN_M if quick else SYN_L)
    fn = MEMORY_CASES[name]
    fn(data[:4, :32, :32])
    _, seconds, peak = measured_call(lambda: fn(data))
    return {"memory_case": name, "shape": list(data.shape), "seconds": seconds, "peak": peak,
            "output_bytes": data.size * 4}


if __name__ == "__main__":
    args = sys.argv[1:]
    quick = "--quick" in args
    repeats = None
    if "--repeats" in args:
        repeats = int(args[args.index("--repeats") + 1])
    if "--memory" in args:
        name = args[args.index("--memory") + 1]
        print(json.dumps(run_memory(name, quick=quick)))
    else:
        case_id = next(a for a in args if not a.startswith("--") and a in CASES)
        print(json.dumps(run_case(case_id, quick=quick, repeats=repeats)))

