"""What calibration costs, in calls of the denoiser on its crop.

    python benchmarks/calibration_cost.py            # every denoiser calibrate() has candidates for
    python benchmarks/calibration_cost.py bilateral  # only these

On napari-denoise's 3-D sample (noisy nuclei, 60×256×256 uint16, voxel
0.29 × 0.26 × 0.26 µm), per denoiser: the wall-clock time of
``calibrate(function, stack, spacing=...)`` (which picks its own crop), and
of one call of the denoiser on that crop with the parameters it chose
(median of 3), and their ratio (the issue's bound: about 10× one call).
"""

from __future__ import annotations

import inspect
import statistics
import sys
import time

NAMES = ["gaussian", "mean", "median", "bilateral", "total_variation", "wavelet", "non_local_means",
         "block_matching"]


def _seconds(fn, repeats=3):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv):
    if "-h" in argv or "--help" in argv:
        print(__doc__)
        return 0
    import napari_denoise as nd
    from napari_denoise._sample_data import NUCLEI_SPACING_UM, noisy_nuclei_3d

    stack = noisy_nuclei_3d()[0][0]
    spacing = NUCLEI_SPACING_UM
    names = [n for n in NAMES if not argv or n in argv]
    print("| denoiser | loss | calls | calibrate | one call on the crop (chosen parameters) | ratio |")
    print("|---|---|---|---|---|---|")
    for name in names:
        function = getattr(nd, name)
        result = nd.calibrate(function, stack, spacing=spacing)  # warm-up: compile, caches
        crop = stack[result.region]
        calls = result.calls
        whole = _seconds(lambda: nd.calibrate(function, stack, spacing=spacing))
        takes_spacing = "spacing" in inspect.signature(function).parameters
        extra = {"spacing": spacing} if takes_spacing else {}
        one = _seconds(lambda: function(crop, **extra, **result.kwargs))
        print(f"| {name} | {result.loss_kind} | {calls} | {whole:.2f} s | {one:.3f} s | {whole / one:.1f}× |",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
