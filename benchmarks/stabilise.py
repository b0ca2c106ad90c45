"""Variance stabilisation: the Anscombe transforms against their plain NumPy formulation.

    python benchmarks/stabilise.py            # 32×256×512 photon-count stack
    python benchmarks/stabilise.py --quick    # 8×256×512

scikit-image has no variance-stabilising transform, so the baseline is the
transform written as whole-array NumPy expressions, as a user (or this
plugin, before) would: ``2/g·sqrt(max(g·z + 3/8·g² + σ² − g·o, 0))`` in float64,
and the exact unbiased inverse as ``np.interp`` on the same table with the
closed form beyond it. Each case runs in a fresh process; ours and the
baseline are called alternately, and the table gives medians, their ratio,
the peak memory of each (× the float32 output) and whether the results are
identical. The last row is a whole stabilised denoiser call (the default
wavelet with ``noise_model="poisson"``), ours only, on 1 and N threads.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _harness import in_fresh_process, load_average, measured_call  # noqa: E402

REPEATS = 7


def photon_stack(shape):
    """Seeded photon counts: a smooth pattern from 0.5 to ~90 photons, Poisson noise, uint16."""
    rng = np.random.default_rng(0)
    clean = (np.sin(np.arange(shape[-1]) / 9.0) + 1.2) * np.linspace(0.5, 40, shape[-2])[:, None]
    return rng.poisson(np.broadcast_to(clean, shape)).astype(np.uint16)


def numpy_forward(image, model):
    values = np.asarray(image, dtype=np.float64)
    gain = model.gain
    radicand = gain * values + 0.375 * gain * gain + model.read_sigma**2 - gain * model.offset
    return ((2.0 / gain) * np.sqrt(np.maximum(radicand, 0.0))).astype(np.float32)


def numpy_closed_form(values, normalised_sigma):
    """Mäkitalo & Foi's closed-form approximation as a NumPy expression (as the plugin had it)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        d = np.maximum(values, 1e-6)
        root = np.sqrt(1.5)
        photons = 0.25 * d * d + 0.25 * root / d - 1.375 / (d * d) + 0.625 * root / (d * d * d) - 0.125 \
            - normalised_sigma**2
    return np.maximum(np.where(np.isnan(values), np.nan, photons), 0.0)


def numpy_inverse(image, model):
    from napari_denoise.filters import stabilise

    values = np.asarray(image, dtype=np.float64)
    normalised_sigma = model.read_sigma / model.gain
    expectation, photons = stabilise._exact_table(round(float(normalised_sigma), 6))
    out = np.interp(values, expectation, photons, left=0.0)
    beyond = values > expectation[-1]
    if np.any(beyond):
        out[beyond] = numpy_closed_form(values[beyond], normalised_sigma)
    out = np.where(np.isnan(values), np.nan, out)
    return (model.offset + model.gain * out).astype(np.float32)


def run_case(name, quick):
    import napari_denoise as nd

    shape = (8, 256, 512) if quick else (32, 256, 512)
    image = photon_stack(shape)
    model = nd.estimate_noise_model(image)
    stabilised = nd.anscombe(image, model)
    out_bytes = image.size * 4
    if name == "denoise":
        calls = {w: (lambda w=w: nd.wavelet(image, noise_model="poisson", workers=w)) for w in (1, 2)}
        for fn in calls.values():
            fn()
        times = {w: [] for w in calls}
        peaks = {w: [] for w in calls}
        for _ in range(REPEATS):
            for w, fn in calls.items():
                _, seconds, peak = measured_call(fn)
                times[w].append(seconds)
                peaks[w].append(peak)
        return {"name": "stabilised wavelet (default call, noise_model='poisson')", "shape": shape,
                "ours_1": statistics.median(times[1]), "ours_n": statistics.median(times[2]),
                "peak_1": max(peaks[1]) / out_bytes, "peak_n": max(peaks[2]) / out_bytes}
    ours, theirs = {
        "forward": (lambda: nd.anscombe(image, model), lambda: numpy_forward(image, model)),
        "inverse": (lambda: nd.inverse_anscombe(stabilised, model), lambda: numpy_inverse(stabilised, model)),
    }[name]
    a, b = ours(), theirs()
    identical = bool(np.array_equal(a.view(np.uint32), b.view(np.uint32)))
    times = {"ours": [], "numpy": []}
    peaks = {"ours": [], "numpy": []}
    for _ in range(REPEATS):
        for key, fn in (("ours", ours), ("numpy", theirs)):
            _, seconds, peak = measured_call(fn)
            times[key].append(seconds)
            peaks[key].append(peak)
    label = {"forward": "anscombe (generalised, fitted model)", "inverse": "inverse_anscombe (exact unbiased)"}[name]
    return {"name": label, "shape": shape, "ours": statistics.median(times["ours"]),
            "numpy": statistics.median(times["numpy"]), "peak_ours": max(peaks["ours"]) / out_bytes,
            "peak_numpy": max(peaks["numpy"]) / out_bytes, "identical": identical}


def _ms(seconds):
    return f"{seconds * 1e3:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def main(argv):
    quick = "--quick" in argv
    if "--case" in argv:
        import json

        print(json.dumps(run_case(argv[argv.index("--case") + 1], quick)))
        return 0
    print(f"load average before: {load_average()}")
    print("| operation | data | ours | NumPy formulas | ratio | peak mem ours / NumPy (× float32 output) | results |")
    print("|---|---|---|---|---|---|---|")
    for name in ("forward", "inverse"):
        r = in_fresh_process(__file__, "--case", name, *(["--quick"] if quick else []))
        data = "×".join(map(str, r["shape"])) + " uint16"
        print(f"| {r['name']} | {data} | {_ms(r['ours'])} | {_ms(r['numpy'])} | {r['numpy'] / r['ours']:.1f}× | "
              f"{r['peak_ours']:.2f}× / {r['peak_numpy']:.2f}× | {'identical' if r['identical'] else 'DIFFERENT'} |")
    r = in_fresh_process(__file__, "--case", "denoise", *(["--quick"] if quick else []))
    data = "×".join(map(str, r["shape"])) + " uint16"
    print(f"| {r['name']} | {data} | {_ms(r['ours_n'])} (2) / {_ms(r['ours_1'])} (1) | – | – | "
          f"{r['peak_n']:.2f}× (2) / {r['peak_1']:.2f}× (1) | – |")
    print(f"load average after: {load_average()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
