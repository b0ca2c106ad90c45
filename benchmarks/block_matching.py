"""Block matching (BM3D/BM4D): ours against the reference ``bm3d`` / ``bm4d`` packages.

    python benchmarks/block_matching.py                 # quality table, then speed table
    python benchmarks/block_matching.py quality         # only PSNR
    python benchmarks/block_matching.py speed           # only timings
    python benchmarks/block_matching.py --quick         # fewer cases and repeats

The reference packages (``pip install bm3d bm4d``: closed binaries under a
non-commercial licence) are NEVER a dependency of napari-denoise and must not
be installed into its environment. Install them in a separate virtual
environment, e.g.::

    python -m venv /work/bench-venv
    /work/bench-venv/bin/pip install bm3d bm4d numpy

and point this script at its interpreter with ``--reference-python`` (or
``NAPARI_DENOISE_REFERENCE_PYTHON``; default ``/work/bench-venv/bin/python``).
The reference runs in a subprocess of that interpreter (this same file, in
``--reference-worker`` mode, which imports only numpy and the package); the
time of its denoising call alone is measured inside it. Without the
reference environment the tables show our numbers only.

Quality: clean images from ``../shared/data`` (min-max scaled to [0, 1]) with
seeded Gaussian noise of σ = 0.05, 0.1, 0.2; ours and the reference get the
same noisy input and the true σ. "best other" is the best PSNR among our
other denoisers (non-local means, wavelet, total variation, bilateral) given
the same true σ through their noise parameters at their default multiples.
Reference outputs are cached in the temporary folder
(``napari-denoise-bm-reference``) keyed by input and σ, so that tuning runs
do not recompute them; the speed table never uses the cache.

Speed: a 256×256 plane (BM3D) and a 32×96×96 volume (BM4D) of cells3d with
σ = 0.1; ours (every core) and the reference (one thread, as it runs)
alternate, ``repeats`` times; medians and the ratio reference/ours.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DEFAULT_REFERENCE_PYTHON = "/work/bench-venv/bin/python"
SIGMAS = (0.05, 0.1, 0.2)
CACHE = Path(tempfile.gettempdir()) / "napari-denoise-bm-reference"


# -- reference worker (runs in the reference environment) ------------------------------------
def _reference_worker(noisy_path, out_path, sigma):
    noisy = np.load(noisy_path)
    if noisy.ndim == 2:
        import bm3d

        start = time.perf_counter()
        out = bm3d.bm3d(noisy, sigma)
    else:
        import bm4d

        start = time.perf_counter()
        out = bm4d.bm4d(noisy, sigma)
    seconds = time.perf_counter() - start
    np.save(out_path, np.asarray(out, np.float32))
    print(json.dumps({"seconds": seconds}))


def _reference(python, noisy, sigma, *, use_cache=True):
    """``(result, seconds)`` of the reference on ``noisy``; None when unavailable."""
    if python is None:
        return None
    key = hashlib.sha1(noisy.tobytes() + repr((noisy.shape, sigma)).encode()).hexdigest()[:16]
    cached = CACHE / f"{key}.npy"
    if use_cache and cached.exists():
        return np.load(cached), None
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "noisy.npy", Path(tmp) / "out.npy"
        np.save(src, noisy)
        proc = subprocess.run(
            [python, __file__, "--reference-worker", str(src), str(dst), repr(sigma)],
            capture_output=True, text=True,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"reference failed:\n{proc.stderr[-2000:]}")
        seconds = json.loads(proc.stdout.strip().splitlines()[-1])["seconds"]
        out = np.load(dst)
    CACHE.mkdir(exist_ok=True)
    np.save(cached, out)
    return out, seconds


def _reference_python(given):
    python = given or os.environ.get("NAPARI_DENOISE_REFERENCE_PYTHON") or DEFAULT_REFERENCE_PYTHON
    if not Path(python).exists():
        return None
    probe = subprocess.run([python, "-c", "import bm3d, bm4d"], capture_output=True)
    return python if probe.returncode == 0 else None


# -- data ---------------------------------------------------------------------------------------
def _data_dir():
    here = HERE.parents[1] / "shared" / "data"
    return here if here.is_dir() else Path(os.environ.get("NAPARI_DENOISE_DATA", "/work/shared/data"))


def _unit(x):
    x = np.asarray(x, np.float64)
    return ((x - x.min()) / (x.max() - x.min())).astype(np.float32)


def clean_images(quick=False):
    import imageio.v3 as iio
    import tifffile

    data = _data_dir()
    cells = tifffile.imread(data / "cells3d_nuclei.tif")
    planes = {
        "nuclei_2d 256²": tifffile.imread(data / "nuclei_2d.tif")[128:384, 128:384],
        "zebrafish 256²": iio.imread(data / "zebrafish_spinal_cord.png")[384:640, 384:640],
        "cells3d z30 256²": cells[30],
    }
    volumes = {
        "cells3d 32×96×96 a": cells[14:46, 80:176, 80:176],
        "cells3d 32×96×96 b": cells[20:52, 140:236, 20:116],
    }
    if quick:
        planes = dict(list(planes.items())[:1])
        volumes = dict(list(volumes.items())[:1])
    return {k: _unit(v) for k, v in {**planes, **volumes}.items()}


def noisy_of(clean, sigma, seed):
    rng = np.random.default_rng(seed)
    return (clean + rng.normal(0.0, sigma, clean.shape)).astype(np.float32)


def psnr(clean, x):
    return float(10 * np.log10(1.0 / np.mean((np.asarray(x, np.float64) - clean) ** 2)))


# -- tables ------------------------------------------------------------------------------------
def _others(noisy, sigma):
    import napari_denoise as nd

    return {
        "non_local_means": nd.non_local_means(noisy, sigma=sigma, h=0.8 * sigma),
        "wavelet": nd.wavelet(noisy, sigma=sigma),
        "total_variation": nd.total_variation(noisy, weight=sigma),
        "bilateral": nd.bilateral(noisy, sigma_intensity=2 * sigma),
    }


def quality(python, quick=False, profiles=("normal",)):
    import napari_denoise as nd

    rows = []
    print(f"{'image':22} {'σ':>5} {'noisy':>6} " + " ".join(f"{'ours ' + p:>11}" for p in profiles)
          + f" {'reference':>9} {'ours-ref':>8} {'best other':>22}")
    for i, (name, clean) in enumerate(clean_images(quick).items()):
        for j, sigma in enumerate(SIGMAS):
            noisy = noisy_of(clean, sigma, seed=1000 * i + j)
            ours = {p: psnr(clean, nd.block_matching(noisy, sigma=sigma, profile=p)) for p in profiles}
            ref = _reference(python, noisy, sigma)
            ref_psnr = psnr(clean, ref[0]) if ref is not None else float("nan")
            others = {k: psnr(clean, v) for k, v in _others(noisy, sigma).items()}
            best = max(others, key=others.get)
            row = {"image": name, "sigma": sigma, "noisy": psnr(clean, noisy), "ours": ours,
                   "reference": ref_psnr, "best_other": best, "best_other_psnr": others[best]}
            rows.append(row)
            print(f"{name:22} {sigma:5.2f} {row['noisy']:6.2f} "
                  + " ".join(f"{ours[p]:11.2f}" for p in profiles)
                  + f" {ref_psnr:9.2f} {ours[profiles[0]] - ref_psnr:+8.2f} {best:>15} {others[best]:6.2f}",
                  flush=True)
    for p in profiles:
        gap = np.array([r["ours"][p] - r["reference"] for r in rows])
        over = np.array([r["ours"][p] - r["best_other_psnr"] for r in rows])
        print(f"ours {p}: mean ours-reference {np.nanmean(gap):+.2f} dB (worst {np.nanmin(gap):+.2f}), "
              f"mean ours-best other {over.mean():+.2f} dB (worst {over.min():+.2f})")
    return rows


def speed(python, quick=False):
    import tifffile

    import napari_denoise as nd

    cells = _unit(tifffile.imread(_data_dir() / "cells3d_nuclei.tif"))
    cases = {"plane 256×256 (BM3D)": cells[30], "volume 32×96×96 (BM4D)": cells[14:46, 80:176, 80:176]}
    repeats = {"plane 256×256 (BM3D)": 2 if quick else 5, "volume 32×96×96 (BM4D)": 1 if quick else 3}
    print(f"{'case':24} {'profile':7} {'ours s':>7} {'reference s':>11} {'ratio':>6}")
    rows = []
    for name, clean in cases.items():
        noisy = noisy_of(clean, 0.1, seed=7)
        for profile in ("normal", "fast"):  # compile outside the timings
            nd.block_matching(noisy[..., :32], sigma=0.1, profile=profile)
        ours = {"normal": [], "fast": []}
        ref = []
        for _ in range(repeats[name]):  # alternate: reference, ours normal, ours fast
            if python is not None:
                ref.append(_reference(python, noisy, 0.1, use_cache=False)[1])
            for profile in ours:
                start = time.perf_counter()
                nd.block_matching(noisy, sigma=0.1, profile=profile)
                ours[profile].append(time.perf_counter() - start)
        r = float(np.median(ref)) if ref else float("nan")
        for profile, times in ours.items():
            o = float(np.median(times))
            rows.append({"case": name, "profile": profile, "ours": o, "reference": r})
            print(f"{name:24} {profile:7} {o:7.2f} {r:11.2f} {r / o:6.1f}", flush=True)
    return rows


def main(argv=None):
    if argv and argv[0] == "--reference-worker":
        _reference_worker(argv[1], argv[2], float(argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("parts", nargs="*", choices=["quality", "speed"], default=[])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--reference-python")
    parser.add_argument("--fast-too", action="store_true", help="quality of the fast profile as well")
    args = parser.parse_args(argv)
    parts = args.parts or ["quality", "speed"]
    python = _reference_python(args.reference_python)
    print(f"reference: {python or 'not available (bm3d/bm4d not importable there)'}; "
          f"cores: {len(os.sched_getaffinity(0))}")
    if "quality" in parts:
        quality(python, args.quick, ("normal", "fast") if args.fast_too else ("normal",))
    if "speed" in parts:
        speed(python, args.quick)


if __name__ == "__main__":
    main(sys.argv[1:])
