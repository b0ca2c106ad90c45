"""Self-supervised calibration: choose a denoiser's parameters from the noisy image alone.

Two losses estimate, from the noisy crop alone, each candidate's mean squared
error against the unseen clean image plus the noise variance (a constant):

* **SURE** (Stein's unbiased risk estimate; Monte-Carlo form of Ramani, Blu &
  Unser 2008), used on Gaussian noise: ``|f(x) - x|² + 2 Σ vᵢ ∂fᵢ/∂xᵢ`` per
  voxel, the divergence from one more call of the denoiser on ``x`` plus a
  small ±1 probe, used on Gaussian noise and for the local filters
  (:data:`SURE_ALWAYS`). It scores the denoiser itself, so it has no bias
  towards more smoothing; it needs the noise variance ``vᵢ`` of every voxel.
* **J-invariance** (below), used for the other denoisers on
  Poisson–Gaussian noise, where the variance of each voxel comes from a
  fitted model that may be wrong in shape and SURE would inherit the error.

Measured against oracle-tuned parameters (benchmarks/quality.py), the
J-invariant loss alone left bilateral 0.38 dB and the Gaussian 0.29 dB
below their oracles on average: the J-invariant denoiser is a worse
denoiser than the denoiser itself, the more so the less it smooths (the
stand-in for the masked voxel is averaged once more by the denoiser), so
its loss prefers too much smoothing.

A denoiser ``f`` is *J-invariant* when its output at a pixel does not depend
on that pixel's own noisy value. For such an ``f`` and noise independent from
pixel to pixel, the mean squared difference between ``f(x)`` and the noisy
image ``x`` equals the mean squared error against the unseen clean image plus
the noise variance, a constant: the parameters minimising it are those that
minimise the true error (Batson & Royer 2019, "Noise2Self").

Any denoiser is made J-invariant on a set of pixels J by replacing those
pixels, before denoising, with a value computed from their neighbours only,
and reading its output only there (the masking scheme of scikit-image's
``calibrate_denoiser``). The value here is the neighbours' mean plus fresh
noise of the fitted noise model (:func:`noise_matched_mask`), so that the
masked image is as noisy as the image the denoiser will get. Here J is one regular grid (every ``stride``-th
voxel along each spatial axis, one phase), the same for every candidate, so
each candidate costs one call of the denoiser on a representative crop of
the image, and candidates differ only by what they change, not by which
pixels they were scored on.

Candidates are searched downhill from the middle of each parameter's grid
within the call budget, and a numeric grid is carried on past its end when
the lowest loss lies there (:func:`_search`).

* :func:`calibrate` — best parameters and the table of losses, with
  ``progress(done, total)`` and ``cancel()`` like the filters.
* :func:`calibration_steps` — the same as a generator yielding
  ``(done, total)`` and taking a :class:`~napari_denoise.CancelToken`, for a
  widget's worker thread.
* :data:`DEFAULT_GRIDS` — the candidates tried for each denoiser when none
  are given.
"""

from __future__ import annotations

import inspect
import itertools
import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import _scheduler
from ._params import as_image, is_lazy, resolve_spacing, resolve_spatial_axes
from .filters.noise import NoiseModel, noise_model_of_slice, noise_of_slice
from .filters.stabilise import check_noise_model

__all__ = [
    "CalibrationResult",
    "Trial",
    "CropInfo",
    "DEFAULT_GRIDS",
    "calibrate",
    "calibration_steps",
    "default_grid",
    "noise_matched_mask",
    "representative_crop",
]

#: Voxels of the crop calibrated on, by number of spatial axes (more costs
#: more calls' time, fewer gives a noisier loss).
CROP_VOXELS = {1: 1 << 16, 2: 1 << 16, 3: 1 << 18}
#: Fewest voxels a crop keeps along an axis (when the image has them).
MIN_CROP_EXTENT = 16
#: Distance between masked voxels along each spatial axis: one voxel in
#: stride^k is scored. 4 leaves the denoiser an image 94 % (2-D) or 98 %
#: (3-D) intact, as scikit-image's default.
DEFAULT_STRIDE = 4
#: Calls of the denoiser one calibration may make by default; larger grids
#: are searched one parameter at a time (coordinate descent) within it.
DEFAULT_MAX_CALLS = 10
#: Values a numeric grid may be carried on by past each end when the lowest
#: loss lies there (see :func:`_search`).
MAX_EXTENSIONS = 2
#: The self-supervised losses :func:`calibrate` can use, and its default.
#: "auto": SURE where the crop's noise is Gaussian (one variance, estimated
#: robustly) and for the local filters of :data:`SURE_ALWAYS`; the
#: J-invariant loss for the other denoisers on Poisson–Gaussian noise. SURE
#: needs the noise variance of every voxel, and a fitted Poisson–Gaussian
#: model can be wrong in shape: on the 3-D crop at 10 photons (gain fitted
#: 0.70 for a true 1) SURE chose total variation 5 dB, block matching 4 dB
#: and wavelet 2.8 dB below their oracle, where the J-invariant loss, which
#: needs no variance, stayed within 0.8 dB. On Gaussian noise SURE was the
#: closer of the two for every denoiser (benchmarks/quality.py).
LOSSES = ("auto", "sure", "j-invariant")
DEFAULT_LOSS = "auto"
#: Denoisers calibrated by SURE under 'auto' whatever the noise: local
#: filters with a large weight on the voxel itself, whose J-invariant
#: version (that weight moved to a stand-in already averaged from the
#: neighbours) is a much worse denoiser the less it smooths, so the
#: J-invariant loss over-smooths them (measured over the 12 Poisson cases:
#: bilateral 0.40 dB and Gaussian 0.36 dB below the oracle on average with
#: it, 0.27 and 0.21 dB with SURE, the 3-D 10-photon crop included).
SURE_ALWAYS = frozenset({"gaussian", "mean", "median", "bilateral"})
#: Size of the Monte-Carlo SURE probe, in noise standard deviations. Small
#: enough that the denoiser is near linear over it, large enough that an
#: iterative denoiser's stopping rule does not drown it. Measured on 2-D
#: images (14 noise cases) with total variation: 0.05 picked a weight 1.3 dB
#: off once, 0.1 and 0.2 did not, and 0.1 was the closer to the oracle
#: (mean gap 0.13 vs 0.18 dB); with 0.3 the divergence doubled for 1 probe in 8.
SURE_STEP = 0.1
#: Denoiser calls per candidate, by loss.
_CALLS_PER_CANDIDATE = {"auto": 2, "sure": 2, "j-invariant": 1}
# Progress units per denoiser call.
_CALL_STEPS = 1000


@dataclass(frozen=True)
class CropInfo:
    """What a grid of candidates may depend on: the crop's noise and geometry.

    ``noise`` is the noise level the denoiser's intensity parameters are
    measured against: the crop's estimated σ in its units, or 1 when the
    denoiser runs on the variance-stabilised image. ``pixel`` is the smallest
    voxel size (1 without spacing): lengths in grids are pixels × ``pixel``.
    """

    noise: float
    ndim: int
    pixel: float = 1.0
    stabilised: bool = False


def _scaled(factors, unit):
    return [float(f) * unit for f in factors]


#: Candidate parameters per denoiser, as functions of the crop
#: (:class:`CropInfo`). Intensity parameters are multiples of the noise
#: level, lengths multiples of the voxel size; the ranges bracket the
#: oracle-best values found on 2-D and 3-D microscopy images with Gaussian
#: and Poisson noise (bilateral's intensity σ up to 8 σ̂ and spatial σ 2–3
#: px, NLM's h 0.3–0.4 σ̂ in 3-D, Gaussian σ ≈ 2.5 px in 2-D).
DEFAULT_GRIDS: dict[str, Callable[[CropInfo], dict[str, list]]] = {
    "gaussian": lambda c: {"sigma": _scaled([0.5, 0.75, 1.0, 1.5, 2.0, 3.0], c.pixel)},
    "mean": lambda c: {"size": _scaled([3, 5, 7, 9], c.pixel)},
    "median": lambda c: {"size": _scaled([3, 5, 7, 9], c.pixel)},
    "bilateral": lambda c: {
        "sigma_spatial": _scaled([1.0, 2.0, 3.0], c.pixel),
        "sigma_intensity": _scaled([1.0, 2.0, 4.0, 8.0, 16.0], c.noise),
    },
    "total_variation": lambda c: {"weight": _scaled([0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0], c.noise)},
    "wavelet": lambda c: {"sigma": _scaled([0.5, 0.75, 1.0, 1.5, 2.0], c.noise)},
    "non_local_means": lambda c: {"h": _scaled([0.2, 0.3, 0.45, 0.6, 0.8, 1.0, 1.3], c.noise)},
    "block_matching": lambda c: {"sigma": _scaled([0.5, 0.75, 1.0, 1.25, 1.5, 2.0], c.noise)},
}


def default_grid(name: str, info: CropInfo) -> dict[str, list]:
    """The candidates :data:`DEFAULT_GRIDS` gives denoiser ``name`` on a crop."""
    if name not in DEFAULT_GRIDS:
        raise ValueError(
            f"parameters: no default candidates for {name!r}; give parameters={{name: [values]}}"
        )
    return DEFAULT_GRIDS[name](info)


@dataclass(frozen=True)
class Trial:
    """One candidate: its parameters and self-supervised loss (mean squared, image units²)."""

    parameters: Mapping[str, Any]
    loss: float


@dataclass(frozen=True)
class CalibrationResult:
    """What :func:`calibrate` found.

    Attributes
    ----------
    function : str
        Public name of the denoiser.
    best : dict
        The candidate parameters with the lowest loss.
    loss : float
        That loss, in image units²: an estimate of the true mean squared
        error plus the noise variance (SURE; or the mean squared difference
        between the J-invariant denoised crop and the noisy crop on the
        scored voxels).
    trials : tuple of Trial
        Every candidate evaluated, in the order evaluated.
    fixed : dict
        Keyword arguments held fixed (the noise model resolved to the
        :class:`~napari_denoise.NoiseModel` fitted on the crop).
    region : tuple of slice
        Where the crop lies in the image (one slice per image axis).
    noise : float
        The noise level the grid was built on (see :class:`CropInfo`).
    seconds : float
        Wall-clock time of the calibration.
    loss_kind : str
        The loss used: "sure" or "j-invariant" (see :func:`calibrate`).
    """

    function: str
    best: dict
    loss: float
    trials: tuple[Trial, ...]
    fixed: dict = field(default_factory=dict)
    region: tuple = ()
    noise: float = float("nan")
    seconds: float = 0.0
    loss_kind: str = ""

    @property
    def kwargs(self) -> dict:
        """Keyword arguments to call the denoiser with: fixed ones and the best candidate."""
        return {**self.fixed, **self.best}

    def losses(self, name: str) -> list[tuple[Any, float]]:
        """``(value, lowest loss over the other parameters)`` per candidate value of ``name``."""
        best: dict = {}
        for trial in self.trials:
            value = trial.parameters[name]
            key = repr(value)
            if key not in best or trial.loss < best[key][1]:
                best[key] = (value, trial.loss)
        return sorted(best.values(), key=lambda pair: _sort_key(pair[0]))


def _sort_key(value):
    try:
        return (0, float(np.max(value)), repr(value))
    except (TypeError, ValueError):
        return (1, 0.0, repr(value))


# -- the crop ------------------------------------------------------------------------------
def crop_shape(spatial_shape, spacing=None, voxels=None) -> tuple[int, ...]:
    """Extents of a crop of about ``voxels`` voxels, as near a physical cube as fits.

    Each axis gets a physical extent as equal as the image allows (the voxel
    size is kept: nothing is resampled), at least :data:`MIN_CROP_EXTENT`
    voxels (or the whole axis), at most the whole axis.
    """
    k = len(spatial_shape)
    voxels = CROP_VOXELS.get(k, 1 << 19) if voxels is None else int(voxels)
    spacing = (1.0,) * k if spacing is None else tuple(float(s) for s in spacing)
    extent = [float(n) for n in spatial_shape]
    fixed = [False] * k
    # physical side length L of the cube: prod(L / spacing) = voxels, on the axes not yet fixed
    for _ in range(k):
        free = [a for a in range(k) if not fixed[a]]
        if not free:
            break
        budget = voxels / math.prod(extent[a] for a in range(k) if fixed[a])
        side = (budget * math.prod(spacing[a] for a in free)) ** (1 / len(free))
        changed = False
        for a in free:
            want = side / spacing[a]
            low = min(spatial_shape[a], MIN_CROP_EXTENT)
            if want >= spatial_shape[a] or want <= low:
                extent[a] = float(spatial_shape[a] if want >= spatial_shape[a] else low)
                fixed[a] = changed = True
            else:
                extent[a] = want
        if not changed:
            break
    return tuple(max(1, min(n, int(round(e)))) for n, e in zip(spatial_shape, extent))


def representative_crop(piece: np.ndarray, shape) -> tuple[slice, ...]:
    """The window of ``shape`` holding the most structure (largest spread of local means).

    Up to 5 positions per axis are compared on 2×-block means, so a crop
    with edges and flat areas is preferred over empty background.
    """
    starts = [
        np.unique(np.linspace(0, n - s, min(5, n - s + 1)).astype(int)) for n, s in zip(piece.shape, shape)
    ]
    best, best_spread = None, -1.0
    for start in itertools.product(*starts):
        window = tuple(slice(int(a), int(a) + int(s)) for a, s in zip(start, shape))
        values = np.asarray(piece[window], dtype=np.float64)
        coarse = values[tuple(slice(None, None, 2) for _ in shape)]
        spread = float(np.nanstd(coarse)) if coarse.size else 0.0
        if spread > best_spread:
            best, best_spread = window, spread
    return best


def _centre_crop(spatial_shape, shape) -> tuple[slice, ...]:
    return tuple(slice((n - s) // 2, (n - s) // 2 + s) for n, s in zip(spatial_shape, shape))


# -- the J-invariant mask --------------------------------------------------------------------
def _grid_mask(shape, stride: int, phase) -> tuple[np.ndarray, ...]:
    """Coordinates of the scored voxels: every ``stride``-th along each axis from ``phase``."""
    ranges = [np.arange(p, n, stride) for p, n in zip(phase, shape)]
    grids = np.meshgrid(*ranges, indexing="ij")
    return tuple(g.ravel() for g in grids)


def _neighbour_mean(crop: np.ndarray, coords, spacing) -> np.ndarray:
    """Mean of the 3^k − 1 neighbours of the voxels at ``coords``, weighted by 1 / (physical distance)².

    None of the neighbours is scored when stride ≥ 2, so the value never
    depends on a scored voxel's own noise. ``coords`` None: every voxel of
    the crop (shifted views instead of gathers: the same sums, 10× faster).
    """
    k = crop.ndim
    spacing = (1.0,) * k if spacing is None else spacing
    padded = np.pad(np.asarray(crop, np.float64), 1, mode="reflect" if min(crop.shape) > 1 else "edge")
    total = np.zeros(crop.shape if coords is None else coords[0].shape, np.float64)
    weights = 0.0
    for offset in itertools.product((-1, 0, 1), repeat=k):
        if not any(offset):
            continue
        w = 1.0 / sum((o * s) ** 2 for o, s in zip(offset, spacing))
        if coords is None:
            total += w * padded[tuple(slice(1 + o, 1 + o + n) for o, n in zip(offset, crop.shape))]
        else:
            total += w * padded[tuple(c + 1 + o for c, o in zip(coords, offset))]
        weights += w
    return total / weights


def noise_matched_mask(crop: np.ndarray, coords, spacing, model: NoiseModel, rng) -> np.ndarray:
    """``crop`` (float32) with the voxels at ``coords`` replaced by a J-invariant stand-in as noisy as they were.

    The stand-in is the mean of the voxel's neighbours plus fresh Gaussian
    noise. The neighbour mean alone is smoother than a noisy voxel: an
    edge-preserving denoiser then sees a grid of calm voxels and the loss
    prefers too little smoothing (measured: bilateral 1.9–3.4 dB and TV 0.5 dB
    below the oracle on 2-D nuclei). The fresh noise has the variance that
    makes the stand-in's error the noise of the model there: the noise
    variance minus the interpolation error, estimated as the mean of
    (neighbour mean − noisy)² − variance over the scored voxels (one number
    for the whole crop, so its dependence on any one voxel is negligible).
    With it the calibrated choice landed within 0.13 dB of the oracle's for
    every denoiser on the same cases.
    """
    local = _neighbour_mean(crop, coords, spacing)
    noisy = np.asarray(crop[coords], np.float64)
    variance = model.variance(local)
    interpolation_error = max(float(np.mean((local - noisy) ** 2 - variance)), 0.0) if local.size else 0.0
    fresh = rng.normal(0.0, 1.0, local.size) * np.sqrt(np.maximum(variance - interpolation_error, 0.0))
    out = np.array(crop, dtype=np.float32, copy=True)
    out[coords] = local + fresh
    return out


# -- calibration -------------------------------------------------------------------------------
def _resolve_function(function):
    if isinstance(function, str):
        from . import filters

        if not hasattr(filters, function):
            raise ValueError(f"function: no denoiser named {function!r} in napari_denoise")
        function = getattr(filters, function)
    if not callable(function) or not hasattr(function, "op"):
        raise TypeError(
            f"function: expected a napari_denoise filter (e.g. napari_denoise.bilateral), got {function!r}"
        )
    return function


def _candidates(parameters: Mapping[str, Any], accepted) -> tuple[list[str], list[list]]:
    if not isinstance(parameters, Mapping) or not parameters:
        raise TypeError("parameters: expected a non-empty mapping {name: [candidate values]}")
    names, values = [], []
    for name, candidates in parameters.items():
        if name not in accepted:
            raise ValueError(f"parameters: {name!r} is not a parameter of the denoiser")
        if isinstance(candidates, (str, bytes)) or not hasattr(candidates, "__iter__"):
            candidates = [candidates]
        candidates = list(candidates)
        if not candidates:
            raise ValueError(f"parameters: no candidates for {name!r}")
        names.append(name)
        values.append(candidates)
    return names, values


class _Spent(Exception):
    """The search's budget of candidates is used up."""


def _extendable(grid: list) -> bool:
    """Whether a grid is numbers that can be carried on past its ends: positive, increasing scalars."""
    if len(grid) < 2 or not all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
                                for v in grid):
        return False
    return grid[0] > 0 and all(b > a for a, b in zip(grid, grid[1:]))


def _beyond(grid: list, direction: int):
    """The value one step past the grid's end in ``direction`` (-1 low, +1 high), or None.

    Evenly spaced grids (sizes 3, 5, 7, ...) go on by their step, the others
    by their end ratio (σ 1, 2, 4, ... → 8); never to zero or below.
    """
    a, b = (grid[1], grid[0]) if direction < 0 else (grid[-2], grid[-1])
    steps = np.diff(np.asarray(grid, np.float64))
    if np.allclose(steps, steps[0]):
        value = b + (b - a)
        if value < abs(b - a):  # sizes stop before the identity
            return None
    else:
        value = b * (b / a)
    if value <= 0:
        return None
    if all(isinstance(v, (int, np.integer)) for v in grid):
        value = int(round(value))
    return type(b)(value) if isinstance(b, (float, np.floating)) else value


def _search(values: list[list], budget: int, extend: int = MAX_EXTENSIONS) -> Iterator[tuple]:
    """Candidates to try (tuples of values, one per parameter), at most ``budget`` of them.

    The generator is sent the loss of each candidate it yields. A grid that
    fits the budget is tried whole; a larger one is searched one parameter
    at a time (coordinate descent) from its middle, walking downhill from
    the current best along each parameter until the loss rises. When the
    lowest loss lies at the end of a numeric grid, the grid is carried on
    past that end (:func:`_beyond`, at most ``extend`` values per end) while
    the budget lasts, so a minimum outside the grid is still reached.
    """
    grids = [list(v) for v in values]
    added = [[0, 0] for _ in grids]
    losses: dict[tuple, float] = {}

    def ask(point):
        if point not in losses:
            if len(losses) >= budget:
                raise _Spent
            loss = yield point
            losses[point] = float("inf") if loss is None or not np.isfinite(loss) else float(loss)
        return losses[point]

    def neighbour(axis, value, direction):
        grid = grids[axis]
        i = grid.index(value) + direction
        if 0 <= i < len(grid):
            return grid[i]
        side = 0 if direction < 0 else 1
        if added[axis][side] >= extend or not _extendable(grid):
            return None
        new = _beyond(grid, direction)
        if new is None or new in grid:
            return None
        added[axis][side] += 1
        grid.insert(0, new) if direction < 0 else grid.append(new)
        return new

    try:
        if math.prod(len(g) for g in grids) <= budget:
            for point in itertools.product(*[list(g) for g in grids]):
                yield from ask(point)
            current = list(min(losses, key=losses.__getitem__))
        else:
            current = [g[len(g) // 2] for g in grids]
        while True:
            start = tuple(current)
            for axis in range(len(grids)):
                def at(value, axis=axis):
                    return tuple(current[:axis]) + (value,) + tuple(current[axis + 1:])

                best_value = current[axis]
                best_loss = yield from ask(at(best_value))
                for direction in (-1, 1):
                    value = current[axis]
                    while (value := neighbour(axis, value, direction)) is not None:
                        loss = yield from ask(at(value))
                        if loss >= best_loss:
                            break
                        best_value, best_loss = value, loss
                    if best_value != current[axis]:
                        break  # downhill found on this side: the other side is uphill
                current[axis] = best_value
            if tuple(current) == start:
                return
    except _Spent:
        return


def _resolve_noise_models(kwargs: dict, crop: np.ndarray, cache: dict, token=None) -> dict:
    """String noise models fitted once on the unmasked crop (the masked one would bias the fit)."""
    value = kwargs.get("noise_model")
    if value is None or isinstance(value, NoiseModel):
        return kwargs
    choice = check_noise_model(value)
    if choice == "gaussian":
        return kwargs
    if "model" not in cache:
        cache["model"] = noise_model_of_slice(crop, token)
    model = cache["model"]
    if choice == "auto" and model.kind == "gaussian" or (model.gain == 0 and model.read_sigma == 0):
        return {**kwargs, "noise_model": "gaussian"}
    return {**kwargs, "noise_model": model}


def calibration_steps(
    function,
    image,
    *,
    parameters: Mapping[str, Any] | None = None,
    spacing=None,
    spatial_axes=None,
    crop=None,
    slice_index=None,
    per_slice: bool = False,
    fixed: Mapping[str, Any] | None = None,
    stride: int = DEFAULT_STRIDE,
    max_calls: int = DEFAULT_MAX_CALLS,
    loss: str = DEFAULT_LOSS,
    seed: int = 0,
    workers: int | None = None,
    token: _scheduler.CancelToken | None = None,
):
    """:func:`calibrate` as a generator: yields ``(done, total)``, returns its result.

    Cancel through ``token`` (:class:`~napari_denoise.CancelToken`): the
    denoiser call in flight stops within its kernels' polling time and
    :class:`~napari_denoise.Cancelled` is raised.
    """
    started = time.perf_counter()
    function = _resolve_function(function)
    image = as_image(image)
    axes = resolve_spatial_axes(image.ndim, spatial_axes)
    spacing = resolve_spacing(spacing, len(axes))
    stride = int(stride)
    if stride < 2:
        raise ValueError(f"stride: must be at least 2 (scored voxels may not neighbour each other), got {stride}")
    if loss not in LOSSES:
        raise ValueError(f"loss: expected one of {list(LOSSES)}, got {loss!r}")
    if int(max_calls) < _CALLS_PER_CANDIDATE[loss]:
        raise ValueError(
            f"max_calls: must be at least {_CALLS_PER_CANDIDATE[loss]} (calls per candidate with loss={loss!r}), "
            f"got {max_calls}"
        )
    token = _scheduler.CancelToken() if token is None else token
    accepted = inspect.signature(function.op).parameters
    fixed = dict(fixed or {})
    for name in fixed:
        if name not in accepted or name in ("image", "spatial_axes", "spacing"):
            raise ValueError(f"fixed: {name!r} is not a parameter the calibration can hold fixed")
    lead_axes = [ax for ax in range(image.ndim) if ax not in axes]
    lead_shape = tuple(image.shape[ax] for ax in lead_axes)
    if per_slice:
        indices = list(np.ndindex(*lead_shape))
    else:
        indices = [_check_slice_index(slice_index, lead_shape)]
    if parameters is not None:
        _candidates(parameters, accepted)  # fail before any work
    results = []
    for number, index in enumerate(indices):
        result = yield from _calibrate_slice(
            function, image, axes, lead_axes, index, spacing, parameters, accepted, crop, fixed,
            stride, int(max_calls), seed, workers, token, number, len(indices), loss,
        )
        results.append(result)
    elapsed = time.perf_counter() - started
    results = [_with_seconds(r, elapsed / len(results)) for r in results]
    return results if per_slice else results[0]


def _with_seconds(result: CalibrationResult, seconds: float) -> CalibrationResult:
    from dataclasses import replace

    return replace(result, seconds=seconds)


def _check_slice_index(slice_index, lead_shape):
    if slice_index is None:
        return tuple(n // 2 for n in lead_shape)
    index = (slice_index,) if np.isscalar(slice_index) else tuple(slice_index)
    if len(index) != len(lead_shape) or any(not 0 <= int(i) < n for i, n in zip(index, lead_shape)):
        raise ValueError(
            f"slice_index: expected one index per non-spatial axis of shape {lead_shape}, got {slice_index!r}"
        )
    return tuple(int(i) for i in index)


def _region(image, axes, lead_axes, index, crop, spacing):
    """Full-dimensional slices of the crop, and the crop read as float32 (only it is read)."""
    spatial_shape = tuple(image.shape[ax] for ax in axes)
    if crop is None or crop == "auto":
        shape = crop_shape(spatial_shape, spacing)
        if is_lazy(image):
            window = _centre_crop(spatial_shape, shape)  # reading the whole image to choose would defeat laziness
        else:
            piece = image[tuple(index[lead_axes.index(ax)] if ax in lead_axes else slice(None) for ax in range(image.ndim))]
            window = representative_crop(piece, shape)
    elif crop == "full" or crop is False:
        window = tuple(slice(0, n) for n in spatial_shape)
    else:
        window = tuple(crop)
        if len(window) != len(axes) or not all(isinstance(s, slice) for s in window):
            raise ValueError(f"crop: expected 'auto', 'full' or one slice per spatial axis, got {crop!r}")
        window = tuple(slice(*s.indices(n)[:2]) for s, n in zip(window, spatial_shape))
        if any(s.stop - s.start < 3 for s in window):
            raise ValueError(f"crop: every axis needs at least 3 voxels, got {crop!r}")
    region = []
    spatial = iter(window)
    for ax in range(image.ndim):
        region.append(slice(index[lead_axes.index(ax)], index[lead_axes.index(ax)] + 1) if ax in lead_axes else next(spatial))
    data = image[tuple(region)]
    data = np.asarray(data.compute() if hasattr(data, "compute") else data)
    data = data.reshape([s.stop - s.start for s in window])
    return tuple(region), data


def _local_variance(data: np.ndarray, spacing, model: NoiseModel) -> np.ndarray:
    """Noise variance the model gives each voxel, at the mean of its neighbours (float64, ≥ 0)."""
    local = _neighbour_mean(data, None, spacing)
    return np.maximum(np.asarray(model.variance(local), np.float64), 0.0)


def _calibrate_slice(function, image, axes, lead_axes, index, spacing, parameters, accepted, crop, fixed,
                     stride, max_calls, seed, workers, token, number, slices, loss_kind):
    region, data = _region(image, axes, lead_axes, index, crop, spacing)
    noisy = data.astype(np.float64)
    model_cache: dict = {}
    resolved_fixed = _resolve_noise_models(fixed, data, model_cache, token)
    stabilised = isinstance(resolved_fixed.get("noise_model"), NoiseModel)
    noise = 1.0 if stabilised else noise_of_slice(data, token)
    if parameters is None:
        info = CropInfo(noise, data.ndim, min(spacing) if spacing is not None else 1.0, stabilised)
        parameters = default_grid(function.__name__, info)
    names, values = _candidates(parameters, accepted)
    rng = np.random.default_rng(seed)
    mask_model = resolved_fixed["noise_model"] if stabilised else model_cache.get("model")
    if mask_model is None:
        mask_model = model_cache["model"] = noise_model_of_slice(data, token)
    if loss_kind == "auto":
        gaussian_noise = mask_model.kind == "gaussian" and not stabilised
        loss_kind = "sure" if gaussian_noise or function.__name__ in SURE_ALWAYS else "j-invariant"
    if loss_kind == "sure":
        # Monte-Carlo SURE (Ramani, Blu & Unser 2008), variance of the noise model per voxel:
        # E|f(x) - clean|² = E|f(x) - x|² - Σv + 2 Σ v ∂f_i/∂x_i, the divergence from one random probe.
        scale = np.sqrt(_local_variance(data, spacing, mask_model))
        # A ±1 (Rademacher) probe: its divergence estimate has the lower variance (Hutchinson), and
        # no voxel gets a large push that could flip an iterative denoiser's path (measured on
        # total variation: Gaussian probes gave 2× the divergence for 1 seed in 8, ±1 for none).
        probe = rng.integers(0, 2, data.shape) * 2.0 - 1.0
        inputs = [np.asarray(data, np.float32), (data + SURE_STEP * scale * probe).astype(np.float32)]
        weights = scale * probe / SURE_STEP
    else:
        phase = tuple(int(rng.integers(0, min(stride, n))) for n in data.shape)
        coords = _grid_mask(data.shape, stride, phase)
        inputs = [noise_matched_mask(data, coords, spacing, mask_model, rng)]
    call_kwargs = {}
    if "spacing" in accepted and spacing is not None:
        call_kwargs["spacing"] = spacing
    call_kwargs["spatial_axes"] = tuple(range(data.ndim))

    per_candidate = _CALLS_PER_CANDIDATE[loss_kind]
    budget = max(1, max_calls // per_candidate)
    reachable = math.prod(len(v) + 2 * MAX_EXTENSIONS * _extendable(list(v)) for v in values)
    planned = min(budget, reachable) * per_candidate  # calls
    total = slices * planned * _CALL_STEPS
    trials = []
    search = _search(values, budget)
    loss = None
    while True:
        try:
            choice = search.send(loss) if trials else next(search)
        except StopIteration:
            break
        candidate = dict(zip(names, choice))
        kwargs = _resolve_noise_models({**fixed, **candidate}, data, model_cache, token)
        outs = []
        for image_in in inputs:
            op = function.op(image_in, **call_kwargs, **kwargs)
            start = (number * planned + len(trials) * per_candidate + len(outs)) * _CALL_STEPS
            run = _scheduler.steps(op, image_in, workers=workers, token=token)
            try:
                while True:
                    done, call_total = next(run)
                    yield (start + (_CALL_STEPS * done // call_total if call_total else 0), total)
            except StopIteration as stop:
                outs.append(np.asarray(stop.value, np.float64))
        if loss_kind == "sure":
            residual = outs[0] - noisy
            loss = float(np.mean(residual * residual) + 2.0 * np.mean(weights * (outs[1] - outs[0])))
        else:
            residual = outs[0][coords] - noisy[coords]
            loss = float(np.mean(residual * residual)) if residual.size else float("nan")
        trials.append(Trial(candidate, loss))
        yield (start + _CALL_STEPS, total)
    if token.cancelled:
        raise _scheduler.Cancelled(f"calibrate {function.__name__}: cancelled")
    yield ((number + 1) * planned * _CALL_STEPS, total)  # the search may stop before its budget
    finite = [t for t in trials if np.isfinite(t.loss)]
    best = min(finite or trials, key=lambda t: t.loss)
    return CalibrationResult(
        function=function.__name__,
        best=dict(best.parameters),
        loss=best.loss,
        trials=tuple(trials),
        fixed=resolved_fixed,
        region=region,
        noise=noise,
        loss_kind=loss_kind,
    )


def calibrate(
    function,
    image,
    *,
    parameters: Mapping[str, Any] | None = None,
    spacing=None,
    spatial_axes=None,
    crop=None,
    slice_index=None,
    per_slice: bool = False,
    fixed: Mapping[str, Any] | None = None,
    stride: int = DEFAULT_STRIDE,
    max_calls: int = DEFAULT_MAX_CALLS,
    loss: str = DEFAULT_LOSS,
    seed: int = 0,
    workers: int | None = None,
    progress: Callable[[int, int], Any] | None = None,
    cancel=None,
):
    """Choose a denoiser's parameters by a self-supervised loss on a crop.

    The clean image is never used. On Gaussian noise (and for the local
    filters) each candidate denoises the crop and the crop plus a small ±1
    probe, and is scored by SURE, the true error plus a constant (Ramani et
    al. 2008). Otherwise, on Poisson–Gaussian noise, each candidate denoises a crop in which one voxel in ``stride``^k
    has been replaced by the mean of its neighbours plus fresh noise of the
    crop's noise model, and is scored by the mean squared difference to the
    noisy voxels there, also the true error (of that J-invariant denoiser)
    plus a constant (Batson & Royer 2019).

    Parameters
    ----------
    function : callable or str
        A napari_denoise denoiser (``napari_denoise.bilateral``) or its name.
    image : array_like or dask array
        The noisy image. Dask input: only the crop is read.
    parameters : mapping, optional
        ``{name: [candidate values]}``, in the units the function takes them
        (lengths in the units of ``spacing``). Default: the function's
        :data:`DEFAULT_GRIDS` entry, scaled to the crop's noise level (1 on
        a stabilised image) and voxel size.
    spacing : sequence of float, optional
        Voxel size along each spatial axis; kept (the crop is not
        resampled) and passed to denoisers that take it.
    spatial_axes : sequence of int, optional
        Axes forming one image (default: all of a 2-D/3-D image, the last
        three otherwise).
    crop : 'auto', 'full' or tuple of slice, optional
        Region of the spatial axes to calibrate on. 'auto' (default): about
        2^16 voxels in 2-D, 2^18 in 3-D, as near a physical cube as the
        image allows, at the position with the most structure (dask input:
        the centre, so that only it is read). 'full': the whole slice.
    slice_index : int or tuple of int, optional
        Which time point / channel to calibrate on (one index per
        non-spatial axis). Default: the middle one of each.
    per_slice : bool, default False
        Calibrate every slice over the non-spatial axes and return a list.
    fixed : mapping, optional
        Keyword arguments held fixed for every candidate (e.g.
        ``{"noise_model": "poisson"}``: the model is fitted once on the
        unmasked crop, and intensity candidates are in units of its σ).
    stride : int, default 4
        Distance between scored voxels along each axis (at least 2;
        J-invariant loss).
    max_calls : int, default 10
        Most denoiser calls (SURE: 2 per candidate, J-invariant: 1). A grid
        with more candidates than that is searched one parameter at a time
        from its middle, downhill (coordinate descent); a numeric grid whose
        lowest loss lies at an end is carried on past it (up to 2 values per
        end) while calls are left.
    loss : {'auto', 'sure', 'j-invariant'}, default 'auto'
        The self-supervised loss: 'auto' is SURE on a crop whose fitted
        noise model is Gaussian and for the local filters of
        :data:`SURE_ALWAYS` (Gaussian, mean, median, bilateral), J-invariant
        for the others on Poisson–Gaussian noise; or the one named.
    seed : int, default 0
        Chooses the phase of the scored grid.
    workers : int, optional
        Threads per denoiser call (default: every core).
    progress : callable, optional
        ``progress(done, total)`` as the calls advance.
    cancel : callable or CancelToken, optional
        Polled while denoising (every 50 ms); when it returns True (or the
        token is cancelled) the calibration stops and
        :class:`~napari_denoise.Cancelled` is raised.

    Returns
    -------
    CalibrationResult or list of CalibrationResult
        ``best`` parameters, their ``loss``, every ``trials`` entry, and
        ``kwargs`` to call the denoiser with (one result per slice with
        ``per_slice``).

    Notes
    -----
    Cost: at most ``max_calls`` calls of the denoiser on the crop, plus
    reading the crop and a pass of neighbour means; the loss of every
    candidate is computed on the same voxels (and probe). The J-invariant
    denoiser sees a slightly degraded image, so it is a little worse than
    the denoiser itself, the more so the less it smooths.

    References
    ----------
    S. Ramani, T. Blu and M. Unser, "Monte-Carlo SURE: a black-box
    optimization of regularization parameters for general denoising
    algorithms", IEEE TIP 17(9), 2008. J. Batson and L. Royer, "Noise2Self:
    blind denoising by self-supervision", ICML 2019. scikit-image's
    ``skimage.restoration.calibrate_denoiser``.
    """
    if isinstance(cancel, _scheduler.CancelToken):
        token, poll = cancel, None
    else:
        token, poll = _scheduler.CancelToken(), cancel
    steps = calibration_steps(
        function, image, parameters=parameters, spacing=spacing, spatial_axes=spatial_axes, crop=crop,
        slice_index=slice_index, per_slice=per_slice, fixed=fixed, stride=stride, max_calls=max_calls,
        loss=loss, seed=seed, workers=workers, token=token,
    )
    return _scheduler.drive(steps, token, progress, poll)
