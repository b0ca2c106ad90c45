"""Weighted mean of each voxel's 3^k − 1 neighbours (k ≤ 3), for calibration's noise variance.

Calibration evaluates the noise model at the mean of each voxel's
neighbours, which does not depend on the voxel's own noise. As numpy
(pair sums of shifted views, by sets of axes) it took 2.2 ms on a
60×66×66 crop, twice a mean filter's call on it; here one compiled pass
reads, for each output row, the 9 input rows around it.
"""

from __future__ import annotations

import numpy as np

import numba

__all__ = ["neighbour_mean"]


# float32 sums in any order (vectorised along rows): the mean is a noise level's argument,
# within a few float32 ulps of any other order
@numba.njit(cache=True, nogil=True, fastmath={"reassoc", "nsz", "contract"})
def _neighbour_sums(padded, rows_z, rows_y, weights, out):
    nz, ny, nx = out.shape
    for z in range(nz):
        for y in range(ny):
            o = out[z, y]
            for x in range(nx):
                o[x] = 0.0
            for a in range(3):
                for b in range(3):
                    row = padded[rows_z[z, a], rows_y[y, b]]
                    centre = weights[a, b, 1]
                    side = weights[a, b, 0]
                    if centre == 0.0 and side == 0.0:
                        continue
                    for x in range(nx):  # row is padded by one along x
                        o[x] += centre * row[x + 1] + side * (row[x] + row[x + 2])


def _neighbours(n: int, edge: bool) -> np.ndarray:
    """Rows ``(i - 1, i, i + 1)`` of each ``i`` in ``range(n)``, folded back as ``np.pad``'s mode."""
    index = np.arange(n)[:, None] + np.array([-1, 0, 1])
    if edge or n == 1:
        return np.clip(index, 0, n - 1)
    index = np.abs(index)  # reflect: -1 -> 1
    return np.where(index > n - 1, 2 * (n - 1) - index, index)


def neighbour_mean(crop: np.ndarray, spacing) -> np.ndarray:
    """Mean of the 3^k − 1 neighbours of every voxel, weighted by 1 / (physical distance)² (float64).

    Borders as ``np.pad(crop, 1, mode="reflect")``, or ``"edge"`` when an
    axis has a single voxel. ``crop`` is 1-D to 3-D; ``spacing`` one voxel
    size per axis (None: 1).
    """
    k = crop.ndim
    if not 1 <= k <= 3:
        raise ValueError(f"neighbour_mean: expected a 1-D to 3-D crop, got {k}-D")
    spacing = (1.0,) * k if spacing is None else tuple(float(s) for s in spacing)
    edge = min(crop.shape) == 1
    volume = np.asarray(crop, np.float32).reshape((1,) * (3 - k) + crop.shape)
    padded = np.pad(volume, ((0, 0), (0, 0), (1, 1)), mode="edge" if edge else "reflect")
    full_spacing = (0.0,) * (3 - k) + spacing
    weights = np.zeros((3, 3, 3), np.float32)
    total_weight = 0.0
    for offset in np.ndindex(3, 3, 3):
        moved = [axis for axis in range(3) if offset[axis] != 1]
        # no neighbours along the axes a lower-dimensional crop does not have
        if not moved or any(axis < 3 - k for axis in moved):
            continue
        w = np.float32(1.0 / sum(full_spacing[axis] ** 2 for axis in moved))
        weights[offset] = w
        total_weight += float(w)
    out = np.empty(volume.shape, np.float32)
    _neighbour_sums(padded, _neighbours(volume.shape[0], edge), _neighbours(volume.shape[1], edge), weights, out)
    return (out / np.float64(total_weight)).reshape(crop.shape)
