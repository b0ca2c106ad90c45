"""SURE's per-voxel terms of one calibration candidate, in one pass.

For a denoiser whose derivative by each voxel's own value is known (a linear
filter's diagonal, a rank filter's kept voxels, a kernel that computes its
slope with its value), Stein's unbiased risk estimate of one candidate is
the mean over the crop of ``(f_i - x_i)² + 2 v_i ∂f_i/∂x_i``. Written as
numpy expressions that is seven passes over float64 copies of the crop
(2.5 ms on a 60×66×66 crop, more than the mean filter's own call); here one
compiled pass reads the denoiser's output in its own dtype.
"""

from __future__ import annotations

import numpy as np

from .borders import jit

__all__ = ["sure_terms"]


@jit
def _sure_terms(value, noisy, variance, slope, kept_is_slope, per_voxel, write):
    total = 0.0
    for i in range(value.size):
        residual = np.float64(value[i]) - noisy[i]
        if kept_is_slope:  # a rank filter: ∂f_i/∂x_i is 1 where it kept the voxel's own value
            derivative = 1.0 if residual == 0.0 else 0.0
        else:
            derivative = np.float64(slope[i])
        term = residual * residual + 2.0 * variance[i] * derivative
        if write:
            per_voxel[i] = term
        total += term
    return total


@jit
def _separable_sure_terms(value, noisy, variance, along_z, along_y, along_x, per_voxel, write):
    total = 0.0
    nz, ny, nx = value.shape
    for z in range(nz):
        for y in range(ny):
            outer = along_z[z] * along_y[y]
            for x in range(nx):
                residual = np.float64(value[z, y, x]) - noisy[z, y, x]
                term = residual * residual + 2.0 * variance[z, y, x] * (outer * along_x[x])
                if write:
                    per_voxel[z, y, x] = term
                total += term
    return total


def sure_terms(value, noisy, variance, slope=None, *, slope_factors=None, per_voxel: bool = False):
    """Sum over voxels of ``(value - noisy)² + 2 variance · slope``, and the terms themselves.

    Parameters
    ----------
    value : ndarray
        The denoiser's output (float32 or float64), any shape.
    noisy, variance : ndarray of float64
        The noisy input and the noise variance of each voxel, same size.
    slope : ndarray or None
        ``∂value_i/∂noisy_i`` (any real or bool dtype), same size; None (and
        no ``slope_factors``): a rank filter's, 1 where ``value == noisy``
        and 0 elsewhere.
    slope_factors : sequence of 1-D arrays, optional
        Instead of ``slope``: one vector per axis of ``value`` (1-D to 3-D)
        whose outer product is the slope (a separable filter's diagonal).
    per_voxel : bool
        Also return each voxel's term (float64, shape of ``value``).

    Returns
    -------
    (float, ndarray or None)
        The sum (accumulated in float64, in voxel order) and the terms.
    """
    shape = np.shape(value)
    if not np.size(noisy) == np.size(variance) == np.size(value):
        raise ValueError("sure_terms: value, noisy and variance must have the same size")
    terms = np.empty(shape if per_voxel else (0,) * len(shape), np.float64)
    if slope_factors is not None:
        if len(slope_factors) != len(shape) or not 1 <= len(shape) <= 3 or any(
                np.size(f) != n for f, n in zip(slope_factors, shape)):
            raise ValueError("sure_terms: slope_factors must hold one vector per axis of value (1-D to 3-D)")
        as_3d = (1,) * (3 - len(shape)) + tuple(shape)
        factors = [np.ones(1)] * (3 - len(shape)) + [np.ascontiguousarray(f, np.float64).reshape(-1)
                                                     for f in slope_factors]
        total = _separable_sure_terms(
            np.ascontiguousarray(value).reshape(as_3d), np.ascontiguousarray(noisy, np.float64).reshape(as_3d),
            np.ascontiguousarray(variance, np.float64).reshape(as_3d), *factors,
            terms.reshape(as_3d if per_voxel else (0, 0, 0)), per_voxel,
        )
        return float(total), (terms if per_voxel else None)
    value = np.ascontiguousarray(value).reshape(-1)
    noisy = np.ascontiguousarray(noisy, np.float64).reshape(-1)
    variance = np.ascontiguousarray(variance, np.float64).reshape(-1)
    kept_is_slope = slope is None
    slope = noisy if kept_is_slope else np.ascontiguousarray(slope).reshape(-1)
    if slope.size != value.size:
        raise ValueError("sure_terms: slope must have the size of value")
    if slope.dtype == np.bool_:
        slope = slope.view(np.uint8)
    total = _sure_terms(value, noisy, variance, slope, kept_is_slope, terms.reshape(-1), per_voxel)
    return float(total), (terms if per_voxel else None)
