"""Passes along one axis of an n-D array, shared among a team's threads.

The wavelet passes (the noise estimate's finest detail, the filter bank's
forward and inverse levels) read an array as lines along one axis: its shape
seen as ``(before, n, after)``, each of the ``before × after`` lines ``n``
long. A pass is written twice, as compiled loops:

* a general pass over 3-D views, which runs along the contiguous ``after``
  axis so that each step is one vectorised sweep, and takes the piece
  ``(b_lo, b_hi, a_lo, a_hi)`` it computes;
* a pass along the last axis (``after == 1``), over 2-D views (lines ×
  samples), each output a short dot product. The general pass, given lines
  of length 1, would spend most of its time making one-element views.

:func:`map_over_lines` shares either out: by lines, or by ranges along them
when there are fewer lines than threads. Each value is the same sum whichever
thread computes it, so results never depend on the number of threads.
"""

from __future__ import annotations

import numpy as np

from .threads import split_evenly

__all__ = ["as_lines", "parts_for", "line_pieces", "map_over_lines"]

# Values a thread is given at least (a few tenths of a millisecond of work):
# smaller passes are not worth handing over.
_MIN_VALUES_PER_THREAD = 1 << 16


def as_lines(shape, axis: int) -> tuple[int, int, int]:
    """``(before, n, after)``: ``shape`` seen as lines along ``axis``."""
    before = int(np.prod(shape[:axis], dtype=np.int64))
    after = int(np.prod(shape[axis + 1 :], dtype=np.int64))
    return before, shape[axis], after


def parts_for(values: int, threads: int) -> int:
    """How many threads ``values`` are shared among (each gets at least :data:`_MIN_VALUES_PER_THREAD`)."""
    return max(1, min(threads, values // _MIN_VALUES_PER_THREAD))


def line_pieces(before: int, after: int, values: int, threads: int):
    """``(b_lo, b_hi, a_lo, a_hi)`` per thread: lines shared out, or ranges along them."""
    parts = parts_for(values, threads)
    if before >= parts:
        return [(lo, hi, 0, after) for lo, hi in split_evenly(before, parts)]
    return [(0, before, lo, hi) for lo, hi in split_evenly(after, parts)]


def map_over_lines(team, general, along_last, args: tuple, lines: tuple[int, int, int], values: int) -> bool:
    """Run one pass over ``lines`` (``(before, n, after)``) on ``team``; False once cancelled.

    ``args`` are the pass's arguments before its piece, the arrays it reads
    and writes among them as 3-D ``(before, length, after)`` views (every 3-D
    argument is taken to be one). ``general(*args, b_lo, b_hi, a_lo, a_hi)``
    runs when ``after > 1``; otherwise ``along_last(*args_2d, b_lo, b_hi)``,
    with each 3-D view reshaped to 2-D (a C-contiguous view of a contiguous
    array). ``values``: the pass's output size, which decides how many
    threads share it. Each piece returns False once its cancel flag is set.
    """
    before, _, after = lines
    pieces = line_pieces(before, after, values, team.threads)
    if after == 1:
        flat = tuple(a.reshape(a.shape[0], a.shape[1]) if isinstance(a, np.ndarray) and a.ndim == 3 else a
                     for a in args)
        return all(team.map(along_last, [(*flat, b_lo, b_hi) for b_lo, b_hi, _, _ in pieces]))
    return all(team.map(general, [(*args, *piece) for piece in pieces]))
