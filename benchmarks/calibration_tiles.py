"""Does scoring costly candidates on tiles choose as scoring them on the whole crop does?

    python benchmarks/calibration_tiles.py

``calibrate`` scores a candidate expected to take more than twice the best
one's time on 3 × 3 tiles through its crop (``calibration.COSTLY``). This
script calibrates the median and the bilateral filter on real nuclei (a 3-D
crop with the stack's voxel size, and a 2-D plane; smoothed, rescaled to
[0, 1]) with Gaussian noise (σ 0.05, 0.1, 0.2) and Poisson noise (peak 10,
30), once as it is and once with every candidate on the whole crop
(``COSTLY`` infinite), and prints the PSNR of each choice against the clean
image and the time of each calibration.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from _numeric_helpers import load, psnr  # noqa: E402

SPACING = (0.29, 0.26, 0.26)
NOISE = [("gaussian", 0.05), ("gaussian", 0.1), ("gaussian", 0.2), ("poisson", 10), ("poisson", 30)]


def _clean(array):
    array = ndimage.gaussian_filter(array.astype(np.float64), 1.0)
    return (array - array.min()) / np.ptp(array)


def main() -> int:
    import napari_denoise as nd
    from napari_denoise import calibration

    rng = np.random.default_rng(7)
    stack = load("cells3d_nuclei.npz")
    images = [("3-D", _clean(stack[10:50, :160, :160]), SPACING), ("2-D", _clean(stack[30, :256, :256]), None)]
    print("| image | noise | filter | tiles: choice | dB | s | whole crop: choice | dB | s | difference |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    costly = calibration.COSTLY
    for label, clean, spacing in images:
        for kind, level in NOISE:
            if kind == "gaussian":
                noisy, reference, peak = (clean + rng.normal(0, level, clean.shape)).astype(np.float32), clean, 1.0
            else:
                noisy, reference, peak = rng.poisson(clean * level).astype(np.float32), clean * level, float(level)
            for function in (nd.median, nd.bilateral):
                extra = {} if spacing is None else {"spacing": spacing}
                results, seconds = [], []
                for setting in (costly, float("inf")):
                    calibration.COSTLY = setting
                    try:
                        started = time.perf_counter()
                        results.append(nd.calibrate(function, noisy, **extra))
                        seconds.append(time.perf_counter() - started)
                    finally:
                        calibration.COSTLY = costly
                quality = [psnr(reference, function(noisy, **extra, **r.kwargs), peak) for r in results]
                choice = [", ".join(f"{k}={v:.3g}" for k, v in r.best.items()) for r in results]
                print(f"| {label} | {kind} {level} | {function.__name__} | {choice[0]} | {quality[0]:.2f} | "
                      f"{seconds[0]:.2f} | {choice[1]} | {quality[1]:.2f} | {seconds[1]:.2f} | "
                      f"{quality[0] - quality[1]:+.2f} dB |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
