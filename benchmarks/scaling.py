"""Thread scaling of the edge-preserving denoisers, next to what the machine itself allows.

    python benchmarks/scaling.py                  # every case, 7 rounds
    python benchmarks/scaling.py tv3d nlm3d       # only these cases
    python benchmarks/scaling.py --rounds 5

The same cases and data as ``denoisers.py`` (without scikit-image, which is
single-threaded). Each case runs in a fresh process: ours on one thread
(``workers=1``) and on N threads (N = the cores this process may use) are
called alternately, ``rounds`` times, and the table gives the median of the
per-round ratios time(1 thread) / time(N threads), with the spread
(lowest-highest). A call shorter than 0.2 s is timed over as many calls in
a row as make 0.2 s on one thread (the same number on N threads).

A shared virtual machine does not give N times one core's speed even to
work that needs no memory at all, so every run also measures two probes in
the same way, interleaved with the cases: *compute* (a loop of arithmetic on
registers: the ceiling for compute-bound kernels) and *stream* (a float32
``b = 1.5 a + b`` over 96 MB: the ceiling for kernels limited by memory
bandwidth). A kernel at or above its probe's scaling gets all the machine
gives; one below it has overhead or serial parts left.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _harness import in_fresh_process, load_average  # noqa: E402
from denoisers import CASES  # noqa: E402

TARGET = 1.8
#: Shortest timed run (seconds, on one thread): shorter calls are repeated back to back.
MIN_SECONDS = 0.2


def _probes():
    import numba

    @numba.njit(nogil=True)
    def compute(n):
        s = 0.0
        for i in range(n):
            s += np.sin(i * 1e-6) * 1.0000001
        return s

    @numba.njit(nogil=True)
    def stream(a, b, lo, hi, repeats):
        for _ in range(repeats):
            for i in range(hi - lo):
                b[lo + i] = a[lo + i] * np.float32(1.5) + b[lo + i]

    a = np.ones(12_000_000, np.float32)
    b = np.zeros_like(a)
    n = a.size
    return {
        "probe: compute": (compute, [(20_000_000,), (20_000_000,)]),
        "probe: stream 96 MB": (stream, [(a, b, 0, n // 2, 6), (a, b, n // 2, n, 6)]),
    }


def _time_probe(function, pieces, threads):
    t0 = time.perf_counter()
    if threads == 1:
        for args in pieces:
            function(*args)
    else:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(lambda args: function(*args), pieces))
    return time.perf_counter() - t0


def run_probe(name, rounds):
    function, pieces = _probes()[name]
    function(*pieces[0])  # compile
    ratios = []
    for _ in range(rounds):
        one = _time_probe(function, pieces, 1)
        many = _time_probe(function, pieces, 2)
        ratios.append(one / many)
    return {"case": name, "label": name, "ratios": ratios, "workers": 2}


def run_case(case_id, rounds):
    label, data, ours, _baseline, _tol, _target, _repeats = CASES[case_id]
    a = data[0]()
    workers = len(os.sched_getaffinity(0))
    corner = a[tuple(slice(0, min(n, 24)) for n in a.shape)]
    ours(corner, workers)  # compile / load the cache
    t0 = time.perf_counter()
    ours(a, 1)
    # calls of a few milliseconds are timed in runs of at least MIN_SECONDS (one thread): a single
    # one is at the mercy of one scheduling hiccup (rounds of one 10 ms call ranged 0.96-2.26x)
    calls = max(1, round(MIN_SECONDS / (time.perf_counter() - t0)))

    def timed(threads):
        t0 = time.perf_counter()
        for _ in range(calls):
            ours(a, threads)
        return (time.perf_counter() - t0) / calls

    ratios, ones, manys = [], [], []
    for _ in range(rounds):
        one = timed(1)
        many = timed(workers)
        ones.append(one)
        manys.append(many)
        ratios.append(one / many)
    return {"case": case_id, "label": label, "shape": list(a.shape), "workers": workers, "calls": calls,
            "ratios": ratios, "one": statistics.median(ones), "many": statistics.median(manys)}


def row(r):
    med = statistics.median(r["ratios"])
    spread = f"{min(r['ratios']):.2f}–{max(r['ratios']):.2f}"
    if "one" in r:
        times = f"{r['one']:.2f} s / {r['many']:.2f} s"
        return (f"| {r['label']} | {'×'.join(map(str, r['shape']))} | {times} | {med:.2f}× "
                f"{'✓' if med >= TARGET else '✗'} | {spread} |")
    return f"| {r['label']} | – | – | {med:.2f}× | {spread} |"


def main(argv):
    if "-h" in argv or "--help" in argv:
        print(__doc__)
        return 0
    rounds = 7
    if "--rounds" in argv:
        rounds = int(argv[argv.index("--rounds") + 1])
    if "--case" in argv:
        name = argv[argv.index("--case") + 1]
        result = run_probe(name, rounds) if name.startswith("probe") else run_case(name, rounds)
        print(json.dumps(result))
        return 0
    skip = {argv[i + 1] for i, a in enumerate(argv) if a == "--rounds"}
    names = [a for a in argv if not a.startswith("--") and a not in skip]
    cases = [c for c in CASES if not names or c in names]
    probes = list(_probes())
    order = []
    for k, case in enumerate(cases):  # probes before, between and after the cases
        if k % 3 == 0:
            order += probes
        order.append(case)
    order += probes
    print(f"load average before: {load_average()}", flush=True)
    results = []
    for name in order:
        try:
            r = in_fresh_process(__file__, "--case", name, "--rounds", rounds)
        except RuntimeError as error:
            print(error, flush=True)
            continue
        results.append(r)
        print(row(r), flush=True)
    print(f"load average after: {load_average()}")
    print("\n| case | data | 1 thread / N threads (medians) | scaling 1→N (median of rounds) | spread |")
    print("|---|---|---|---|---|")
    merged = {}
    for r in results:
        merged.setdefault(r["case"], []).append(r)
    for name, rs in merged.items():
        if len(rs) > 1:  # probes: pool their rounds
            rs = [dict(rs[0], ratios=[x for r in rs for x in r["ratios"]])]
        print(row(rs[0]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
