"""Block-matching collaborative filtering: BM3D (planes) and BM4D (volumes).

Written from the papers, not from any implementation:

* K. Dabov, A. Foi, V. Katkovnik and K. Egiazarian, "Image denoising by
  sparse 3-D transform-domain collaborative filtering", IEEE Trans. Image
  Process. 16(8), 2007 (BM3D);
* M. Maggioni, V. Katkovnik, K. Egiazarian and A. Foi, "Nonlocal
  transform-domain filter for volumetric data denoising and reconstruction",
  IEEE Trans. Image Process. 22(1), 2013 (BM4D).

One code path does both: a plane is a volume one voxel deep whose blocks are
one voxel deep and whose search window does not move along that axis. For
each *reference block* on a grid (every ``step`` voxels, the last position
of each axis always included) the filter

1. finds the ``max_group`` blocks of its search window closest to it (mean
   squared difference, at most ``tau`` σ²), keeping a power of two of them;
2. stacks them into a group and takes its separable transform: an
   orthonormal DCT-II of each block along every axis, then an orthonormal
   Haar transform across the group;
3. shrinks the spectrum: hard thresholding at ``lam`` σ in the first stage,
   the empirical Wiener filter ``|B|² / (|B|² + σ²)`` built from the first
   stage's estimate ``B`` in the second;
4. inverts the transform and adds every block estimate back at its place,
   weighted by ``1 / (kept coefficients)`` (first stage) or ``1 / ‖W‖²``
   (second stage) times a Kaiser window.

The second stage matches blocks on the first stage's estimate. Results are
the weighted averages of the estimates.

Parallelism and determinism: reference blocks are cut into chunks; worker
threads (compiled code, GIL released) filter chunks into small buffers and
the calling thread adds the buffers into the accumulators in the chunks'
order, while the workers already filter the next wave. The result is
therefore bit-identical whatever the number of threads, and the memory is
the slice-sized accumulators plus buffers of a fixed size.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numba
import numpy as np

__all__ = ["StageParameters", "denoise_slice", "reference_positions", "dct_matrix"]

#: Compiled like every kernel (cached, GIL released), plus reassociation so
#: that the short sums vectorise; NaN and infinities keep IEEE semantics.
jit = numba.njit(
    cache=True,
    nogil=True,
    boundscheck=False,
    fastmath={"nsz", "arcp", "contract", "reassoc"},
)

#: Reference blocks filtered by one worker call (a few milliseconds of work).
CHUNK_REFERENCES = 32


@dataclass(frozen=True)
class StageParameters:
    """One stage of the filter, in voxels, on the (z, y, x) layout.

    Attributes
    ----------
    block : tuple of 3 int
        Block extent along z, y, x (1 along z for planes).
    step : tuple of 3 int
        Distance between reference blocks along each axis (at most ``block``).
    radius : tuple of 3 int
        Half-width of the search window: candidates lie within ``radius``
        voxels of the reference block's corner.
    max_group : int
        Most blocks in a group, a power of two.
    tau : float
        Largest mean squared difference between matched blocks, in units of
        σ² (the noise variance).
    lam : float
        Hard threshold in units of σ (first stage only; 0 in the Wiener stage).
    beta : float
        Shape parameter of the Kaiser window of the aggregation.
    """

    block: tuple[int, int, int]
    step: tuple[int, int, int]
    radius: tuple[int, int, int]
    max_group: int
    tau: float
    lam: float
    beta: float


def dct_matrix(n: int) -> np.ndarray:
    """Orthonormal DCT-II matrix of size ``n`` (row k is the k-th basis vector)."""
    k = np.arange(n)[:, None]
    j = np.arange(n)[None, :]
    matrix = np.cos(np.pi * (2 * j + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    matrix[0] /= math.sqrt(2.0)
    return matrix.astype(np.float32)


def reference_positions(length: int, block: int, step: int) -> np.ndarray:
    """Corners of the reference blocks along one axis: every ``step``, the last one included."""
    last = length - block
    positions = list(range(0, last + 1, step))
    if positions[-1] != last:
        positions.append(last)
    return np.asarray(positions, np.int32)


# -- block matching --------------------------------------------------------------------------
@jit
def _match(image, pz, py, px, block, radius, max_group, bound0, best_d, best_pos, distances):
    """The ``max_group`` blocks closest to the one at (pz, py, px); returns their count.

    ``best_d`` / ``best_pos`` get the sums of squared differences (ascending;
    ties keep the raster order) and the corners; the reference block comes
    first. Candidates at most ``bound0`` away qualify. The distances of a
    whole row of candidates are summed at once (contiguous, vectorised) in
    ``distances``.
    """
    nz, ny, nx = image.shape
    bz, by, bx = block[0], block[1], block[2]
    z_lo = max(0, pz - radius[0])
    z_hi = min(nz - bz, pz + radius[0])
    y_lo = max(0, py - radius[1])
    y_hi = min(ny - by, py + radius[1])
    x_lo = max(0, px - radius[2])
    x_hi = min(nx - bx, px + radius[2])
    width = x_hi - x_lo + 1
    best_d[0] = 0.0
    best_pos[0, 0] = pz
    best_pos[0, 1] = py
    best_pos[0, 2] = px
    count = 1
    bound = bound0
    for qz in range(z_lo, z_hi + 1):
        for qy in range(y_lo, y_hi + 1):
            for t in range(width):
                distances[t] = 0.0
            for dz in range(bz):
                for dy in range(by):
                    candidates = image[qz + dz, qy + dy]
                    for dx in range(bx):
                        r = image[pz + dz, py + dy, px + dx]
                        base = x_lo + dx
                        for t in range(width):
                            diff = r - candidates[base + t]
                            distances[t] += diff * diff
            for t in range(width):
                total = distances[t]
                if not total <= bound:  # also rejects NaN
                    continue
                qx = x_lo + t
                if qz == pz and qy == py and qx == px:
                    continue
                if count == max_group and not total < best_d[count - 1]:
                    continue
                j = count if count < max_group else count - 1
                while j > 1 and best_d[j - 1] > total:
                    best_d[j] = best_d[j - 1]
                    best_pos[j, 0] = best_pos[j - 1, 0]
                    best_pos[j, 1] = best_pos[j - 1, 1]
                    best_pos[j, 2] = best_pos[j - 1, 2]
                    j -= 1
                best_d[j] = total
                best_pos[j, 0] = qz
                best_pos[j, 1] = qy
                best_pos[j, 2] = qx
                if count < max_group:
                    count += 1
                if count == max_group:
                    bound = min(bound0, best_d[count - 1])
    return count


@jit
def _power_of_two_at_most(n):
    m = 1
    while 2 * m <= n:
        m *= 2
    return m


# -- the group transform ---------------------------------------------------------------------
@jit
def _gather(image, pos, m, block, group):
    """``group[i]`` = the block at ``pos[i]`` of ``image`` (flattened z, y, x)."""
    bz, by, bx = block[0], block[1], block[2]
    for i in range(m):
        k = 0
        for dz in range(bz):
            for dy in range(by):
                for dx in range(bx):
                    group[i, k] = image[pos[i, 0] + dz, pos[i, 1] + dy, pos[i, 2] + dx]
                    k += 1


@jit
def _multiply(group, m, matrix, scratch):
    """``group[:m] = group[:m] @ matrix`` (rows are blocks; the inner loop is contiguous)."""
    size = matrix.shape[0]
    for i in range(m):
        for k in range(size):
            scratch[i, k] = 0.0
        for j in range(size):
            a = group[i, j]
            for k in range(size):
                scratch[i, k] += a * matrix[j, k]
        for k in range(size):
            group[i, k] = scratch[i, k]


@jit
def _haar(group, m, size, inverse, scratch):
    """Orthonormal Haar transform across the ``m`` blocks (``m`` a power of two)."""
    h = np.float32(1.0 / math.sqrt(2.0))
    if not inverse:
        length = m
        while length > 1:
            half = length // 2
            for i in range(half):
                for q in range(size):
                    a = group[2 * i, q]
                    b = group[2 * i + 1, q]
                    scratch[i, q] = (a + b) * h
                    scratch[half + i, q] = (a - b) * h
            for i in range(length):
                for q in range(size):
                    group[i, q] = scratch[i, q]
            length = half
    else:
        length = 2
        while length <= m:
            half = length // 2
            for i in range(half):
                for q in range(size):
                    a = group[i, q]
                    b = group[half + i, q]
                    scratch[2 * i, q] = (a + b) * h
                    scratch[2 * i + 1, q] = (a - b) * h
            for i in range(length):
                for q in range(size):
                    group[i, q] = scratch[i, q]
            length *= 2


@jit
def _forward(image, pos, m, block, forward, group, scratch):
    """Group spectrum: the blocks at ``pos[:m]``, DCT of each, Haar across them."""
    _gather(image, pos, m, block, group)
    _multiply(group, m, forward, scratch)
    _haar(group, m, group.shape[1], False, scratch)


# -- one chunk of reference blocks ------------------------------------------------------------
@jit
def _filter_chunk(noisy, guide, refs, first, last, block, radius, max_group, bound, sigma,
                  lam, forward, inverse, wiener, out_pos, out_count, out_weight, out_values, flag):
    """Filter reference blocks ``first:last``; the group estimates go to the ``out_*`` buffers.

    First stage (``wiener`` False): matching on ``noisy``, hard thresholding.
    Wiener stage: matching on ``guide`` (the first estimate), whose group
    spectrum makes the Wiener weights applied to the noisy group's spectrum.
    ``forward``/``inverse`` are the blocks' separable DCT as one matrix
    acting on flattened blocks (rows). Returns the number of reference
    blocks done (fewer once ``flag[0]`` is set).
    """
    size = forward.shape[0]
    best_d = np.empty(max_group, np.float32)
    best_pos = np.empty((max_group, 3), np.int32)
    noisy_group = np.empty((max_group, size), np.float32)
    guide_group = np.empty((max_group, size), np.float32)
    scratch = np.empty((max_group, size), np.float32)
    distances = np.empty(2 * radius[2] + 1, np.float32)
    threshold = np.float32(lam * sigma)
    variance = np.float32(sigma * sigma)
    match_on = guide if wiener else noisy
    for r in range(first, last):
        if flag[0]:
            return r - first
        slot = r - first
        count = _match(match_on, refs[r, 0], refs[r, 1], refs[r, 2], block, radius,
                       max_group, bound, best_d, best_pos, distances)
        m = _power_of_two_at_most(count)
        _forward(noisy, best_pos, m, block, forward, noisy_group, scratch)
        if not wiener:
            kept = 0
            for i in range(m):
                for q in range(size):
                    if abs(noisy_group[i, q]) > threshold:
                        kept += 1
                    else:
                        noisy_group[i, q] = 0.0
            weight = 1.0 / kept if kept > 0 else 1.0
        else:
            _forward(guide, best_pos, m, block, forward, guide_group, scratch)
            energy = 0.0
            for i in range(m):
                for q in range(size):
                    b2 = guide_group[i, q] * guide_group[i, q]
                    w = b2 / (b2 + variance)
                    noisy_group[i, q] *= w
                    energy += w * w
            weight = 1.0 / energy if energy > 0 else 1.0
        _haar(noisy_group, m, size, True, scratch)
        _multiply(noisy_group, m, inverse, scratch)
        out_count[slot] = m
        out_weight[slot] = weight
        for i in range(m):
            out_pos[slot, i, 0] = best_pos[i, 0]
            out_pos[slot, i, 1] = best_pos[i, 1]
            out_pos[slot, i, 2] = best_pos[i, 2]
            for q in range(size):
                out_values[slot, i, q] = noisy_group[i, q]
    return last - first


@jit
def _aggregate(n, block, window, out_pos, out_count, out_weight, out_values, numerator, denominator):
    """Add ``n`` buffered groups into the weighted sums, in order."""
    bz, by, bx = block[0], block[1], block[2]
    for slot in range(n):
        weight = out_weight[slot]
        for i in range(out_count[slot]):
            z0 = out_pos[slot, i, 0]
            y0 = out_pos[slot, i, 1]
            x0 = out_pos[slot, i, 2]
            k = 0
            for dz in range(bz):
                for dy in range(by):
                    for dx in range(bx):
                        w = weight * window[k]
                        numerator[z0 + dz, y0 + dy, x0 + dx] += w * out_values[slot, i, k]
                        denominator[z0 + dz, y0 + dy, x0 + dx] += w
                        k += 1


@jit
def _divide(numerator, denominator, out):
    nz, ny, nx = out.shape
    for z in range(nz):
        for y in range(ny):
            for x in range(nx):
                out[z, y, x] = numerator[z, y, x] / denominator[z, y, x]


# -- driver ------------------------------------------------------------------------------------
class _Buffers:
    """Group estimates of one chunk, waiting to be added in order."""

    def __init__(self, max_group: int, size: int):
        self.pos = np.empty((CHUNK_REFERENCES, max_group, 3), np.int32)
        self.count = np.zeros(CHUNK_REFERENCES, np.int32)
        self.weight = np.zeros(CHUNK_REFERENCES, np.float64)
        self.values = np.empty((CHUNK_REFERENCES, max_group, size), np.float32)


def _kaiser(block, beta) -> np.ndarray:
    window = np.ones(1)
    for n in block:
        window = np.multiply.outer(window, np.kaiser(n, beta) if n > 1 else np.ones(1))
    return window.ravel().astype(np.float64)


def _run_stage(noisy, guide, sigma, stage: StageParameters, wiener, pool, threads, flag, ticks):
    """One stage over the whole slice; returns the estimate (None when cancelled)."""
    shape = noisy.shape
    block = np.asarray(stage.block, np.int64)
    radius = np.asarray(stage.radius, np.int64)
    grids = [reference_positions(n, b, s) for n, b, s in zip(shape, stage.block, stage.step)]
    refs = np.stack(np.meshgrid(*grids, indexing="ij"), axis=-1).reshape(-1, 3).astype(np.int32)
    size = int(np.prod(stage.block))
    dct = [dct_matrix(b).astype(np.float64) for b in stage.block]
    transform = np.kron(np.kron(dct[0], dct[1]), dct[2])  # coefficient (kz, ky, kx) x voxel (z, y, x)
    forward = np.ascontiguousarray(transform.T, dtype=np.float32)  # rows @ forward = spectra
    inverse = np.ascontiguousarray(transform, dtype=np.float32)
    window = _kaiser(stage.block, stage.beta)
    bound = np.float32(stage.tau * sigma * sigma * size)
    numerator = np.zeros(shape, np.float64)
    denominator = np.zeros(shape, np.float64)
    chunks = [(a, min(a + CHUNK_REFERENCES, len(refs))) for a in range(0, len(refs), CHUNK_REFERENCES)]
    wave = 2 * threads
    spare = [[_Buffers(stage.max_group, size) for _ in range(wave)] for _ in range(2)]

    def filter_chunk(chunk, buffers):
        first, last = chunk
        return _filter_chunk(noisy, guide, refs, first, last, block, radius, stage.max_group,
                             bound, np.float32(sigma), np.float32(stage.lam), forward, inverse,
                             wiener, buffers.pos, buffers.count, buffers.weight,
                             buffers.values, flag)

    def add(chunk, buffers):
        _aggregate(chunk[1] - chunk[0], block, window, buffers.pos, buffers.count,
                   buffers.weight, buffers.values, numerator, denominator)
        ticks[0] += chunk[1] - chunk[0]

    # Wave k is filtered by the workers while this thread adds wave k - 1.
    previous = []
    for w, start in enumerate(range(0, len(chunks), wave)):
        buffers = spare[w % 2]
        current = list(zip(chunks[start:start + wave], buffers))
        if pool is None:
            for chunk, buf in current:
                filter_chunk(chunk, buf)
            futures = None
        else:
            futures = [pool.submit(filter_chunk, chunk, buf) for chunk, buf in current]
        for chunk, buf in previous:
            add(chunk, buf)
        if futures is not None:
            for future in futures:
                future.result()
        if flag[0]:
            return None
        previous = current
    for chunk, buf in previous:
        add(chunk, buf)
    estimate = np.empty(shape, np.float32)
    _divide(numerator, denominator, estimate)
    return estimate


def reference_count(shape, stage: StageParameters) -> int:
    """Number of reference blocks of a stage on a (z, y, x) slice of ``shape``."""
    return math.prod(len(reference_positions(n, b, s)) for n, b, s in zip(shape, stage.block, stage.step))


def denoise_slice(image, sigma, first: StageParameters, second: StageParameters, *,
                  threads: int = 1, flag=None, ticks=None):
    """Two-stage block-matching denoising of one (z, y, x) float32 slice.

    ``first``/``second`` are the stages' parameters (block extents already
    clipped to the slice). ``flag`` (one-element uint8 array) is polled
    before every reference block; ``ticks`` (int64 ``[done, total]``) counts
    the reference blocks of both stages. Returns a float32 array, or None
    when cancelled.
    """
    noisy = np.ascontiguousarray(image, dtype=np.float32)
    flag = np.zeros(1, np.uint8) if flag is None else flag
    ticks = np.zeros(2, np.int64) if ticks is None else ticks
    ticks[1] = reference_count(noisy.shape, first) + reference_count(noisy.shape, second)
    ticks[0] = 0
    pool = ThreadPoolExecutor(threads, thread_name_prefix="block-matching") if threads > 1 else None
    try:
        basic = _run_stage(noisy, noisy, sigma, first, False, pool, threads, flag, ticks)
        if basic is None:
            return None
        return _run_stage(noisy, basic, sigma, second, True, pool, threads, flag, ticks)
    finally:
        if pool is not None:
            pool.shutdown(wait=True)
