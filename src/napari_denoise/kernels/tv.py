"""Total-variation denoising by Chambolle's projection algorithm, compiled and threaded.

The same float32 operations in the same order as scikit-image's
``_denoise_tv_chambolle_nd`` (0.26), so the result is equal to it value for
value (a zero's sign aside), and it stops at the same iteration:

* per voxel, as scikit-image's whole-array expressions do:
  ``d = -(p_0 + p_1 + p_2) + p_0[x - e_0] + p_1[x - e_1] + p_2[x - e_2]``,
  ``out = image + d``, ``g_a = out[x + e_a] - out[x]`` (0 on the last
  voxel of an axis), ``norm = sqrt(g_0² + g_1² + g_2²)``,
  ``p_a = (p_a - τ g_a) / (1 + norm · τ / weight)`` with ``τ`` and
  ``τ / weight`` rounded to float32 as numpy does;
* the energy ``E = (Σ d² + weight Σ norm) / size`` with numpy's pairwise
  summation of float32 arrays (blocks of 128 values summed with eight
  accumulators, halves split at multiples of 8), reproduced exactly.

Each iteration is two passes over the volume; every pass is cut into pieces
along the pairwise-summation tree (so that each piece's partial sum is one of
numpy's sub-sums) and the pieces run on threads. Work memory: ``p`` (one
float32 volume per axis) and one float32 volume holding ``d`` then ``norm``;
the output is written in place and the input is read in its own dtype.

With ``spacing`` the differences along axis ``a`` are divided by
``spacing[a] / min(spacing)`` (and the divergence is its adjoint); ``τ``
becomes ``1 / (2 Σ_a (min(spacing) / spacing[a])²)``, which is scikit-image's
``1 / (2 ndim)`` for isotropic voxels: isotropic spacing changes nothing.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from .borders import as_3d, jit
from .threads import Team

__all__ = ["tv_chambolle", "pairwise_pieces"]

_PW_BLOCK = 128  # numpy's PW_BLOCKSIZE


@jit
def _pairwise(values, lo, n, square):
    """numpy's ``pairwise_sum`` of ``values[lo:lo + n]`` (squared first if ``square``), float32."""
    if n < 8:
        res = np.float32(0.0)
        for i in range(lo, lo + n):
            v = values[i]
            res += v * v if square else v
        return res
    if n <= _PW_BLOCK:
        # numpy's eight accumulators, as eight scalars (kept in registers)
        block = values[lo:lo + n]
        if square:
            r0, r1, r2, r3 = block[0] * block[0], block[1] * block[1], block[2] * block[2], block[3] * block[3]
            r4, r5, r6, r7 = block[4] * block[4], block[5] * block[5], block[6] * block[6], block[7] * block[7]
        else:
            r0, r1, r2, r3, r4, r5, r6, r7 = block[0], block[1], block[2], block[3], block[4], block[5], block[6], block[7]
        end = n - n % 8
        for i in range(8, end, 8):
            if square:
                r0 += block[i] * block[i]
                r1 += block[i + 1] * block[i + 1]
                r2 += block[i + 2] * block[i + 2]
                r3 += block[i + 3] * block[i + 3]
                r4 += block[i + 4] * block[i + 4]
                r5 += block[i + 5] * block[i + 5]
                r6 += block[i + 6] * block[i + 6]
                r7 += block[i + 7] * block[i + 7]
            else:
                r0 += block[i]
                r1 += block[i + 1]
                r2 += block[i + 2]
                r3 += block[i + 3]
                r4 += block[i + 4]
                r5 += block[i + 5]
                r6 += block[i + 6]
                r7 += block[i + 7]
        res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
        for i in range(end, n):
            v = block[i]
            res += v * v if square else v
        return res
    half = n // 2
    half -= half % 8
    return _pairwise(values, lo, half, square) + _pairwise(values, lo + half, n - half, square)


def pairwise_pieces(n: int, parts: int):
    """Split ``range(n)`` as numpy's pairwise sum does, into at least ``parts`` pieces.

    Returns ``(pieces, combine)``: ``pieces`` are ``(start, stop)`` ranges in
    order, and ``combine(sums)`` adds the pieces' pairwise sums in the order
    numpy adds its sub-sums, giving exactly ``numpy.sum``.
    """

    def split(lo, m, depth):
        if depth == 0 or m <= _PW_BLOCK:
            return (lo, lo + m)
        half = m // 2
        half -= half % 8
        return (split(lo, half, depth - 1), split(lo + half, m - half, depth - 1))

    depth = max(0, math.ceil(math.log2(max(1, parts))))
    tree = split(0, n, depth)
    pieces: list[tuple[int, int]] = []

    def leaves(node):
        if isinstance(node[0], tuple):
            leaves(node[0])
            leaves(node[1])
        else:
            pieces.append(node)

    leaves(tree)
    index = {piece: k for k, piece in enumerate(pieces)}

    def combine(sums):
        # numba hands float32 results back as Python floats: add them as float32
        def total(node):
            if isinstance(node[0], tuple):
                return total(node[0]) + total(node[1])
            return np.float32(sums[index[node]])

        return total(tree)

    return pieces, combine


# The row loops below run over slices with ``for i in range(n)``: a loop from a
# nonzero start over a whole row keeps numba's negative-index check, which
# stops the compiler from using vector instructions.
@jit
def _divergence(image, pz, py, px, out, buf, nd, ihz, ihy, ihx, lo, hi, first):
    """``d`` (into ``buf``) and ``out = image + d`` on flat voxels ``lo:hi``; returns Σ d².

    Row by row, in short loops without branches: ``d`` is built in
    ``buf``'s row term by term, in the order scikit-image adds the terms,
    then ``out`` is written.
    """
    nz, ny, nx = out.shape
    flat_buf = buf.reshape(-1)
    zero = np.float32(0.0)
    for r in range(lo // nx, (hi - 1) // nx + 1):
        z = r // ny
        y = r - z * ny
        x0 = max(0, lo - r * nx)
        x1 = min(nx, hi - r * nx)
        n = x1 - x0
        source = image[z, y, x0:x1]
        d = buf[z, y, x0:x1]
        o = out[z, y, x0:x1]
        if first:  # iteration 0: d = 0, out = image
            for i in range(n):
                d[i] = zero
                o[i] = np.float32(source[i])
            continue
        qx = px[z, y, x0:x1]
        # -(p_0 + p_1 + p_2), summed over the real axes in order
        if nd == 3:
            qz = pz[z, y, x0:x1]
            qy = py[z, y, x0:x1]
            for i in range(n):
                s = qz[i] * ihz + qy[i] * ihy
                s = s + qx[i] * ihx
                d[i] = -s
        elif nd == 2:
            qy = py[z, y, x0:x1]
            for i in range(n):
                d[i] = -(qy[i] * ihy + qx[i] * ihx)
        else:
            for i in range(n):
                d[i] = -(qx[i] * ihx)
        if nd == 3 and z >= 1:
            previous = pz[z - 1, y, x0:x1]
            for i in range(n):
                d[i] = d[i] + previous[i] * ihz
        if nd >= 2 and y >= 1:
            previous = py[z, y - 1, x0:x1]
            for i in range(n):
                d[i] = d[i] + previous[i] * ihy
        # + p_x[x - 1] from x = 1 on
        skip = 1 if x0 == 0 else 0
        left = px[z, y, x0 + skip - 1:x1 - 1]
        d_right = d[skip:]
        for i in range(n - skip):
            d_right[i] = d_right[i] + left[i] * ihx
        for i in range(n):
            o[i] = np.float32(source[i]) + d[i]
    return _pairwise(flat_buf, lo, hi - lo, True)


#: As ``jit``, with division by zero giving IEEE infinities (numpy's rule) instead
#: of a Python exception, whose check would keep the division loops scalar.
_jit_ieee = numba.njit(cache=True, nogil=True, fastmath=False, boundscheck=False, error_model="numpy")


@numba.njit(cache=True, nogil=True, inline="always", error_model="numpy")
def _update(q, g, denominator, tau, n):
    """``q = (q - tau g) / denominator`` on the first ``n`` values."""
    for i in range(n):
        q[i] = (q[i] - tau * g[i]) / denominator[i]


@_jit_ieee
def _project(pz, py, px, out, buf, nd, ihz, ihy, ihx, tau, scale, lo, hi):
    """Gradient of ``out``, its norm (into ``buf``) and the update of ``p``; returns Σ norm.

    Row by row: the gradient's components go to three short rows (0 on the
    last voxel of an axis), then short branch-free loops update ``p``.
    """
    nz, ny, nx = out.shape
    one = np.float32(1.0)
    zero = np.float32(0.0)
    gz = np.zeros(nx, np.float32)
    gy = np.zeros(nx, np.float32)
    gx = np.zeros(nx, np.float32)
    denominator = np.ones(nx, np.float32)
    for r in range(lo // nx, (hi - 1) // nx + 1):
        z = r // ny
        y = r - z * ny
        x0 = max(0, lo - r * nx)
        x1 = min(nx, hi - r * nx)
        n = x1 - x0
        o = out[z, y, x0:x1]
        norm_row = buf[z, y, x0:x1]
        # gx on the row's voxels that have a right neighbour, 0 on the row's last
        inner = min(x1, nx - 1) - x0
        right = out[z, y, x0 + 1:x0 + 1 + max(inner, 0)]
        for i in range(inner):
            gx[i] = (right[i] - o[i]) * ihx
        if x1 == nx:
            gx[n - 1] = zero
        if nd >= 2:
            if y < ny - 1:
                following = out[z, y + 1, x0:x1]
                for i in range(n):
                    gy[i] = (following[i] - o[i]) * ihy
            else:
                for i in range(n):
                    gy[i] = zero
        if nd == 3:
            if z < nz - 1:
                following = out[z + 1, y, x0:x1]
                for i in range(n):
                    gz[i] = (following[i] - o[i]) * ihz
            else:
                for i in range(n):
                    gz[i] = zero
        if nd == 3:
            for i in range(n):
                n2 = gz[i] * gz[i] + gy[i] * gy[i]
                norm_row[i] = np.sqrt(n2 + gx[i] * gx[i])
        elif nd == 2:
            for i in range(n):
                norm_row[i] = np.sqrt(gy[i] * gy[i] + gx[i] * gx[i])
        else:
            for i in range(n):
                norm_row[i] = np.sqrt(gx[i] * gx[i])
        for i in range(n):
            denominator[i] = norm_row[i] * scale + one
        _update(px[z, y, x0:x1], gx, denominator, tau, n)
        if nd >= 2:
            _update(py[z, y, x0:x1], gy, denominator, tau, n)
        if nd == 3:
            _update(pz[z, y, x0:x1], gz, denominator, tau, n)
    return _pairwise(buf.reshape(-1), lo, hi - lo, False)


def tv_chambolle(block, weight, eps=2e-4, max_num_iter=200, *, inverse_spacing=None,
                 out=None, threads=1, token=None):
    """Chambolle total-variation denoising of a whole 1-D to 3-D block, as scikit-image.

    Equal to ``skimage.restoration.denoise_tv_chambolle(block.astype(float32),
    weight, eps, max_num_iter)`` (``weight`` a Python float). ``inverse_spacing``
    gives ``min(spacing) / spacing`` per axis (None: all 1, scikit-image's
    grid). ``out`` (float32, the block's shape, C-contiguous) receives the
    result when given. ``threads`` threads share each pass; ``token.flag`` is
    polled every iteration (a cancelled run returns an unfinished result) and
    ``token.ticks`` counts iterations. Work memory: ``ndim + 1`` float32
    arrays of the block's size.
    """
    nd = block.ndim
    image = as_3d(block)
    shape = image.shape
    weight = float(weight)
    inverse = (1.0,) * nd if inverse_spacing is None else tuple(float(v) for v in inverse_spacing)
    ih = (1.0,) * (3 - nd) + inverse
    ihz, ihy, ihx = (np.float32(v) for v in ih)
    tau_value = 1.0 / (2.0 * sum(v * v for v in inverse))
    # numpy's rounding of the Python scalars: norm *= tau / weight; p -= tau * g
    tau = np.float32(tau_value)
    scale = np.float32(tau_value / weight)
    result = np.empty(shape, np.float32)
    if out is not None and out.dtype == np.float32 and out.flags.c_contiguous and out.size == result.size:
        result = out.reshape(shape)
    p = np.zeros((nd,) + shape, np.float32)
    pz = p[0] if nd == 3 else p[0, :0]
    py = p[nd - 2] if nd >= 2 else p[0, :0]
    px = p[nd - 1]
    buf = np.empty(shape, np.float32)
    size = image.size
    threads = max(1, min(int(threads), size // (1 << 15)))
    pieces, combine = pairwise_pieces(size, threads if threads > 1 else 1)
    flag = None if token is None else token.flag
    ticks = None if token is None else token.ticks
    if ticks is not None:
        ticks[1] = max_num_iter
        ticks[0] = 0
    e_init = e_previous = None
    with Team(threads) as team:
        i = 0
        while i < max_num_iter:
            if flag is not None and flag[0]:
                break
            sums_d = team.map(
                _divergence,
                [(image, pz, py, px, result, buf, nd, ihz, ihy, ihx, lo, hi, i == 0) for lo, hi in pieces],
            )
            energy = combine(sums_d)
            sums_norm = team.map(
                _project,
                [(pz, py, px, result, buf, nd, ihz, ihy, ihx, tau, scale, lo, hi) for lo, hi in pieces],
            )
            # scikit-image's scalar arithmetic, with numpy float32 scalars
            energy += weight * combine(sums_norm)
            energy /= float(size)
            if i == 0:
                e_init = e_previous = energy
            elif np.abs(e_previous - energy) < eps * e_init:
                break
            else:
                e_previous = energy
            i += 1
            if ticks is not None:
                ticks[0] = i
    if ticks is not None:
        ticks[0] = ticks[1]
    return result.reshape(block.shape)
