"""Non-local means (Buades et al. 2005), fast and slow mode, 2-D and 3-D, compiled and threaded.

Both modes compute what ``skimage.restoration.denoise_nl_means(...,
preserve_range=True, channel_axis=None)`` (0.26) computes on a float32 image,
and both run on ``threads`` threads, each on its own slab of the wanted
voxels (the slabs only *read* their neighbours: no voxel is computed twice,
only the patch-difference rows at slab edges are). Patch and search extents
may differ per axis (anisotropic voxels); with equal extents the results are
scikit-image's.

**Slow mode** (Gaussian-weighted patches) repeats scikit-image's float32
arithmetic operation for operation: the same patch weights, the same
squared differences added in the same order, the same early exit (a patch
pair whose partial distance exceeds 5 at the start of a patch row in 2-D, of
a patch plane in 3-D, weighs 0), the same fast exponential (Schraudolph's)
and the same order of accumulation over the search window. The result is
bit-identical. What differs is the loop order, for speed: search offsets
outermost, and for each offset every squared difference
``(u[q] - u[q + t])² - 2σ²`` is computed once and reused by the
``patch_size ** ndim`` patches that contain it; the pixels of a row are
processed together (vector instructions), the early exit becoming a mask.

**Fast mode** (uniform patches, Darbon et al. 2008) weighs each pair of
patches by ``fast_exp(-max(D, 0) / (h² |patch|))`` (0 beyond 5), ``D`` the sum
over the patch of ``(u[q] - u[q + t])² - 2σ²``, each unordered pair once, as
scikit-image does. scikit-image gets ``D`` from float64 integral images of
the padded image; here ``D`` is a float64 box sum (three separable passes)
over only the voxels whose pairs reach the wanted part: the same value to
about 1e-15 relatively, so results agree with scikit-image to float32
precision (usually bit for bit), at a fraction of the memory traffic.

Borders: like scikit-image, the image is extended by reflection (numpy
``reflect``); slow mode clips the search window to the image. Where a tile's
halo provides real neighbours they are used instead, so tiles give the
untiled result.

Memory (besides the output): a float32 copy of the wanted part grown by
``patch_distance + patch_size // 2`` on each side, then fast mode two
float64 accumulators of the wanted part (4 float32 arrays' worth) plus per
thread a few float64 planes; slow mode two float32 accumulators plus per
thread ``patch_size ** 2`` float32 rows.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic

from .borders import as_3d, jit, writable_3d
from .threads import progress_counters, run_pieces, split_evenly

__all__ = ["nl_means", "patch_weights", "half_widths", "DISTANCE_CUTOFF"]

#: Patch pairs farther than this (in units of h², per patch voxel) weigh 0.
DISTANCE_CUTOFF = 5.0
# skimage/_shared/fast_exp.h: Schraudolph's exponential
_EXP_A = 1512775.3951951856938
_EXP_BC = 1072632447


@intrinsic
def _f64_from_bits(typingctx, bits):
    """Reinterpret an int64 as a float64 (a register move, vectorisable)."""
    if bits != types.int64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.int64), codegen


@numba.njit(cache=True, nogil=True, inline="always")
def _fast_exp(y):
    """skimage's ``_fast_exp``: high word ``int32(EXP_A * y) + EXP_BC``, low word 0.

    The C conversion of an out-of-range double gives INT_MIN, and so does
    this one (x86 ``cvttsd2si``); the int32 addition wraps as in C.
    """
    hi = np.int32(_EXP_A * y)
    hi = np.int32(hi + np.int32(_EXP_BC))
    return _f64_from_bits(np.int64(hi) << 32)


def half_widths(patch_size, patch_distance, ndim):
    """Per-axis ``(patch half-widths, search distances)`` from scikit-image's parameters.

    An even patch size is made odd by adding one, as scikit-image does.
    """
    sizes = _per_axis(patch_size, ndim)
    distances = _per_axis(patch_distance, ndim)
    half = tuple((s + 1 if s % 2 == 0 else s) // 2 for s in sizes)
    return half, distances


def _per_axis(value, ndim):
    if np.ndim(value) == 0:
        return (int(value),) * ndim
    values = tuple(int(v) for v in value)
    if len(values) != ndim:
        raise ValueError(f"expected {ndim} values, got {len(values)}")
    return values


def patch_weights(half, h):
    """Slow mode's Gaussian patch weights, float32, computed as scikit-image does.

    For equal half-widths ``o`` (patch size ``s = 2o + 1``): ``A = (s - 1) / 4``
    rounded to float32, ``w = exp(-(Σ x_a²) / (2 A²))`` in float32, then
    ``w *= 1 / (sum(w) h²)``. With unequal half-widths each axis has its own
    ``A_a = o_a / 2`` (a Gaussian of the same physical width along every
    axis); an axis with ``o_a = 0`` contributes no term.
    """
    ndim = len(half)
    if len(set(half)) == 1:
        s = 2 * half[0] + 1
        a = float(np.float32((s - 1.0) / 4.0))
        grid = np.arange(-half[0], half[0] + 1, dtype=np.float32)
        coords = np.meshgrid(*([grid] * ndim), indexing="ij")
        squares = coords[0] * coords[0]
        for c in coords[1:]:
            squares = squares + c * c
        with np.errstate(divide="ignore", invalid="ignore"):
            w = np.exp(-squares / (2 * a * a))
        if half[0] == 0:
            w = np.ones_like(w)
    else:
        coords = np.meshgrid(*[np.arange(-o, o + 1, dtype=np.float32) for o in half], indexing="ij")
        exponent = np.zeros(coords[0].shape, np.float32)
        for c, o in zip(coords, half):
            if o > 0:
                a = float(np.float32(o / 2.0))
                exponent = exponent + (c * c) / np.float32(2 * a * a)
        w = np.exp(-exponent)
    w = np.ascontiguousarray(w, dtype=np.float32)
    w *= 1.0 / (np.sum(w) * h * h)
    return w


# -- fast mode ---------------------------------------------------------------------------------
@numba.njit(cache=True, nogil=True, inline="always")
def _sum_shifted(e, dst, n, w):
    """``dst[i] = e[i] + e[i + 1] + ... + e[i + w - 1]`` for ``i < n`` (unrolled for w <= 6).

    The shifted terms are read through slices (offset indices would keep
    the loops scalar, see :func:`_accumulate`).
    """
    if w == 1:
        for i in range(n):
            dst[i] = e[i]
    elif w == 2:
        e1 = e[1:]
        for i in range(n):
            dst[i] = e[i] + e1[i]
    elif w == 3:
        e1, e2 = e[1:], e[2:]
        for i in range(n):
            dst[i] = e[i] + e1[i] + e2[i]
    elif w == 4:
        e1, e2, e3 = e[1:], e[2:], e[3:]
        for i in range(n):
            dst[i] = (e[i] + e1[i]) + (e2[i] + e3[i])
    elif w == 5:
        e1, e2, e3, e4 = e[1:], e[2:], e[3:], e[4:]
        for i in range(n):
            dst[i] = (e[i] + e1[i]) + (e2[i] + e3[i]) + e4[i]
    elif w == 6:
        e1, e2, e3, e4, e5 = e[1:], e[2:], e[3:], e[4:], e[5:]
        for i in range(n):
            dst[i] = (e[i] + e1[i]) + (e2[i] + e3[i]) + (e4[i] + e5[i])
    else:
        for i in range(n):
            dst[i] = e[i]
        for k in range(1, w):
            ek = e[k:]
            for i in range(n):
                dst[i] += ek[i]


@numba.njit(cache=True, nogil=True, inline="always")
def _sum_rows(src, first, w, dst, n):
    """``dst[i] = src[first, i] + ... + src[first + w - 1, i]`` for ``i < n`` (unrolled for w <= 6)."""
    if w == 1:
        a = src[first]
        for i in range(n):
            dst[i] = a[i]
    elif w == 2:
        a, b = src[first], src[first + 1]
        for i in range(n):
            dst[i] = a[i] + b[i]
    elif w == 3:
        a, b, c = src[first], src[first + 1], src[first + 2]
        for i in range(n):
            dst[i] = a[i] + b[i] + c[i]
    elif w == 4:
        a, b, c, d = src[first], src[first + 1], src[first + 2], src[first + 3]
        for i in range(n):
            dst[i] = (a[i] + b[i]) + (c[i] + d[i])
    elif w == 5:
        a, b, c, d, f = src[first], src[first + 1], src[first + 2], src[first + 3], src[first + 4]
        for i in range(n):
            dst[i] = (a[i] + b[i]) + (c[i] + d[i]) + f[i]
    elif w == 6:
        a, b, c = src[first], src[first + 1], src[first + 2]
        d, f, g = src[first + 3], src[first + 4], src[first + 5]
        for i in range(n):
            dst[i] = (a[i] + b[i]) + (c[i] + d[i]) + (f[i] + g[i])
    else:
        a = src[first]
        for i in range(n):
            dst[i] = a[i]
        for k in range(1, w):
            a = src[first + k]
            for i in range(n):
                dst[i] += a[i]


@numba.njit(cache=True, nogil=True, inline="always")
def _accumulate(acc, wsum, weight, source, n):
    """``acc += weight * source`` and ``wsum += weight`` on the first ``n`` values.

    Every array starts at the first value used (slices, not offsets): a loop
    with offset indices keeps numba's negative-index check, which stops the
    compiler from using vector instructions.
    """
    for i in range(n):
        w = weight[i]
        acc[i] += w * np.float64(source[i])
        wsum[i] += w


@jit
def _fast_slab(u, kz0, kz1, ky0, ky1, kx0, kx1, sz, sy, sx, wz, wy, wx, dz, dy, dx, var2, inv_norm,
               acc, wsum, az, ay, ax, flag, progress, slot):
    """Fast-mode sums for the wanted voxels ``[kz0:kz1, ky0:ky1, kx0:kx1]`` of ``u``.

    The patch of voxel ``x`` covers ``x + s .. x + s + w - 1`` along each axis
    (``s``, ``w`` = ``sz, sy, sx`` and ``wz, wy, wx``). ``acc`` and ``wsum``
    (float64) hold the wanted part of the caller's region, whose first voxel
    is ``(az, ay, ax)`` of ``u``; only the slab's voxels are written. Every
    search offset ``t`` of the positive half space is visited once: each pair
    ``(x, x + t)`` with one end in the slab is weighed once and added to the
    ends that lie in the slab.
    """
    my = (ky1 - ky0) + dy
    mx = (kx1 - kx0) + dx
    ring = np.empty((my, wz, mx), np.float64)  # box sums over (y, x) of the last wz planes
    rows = np.empty((my + wy - 1, mx), np.float64)
    e = np.empty(mx + wx - 1, np.float64)
    dist = np.empty(mx, np.float64)
    weight = np.empty(mx, np.float64)
    zero = 0.0
    for tz in range(-dz, dz + 1):
        for ty in range(-dy, dy + 1):
            for tx in range(0, dx + 1):
                if tx == 0 and (ty < 0 or (ty == 0 and tz <= 0)):
                    continue  # the negative half space, and t = 0 (added by the caller)
                if flag[0]:
                    return
                # voxels x whose pair (x, x + t) touches the slab: K ∪ (K - t)
                bz0 = kz0 - max(tz, 0)
                bz1 = kz1 + max(-tz, 0)
                by0 = ky0 - max(ty, 0)
                by1 = ky1 + max(-ty, 0)
                bx0 = kx0 - tx
                bx1 = kx1
                ny = by1 - by0
                nx = bx1 - bx0
                for zq in range(bz0 + sz, bz1 + sz + wz - 1):
                    ring_slot = (zq - bz0 - sz) % wz
                    # sums along x of the squared differences, for rows by0 + sy ...
                    for r in range(ny + wy - 1):
                        yq = by0 + sy + r
                        xa = bx0 + sx
                        a = u[zq, yq, xa:]
                        b = u[zq + tz, yq + ty, xa + tx:]
                        for i in range(nx + wx - 1):
                            diff = np.float64(a[i]) - np.float64(b[i])
                            e[i] = diff * diff - var2
                        _sum_shifted(e, rows[r], nx, wx)
                    # ... then along y
                    for r in range(ny):
                        _sum_rows(rows, r, wy, ring[r, ring_slot], nx)
                    z = zq - sz - wz + 1
                    if z < bz0:
                        continue
                    # plane z's patches are complete: along z, weigh, accumulate
                    z2 = z + tz
                    for r in range(ny):
                        y = by0 + r
                        _sum_rows(ring[r], 0, wz, dist, nx)
                        for i in range(nx):
                            d = max(dist[i], zero) * inv_norm
                            w = _fast_exp(-d)
                            weight[i] = zero if d > DISTANCE_CUTOFF else w
                        y2 = y + ty
                        if kz0 <= z < kz1 and ky0 <= y < ky1:
                            _accumulate(acc[z - az, y - ay, kx0 - ax:], wsum[z - az, y - ay, kx0 - ax:],
                                        weight[kx0 - bx0:], u[z2, y2, kx0 + tx:], kx1 - kx0)
                        if kz0 <= z2 < kz1 and ky0 <= y2 < ky1:
                            _accumulate(acc[z2 - az, y2 - ay, kx0 - ax:], wsum[z2 - az, y2 - ay, kx0 - ax:],
                                        weight[kx0 - tx - bx0:], u[z, y, kx0 - tx:], kx1 - kx0)
                progress[slot] += 1


def fast_patch_box(half):
    """Per axis ``(start, width)`` of fast mode's patch around a voxel, and the normaliser's size.

    scikit-image reads its integral images at ``x ± o`` (``o = patch_size // 2``),
    which sums the ``2 o`` voxels ``x - o + 1 .. x + o``, and divides by
    ``patch_size ** ndim``: kept as is for equal half-widths (``o = 0`` gives
    distance 0: a plain mean over the search window). With unequal half-widths
    an axis with ``o = 0`` covers the voxel's own plane (start 0, width 1).
    """
    isotropic = len(set(half)) == 1
    box = []
    for o in half:
        if o == 0 and not isotropic:
            box.append((0, 1))
        else:
            box.append((1 - o, 2 * o))
    return box, math.prod(2 * o + 1 for o in half)


# -- slow mode ---------------------------------------------------------------------------------
@jit
def _slow_slab(p, nz, ny, nx, kz0, kz1, ky0, ky1, kx0, kx1, oz, oy, ox, dz, dy, dx,
               w, var2, check_planes, acc_v, acc_w, az, ay, ax, flag, progress, slot):
    """Slow-mode sums (float32, scikit-image's order) for wanted pixels ``[k*0:k*1]``.

    ``p`` is the region (``nz × ny × nx`` image voxels) reflected by the patch
    half-widths; pixel ``(z, y, x)`` of the region has its patch at
    ``p[z:z + sz, y:y + sy, x:x + sx]``. Search windows are clipped to the
    region. ``check_planes``: the early exit is tested before each patch plane
    (3-D) instead of each patch row (2-D).
    """
    sz, sy, sx = 2 * oz + 1, 2 * oy + 1, 2 * ox + 1
    cols = kx1 - kx0 + 2 * dx + sx
    e = np.empty((sz, sy, cols), np.float32)
    dist = np.empty(kx1 - kx0, np.float32)
    dead = np.empty(kx1 - kx0, np.bool_)
    cutoff = np.float32(DISTANCE_CUTOFF)
    fzero = np.float32(0.0)
    for tz in range(-dz, dz + 1):
        z_lo = max(kz0, -tz)
        z_hi = min(kz1, nz - tz)
        for ty in range(-dy, dy + 1):
            y_lo = max(ky0, -ty)
            y_hi = min(ky1, ny - ty)
            for tx in range(-dx, dx + 1):
                if flag[0]:
                    return
                progress[slot] += 1
                x_lo = max(kx0, -tx)
                x_hi = min(kx1, nx - tx)
                if z_lo >= z_hi or y_lo >= y_hi or x_lo >= x_hi:
                    continue
                n = x_hi - x_lo
                width = n + sx - 1
                for z in range(z_lo, z_hi):
                    for y in range(y_lo, y_hi):
                        # squared differences of the rows this pixel row's patches cover:
                        # all of them on a plane's first row, then one new row per plane
                        first = sy if y == y_lo else 1
                        for pz in range(sz):
                            for py in range(sy - first, sy):
                                row = e[pz, (y + py) % sy]
                                a = p[z + pz, y + py]
                                b = p[z + tz + pz, y + ty + py]
                                for i in range(width):
                                    diff = a[x_lo + i] - b[x_lo + tx + i]
                                    row[i] = diff * diff - var2
                        for i in range(n):
                            dist[i] = fzero
                            dead[i] = False
                        for pz in range(sz):
                            for py in range(sy):
                                if (py == 0) if check_planes else True:
                                    for i in range(n):
                                        dead[i] |= dist[i] > cutoff
                                row = e[pz, (y + py) % sy]
                                for px in range(sx):
                                    weight = w[pz, py, px]
                                    for i in range(n):
                                        dist[i] += weight * row[i + px]
                        a_v = acc_v[z - az, y - ay]
                        a_w = acc_w[z - az, y - ay]
                        centre = p[z + tz + oz, y + ty + oy]
                        for i in range(n):
                            value = _fast_exp(-max(0.0, np.float64(dist[i])))
                            weight = fzero if dead[i] else np.float32(value)
                            a_w[x_lo + i - ax] += weight
                            a_v[x_lo + i - ax] += weight * centre[x_lo + i + tx + ox]


# -- driver ------------------------------------------------------------------------------------
def _region(shape, keep, pad):
    """Cut of the block around ``keep`` grown by ``pad``, with the reflection still missing."""
    cut, widths, inner = [], [], []
    for k, n, r in zip(keep, shape, pad):
        start, stop, _ = k.indices(n)
        lo, hi = max(0, start - r), min(n, stop + r)
        cut.append(slice(lo, hi))
        widths.append((r - (start - lo), r - (hi - stop)))
        inner.append((start - lo, stop - lo))
    return tuple(cut), widths, inner


def _reflect_pad(region, widths):
    """numpy ``reflect`` padding, also for widths beyond the region's length (as np.pad)."""
    if not any(a or b for a, b in widths):
        return np.ascontiguousarray(region, dtype=np.float32)
    return np.ascontiguousarray(np.pad(region, widths, mode="reflect"), dtype=np.float32)


def _slabs(bounds, reach, threads):
    """Split the wanted box ``bounds`` (``[(lo, hi)] * 3``) into ``threads`` slabs.

    Along the axis where a slab's extra work (its patch-difference rows and
    search reach beyond its edge, ``reach[a]``) is smallest relative to its
    thickness.
    """
    lengths = [hi - lo for lo, hi in bounds]
    axis = max(range(3), key=lambda a: (lengths[a] / (1 + reach[a]), a))
    slabs = []
    for lo, hi in split_evenly(lengths[axis], threads):
        b = list(bounds)
        b[axis] = (bounds[axis][0] + lo, bounds[axis][0] + hi)
        slabs.append(b)
    return slabs


def nl_means(block, h, sigma, patch_size=5, patch_distance=6, *, fast_mode=True, keep=None,
             out=None, threads=1, token=None):
    """Non-local means of a 2-D or 3-D block, as scikit-image computes it.

    Equal to ``skimage.restoration.denoise_nl_means(block, h=h, sigma=sigma,
    patch_size=patch_size, patch_distance=patch_distance, fast_mode=fast_mode,
    preserve_range=True, channel_axis=None)`` on the float32 block: bit for bit
    in slow mode, to float32 precision in fast mode. ``patch_size`` and
    ``patch_distance`` may also be one value per axis (patch sizes made odd as
    scikit-image does). ``keep`` (slices of ``block``) is the part whose
    result is wanted; the rest is halo, read as the image's continuation.
    ``out`` (float32, ``block[keep]``'s shape) receives the result when given.
    Runs on ``threads`` threads; polls ``token.flag`` between search offsets
    (a cancelled call returns an unfinished result) and counts them in
    ``token.ticks``. Returns float32.
    """
    ndim = block.ndim
    if keep is None:
        keep = (slice(None),) * ndim
    half, dist = half_widths(patch_size, patch_distance, ndim)
    half3 = (0,) * (3 - ndim) + half
    dist3 = (0,) * (3 - ndim) + dist
    shape3 = (1,) * (3 - ndim) + block.shape
    keep3 = (slice(None),) * (3 - ndim) + tuple(keep)
    flag = np.zeros(1, np.uint8) if token is None else token.flag
    kept_shape = tuple(k.indices(n)[1] - k.indices(n)[0] for k, n in zip(keep3, shape3))
    target = writable_3d(out, kept_shape)
    result = np.empty(kept_shape, np.float32) if target is None else target
    if result.size:
        h = float(h)
        var = float(sigma) * float(sigma)  # scikit-image: var = sigma * sigma, then var *= 2
        data = as_3d(block)
        if fast_mode:
            _nl_means_fast(data, keep3, half3, dist3, h, var, ndim, result, threads, flag, token)
        else:
            _nl_means_slow(data, keep3, half3, dist3, half, h, var, ndim, result, threads, flag, token)
    if target is not None:
        return out
    result = result.reshape(kept_shape[3 - ndim :])
    if out is not None:
        out[...] = result
        return out
    return result


def _nl_means_fast(data, keep3, half3, dist3, h, var, ndim, result, threads, flag, token):
    pad = tuple(o + d for o, d in zip(half3, dist3))
    cut, widths, inner = _region(data.shape, keep3, pad)
    u = _reflect_pad(np.asarray(data[cut], dtype=np.float32), widths)
    bounds = [(lo + before, hi + before) for (lo, hi), (before, _) in zip(inner, widths)]
    acc = np.empty(result.shape, np.float64)
    wsum = np.empty(result.shape, np.float64)
    # t = 0: distance max(-2σ² |patch|, 0) = 0, weight fast_exp(0)
    self_weight = float(_fast_exp(-0.0))
    kept = u[tuple(slice(lo, hi) for lo, hi in bounds)]
    np.multiply(kept, self_weight, out=acc, dtype=np.float64)
    wsum.fill(self_weight)
    n_offsets = (math.prod(2 * d + 1 for d in dist3) - 1) // 2
    box, patch_voxels = fast_patch_box(half3[3 - ndim :])
    box = [(0, 1)] * (3 - ndim) + box
    norm = h * h * patch_voxels
    inv_norm = 1.0 / norm if norm > 0 else math.inf
    if any(width == 0 for _, width in box):
        # an empty patch: every distance is 0 (scikit-image with patch_size 1)
        box = [(0, 1)] * 3
        inv_norm = 0.0
    starts = [start for start, _ in box]
    widths_ = [width for _, width in box]
    reach = [w + d for w, d in zip(widths_, dist3)]
    threads = max(1, min(int(threads), max(1, result.size // (1 << 14))))
    slabs = _slabs(bounds, reach, threads)
    progress = progress_counters(token, len(slabs))
    origin = [lo for lo, _ in bounds]
    arguments = [
        (u, *s[0], *s[1], *s[2], *starts, *widths_, *dist3, 2.0 * var, inv_norm, acc, wsum, *origin,
         flag, progress, k if len(slabs) > 1 else 0)
        for k, s in enumerate(slabs)
    ]
    run_pieces(_fast_slab, arguments, progress, token, n_offsets)
    if flag[0]:
        result[...] = 0
        return
    np.divide(acc, wsum, out=acc)
    result[...] = acc


def _nl_means_slow(data, keep3, half3, dist3, half, h, var, ndim, result, threads, flag, token):
    # the search window stays inside the region, the patches reach half3 beyond it
    reach = tuple(d + o for o, d in zip(half3, dist3))
    cut, widths, inner = _region(data.shape, keep3, reach)
    region = np.asarray(data[cut], dtype=np.float32)
    # The search windows are clipped to the region: where it ends at a tile edge
    # (not the image's) they never reach that far. Patches are reflected beyond it.
    p = _reflect_pad(region, [(o, o) for o in half3])
    w = patch_weights(half, h).reshape(tuple(2 * o + 1 for o in half3))
    var2 = np.float32(2.0 * var)
    acc_v = np.zeros(result.shape, np.float32)
    acc_w = np.zeros(result.shape, np.float32)
    n_offsets = math.prod(2 * d + 1 for d in dist3)
    threads = max(1, min(int(threads), max(1, result.size // (1 << 12))))
    bounds = [(lo, hi) for lo, hi in inner]
    slabs = _slabs(bounds, [2 * o for o in half3], threads)
    progress = progress_counters(token, len(slabs))
    origin = [lo for lo, _ in bounds]
    arguments = [
        (p, *region.shape, *s[0], *s[1], *s[2], *half3, *dist3, w, var2, ndim == 3,
         acc_v, acc_w, *origin, flag, progress, k if len(slabs) > 1 else 0)
        for k, s in enumerate(slabs)
    ]
    run_pieces(_slow_slab, arguments, progress, token, n_offsets)
    if flag[0]:
        result[...] = 0
        return
    np.divide(acc_v, acc_w, out=result)
