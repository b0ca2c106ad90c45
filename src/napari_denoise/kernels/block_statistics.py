"""Per-block statistics of the noise-model fit (:mod:`napari_denoise.filters.noise`), compiled.

The Poisson–Gaussian fit cuts a slice into 2×…×2 blocks and needs, per
block, its mean, its finest diagonal Haar detail, the mean and spread of the
means of its 3^n − 1 neighbours, whether it and all of them are finite and
whether any of them touches a clipped value. In numpy that took a dozen
whole-array passes over float64 copies (the corners gathered by a transposed
copy, a matrix product, scipy.ndimage's uniform, minimum and maximum filters,
boolean indexing; 6 ms of the 9 ms fit of a 60 × 66 × 66 crop) that could
only be interrupted between them. Here:

* :func:`extremes` finds the slice's smallest and largest values and how
  many voxels hold them, and only where one of them is held by many, the
  nearest values inside and their counts: all the clipping test needs, in
  the slice's own dtype (numpy's SIMD minimum and maximum, then counting
  passes that vectorise; one pass that tracked all of it took 4× as long,
  its branches mispredicted on clipped data);
* :func:`slab_statistics` computes the blocks' means, details and flags in
  one pass over the slice, scipy's uniform filter of the means and of their
  squares in one pass per axis (the last axis's row by row, with the
  statistics of the usable blocks) and the neighbourhood flags in one short
  pass per axis: 0.7 ms on that crop.

The slice is read in its own dtype (each value widened to float64, as
``numpy.asarray(x, float64)`` does); 1-D to 3-D slices are handled as 3-D
views with leading axes of length 1, blocks pairing voxels along the real
axes only. Every compiled pass polls the run's cancellation flag.

The results are the numpy code's bit for bit, except the Haar detail (a
matrix product there, whose order of summation is BLAS's): the block means
add their corners in numpy's order, and the uniform filter repeats scipy's
running sums. Exactly, not to rounding: on integer data many blocks share a
level, the fit's bin edges fall on such ties, and a last-bit difference in
the levels moved blocks between bins and the fitted gain by 4e-4.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from .borders import jit

# the dtypes whose conversion to float64 numba does as numpy does (one list, the other kernels')
from .finest_detail import _READ_DIRECTLY

__all__ = ["Extremes", "as_readable", "extremes", "slab_statistics"]

# Values a pass handles between two polls of the cancellation flag.
_POLL_EVERY = 1 << 16


def as_readable(block) -> np.ndarray:
    """``block`` C-contiguous, in its own dtype where the kernels read it directly, else float64."""
    block = np.asarray(block)
    return np.ascontiguousarray(block, dtype=block.dtype if block.dtype in _READ_DIRECTLY else np.float64)


class Extremes(NamedTuple):
    """The smallest and largest values of a slice taken as float64, NaN ignored, and the
    nearest values inside them.

    ``lowest`` and ``highest`` are NaN when the slice holds nothing but NaN.
    ``above`` is the smallest value greater than ``lowest``, ``below`` the
    largest value smaller than ``highest``; each ``at_*`` is how many voxels
    hold that value. ``above`` / ``below`` are looked for only when ``lowest``
    or ``highest`` is held by many voxels (see :func:`extremes`); when they
    are not, or there is no such value, they are ±inf held by 0.
    """

    lowest: float
    at_lowest: int
    above: float
    at_above: int
    highest: float
    at_highest: int
    below: float
    at_below: int
    any_finite: bool


@jit
def _count_equal(values, first, second, flag):
    """How many of ``values`` equal ``first`` and how many ``second``; (-1, -1) once
    ``flag[0]`` is set."""
    at_first, at_second = 0, 0
    for start in range(0, values.size, _POLL_EVERY):
        if flag[0]:
            return -1, -1
        chunk = values[start : start + _POLL_EVERY]
        for i in range(chunk.size):
            at_first += chunk[i] == first
            at_second += chunk[i] == second
    return at_first, at_second


@jit
def _nearest_inside(values, lowest, highest, flag):
    """The smallest of ``values`` above ``lowest`` and the largest below ``highest`` (``lowest``
    < ``highest``, both held by some value), and whether ``flag[0]`` stayed clear.

    Each a minimum (maximum) over the values with those outside replaced by
    ``highest`` (``lowest``): a plain reduction, which vectorises on integers.
    """
    above, below = highest, lowest
    for start in range(0, values.size, _POLL_EVERY):
        if flag[0]:
            return above, below, False
        chunk = values[start : start + _POLL_EVERY]
        for i in range(chunk.size):
            v = chunk[i]
            above = min(above, v if v > lowest else highest)  # (NaN compares False: replaced)
            below = max(below, v if v < highest else lowest)
    return above, below, True


def extremes(block, flag, fewest: float = 0) -> Extremes | None:
    """The :class:`Extremes` of ``block`` (any shape and real dtype, taken as float64); None
    once ``flag[0]`` is set.

    The nearest values inside are looked for only when ``lowest`` or
    ``highest`` is held by at least ``fewest`` voxels: that pass does not
    vectorise on floats, and a clipping test needs it only then.
    """
    flat = as_readable(block).reshape(-1)
    if flat.dtype.kind in "iu" and flat.dtype.itemsize == 8:
        flat = flat.astype(np.float64)  # compared as the float64 values they round to, as numpy did
    if flat.size == 0:
        return Extremes(np.nan, 0, np.inf, 0, np.nan, 0, -np.inf, 0, False)
    # in the slice's own dtype: the order and the equalities of the values are their float64 values'
    lowest, highest = np.fmin.reduce(flat), np.fmax.reduce(flat)  # (NaN ignored)
    at_lowest, at_highest = _count_equal(flat, lowest, highest, flag)
    if at_lowest < 0:
        return None
    above, below, at_above, at_below = np.inf, -np.inf, 0, 0
    if lowest < highest and max(at_lowest, at_highest) >= fewest:
        above, below, done = _nearest_inside(flat, lowest, highest, flag)
        if not done:
            return None
        at_above, at_below = _count_equal(flat, above, below, flag)
        if at_above < 0:
            return None
    lowest, highest = float(lowest), float(highest)
    # only from -inf to +inf can the extremes hide whether a finite value lies between them
    any_finite = math.isfinite(lowest) or math.isfinite(highest) or (
        lowest < highest and bool(np.isfinite(flat).any())
    )
    return Extremes(lowest, at_lowest, float(above), at_above, highest, at_highest, float(below), at_below, any_finite)


# Bits of a block's flags.
_NOT_FINITE = 1
_CLIPPED = 2


@jit
def _outside(v, low, high):
    """Whether ``v <= low`` or ``v >= high`` (never for NaN, nor against a NaN limit)."""
    return (v <= low) | (v >= high)


@jit
def _store_block(total, alternating, corners, scale, touched, filled, squared, detail, flags, bx):
    """Write block ``bx`` of a row from the sum and the alternating-sign sum of its corners."""
    mean = total / corners
    d = alternating / scale
    finite = np.isfinite(mean) & np.isfinite(d)
    f = mean if finite else 0.0
    filled[bx] = f
    squared[bx] = f * f
    detail[bx] = d
    flags[bx] = (np.uint8(_CLIPPED) if touched else np.uint8(0)) | (np.uint8(0) if finite else np.uint8(_NOT_FINITE))


@jit
def _haar_blocks(x, ndim, low, high, filled, squared, detail, flags, flag):
    """Per 2×…×2 block of the 3-D view ``x`` (pairs along its last ``ndim`` axes only):
    ``filled`` its mean (0.0 where it or the detail is not finite) and ``squared`` the
    square of that, ``detail`` its diagonal Haar detail, ``flags`` :data:`_NOT_FINITE` and
    :data:`_CLIPPED` (a corner <= ``low`` or >= ``high``).

    The mean adds the corners (numbered in C order of their offsets) as
    numpy's ``mean`` does: pairwise for 8, one after the other from 0.0 for
    fewer; the detail's sign is the parity of the corner's offsets. One loop
    per dimensionality, so that none branches per block. Returns False once
    ``flag[0]`` is set.
    """
    blocks_z, blocks_y, blocks_x = filled.shape
    z_pairs = 2 if ndim == 3 else 1
    y_pairs = 2 if ndim >= 2 else 1
    corners = z_pairs * y_pairs * 2
    scale = np.sqrt(np.float64(corners))
    for bz in range(blocks_z):
        for by in range(blocks_y):
            if flag[0]:
                return False
            # the corner rows (the same one twice along an axis that is not paired)
            z0, y0 = bz * z_pairs, by * y_pairs
            r0, r1 = x[z0, y0], x[z0, y0 + y_pairs - 1]
            r2, r3 = x[z0 + z_pairs - 1, y0], x[z0 + z_pairs - 1, y0 + y_pairs - 1]
            f_row, s_row, d_row, g_row = filled[bz, by], squared[bz, by], detail[bz, by], flags[bz, by]
            if ndim == 3:
                for bx in range(blocks_x):
                    c0, c1 = np.float64(r0[2 * bx]), np.float64(r0[2 * bx + 1])
                    c2, c3 = np.float64(r1[2 * bx]), np.float64(r1[2 * bx + 1])
                    c4, c5 = np.float64(r2[2 * bx]), np.float64(r2[2 * bx + 1])
                    c6, c7 = np.float64(r3[2 * bx]), np.float64(r3[2 * bx + 1])
                    touched = (_outside(c0, low, high) | _outside(c1, low, high) | _outside(c2, low, high)
                               | _outside(c3, low, high) | _outside(c4, low, high) | _outside(c5, low, high)
                               | _outside(c6, low, high) | _outside(c7, low, high))
                    total = ((c0 + c1) + (c2 + c3)) + ((c4 + c5) + (c6 + c7))
                    alternating = (c0 - c1) - (c2 - c3) - (c4 - c5) + (c6 - c7)
                    _store_block(total, alternating, corners, scale, touched, f_row, s_row, d_row, g_row, bx)
            elif ndim == 2:
                for bx in range(blocks_x):
                    c0, c1 = np.float64(r0[2 * bx]), np.float64(r0[2 * bx + 1])
                    c2, c3 = np.float64(r1[2 * bx]), np.float64(r1[2 * bx + 1])
                    touched = (_outside(c0, low, high) | _outside(c1, low, high) | _outside(c2, low, high)
                               | _outside(c3, low, high))
                    total = 0.0 + c0 + c1 + c2 + c3
                    _store_block(total, c0 - c1 - c2 + c3, corners, scale, touched, f_row, s_row, d_row, g_row, bx)
            else:
                for bx in range(blocks_x):
                    c0, c1 = np.float64(r0[2 * bx]), np.float64(r0[2 * bx + 1])
                    touched = _outside(c0, low, high) | _outside(c1, low, high)
                    _store_block(0.0 + c0 + c1, c0 - c1, corners, scale, touched, f_row, s_row, d_row, g_row, bx)
    return True


# Columns a pass across lines handles at once: its kept rows stay in the cache.
_ACROSS_COLUMNS = 1024


@jit
def _uniform_across(values, squares, values_out, squares_out, flag):
    """``scipy.ndimage.uniform_filter1d(·, 3, axis=1, mode="nearest")`` of the 3-D
    ``values`` and ``squares``, bit for bit: scipy's running sum along each line
    (((0 + a[0]) + a[0]) + a[1], then + (a[l + 1] - a[l - 2]) with the indices
    clamped to the line), each output that sum / 3.

    Every line along axis 1 at once, across a band of the last axis
    (contiguous). The outputs may be the inputs: the input rows still needed
    once overwritten (the last three) are kept. Returns False once ``flag[0]``
    is set.
    """
    outer, length, inner = values.shape
    width = min(inner, _ACROSS_COLUMNS)
    kept = np.empty((3, width), np.float64)  # row r of the inputs in kept[r % 3]
    kept_sq = np.empty((3, width), np.float64)
    running = np.empty(width, np.float64)
    running_sq = np.empty(width, np.float64)
    for o in range(outer):
        for start in range(0, inner, width):
            stop = min(start + width, inner)
            w = stop - start
            for line in range(length):
                if flag[0]:
                    return False
                here, here_sq = values[o, line, start:stop], squares[o, line, start:stop]
                if line == 0:
                    after = min(1, length - 1)
                    nxt, nxt_sq = values[o, after, start:stop], squares[o, after, start:stop]
                    for i in range(w):
                        running[i] = 0.0 + here[i] + here[i] + nxt[i]
                        running_sq[i] = 0.0 + here_sq[i] + here_sq[i] + nxt_sq[i]
                else:
                    entering = min(line + 1, length - 1)  # (not overwritten yet)
                    new, new_sq = values[o, entering, start:stop], squares[o, entering, start:stop]
                    old, old_sq = kept[max(line - 2, 0) % 3, :w], kept_sq[max(line - 2, 0) % 3, :w]
                    for i in range(w):
                        running[i] += new[i] - old[i]
                        running_sq[i] += new_sq[i] - old_sq[i]
                keep, keep_sq = kept[line % 3, :w], kept_sq[line % 3, :w]
                for i in range(w):
                    keep[i] = here[i]
                    keep_sq[i] = here_sq[i]
                out, out_sq = values_out[o, line, start:stop], squares_out[o, line, start:stop]
                for i in range(w):
                    out[i] = running[i] / 3.0
                    out_sq[i] = running_sq[i] / 3.0
    return True


@jit
def _running_sums_along(values, squares, sums, square_sums):
    """The running sums of :func:`_uniform_across` (not yet divided by 3) along the 1-D
    ``values`` and ``squares`` (at least 2 long), into other arrays."""
    length = values.size
    running = 0.0 + values[0] + values[0] + values[1]
    running_sq = 0.0 + squares[0] + squares[0] + squares[1]
    sums[0] = running
    square_sums[0] = running_sq
    for line in range(1, length):
        entering, leaving = min(line + 1, length - 1), max(line - 2, 0)
        running += values[entering] - values[leaving]
        running_sq += squares[entering] - squares[leaving]
        sums[line] = running
        square_sums[line] = running_sq


@jit
def _or_of_neighbours(flags, out, step, flag):
    """``out[i] = flags[i - step] | flags[i] | flags[i + step]`` on flat arrays, for every ``i``
    with both neighbours in them (the rest of ``out`` is left as it is).

    With ``step`` the stride of an axis, the OR over each block and its two
    neighbours along that axis; at the first and last block of the axis it
    mixes in other lines, but only interior blocks are read from it.
    Returns False once ``flag[0]`` is set.
    """
    n = flags.size - 2 * step
    for start in range(0, n, _POLL_EVERY):
        if flag[0]:
            return False
        stop = min(start + _POLL_EVERY, n)
        before, here = flags[start:stop], flags[start + step : stop + step]
        after, target = flags[start + 2 * step : stop + 2 * step], out[start + step : stop + step]
        for i in range(target.size):
            target[i] = before[i] | here[i] | after[i]
    return True


@jit
def _usable_statistics(filled, detail, means, square_means, around, ndim,
                       level, spread, mean, detail_sq, clipped, flag):
    """The statistics of the usable blocks, in C order: interior blocks (not first or last
    along a real axis) whose 3^n neighbourhood is finite.

    ``means`` and ``square_means`` are the finite-filled means and their
    squares after the uniform filter (size 3) along every axis but the last;
    the last axis's pass is made here, row by row (its division by 3 in the
    loop that vectorises). ``around`` is the OR of the flags over each
    block's neighbourhood. With ``filtered`` the uniform filter of the means
    along every axis, ``filtered_sq`` that of their squares and ``ring`` =
    3^n − 1, as the numpy code computes them: ``level = (filtered·3^n − own)
    / ring``, ``spread = ((filtered_sq·3^n − own²) − ring·level·level) / (ring
    − 1)``; ``clipped`` when a block of the neighbourhood is. Each row is
    written whole, then compacted where it holds unusable blocks. Returns the
    number of usable blocks, -1 once ``flag[0]`` is set.
    """
    blocks_z, blocks_y, blocks_x = filled.shape
    reach_z = 1 if ndim == 3 else 0
    reach_y = 1 if ndim >= 2 else 0
    box = 3**ndim
    ring = box - 1
    n = blocks_x - 2
    row_sums = np.empty(blocks_x, np.float64)
    row_square_sums = np.empty(blocks_x, np.float64)
    sums, square_sums = row_sums[1:-1], row_square_sums[1:-1]
    count = 0
    for bz in range(reach_z, blocks_z - reach_z):
        for by in range(reach_y, blocks_y - reach_y):
            if flag[0]:
                return -1
            _running_sums_along(means[bz, by], square_means[bz, by], row_sums, row_square_sums)
            own_means, own_details, g = filled[bz, by, 1:-1], detail[bz, by, 1:-1], around[bz, by, 1:-1]
            out_level, out_spread = level[count : count + n], spread[count : count + n]
            out_mean = mean[count : count + n]
            out_detail_sq, out_clipped = detail_sq[count : count + n], clipped[count : count + n]
            seen = np.uint8(0)
            for i in range(n):
                own = own_means[i]
                level_here = ((sums[i] / 3.0) * box - own) / ring
                out_level[i] = level_here
                squares_around = (square_sums[i] / 3.0) * box - own * own
                out_spread[i] = (squares_around - ring * level_here * level_here) / (ring - 1)
                out_mean[i] = own
                out_detail_sq[i] = own_details[i] ** 2
                out_clipped[i] = (g[i] & _CLIPPED) != 0
                seen |= g[i]
            if (seen & _NOT_FINITE) == 0:
                count += n
                continue
            kept = 0
            for i in range(n):
                if (g[i] & _NOT_FINITE) == 0:
                    out_level[kept], out_spread[kept], out_mean[kept] = out_level[i], out_spread[i], out_mean[i]
                    out_detail_sq[kept], out_clipped[kept] = out_detail_sq[i], out_clipped[i]
                    kept += 1
            count += kept
    return count


def slab_statistics(slab, low: float | None, high: float | None, flag) -> dict | None:
    """Statistics of the usable 2×…×2 blocks of a 1-D to 3-D ``slab`` (at least 6 voxels
    along every axis) for the noise fit, None once ``flag[0]`` is set.

    Returns ``level`` and ``spread`` (the mean and the spread of the means of
    the 3^n − 1 neighbouring blocks), ``mean`` and ``detail_sq`` (the block's
    own mean and squared diagonal Haar detail) and ``clipped`` (a block of
    the 3^n neighbourhood has a corner <= ``low`` or >= ``high``; None: no
    such limit), one value per usable block in C order: those of
    ``filters.noise._numpy_slab_statistics``.
    """
    slab = as_readable(slab)
    ndim = slab.ndim
    if not 1 <= ndim <= 3 or min(slab.shape) < 6:
        raise ValueError(f"slab: expected 1 to 3 axes of at least 6 voxels, got the shape {slab.shape}")
    view = slab.reshape((1,) * (3 - ndim) + slab.shape)
    blocks = (1,) * (3 - ndim) + tuple(s // 2 for s in slab.shape)
    # (few whole-size arrays: on large slices, the first touch of fresh memory costs as much as a pass)
    filled, squared, detail = (np.empty(blocks, np.float64) for _ in range(3))
    flags = np.empty(blocks, np.uint8)
    # NaN limits compare False with every value: nothing is clipped there
    limits = (np.nan if low is None else float(low), np.nan if high is None else float(high))
    if not _haar_blocks(view, ndim, *limits, filled, squared, detail, flags, flag):
        return None
    # scipy.ndimage.uniform_filter: one pass per real axis in order, each on the previous one's
    # output (the squares' in place; the last axis's pass is made row by row with the statistics)
    means, square_means = filled, squared
    for axis in range(3 - ndim, 2):
        z, y, x = blocks
        lines = (1, z, y * x) if axis == 0 else (z, y, x)  # every line at once, across the axes after it
        out = np.empty(blocks, np.float64) if means is filled else means
        if not _uniform_across(means.reshape(lines), square_means.reshape(lines), out.reshape(lines),
                               square_means.reshape(lines), flag):
            return None
        means = out
    # the OR of the flags over each block's neighbourhood, one axis after the other
    around, spare = flags.reshape(-1), np.empty(flags.size, np.uint8)
    for axis in range(3 - ndim, 3):
        if not _or_of_neighbours(around, spare, math.prod(blocks[axis + 1 :]), flag):
            return None
        around, spare = spare, around
    interior = math.prod(s // 2 - 2 for s in slab.shape)
    outputs = {
        "level": np.empty(interior, np.float64),
        "spread": np.empty(interior, np.float64),
        "mean": np.empty(interior, np.float64),
        "detail_sq": np.empty(interior, np.float64),
        "clipped": np.empty(interior, np.bool_),
    }
    count = _usable_statistics(filled, detail, means, square_means, around.reshape(blocks), ndim,
                               *outputs.values(), flag)
    if count < 0:
        return None
    return {key: values[:count] for key, values in outputs.items()}
