"""Threads inside one kernel call, for kernels that cannot be cut into tiles.

The scheduler parallelises tiles, but a global method (total variation) gets
one whole slice per call, and non-local means gains from splitting its search
offsets rather than its voxels. Such a kernel asks the tile's token how many
threads it may use (``token.threads``: the run's workers shared among the
tiles running at once) and runs its compiled, GIL-releasing pieces on that
many threads of a :class:`Team`. Plain Python threads calling ``nogil`` numba
functions compose with the scheduler's pool; numba's own threading layers
(``prange``) may not be entered from several threads at once.
"""

from __future__ import annotations

from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

import numpy as np

__all__ = ["Team", "threads_of", "split_evenly", "run_pieces", "progress_counters"]

# While pieces run on a team, their progress is copied to the token this often.
_PROGRESS_SECONDS = 0.05


def threads_of(token) -> int:
    """Threads a kernel may use for this tile (1 when the token does not say)."""
    return max(1, int(getattr(token, "threads", 1) or 1))


def split_evenly(n: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` contiguous ``(start, stop)`` ranges covering ``range(n)``, sizes within one."""
    parts = max(1, min(parts, n)) if n > 0 else 1
    return [(n * k // parts, n * (k + 1) // parts) for k in range(parts)]


class Team:
    """``threads`` workers that run one function on several argument tuples at once.

    With one thread everything runs in the caller's thread (no pool at all).
    Use as a context manager so the pool's threads end with the kernel call.
    """

    def __init__(self, threads: int):
        self.threads = max(1, int(threads))
        self._pool = None
        if self.threads > 1:
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="napari-denoise-kernel")

    def map(self, function, argument_tuples) -> list:
        """``[function(*args) for args in argument_tuples]``, run on the team's threads.

        The first tuple runs in the calling thread, which would otherwise
        only wait: one thread hand-off fewer per call, which counts for
        kernels that call ``map`` twice per iteration (total variation).
        """
        if self._pool is None or len(argument_tuples) <= 1:
            return [function(*args) for args in argument_tuples]
        futures = [self._pool.submit(function, *args) for args in argument_tuples[1:]]
        try:
            first = function(*argument_tuples[0])
        finally:
            results = [f.result() for f in futures]  # never leave a piece running past the call
        return [first, *results]

    def submit(self, function, *args):
        """Start ``function(*args)`` on a team thread; returns its future (needs threads > 1)."""
        return self._pool.submit(function, *args)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def __enter__(self) -> "Team":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def progress_counters(token, pieces: int) -> np.ndarray:
    """Where ``pieces`` compiled workers count their steps: ``token.ticks`` itself for one."""
    if token is not None and pieces == 1:
        return token.ticks
    return np.zeros(max(1, pieces), np.int64)


def run_pieces(function, argument_tuples, counters, token, total: int) -> None:
    """``function(*args)`` for each tuple, one thread each, with their progress in ``token.ticks``.

    Each call counts its steps (of ``total``) in ``counters[k]`` (see
    :func:`progress_counters`); with several calls, the mean count is copied
    to ``token.ticks[0]`` every 50 ms while they run. An exception in any
    call is raised here once all have finished.
    """
    if token is not None:
        token.ticks[1] = total
        token.ticks[0] = 0
    if len(argument_tuples) <= 1:
        for args in argument_tuples:
            function(*args)
        return
    with Team(len(argument_tuples)) as team:
        pending = {team.submit(function, *args) for args in argument_tuples}
        futures = list(pending)
        while pending:
            _, pending = wait(pending, timeout=_PROGRESS_SECONDS, return_when=FIRST_EXCEPTION)
            if token is not None:
                token.ticks[0] = int(counters.sum()) // len(argument_tuples)
        for future in futures:
            future.result()
    if token is not None:
        token.ticks[0] = total
