"""Defaults study: each denoiser's default re-derived from the oracle grids of quality.py.

    python benchmarks/quality.py          # writes benchmarks/QUALITY.json (every grid point)
    python benchmarks/defaults_study.py   # reads it, prints the study, writes DEFAULTS_STUDY.md

For every denoiser, noise model and dimensionality (2-D planes, 3-D stack) the
grid point with the highest mean PSNR over all images and noise cases is the
derived default; its *regret* is the mean over cases of (that case's best grid
point − this point), i.e. what one fixed default loses against tuning every
case. Intensity parameters are in multiples of the noise level the denoiser
works with (σ̂ estimated per slice; 1 inside the variance-stabilised path),
lengths in voxels (of the finest axis). The rule chosen for each default is
written in the filters' docstrings; this script is the evidence.

Total variation's tolerance: for each case, the PSNR, iteration count and time
of Chambolle's iteration stopped at each relative-energy tolerance, against
the tightest one.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def study(payload):
    ndim_of = {name: len(info["shape"]) for name, info in payload["images"].items()}
    # (method/model, ndim) -> label -> [psnr per case], and the per-case best
    table = defaultdict(lambda: defaultdict(list))
    best = defaultdict(list)
    for case_key, grids in payload["grids"].items():
        image = case_key.split("|")[0]
        for key, points in grids.items():
            for ndims in (ndim_of[image], "all"):
                for label, value in points.items():
                    table[(key, ndims)][label].append(value)
                best[(key, ndims)].append(max(points.values()))
    lines = [
        "| denoiser (noise model) | data | derived default (best mean PSNR) | mean PSNR | regret vs per-case oracle (dB) "
        "| runner-up | per-case best points |",
        "|---|---|---|---|---|---|---|",
    ]
    curves = ["\n**Mean PSNR (dB) at every grid point**\n", "| denoiser | data | grid point: mean PSNR |", "|---|---|---|"]
    for (key, ndims), points in sorted(table.items(), key=lambda kv: (kv[0][0], str(kv[0][1]))):
        n_cases = len(best[(key, ndims)])
        # a grid point tried on every case (2-D and 3-D grids differ a little)
        means = {label: float(np.mean(v)) for label, v in points.items() if len(v) == n_cases}
        ranked = sorted(means, key=means.get, reverse=True)
        top = ranked[0]
        regret = float(np.mean(best[(key, ndims)]) - means[top])
        runner = f"{ranked[1]} ({means[ranked[1]] - means[top]:+.2f})" if len(ranked) > 1 else ""
        per_case = _per_case_best(payload, key, ndims, ndim_of)
        name = key.replace("/oracle_", " (").replace("/oracle", "") + (")" if "/oracle_" in key else "")
        data = {2: "2-D", 3: "3-D", "all": "all"}[ndims]
        lines.append(f"| {name} | {data} | {top} | {means[top]:.2f} | {regret:.2f} | {runner} | {per_case} |")
        curves.append(f"| {name} | {data} | " + "; ".join(f"{label} {means[label]:.2f}" for label in means) + " |")
    return "\n".join(lines + curves)


def _per_case_best(payload, key, ndims, ndim_of):
    counts = defaultdict(int)
    for case_key, grids in payload["grids"].items():
        image = case_key.split("|")[0]
        if ndims != "all" and ndim_of[image] != ndims:
            continue
        points = grids.get(key)
        if points:
            counts[max(points, key=points.get)] += 1
    return "; ".join(f"{label} ×{n}" for label, n in sorted(counts.items(), key=lambda kv: -kv[1]))


def tv_study(payload):
    rows = defaultdict(lambda: {"loss": [], "iterations": [], "seconds": []})
    for case_key, results in payload["results"].items():
        runs = results.get("tv_convergence")
        if not runs:
            continue
        tightest = min(runs, key=float)
        for eps, run in runs.items():
            rows[eps]["loss"].append(runs[tightest]["psnr"] - run["psnr"])
            rows[eps]["iterations"].append(run["iterations"])
            rows[eps]["seconds"].append(run["seconds"])
    lines = [
        "| tolerance eps | mean PSNR below the tightest (dB) | worst case (dB) | median iterations | max iterations "
        "| mean seconds |",
        "|---|---|---|---|---|---|",
    ]
    for eps in sorted(rows, key=float, reverse=True):
        r = rows[eps]
        lines.append(
            f"| {eps} | {np.mean(r['loss']):.3f} | {np.max(r['loss']):.3f} | {np.median(r['iterations']):.0f} "
            f"| {np.max(r['iterations'])} | {np.mean(r['seconds']):.3f} |"
        )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results", nargs="?", default=str(HERE / "QUALITY.json"), help="quality.py's JSON")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    path = Path(args.results)
    payload = json.loads(path.read_text())
    crops = ", ".join(f"{n} {tuple(i['shape'])}" for n, i in payload["images"].items())
    text = "\n".join(
        [
            f"Source: {path.name} ({crops}; "
            f"cases {', '.join(payload['cases'])}).",
            "Intensity values are multiples of the noise level the denoiser works with (σ̂, or 1 when stabilised); "
            "lengths in voxels.\n",
            study(payload),
            "\n**Total variation: stopping tolerance** (weight = the default; PSNR against the tightest tolerance, "
            "at most 20000 iterations)\n",
            tv_study(payload),
        ]
    )
    print(text)
    if not args.no_write:
        (HERE / "DEFAULTS_STUDY.md").write_text("# Defaults study\n\n" + text + "\n")


if __name__ == "__main__":
    main()
