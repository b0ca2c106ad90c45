"""How long an eager run will take, before it starts, and durations in words.

Qt-free: the estimate uses the scheduler's own tile layout and the op's
:class:`~napari_denoise.Cost` (seconds per voxel on one core), so that the
widget can say "about 40 s" before Run and ask for a second press when a run
is long. It is an estimate (the machine may be busy), not a promise.
"""

from __future__ import annotations

import math

from ._filter_op import LibraryKernel
from ._scheduler import default_workers, tile_layout

__all__ = ["RunEstimate", "estimate_run", "format_duration", "SHOW_ESTIMATE_S", "CONFIRM_S", "BUSY_TILE_S"]

#: Runs expected to take longer than this show their estimate before Run.
SHOW_ESTIMATE_S = 5.0
#: Runs expected to take longer than this need a second press of Run.
CONFIRM_S = 30.0
#: A run whose tiles take longer than this starts with a busy bar and the
#: elapsed time (not a bar stuck at 0 %) until its kernel reports steps.
BUSY_TILE_S = 1.0


class RunEstimate:
    """Expected wall time of an eager run, and how its progress can be shown.

    seconds: wall time on ``workers`` threads.
    tile_seconds: the longest tile's time on one core (how long the progress
        bar may sit still when the kernel reports nothing inside a tile).
    jobs: tiles in the run; workers: threads used.
    reports_inside: False for a library routine (scipy / scikit-image) called
        whole, which cannot report while it runs; compiled kernels report
        steps, and library routines with a known cost are called in pieces
        of ~0.1 s, each reported.
    """

    __slots__ = ("seconds", "tile_seconds", "jobs", "workers", "reports_inside")

    def __init__(self, seconds, tile_seconds, jobs, workers, reports_inside):
        self.seconds = float(seconds)
        self.tile_seconds = float(tile_seconds)
        self.jobs = int(jobs)
        self.workers = int(workers)
        self.reports_inside = bool(reports_inside)

    @property
    def busy(self) -> bool:
        """Finished tiles alone would not move the bar every second.

        The bar then starts "busy" (elapsed time against the estimate) and
        turns into a percentage once the kernel reports steps inside a tile.
        """
        return self.tile_seconds > BUSY_TILE_S

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return (f"RunEstimate(seconds={self.seconds:.3g}, tile_seconds={self.tile_seconds:.3g}, "
                f"jobs={self.jobs}, workers={self.workers}, reports_inside={self.reports_inside})")


def estimate_run(op, shape, workers: int | None = None) -> RunEstimate:
    """Expected run time of ``op`` on an eager image of ``shape``.

    Each tile costs ``op.cost.seconds`` per voxel (per voxel *with* its halo
    for kernels that compute over the halo); tiles are spread over the
    threads, and a run takes at least as long as its longest tile.
    """
    workers = default_workers() if workers is None else max(1, int(workers))
    layout = tile_layout(op, shape, workers)
    per_tile = []
    for tile in layout.tiles:
        read, keep, _ = layout.regions(tile)
        region = keep if not op.cost.over_halo else read
        voxels = 1
        for s, n in zip(region, layout.spatial_shape):
            start, stop, _ = s.indices(n)
            voxels *= max(0, stop - start)
        per_tile.append(voxels * op.cost.seconds)
    longest = max(per_tile, default=0.0)
    total = sum(per_tile) * layout.n_slices
    threads = max(1, min(workers, layout.jobs))
    seconds = max(total / threads, longest)
    kernel = op.kernel
    reports_inside = not isinstance(kernel, LibraryKernel) or kernel.seconds > 0
    return RunEstimate(seconds, longest, layout.jobs, threads, reports_inside)


def format_duration(seconds: float) -> str:
    """``"0.4 s"``, ``"12 s"``, ``"2 min 5 s"``, ``"1 h 3 min"``."""
    if not math.isfinite(seconds):
        return "unknown"
    seconds = max(0.0, float(seconds))
    if seconds < 10:
        return f"{seconds:.1f} s" if seconds < 1 else f"{seconds:.0f} s"
    if seconds < 60:
        return f"{round(seconds):.0f} s"
    if seconds < 3600:
        minutes, rest = divmod(round(seconds), 60)
        return f"{minutes} min" if rest == 0 or minutes >= 10 else f"{minutes} min {rest} s"
    hours, rest = divmod(round(seconds / 60), 60)
    return f"{hours} h {rest} min" if rest else f"{hours} h"


class ProgressMeter:
    """Where a run stands, in words: fraction done, time elapsed and time left.

    Fed with the scheduler's ``(done, total)`` steps. A run whose finished
    tiles alone would not move it every second (``estimate.busy``) is *busy*
    until a step shows progress inside a tile: its text then gives the
    elapsed time against the estimate instead of a percentage stuck at 0.
    ``clock`` returns seconds (``time.monotonic``; tests pass their own).
    """

    def __init__(self, estimate: RunEstimate | None = None, clock=None):
        import time

        self._clock = clock or time.monotonic
        self.estimate = estimate
        self.started = self._clock()
        self.done = 0
        self.total = 0
        self.busy = bool(estimate is not None and estimate.busy)
        self.steps = 0  # progress reports that moved the count

    def update(self, done: int, total: int) -> bool:
        """Record a step; True when the count moved."""
        moved = done != self.done
        self.done, self.total = int(done), int(total)
        if moved:
            self.steps += 1
            if self.busy and 0 < self.done < self.total:
                self.busy = False  # progress is reported after all
        return moved

    @property
    def elapsed(self) -> float:
        return self._clock() - self.started

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total > 0 else 0.0

    def seconds_left(self) -> float | None:
        """Linear extrapolation of the progress so far, else the estimate; None if unknown."""
        elapsed = self.elapsed
        if self.done > 0 and self.total > 0 and not self.busy:
            return elapsed * (self.total - self.done) / self.done
        if self.estimate is not None:
            return max(0.0, self.estimate.seconds - elapsed)
        return None

    def time_text(self) -> str:
        """``"12 s elapsed · about 15 s left"`` (the activity dock's time column)."""
        elapsed = self.elapsed
        parts = [f"{format_duration(elapsed)} elapsed"]
        left = self.seconds_left()
        measured = self.done > 0 and not self.busy
        if left is None:
            pass
        elif not measured and self.estimate is not None and elapsed > self.estimate.seconds:
            parts.append(f"longer than the {format_duration(self.estimate.seconds)} estimated")
        else:
            parts.append(f"about {format_duration(left)} left" + ("" if measured else " (estimate)"))
        return " · ".join(parts)

    def text(self) -> str:
        """The widget's status line while running."""
        if self.busy:
            return f"Running: {self.time_text()}"
        return f"Running: {100 * self.fraction:.0f} % · {self.time_text()}"
