"""Checking and normalising the arguments every filter shares.

Each helper raises ``ValueError`` or ``TypeError`` whose message starts with the
name of the offending parameter, so that a script author (or the widget, which
turns these exceptions into notifications) sees at once what to fix.

Bounds. Every number a filter takes is finite and within a range where the
float32 arithmetic of the kernels neither overflows nor underflows, and no
kernel may ask for unbounded work; values outside are refused with the
largest (or smallest) value allowed:

* voxel sizes (``spacing``) lie in [:data:`MIN_SPACING`, :data:`MAX_SPACING`]
  (any unit: 1e-12 m is a picometre);
* intensity parameters (noise levels, weights, ``h``, ``cval``) are 0 or of
  magnitude in [:data:`MIN_INTENSITY`, :data:`MAX_INTENSITY`], so that their
  squares are normal float32 numbers;
* a kernel reaches at most :data:`MAX_REACH` voxels either side of its
  centre (lengths are checked in voxels, after dividing by ``spacing``);
* ``workers`` is a whole number in [1, :data:`MAX_WORKERS`].
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import numpy as np

try:  # dask is a napari dependency, but the numerics must work without it
    import dask.array as da
except ImportError:  # pragma: no cover - exercised only without dask
    da = None

__all__ = [
    "as_image",
    "is_lazy",
    "resolve_spatial_axes",
    "per_axis",
    "resolve_spacing",
    "lengths_to_pixels",
    "sizes_to_pixels",
    "optional_positive",
    "check_choice",
    "check_int",
    "check_intensity",
    "check_workers",
    "check_reach",
    "DIRECT_DTYPES",
    "as_kernel_input",
    "MIN_SPACING",
    "MAX_SPACING",
    "MIN_INTENSITY",
    "MAX_INTENSITY",
    "MAX_REACH",
    "MAX_WORKERS",
]

BORDER_MODES = ("reflect", "nearest", "mirror", "constant", "wrap")

#: Smallest and largest voxel size accepted (in whatever unit ``spacing`` uses):
#: derivatives are divided by the spacing (second ones by its square), which
#: must stay a normal float32 number with room for the data.
MIN_SPACING = 1e-12
MAX_SPACING = 1e12
#: Non-zero intensity parameters have a magnitude within these bounds: their
#: squares (kernels divide by σ² and h²) are then normal float32 numbers.
MIN_INTENSITY = 1e-18
MAX_INTENSITY = 1e18
#: Largest reach of a kernel, in voxels either side of its centre (a Gaussian
#: of σ = 262144 voxels with ``truncate=4``). Kernels reaching beyond the image
#: are folded back into it (see :mod:`napari_denoise.filters.smoothing`), so
#: this bounds only the work of computing their weights, done before a run.
MAX_REACH = 1 << 20
#: Most threads a run may use.
MAX_WORKERS = 1024

# Input dtypes whose every value is exact in float32: compiled kernels read
# them as they are, since the result equals filtering the float32 copy.
DIRECT_DTYPES = frozenset(np.dtype(t) for t in ("uint8", "int8", "uint16", "int16", "float32"))


def as_kernel_input(block) -> np.ndarray:
    """``block`` C-contiguous, in its own dtype if in :data:`DIRECT_DTYPES`, else float32."""
    block = np.asarray(block)
    dtype = block.dtype if block.dtype in DIRECT_DTYPES else np.float32
    return np.ascontiguousarray(block, dtype=dtype)


def is_lazy(image) -> bool:
    """True for a dask array (results then stay lazy)."""
    return da is not None and isinstance(image, da.Array)


def as_image(image, name: str = "image"):
    """Return ``image`` as a numpy or dask array with a real numeric dtype.

    Chunked array-likes (zarr, h5py, tensorstore) become dask arrays so that
    they are never loaded whole; anything else goes through ``np.asarray``.
    """
    if image is None:
        raise TypeError(f"{name}: expected an array, got None")
    if not (isinstance(image, np.ndarray) or is_lazy(image)):
        if da is not None and hasattr(image, "chunks") and hasattr(image, "dtype"):
            image = da.from_array(image, chunks=image.chunks if _plain_chunks(image) else "auto")
        else:
            image = np.asarray(image)
    dtype = np.dtype(image.dtype)
    if dtype.kind not in "buif":
        raise TypeError(
            f"{name}: dtype {dtype} is not supported; expected booleans, "
            "integers or real floating point numbers"
        )
    if image.ndim < 1:
        raise ValueError(f"{name}: expected at least one dimension, got a scalar")
    return image


def _plain_chunks(image) -> bool:
    chunks = image.chunks
    return isinstance(chunks, tuple) and all(isinstance(c, numbers.Integral) for c in chunks)


def resolve_spatial_axes(ndim: int, spatial_axes=None, *, min_axes: int = 1) -> tuple[int, ...]:
    """Normalise ``spatial_axes`` to sorted, non-negative axis indices.

    Default: every axis when ``ndim <= 3``, otherwise the last three. Every axis
    not listed is processed independently (time, channel, position).
    """
    if spatial_axes is None:
        axes = tuple(range(max(0, ndim - 3), ndim))
    else:
        if isinstance(spatial_axes, numbers.Integral):
            spatial_axes = (spatial_axes,)
        try:
            raw = list(spatial_axes)
        except TypeError:
            raise TypeError(
                f"spatial_axes: expected a sequence of axis indices, got {spatial_axes!r}"
            ) from None
        axes_list = []
        for ax in raw:
            if isinstance(ax, (bool, np.bool_)) or not isinstance(ax, numbers.Integral):
                raise TypeError(f"spatial_axes: axis {ax!r} is not an integer")
            if not -ndim <= ax < ndim:
                raise ValueError(
                    f"spatial_axes: axis {ax} is out of range for an image with {ndim} dimensions"
                )
            axes_list.append(int(ax) % ndim)
        if len(set(axes_list)) != len(axes_list):
            raise ValueError(f"spatial_axes: axes are repeated in {tuple(raw)}")
        axes = tuple(sorted(axes_list))
    if len(axes) < min_axes:
        raise ValueError(
            f"spatial_axes: this filter needs at least {min_axes} spatial axes, "
            f"got {len(axes)} (image has {ndim} dimensions)"
        )
    return axes


def _finite_number(value, name: str) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a number, got {value!r}")
    try:
        value = float(value)
    except OverflowError:  # a Python int beyond float range (10**400)
        raise ValueError(f"{name}: must be finite, got an integer of {len(str(abs(value)))} digits") from None
    if math.isnan(value) or math.isinf(value):
        raise ValueError(f"{name}: must be finite, got {value}")
    return value


def per_axis(value, n_axes: int, name: str, *, allow_zero: bool = True) -> tuple[float, ...]:
    """One non-negative finite number per spatial axis from a scalar or a sequence."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()  # a 0-d array is one number, as for numpy scalars
    if isinstance(value, Sequence) or isinstance(value, np.ndarray):
        values = [_finite_number(v, name) for v in np.asarray(value, dtype=object).ravel()]
        if len(values) != n_axes:
            raise ValueError(
                f"{name}: expected one value or {n_axes} values (one per spatial axis), "
                f"got {len(values)}"
            )
    else:
        values = [_finite_number(value, name)] * n_axes
    for v in values:
        if v < 0 or (v == 0 and not allow_zero):
            bound = "non-negative" if allow_zero else "positive"
            raise ValueError(f"{name}: must be {bound}, got {v}")
    return tuple(values)


def resolve_spacing(spacing, n_axes: int) -> tuple[float, ...] | None:
    """Voxel size per spatial axis (e.g. a napari layer's ``scale``), or None.

    Each value lies in [:data:`MIN_SPACING`, :data:`MAX_SPACING`].
    """
    if spacing is None:
        return None
    values = per_axis(spacing, n_axes, "spacing", allow_zero=False)
    for v in values:
        if not MIN_SPACING <= v <= MAX_SPACING:
            raise ValueError(
                f"spacing: each voxel size must lie between {MIN_SPACING:g} and {MAX_SPACING:g} "
                f"(change the unit if needed), got {v:g}"
            )
    return values


def _too_large(name: str, value, pixels: float, limit: float, axis: int, spacing, what: str) -> ValueError:
    """The error for a length of ``pixels`` voxels along ``axis`` above ``limit`` voxels."""
    if spacing is None:
        allowed = f"at most {limit:.6g} pixels"
    else:
        allowed = f"at most {limit * spacing[axis]:.6g} (= {limit:.6g} voxels of {spacing[axis]:g})"
    return ValueError(f"{name}: {allowed} along spatial axis {axis}{what}, got {value!r} ({pixels:.6g} voxels)")


def lengths_to_pixels(
    value, spacing, n_axes: int, name: str, *, max_pixels: float | None = None, what: str = ""
) -> tuple[float, ...]:
    """A length (sigma) in physical units, or pixels without spacing, to pixels per axis.

    With ``max_pixels``, a length of more voxels than that along any axis is
    refused (``what`` says why, e.g. ``" with truncate=4"``); a length that
    overflows when divided by a tiny spacing is refused as well.
    """
    values = per_axis(value, n_axes, name)
    pixels = values if spacing is None else tuple(v / s for v, s in zip(values, spacing))
    limit = math.inf if max_pixels is None else max_pixels
    for axis, px in enumerate(pixels):
        if not px <= limit or math.isinf(px):
            raise _too_large(name, value, px, min(limit, np.finfo(np.float64).max), axis, spacing, what)
    return pixels


def closest_odd(pixels: float) -> int:
    """The odd whole number closest to ``pixels`` (ties go up), at least 1."""
    n = 2 * math.floor((pixels - 1) / 2 + 0.5) + 1
    return max(1, int(n))


def sizes_to_pixels(value, spacing, n_axes: int, name: str, *, max_pixels: int | None = None) -> tuple[int, ...]:
    """A window size in physical units (or pixels) to an odd pixel count per axis.

    Without ``spacing`` a whole pixel count is taken as it is (even sizes are
    allowed, as in scipy); with ``spacing`` each axis gets the odd pixel count
    closest to ``value / spacing``, at least 1. Windows wider than
    ``max_pixels`` (default ``2 * MAX_REACH + 1``) are refused.
    """
    values = per_axis(value, n_axes, name, allow_zero=False)
    limit = 2 * MAX_REACH + 1 if max_pixels is None else max_pixels
    pixels = values if spacing is None else tuple(v / s for v, s in zip(values, spacing))
    for axis, px in enumerate(pixels):
        if not px <= limit + 0.5:  # also catches inf (a huge size over a tiny spacing)
            raise _too_large(name, value, px, limit, axis, spacing, "")
    if spacing is None:
        out = []
        for v in values:
            if v != int(v):
                raise ValueError(
                    f"{name}: without spacing a size is a whole number of pixels, got {v}"
                )
            out.append(int(v))
        return tuple(out)
    return tuple(min(limit, closest_odd(px)) for px in pixels)


def check_reach(
    name: str, value, pixels, truncate: float, spacing, *, factor: float = 1.0, maximum: int = MAX_REACH
) -> None:
    """Refuse a Gaussian whose reach ``truncate * factor * sigma`` exceeds ``maximum`` voxels on an axis.

    (``factor``: the kernel's σ is that multiple of the parameter, e.g. 1.6
    for the default wide Gaussian of a difference of Gaussians.)
    """
    for axis, px in enumerate(pixels):
        if truncate * factor * px + 0.5 > maximum:
            limit = maximum / (truncate * factor)
            raise _too_large(name, value, px, limit, axis, spacing, f" with truncate={truncate:g}")


def optional_positive(value, name: str, *, allow_zero: bool = False, allow_none: bool = True) -> float | None:
    """None (meaning: estimate from the data; refused unless ``allow_none``) or a finite positive number."""
    if value is None:
        if not allow_none:
            raise TypeError(f"{name}: expected a number, got None")
        return None
    v = _finite_number(value, name)
    if v < 0 or (v == 0 and not allow_zero):
        raise ValueError(f"{name}: must be {'non-negative' if allow_zero else 'positive'}, got {v}")
    return v


def check_intensity(value, name: str, *, allow_none: bool = True, signed: bool = False) -> float | None:
    """An intensity parameter in the image's units: 0 or of magnitude within
    [:data:`MIN_INTENSITY`, :data:`MAX_INTENSITY`]; None passes when ``allow_none``.

    Non-negative unless ``signed`` (``cval``).
    """
    if value is None and allow_none:
        return None
    v = _finite_number(value, name)
    if v < 0 and not signed:
        raise ValueError(f"{name}: must be non-negative, got {v}")
    if v != 0 and not MIN_INTENSITY <= abs(v) <= MAX_INTENSITY:
        raise ValueError(
            f"{name}: must be 0 or of magnitude between {MIN_INTENSITY:g} and {MAX_INTENSITY:g} "
            f"(rescale the image for other ranges), got {v:g}"
        )
    return v


def check_choice(value, choices, name: str) -> str:
    if value not in choices:
        raise ValueError(f"{name}: expected one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def check_int(value, name: str, *, minimum: int = 1, maximum: int | None = None) -> int:
    """A whole number in ``[minimum, maximum]``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected a whole number, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name}: must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        shown = value if len(str(value)) <= 20 else f"a number of {len(str(value))} digits"
        raise ValueError(f"{name}: at most {maximum}, got {shown}")
    return int(value)


def check_workers(workers) -> int | None:
    """``workers``: None (every core) or a whole number of threads in [1, :data:`MAX_WORKERS`]."""
    if workers is None:
        return None
    return check_int(workers, "workers", minimum=1, maximum=MAX_WORKERS)
