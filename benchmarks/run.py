"""napari-denoise benchmark suite: ours against scipy.ndimage / scikit-image.

    python benchmarks/run.py            # full run (about 10 minutes on 2 cores)
    python benchmarks/run.py --quick    # smaller data, fewer repeats (~2 minutes)
    python benchmarks/run.py gaussian median3d   # only these cases
    python benchmarks/run.py memory lazy         # only the memory / lazy parts

Every case runs in a fresh subprocess (see _cases.py): ours and each baseline
are called alternately on the same data, ``repeats`` times; the table gives
median wall-clock seconds, the ratio baseline/ours, and the peak growth of the
process' resident memory during a call (VmHWM after resetting it, minus VmRSS
before; output included) as a multiple of the float32 output size. Results are
checked against the baseline (bit-identical where we claim it). Then the lazy
zarr demonstration (lazy.py) runs, and the figures are written to
benchmarks/RESULTS.md (or --output PATH; --no-write to skip).
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

FULL_ORDER = [
    "gaussian",
    "gaussian_small",
    "gaussian_large",
    "gaussian_cells3d",
    "median3d",
    "median3d_cells3d",
    "median2d",
    "median2d_nuclei",
    "mean",
    "mean_timelapse",
    "sobel",
    "gradient_magnitude",
    "estimate_noise",
    "nlm3d",
]


def _run(args, timeout=1800) -> dict:
    from _harness import in_fresh_process

    return in_fresh_process(*args, timeout=timeout)


def _mib(n) -> str:
    return f"{n / 2**20:.0f} MiB"


def _fmt_s(s) -> str:
    return f"{s * 1000:.0f} ms" if s < 1 else f"{s:.2f} s"


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                mem = f", {int(line.split()[1]) / 2**20:.0f} GiB RAM"
    except OSError:
        pass
    import numpy
    import scipy
    import skimage

    try:
        import numba

        nb = f", numba {numba.__version__}"
    except ImportError:
        nb = ", no numba"
    cores = len(os.sched_getaffinity(0))
    return (
        f"{cpu}, {cores} cores{mem}; Python {platform.python_version()}, numpy {numpy.__version__}, "
        f"scipy {scipy.__version__}, scikit-image {skimage.__version__}{nb}"
    )


def rows_for(result) -> list[dict]:
    rows = []
    shape = "×".join(map(str, result["shape"]))
    data = result["data"]
    source = data if isinstance(data, str) else "synthetic"
    ours = result["median"]["ours"]
    out = result["output_bytes"]
    for label, seconds in result["median"].items():
        if label == "ours":
            continue
        ratio = seconds / ours
        target = result["target"].get(label)
        rows.append(
            {
                "operation": result["label"],
                "data": f"{shape} {result['dtype']} ({source})",
                "ours": ours,
                "baseline_label": label,
                "baseline": seconds,
                "ratio": ratio,
                "target": target,
                "met": None if target is None else ratio >= target,
                "peak_ours": result["peak"]["ours"] / out,
                "peak_baseline": result["peak"][label] / out,
                "peak_ours_bytes": result["peak"]["ours"],
                "agree": result["checks"][label]["text"],
                "agree_ok": result["checks"][label]["ok"],
                "repeats": result["repeats"],
            }
        )
    return rows


def table(rows) -> list[str]:
    lines = [
        "| operation | data | ours | baseline | baseline time | ratio (target) | peak mem ours / baseline (× float32 output) | results |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        target = "" if r["target"] is None else f" (≥{r['target']}× {'✓' if r['met'] else '✗'})"
        lines.append(
            f"| {r['operation']} | {r['data']} | {_fmt_s(r['ours'])} | {r['baseline_label']} | "
            f"{_fmt_s(r['baseline'])} | {r['ratio']:.1f}×{target} | "
            f"{r['peak_ours']:.2f}× / {r['peak_baseline']:.2f}× | {r['agree']} |"
        )
    return lines


def scaling(results) -> list[str]:
    pts = []
    for case in ("gaussian_small", "gaussian", "gaussian_large"):
        if case in results:
            r = results[case]
            n = 1
            for s in r["shape"]:
                n *= s
            pts.append((n, r["median"]["ours"], "×".join(map(str, r["shape"]))))
    if len(pts) < 2:
        return []
    lines = ["| size | voxels | ours | ns per voxel |", "|---|---|---|---|"]
    for n, s, shape in pts:
        lines.append(f"| {shape} | {n / 1e6:.1f} M | {_fmt_s(s)} | {s / n * 1e9:.2f} |")
    per = [s / n for n, s, _ in pts]
    lines.append("")
    lines.append(
        "Gaussian σ=(1,2,2), ns per voxel from smallest to largest: "
        + ", ".join(f"{p * 1e9:.2f}" for p in per)
        + f" (max/min {max(per) / min(per):.2f}; linear cost means a flat column)."
    )
    return lines


def lazy_lines(lz) -> list[str]:
    if not lz:
        return []
    vs = lz["virtual_bytes"]
    return [
        f"- zarr store {'×'.join(map(str, lz['shape']))} uint16 ({vs / 2**30:.1f} GiB, sparse), "
        f"chunks {'×'.join(map(str, lz['chunks']))}, opened with `dask.array.from_zarr`.",
        f"- `gaussian(lazy, (1, 2, 2))` returned a dask array in {lz['call_seconds'] * 1000:.0f} ms "
        f"(target < 100 ms {'✓' if lz['call_seconds'] < 0.1 else '✗'}).",
        f"- one z-plane of the result computed in {_fmt_s(lz['plane_seconds'])} (median of 3; target < 1 s "
        f"{'✓' if lz['plane_seconds'] < 1 else '✗'}); "
        f"{'bit-identical to' if lz['plane_identical'] else 'DIFFERENT from'} the eager filter of a crop.",
        f"- `to_zarr` of the filtered {'×'.join(map(str, lz['write_shape']))} sub-volume "
        f"({lz['write_output_bytes'] / 2**30:.2f} GiB of float32, seeded noise input generated chunk by chunk) "
        f"took {_fmt_s(lz['write_seconds'])}; peak RSS growth while streaming {_mib(lz['write_peak_growth'])} "
        f"({lz['write_peak_growth'] / lz['write_output_bytes']:.2f}× the output).",
    ]


def memory_lines(memory) -> list[str]:
    if not memory:
        return []
    shape = "×".join(map(str, memory[0]["shape"]))
    lines = [
        f"| filter ({shape} uint16, ours, one call in a fresh process) | time | peak growth | × float32 output (target ≤ 1.25×) |",
        "|---|---|---|---|",
    ]
    for m in memory:
        ratio = m["peak"] / m["output_bytes"]
        lines.append(
            f"| {m['memory_case']} | {_fmt_s(m['seconds'])} | {_mib(m['peak'])} | "
            f"{ratio:.2f}× {'✓' if ratio <= 1.25 else '✗'} |"
        )
    return lines


#: RESULTS.md from this line on holds the tables of denoisers.py, stabilise.py and block_matching.py
#: (separate scripts, much longer runs): a rewrite by this script keeps them.
KEPT_FROM = "<!-- from here on: tables of benchmarks/denoisers.py, stabilise.py and block_matching.py (run.py keeps them) -->"


def _kept_sections(path: Path) -> str:
    try:
        old = path.read_text()
    except OSError:
        return ""
    start = old.find(KEPT_FROM)
    return "" if start < 0 else "\n" + old[start:]


def main(argv) -> int:
    if "-h" in argv or "--help" in argv:
        print(__doc__)
        return 0
    quick = "--quick" in argv
    write = "--no-write" not in argv
    output = HERE / "RESULTS.md"
    if "--output" in argv:
        output = Path(argv[argv.index("--output") + 1])
    names = [a for a in argv if not a.startswith("--") and a != str(output)]
    selected = [a for a in names if a in FULL_ORDER]
    cases = FULL_ORDER if not names else selected
    do_lazy = not names or "lazy" in names
    t_start = time.perf_counter()
    print(f"machine: {machine()}", flush=True)
    results, rows = {}, []
    for case in cases:
        t0 = time.perf_counter()
        args = [str(HERE / "_cases.py"), case] + (["--quick"] if quick else [])
        res = _run(args)
        results[case] = res
        new = rows_for(res)
        rows.extend(new)
        for line in table(new)[2:]:
            print(line, flush=True)
        print(f"    ({case}: {time.perf_counter() - t0:.0f} s wall, {res['repeats']} repeats, "
              f"first call on a 16³ corner {res['first_call_small'] * 1000:.0f} ms)", flush=True)
    memory = []
    if not names or "memory" in names:
        from _cases import MEMORY_CASES

        for name in MEMORY_CASES:
            res = _run([str(HERE / "_cases.py"), "--memory", name] + (["--quick"] if quick else []))
            memory.append(res)
        for line in memory_lines(memory)[2:]:
            print(line, flush=True)
    lz = None
    if do_lazy:
        t0 = time.perf_counter()
        lz = _run([str(HERE / "lazy.py")] + (["--quick"] if quick else []))
        for line in lazy_lines(lz):
            print(line, flush=True)
        print(f"    (lazy: {time.perf_counter() - t0:.0f} s wall)")
    total = time.perf_counter() - t_start
    scale = scaling(results)
    for line in scale:
        print(line)
    print(f"total benchmark time: {total:.0f} s")
    bad = [r for r in rows if not r["agree_ok"]]
    if bad:
        print("RESULTS DISAGREE:", [(r["operation"], r["baseline_label"]) for r in bad])
    if write:
        text = [
            "# Benchmark results",
            "",
            f"Machine: {machine()}.",
            f"Command: `python benchmarks/run.py{' --quick' if quick else ''}` "
            f"({'quick' if quick else 'full'} run, {total / 60:.1f} min). "
            "Times are medians of the listed repeats with ours and the baseline called "
            "alternately in one process (fresh process per case); ratio = baseline / ours. "
            "Peak memory = growth of the process' resident set during one call "
            "(VmHWM after reset minus VmRSS before, output included, worst of the repeats), "
            "as a multiple of the float32 output's size. Ours uses every core "
            "(2 threads here); the baselines are single-threaded library calls. The machine "
            "is a shared VM: timings are noisy.",
            "",
            *table(rows),
            "",
            "## Peak memory on the large stack",
            "",
            *memory_lines(memory),
            "",
            "## Cost against size",
            "",
            *scale,
            "",
            "## Lazy (zarr + dask) input",
            "",
            *lazy_lines(lz),
            "",
        ]
        output.write_text("\n".join(text) + _kept_sections(output))
        raw = output.with_suffix(".json")
        raw.write_text(json.dumps({"machine": machine(), "quick": quick, "cases": results,
                                   "memory": memory, "lazy": lz, "seconds": total}, indent=1))
        print(f"wrote {output} and {raw}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
