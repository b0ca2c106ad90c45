"""Edge-preserving denoisers against scikit-image, with thread scaling and peak memory.

    python benchmarks/denoisers.py                 # every case (about 10 minutes on 2 cores)
    python benchmarks/denoisers.py --quick         # smaller data, fewer repeats
    python benchmarks/denoisers.py tv3d bilateral  # only these cases

Each case runs in a fresh process (``--case ID`` runs one and prints a JSON
line): ours on every core (``workers=N``, N = the cores this process may
use), ours on one thread (``workers=1``) and the scikit-image call are timed
alternately on the same data, ``repeats`` times; the table gives medians,
the ratio scikit-image / ours, the scaling ours(1 thread) / ours(N threads),
the CPU time (all threads) of ours on N threads over ours on one (the
parallel overhead: N / this is the scaling a machine with N idle cores can
reach; on a loaded machine the wall-clock scaling is not measurable, see
RESULTS.md),
the peak growth of resident memory during a call (VmHWM, see _harness.py) as
a multiple of the float32 output, and how the results agree.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _harness import in_fresh_process, load_average, measured_call, median_of, synthetic  # noqa: E402

F32 = np.float32
NOISE = 60.0  # standard deviation of the synthetic data's noise (see _harness.synthetic)


def _nd():
    import napari_denoise as nd

    return nd


def _plane(shape):
    """One seeded synthetic 2-D plane (uint16)."""
    return synthetic((1,) + tuple(shape))[0]


def _corrected_skimage_bilateral():
    """skimage 0.26 builds its spatial table on a grid one point too long (see tests):
    use the table it means to build, so that results can be compared (same cost)."""
    from skimage.restoration import _denoise as sk_denoise

    def table(win_size, sigma, *, dtype=float):
        grid = np.arange(-(win_size // 2), win_size // 2 + 1)
        rr, cc = np.meshgrid(grid, grid, indexing="ij")
        return sk_denoise._gaussian_weight(np.hypot(rr, cc), sigma**2, dtype=dtype).ravel()

    sk_denoise._compute_spatial_lut = table


def sk_nlm(a, h, fast_mode):
    from skimage import restoration

    return restoration.denoise_nl_means(a.astype(F32), h=h, sigma=NOISE, patch_size=5, patch_distance=6,
                                        fast_mode=fast_mode, preserve_range=True, channel_axis=None)


def sk_tv(a, weight):
    from skimage import restoration

    return restoration.denoise_tv_chambolle(a.astype(F32), weight=weight)


def sk_bilateral(a, sigma_color):
    from skimage import restoration

    _corrected_skimage_bilateral()
    # skimage's window: w = 2 * radius + 1 with radius max(2, ceil(3 sigma)) = 3
    return restoration.denoise_bilateral(a.astype(F32), win_size=7, sigma_color=sigma_color, sigma_spatial=1.0,
                                         mode="reflect")


def sk_wavelet(a, sigma, wavelet="db1"):
    import warnings

    from skimage import restoration

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if a.ndim == 3 and a.shape[0] == 30:  # the time-lapse: frame by frame, as scikit-image must
            return np.stack([restoration.denoise_wavelet(f.astype(F32), sigma=sigma, rescale_sigma=True) for f in a])
        return restoration.denoise_wavelet(a.astype(F32), sigma=sigma, wavelet=wavelet, rescale_sigma=True)


def sk_cycle_spin(a, sigma):
    """scikit-image's cycle spinning of its wavelet denoiser over shifts 0 and 1 per axis (its
    default ``workers``: the shifts on every core through dask), what our default call computes."""
    import warnings

    from skimage import restoration

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return restoration.cycle_spin(a.astype(F32), restoration.denoise_wavelet, max_shifts=1, channel_axis=None,
                                      func_kw={"sigma": sigma, "wavelet": "db1", "rescale_sigma": True})


def _wavelet_cycle_spun(kind, full, quick, repeats):
    """A case of the default wavelet call (cycle-spun) with σ given, against scikit-image's ``cycle_spin``."""
    return (
        f"wavelet {kind} (db1, BayesShrink, σ given, cycle-spun)",
        (full, quick),
        lambda a, w: _nd().wavelet(a, sigma=NOISE, noise_model="gaussian", workers=w),
        lambda a: sk_cycle_spin(a, NOISE),
        1e-5, 1.0, repeats,
    )


def _timelapse():
    import tifffile

    from _harness import DATA

    return tifffile.imread(DATA / "timelapse_2d.tif")


def _wavelet_given_sigma(kind, full, quick, repeats, wavelet="db1"):
    """A case of the wavelet with σ given, like for like with scikit-image (no cycle spinning)."""
    return (
        f"wavelet {kind} ({wavelet}, BayesShrink, σ given)",
        (full, quick),
        lambda a, w: _nd().wavelet(a, sigma=NOISE, wavelet_name=wavelet, noise_model="gaussian", cycle_spin=False,
                                   workers=w),
        lambda a: sk_wavelet(a, NOISE, wavelet),
        1e-5, 1.0, repeats,
    )


# id: label, data (full, quick), ours(a, workers), skimage(a), tolerance (relative to the range), target, repeats
CASES = {
    "nlm3d": (
        "non-local means 3-D, fast mode (patch 5, distance 6)",
        (lambda: synthetic((32, 256, 256)), lambda: synthetic((16, 128, 128))),
        lambda a, w: _nd().non_local_means(a, h=0.8 * NOISE, sigma=NOISE, noise_model="gaussian", workers=w),
        lambda a: sk_nlm(a, 0.8 * NOISE, True),
        1e-5, 4.0, 3,
    ),
    "nlm2d_slow": (
        "non-local means 2-D, slow mode (patch 5, distance 6)",
        (lambda: _plane((512, 512)), lambda: _plane((192, 192))),
        lambda a, w: _nd().non_local_means(a, h=1.15 * NOISE, sigma=NOISE, fast_mode=False, noise_model="gaussian", workers=w),
        lambda a: sk_nlm(a, 1.15 * NOISE, False),
        0.0, 3.0, 3,
    ),
    "tv2d": (
        "total variation 2-D (weight = σ)",
        (lambda: _plane((1024, 1024)), lambda: _plane((512, 512))),
        lambda a, w: _nd().total_variation(a, NOISE, eps=2e-4, max_num_iter=200, noise_model="gaussian", workers=w),
        lambda a: sk_tv(a, NOISE),
        0.0, 2.0, 5,
    ),
    "tv3d": (
        "total variation 3-D (weight = σ)",
        (lambda: synthetic((32, 256, 256)), lambda: synthetic((16, 128, 128))),
        lambda a, w: _nd().total_variation(a, NOISE, eps=2e-4, max_num_iter=200, noise_model="gaussian", workers=w),
        lambda a: sk_tv(a, NOISE),
        0.0, 2.0, 5,
    ),
    "bilateral": (
        "bilateral 2-D (σ 1 px, σ_i = 2σ)",
        (lambda: _plane((1024, 1024)), lambda: _plane((384, 384))),
        lambda a, w: _nd().bilateral(a, 1.0, 2 * NOISE, mode="mirror", noise_model="gaussian", workers=w),
        lambda a: sk_bilateral(a, 2 * NOISE),
        3e-3, 4.0, 3,
    ),
    "wavelet2d": _wavelet_given_sigma("2-D", lambda: _plane((1024, 1024)), lambda: _plane((512, 512)), 7),
    "wavelet3d": _wavelet_given_sigma("3-D", lambda: synthetic((64, 256, 256)), lambda: synthetic((16, 128, 128)), 7),
    "wavelet2d_large": _wavelet_given_sigma("2-D, large", lambda: _plane((4096, 4096)), lambda: _plane((2048, 2048)),
                                            5),
    "wavelet3d_large": _wavelet_given_sigma("3-D, large", lambda: synthetic((128, 512, 512)),
                                            lambda: synthetic((32, 256, 256)), 3),
    # the other wavelets: the compiled filter bank (PyWavelets' transforms in scikit-image)
    "wavelet2d_db2": _wavelet_given_sigma("2-D", lambda: _plane((1024, 1024)), lambda: _plane((512, 512)), 5, "db2"),
    "wavelet3d_sym4": _wavelet_given_sigma("3-D", lambda: synthetic((64, 256, 256)), lambda: synthetic((16, 128, 128)),
                                           3, "sym4"),
    # the default call: cycle spinning over the 2**ndim one-voxel shifts
    "wavelet2d_spin": _wavelet_cycle_spun("2-D", lambda: _plane((1024, 1024)), lambda: _plane((512, 512)), 5),
    "wavelet3d_spin": _wavelet_cycle_spun("3-D", lambda: synthetic((64, 256, 256)), lambda: synthetic((16, 128, 128)),
                                          3),
    "wavelet_timelapse": (
        "wavelet per frame (db1, BayesShrink, σ given)",
        (_timelapse, _timelapse),
        lambda a, w: _nd().wavelet(a, sigma=8.0, spatial_axes=(1, 2), noise_model="gaussian", cycle_spin=False, workers=w),
        lambda a: sk_wavelet(a, 8.0),
        1e-5, 1.0, 7,
    ),
    "wavelet3d_default": (
        "wavelet 3-D (db1, BayesShrink, σ estimated)",
        (lambda: synthetic((64, 256, 256)), lambda: synthetic((16, 128, 128))),
        lambda a, w: _nd().wavelet(a, noise_model="gaussian", cycle_spin=False, workers=w),
        lambda a: sk_wavelet(a, None),
        None, 1.0, 7,
    ),
}
ORDER = list(CASES)


def agreement(ours, ref, tolerance):
    ours = np.asarray(ours, np.float64)
    ref = np.asarray(ref, np.float64)
    if tolerance is None:
        return {"ok": True, "text": "σ estimated differently (db2 estimate vs scikit-image's own)"}
    scale = max(1e-30, float(np.abs(ref).max()))
    diff = float(np.abs(ours - ref).max())
    if np.array_equal(ours, ref):
        return {"ok": True, "text": "identical"}
    return {"ok": diff <= tolerance * scale, "text": f"max |diff| {diff / scale:.1e} of range"}


def run_case(case_id, quick=False):
    label, data, ours, baseline, tolerance, target, repeats = CASES[case_id]
    a = data[1 if quick else 0]()
    workers = len(os.sched_getaffinity(0))
    corner = a[tuple(slice(0, min(n, 24)) for n in a.shape)]
    _, first_call, _ = measured_call(lambda: ours(corner, workers))  # compile / load the cache
    baseline(corner)  # imports
    n = 2 if quick else repeats
    runs = {"ours": lambda: ours(a, workers), "ours 1 thread": lambda: ours(a, 1), "scikit-image": lambda: baseline(a)}
    times = {k: [] for k in runs}
    cpu = {k: [] for k in runs}
    peaks = {k: [] for k in runs}
    results = {}
    for round_ in range(n):
        for name, fn in runs.items():
            cpu_before = time.process_time()
            result, seconds, peak = measured_call(fn)
            cpu[name].append(time.process_time() - cpu_before)
            times[name].append(seconds)
            peaks[name].append(peak)
            if round_ == 0:
                results[name] = result
            del result
    check = agreement(results["ours"], results["scikit-image"], tolerance)
    same_threads = agreement(results["ours 1 thread"], results["ours"], 1e-6)
    return {
        "case": case_id, "label": label, "shape": list(a.shape), "dtype": str(a.dtype), "workers": workers,
        "repeats": n, "first_call_small": first_call,
        "median": {k: median_of(v) for k, v in times.items()}, "times": times,
        "cpu": {k: median_of(v) for k, v in cpu.items()},
        "peak": {k: max(v) for k, v in peaks.items()}, "output_bytes": a.size * 4,
        "agree": check, "threads_agree": same_threads, "target": target,
    }


def _fmt(s):
    return f"{s * 1000:.0f} ms" if s < 1 else f"{s:.2f} s"


def table(results):
    lines = [
        "| operation | data | ours (N threads) | ours (1 thread) | scikit-image | ratio (target) | scaling 1→N | "
        "CPU time N threads / 1 | peak mem ours / scikit-image (× float32 output) | results |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        m = r["median"]
        ratio = m["scikit-image"] / m["ours"]
        scaling = m["ours 1 thread"] / m["ours"]
        target = r["target"]
        mark = "" if target is None else f" (≥{target}× {'✓' if ratio >= target else '✗'})"
        out = r["output_bytes"]
        lines.append(
            f"| {r['label']} | {'×'.join(map(str, r['shape']))} {r['dtype']} | {_fmt(m['ours'])} "
            f"({r['workers']}) | {_fmt(m['ours 1 thread'])} | {_fmt(m['scikit-image'])} | {ratio:.1f}×{mark} | "
            f"{scaling:.2f}× {'✓' if scaling >= 1.8 else '✗'} | "
            f"{r['cpu']['ours'] / r['cpu']['ours 1 thread']:.2f} | {r['peak']['ours'] / out:.2f}× / "
            f"{r['peak']['scikit-image'] / out:.2f}× | {r['agree']['text']} |"
        )
    return lines


def main(argv):
    if "-h" in argv or "--help" in argv:
        print(__doc__)
        return 0
    quick = "--quick" in argv
    if "--case" in argv:
        print(json.dumps(run_case(argv[argv.index("--case") + 1], quick=quick)))
        return 0
    names = [a for a in argv if not a.startswith("--")]
    cases = [c for c in ORDER if not names or c in names]
    results = []
    t0 = time.perf_counter()
    print(f"load average before: {load_average()}", flush=True)
    for case in cases:
        t = time.perf_counter()
        try:
            res = in_fresh_process(__file__, "--case", case, *(["--quick"] if quick else []))
        except RuntimeError as error:
            print(error, flush=True)
            continue
        results.append(res)
        print(table([res])[-1], flush=True)
        print(f"    ({case}: {time.perf_counter() - t:.0f} s wall, {res['repeats']} repeats; "
              f"1 vs N threads: {res['threads_agree']['text']})", flush=True)
    print(f"load average after: {load_average()}")
    print(f"total {time.perf_counter() - t0:.0f} s\n")
    print("\n".join(table(results)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
