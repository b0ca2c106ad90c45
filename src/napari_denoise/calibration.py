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
(from its cheap end for a parameter that sets the cost, :func:`_cost_plan`)
within the call budget, and a numeric grid is carried on past its end when
the lowest loss lies there (:func:`_search`). A candidate much costlier than
the best so far is scored on a grid of tiles through the crop
(:func:`_tiles`), and linear and rank filters, and those that compute their
own slope in the same pass (the bilateral), need no probe call for SURE
(``FilterOp.diagonal`` / ``FilterOp.selection`` / ``FilterOp.slope_kernel``),
so that calibration costs a few calls of the candidate it chooses.

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
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import numpy as np

from . import _scheduler
from ._filter_op import SeparableDiagonal
from ._params import as_image, as_kernel_input, is_lazy, resolve_spacing, resolve_spatial_axes
from .filters.noise import NoiseModel, noise_model_of_slice, noise_of_slice
from .filters.stabilise import check_noise_model
from .kernels.neighbour_mean import neighbour_mean
from .kernels.sure import sure_terms
from .kernels.window_spread import window_spreads

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
#: A candidate predicted (from its FilterOp's cost per voxel, scaled by the
#: measured time of the candidates run so far) to take more than this many
#: times the current best's time on the whole crop is scored on a grid of
#: tiles spread over the crop instead, sized to take about that long, and compared
#: with the others on the same voxels (:func:`_tiles`). Calibration then
#: costs a few calls of the candidate it chooses, not of the costliest one
#: it rejects (the 9 × 9 × 8 median takes 260 times the 3 × 3 × 3).
COSTLY = 2.0
#: Candidates expected to take less than this (seconds) run on the whole crop:
#: the time of such calls is mostly fixed cost that tiles would not save.
MIN_TILED_SECONDS = 0.05
#: Smallest fraction of the crop's voxels the tiles read, and the tiles per
#: tiled axis (:func:`_tiles`): one slab through the crop's centre scored a
#: 3-D median 4.6 dB off the whole crop's choice (its centre was no sample of
#: the crop's structure); 3 × 3 tiles through the crop chose as the whole
#: crop did or within 0.2 dB of it (3-D and 2-D, Gaussian and Poisson noise,
#: the median).
MIN_SHARE = 1 / 16
TILE_GRID = 3
#: Fewest of the crop's voxels the tiles score: smaller samples chose a 3-D
#: bilateral's spatial σ 2 dB off the whole crop's choice where the
#: candidates differed little.
MIN_SCORED = 1 / 12
#: Most of the crop the tiles may read (cores and halos) to be worth it.
MAX_TILED_READ = 0.5
#: Calls predicted (on one core, :func:`_predicted_seconds`) to take less than
#: this run in the calibrating thread itself: starting the worker threads of
#: a run costs about a millisecond on a busy machine, the whole of such a call.
INLINE_SECONDS = 0.005
#: A parameter whose candidates' predicted times differ by more than this
#: factor is searched from its cheapest value (:func:`_cost_plan`). The
#: Gaussian's σ grid (4× in taps) stays below it: its calls on a crop take
#: a millisecond or two whatever σ, most of it fixed cost.
COSTLY_GRID = 5.0
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
#: Dither added to a rank filter's crop (in noise standard deviations) so
#: that no two voxels tie and the voxel a median keeps is known.
SELECTION_DITHER = 0.01
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
    """One candidate: its parameters and self-supervised loss (mean squared, image units²).

    ``share`` is the fraction of the crop's voxels it was scored on: 1, or
    less for a candidate too costly to run on the whole crop (see
    :data:`COSTLY`), whose ``loss`` is then the crop-wide loss estimated from
    the difference to a whole-crop candidate on the same voxels.
    """

    parameters: Mapping[str, Any]
    loss: float
    share: float = 1.0


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
    calls : int
        Denoiser calls made on the crop; a costly candidate's calls on tiles
        of it (see :attr:`Trial.share`) count as one.
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
    calls: int = 0

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
    """The window of ``shape`` holding the most structure (largest spread of its values).

    Up to 5 positions per axis are compared on the spread of every second
    voxel, so a crop with edges and flat areas is preferred over empty
    background; the first of equal spreads is kept.
    """
    starts = list(itertools.product(*[
        np.unique(np.linspace(0, n - s, min(5, n - s + 1)).astype(int)) for n, s in zip(piece.shape, shape)
    ]))
    if 1 <= piece.ndim <= 3:
        spreads = window_spreads(piece, starts, shape)
    else:  # (4 or more spatial axes: rare enough for numpy)
        spread_of = np.nanstd if piece.dtype.kind in "fc" else np.std
        spreads = [
            float(spread_of(np.asarray(piece[tuple(slice(a, a + s, 2) for a, s in zip(start, shape))], np.float64)))
            for start in starts
        ]
    best, best_spread = None, -1.0
    for start, spread in zip(starts, spreads):
        if spread > best_spread:
            best, best_spread = tuple(slice(int(a), int(a) + int(s)) for a, s in zip(start, shape)), spread
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
    the crop (one compiled pass instead of gathers: the same sums to float32
    precision, 40× faster).
    """
    k = crop.ndim
    spacing = (1.0,) * k if spacing is None else spacing
    weights = 0.0
    if coords is None:
        if 1 <= k <= 3:
            return neighbour_mean(crop, spacing)
        coords = tuple(c.ravel() for c in np.indices(crop.shape))  # (4 or more axes: rare)
        return _neighbour_mean(crop, coords, spacing).reshape(crop.shape)
    padded = np.pad(np.asarray(crop, np.float64), 1, mode="reflect" if min(crop.shape) > 1 else "edge")
    total = np.zeros(coords[0].shape, np.float64)
    for offset in itertools.product((-1, 0, 1), repeat=k):
        if not any(offset):
            continue
        w = 1.0 / sum((o * s) ** 2 for o, s in zip(offset, spacing))
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


def _search(values: list[list], budget: int, extend: int = MAX_EXTENSIONS, start=None,
            sweep: bool = True) -> Iterator[tuple]:
    """Candidates to try (tuples of values, one per parameter), at most ``budget`` of them.

    The generator is sent the loss of each candidate it yields. A grid that
    fits the budget is tried whole when ``sweep``; otherwise it is searched
    one parameter at a time (coordinate descent) from ``start`` (an index
    per parameter; default: the middle of each grid), walking downhill from
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
        if sweep and math.prod(len(g) for g in grids) <= budget:
            for point in itertools.product(*[list(g) for g in grids]):
                yield from ask(point)
            current = list(min(losses, key=losses.__getitem__))
        else:
            current = [g[len(g) // 2 if start is None else start[a]] for a, g in enumerate(grids)]
        while True:
            start = tuple(current)
            for axis in range(len(grids)):
                def at(value, axis=axis):
                    return tuple(current[:axis]) + (value,) + tuple(current[axis + 1:])

                best_value = current[axis]
                best_loss = yield from ask(at(best_value))
                # from a grid's low end (where a costly parameter starts) upwards first
                for direction in (1, -1) if current[axis] == grids[axis][0] else (-1, 1):
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


def _given(value, piece, token):
    """A FilterOp context that is ``value`` whatever piece of the image it is given."""
    return value


def _predicted_seconds(op, shape) -> float:
    """One core's time for ``op`` on an image of ``shape``, by its cost per voxel."""
    voxels = math.prod(shape)
    if op.cost.over_halo and op.halo is not None:
        voxels = math.prod(n + 2 * h for n, h in zip(shape, op.halo))
    return op.cost.seconds * voxels


def _cost_plan(values: list[list], predict) -> tuple[list[int], bool]:
    """Where :func:`_search` starts on each grid, and whether it may sweep it whole.

    A parameter whose candidates' predicted times (``predict(point)``, the
    others at their grids' middles) differ by more than :data:`COSTLY_GRID` times
    (a median's size, a bilateral's spatial σ) is searched from its cheapest
    value, and the grid is never swept whole: the costly end is reached only
    while the loss keeps falling towards it.
    """
    middle = [len(v) // 2 for v in values]
    start, sweep = list(middle), True
    for axis, grid in enumerate(values):
        times = [
            predict(tuple(value if b == axis else values[b][middle[b]] for b in range(len(values))))
            for value in grid
        ]
        if max(times) > COSTLY_GRID * min(times):
            start[axis], sweep = int(np.argmin(times)), False
    return start, sweep


def _tiles(shape, halo, share: float, kept_only: bool = False) -> list[tuple[slice, ...]] | None:
    """Small boxes spread over the crop that, read with ``halo`` around them, make about ``share`` of it.

    The boxes lie on a :data:`TILE_GRID`-wide grid across the crop's two
    longest axes and run through the others whole, so that what they score
    samples the whole crop, not its centre (a centred block of nuclei is
    mostly background, where a wider median wins). Each box is filtered on
    its own, read with its halo (clipped at the crop's borders, where the
    crop's own border applies): the result in the box is then exactly the
    whole-crop call's. When the halos would make the boxes read most of the
    crop: None, or, for a filter that computes only the kept part of what it
    reads (``kept_only``, cost without ``over_halo``), single planes evenly
    spaced along the longest axis, ``share`` of them (at least
    :data:`MIN_SCORED`), whose reading is cheap next to their computing.
    """
    k = len(shape)
    tiled = sorted(sorted(range(k), key=lambda ax: shape[ax])[-2:])
    root = math.sqrt if len(tiled) == 2 else float
    spans, read = [], 1.0
    for ax in tiled:
        n, h = shape[ax], int(halo[ax])
        # cores as large as the share allows, but scoring at least MIN_SCORED of the crop
        core = max(2, int(root(share) * n / TILE_GRID) - 2 * h, math.ceil(root(MIN_SCORED) * n / TILE_GRID))
        read *= min(n, TILE_GRID * (core + 2 * h)) / n
        starts = np.linspace(0, n - core, TILE_GRID).round().astype(int)
        spans.append([slice(int(s), int(s) + core) for s in starts])
    if read > MAX_TILED_READ:  # halos too wide for the crop: tiles would save little
        return _planes(shape, max(share, MIN_SCORED)) if kept_only else None
    boxes = []
    for chosen in itertools.product(*spans):
        box = [slice(0, n) for n in shape]
        for ax, span in zip(tiled, chosen):
            box[ax] = span
        boxes.append(tuple(box))
    return boxes


def _planes(shape, share: float) -> list[tuple[slice, ...]] | None:
    """Single planes across the longest axis, evenly spaced, about ``share`` of the crop (None: most of it)."""
    axis = int(np.argmax(shape))
    n = shape[axis]
    count = math.ceil(share * n)
    if count > n // 2:
        return None
    starts = np.unique(np.linspace(0, n - 1, count).round().astype(int))
    return [tuple(slice(int(s), int(s) + 1) if ax == axis else slice(0, m) for ax, m in enumerate(shape))
            for s in starts]


def _kept_part(op, part: np.ndarray, keep, workers, token) -> np.ndarray:
    """``op``'s result on ``part[keep]``, its kernel computing only that and reading the rest.

    Exactly what running ``op`` on ``part`` gives there. Called in the calling
    thread on all ``workers`` (the kernel shares its rows among them); raises
    :class:`~napari_denoise.Cancelled` when ``token`` is cancelled.
    """
    threads = _scheduler.default_workers() if workers is None else workers
    tile_token = _scheduler.TileToken(token.flag, threads)
    block = as_kernel_input(part)
    context = None if op.context is None else op.context(block, tile_token)
    result = op.kernel(block, keep, None, context, tile_token)
    if token.cancelled:  # the kernel stopped early: its result is incomplete
        raise _scheduler.Cancelled(f"{op.name}: cancelled")
    return result


def _read_around(box, halo, shape) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    """The region to filter for ``box`` (it and ``halo`` around it, within the crop), and the box within it."""
    read = tuple(slice(max(0, b.start - h), min(n, b.stop + h)) for b, h, n in zip(box, halo, shape))
    return read, tuple(slice(b.start - r.start, b.stop - r.start) for b, r in zip(box, read))


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
    if model.gain == 0:  # signal-independent: one variance
        return np.full(data.shape, float(model.variance(0.0)))
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
    call_kwargs = {}
    if "spacing" in accepted and spacing is not None:
        call_kwargs["spacing"] = spacing
    call_kwargs["spatial_axes"] = tuple(range(data.ndim))
    inputs = [np.asarray(data, np.float32)]
    crop_f32 = inputs[0]  # (inputs[0] may become a dithered or masked copy below)
    whole_crop_ops: dict = {}  # the cost plan and the search build the same candidates' ops

    def op_for(kwargs, image_in=None):
        if image_in is not None:
            return function.op(image_in, **call_kwargs, **kwargs)
        try:
            key = tuple(sorted(kwargs.items()))
            hash(key)
        except TypeError:  # a per-axis list of values
            return function.op(crop_f32, **call_kwargs, **kwargs)
        if key not in whole_crop_ops:
            whole_crop_ops[key] = function.op(crop_f32, **call_kwargs, **kwargs)
        return whole_crop_ops[key]

    def resolved(candidate):
        return _resolve_noise_models({**fixed, **candidate}, data, model_cache, token)

    per_candidate = _CALLS_PER_CANDIDATE[loss_kind]
    budget = max(1, max_calls // per_candidate)
    # A linear filter's divergence is its matrix's diagonal, a rank filter's the voxels it keeps, and
    # some filters compute theirs in the same pass: SURE needs no probe call (same search, half the calls).
    first_op = op_for(resolved(dict(zip(names, (v[0] for v in values)))))
    exact = loss_kind == "sure" and (
        first_op.diagonal is not None or first_op.selection or first_op.slope_kernel is not None)
    if exact:
        per_candidate = 1
        variance = _local_variance(data, spacing, mask_model)
        if first_op.selection:
            # SURE of the image plus a dither that breaks ties (integer data have many), whose variance
            # the noise's then includes: the denoiser is scored on an image 0.005 % noisier.
            dither = SELECTION_DITHER * np.sqrt(variance) * rng.standard_normal(data.shape)
            inputs[0] = (data + dither).astype(np.float32)
            noisy = inputs[0].astype(np.float64)
            variance = variance * (1.0 + SELECTION_DITHER**2)
    elif loss_kind == "sure":
        # Monte-Carlo SURE (Ramani, Blu & Unser 2008), variance of the noise model per voxel:
        # E|f(x) - clean|² = E|f(x) - x|² - Σv + 2 Σ v ∂f_i/∂x_i, the divergence from one random probe.
        scale = np.sqrt(_local_variance(data, spacing, mask_model))
        # A ±1 (Rademacher) probe: its divergence estimate has the lower variance (Hutchinson), and
        # no voxel gets a large push that could flip an iterative denoiser's path (measured on
        # total variation: Gaussian probes gave 2× the divergence for 1 seed in 8, ±1 for none).
        probe = rng.integers(0, 2, data.shape) * 2.0 - 1.0
        inputs.append((data + SURE_STEP * scale * probe).astype(np.float32))
        weights = scale * probe / SURE_STEP
    else:
        phase = tuple(int(rng.integers(0, min(stride, n))) for n in data.shape)
        coords = _grid_mask(data.shape, stride, phase)
        inputs[0] = noise_matched_mask(data, coords, spacing, mask_model, rng)
    reachable = math.prod(len(v) + 2 * MAX_EXTENSIONS * _extendable(list(v)) for v in values)
    planned = min(budget, reachable) * per_candidate  # calls
    total = slices * planned * _CALL_STEPS
    # SURE scores every voxel, the J-invariant loss the masked grid
    scored = np.ones(data.shape, bool)
    if loss_kind != "sure":
        scored[:] = False
        scored[coords] = True

    start_at, sweep = _cost_plan(values, lambda point: _predicted_seconds(
        op_for(resolved(dict(zip(names, point)))), data.shape))
    trials = []
    search = _search(values, budget, start=start_at, sweep=sweep)
    loss = None
    reference = None  # (per-voxel loss, loss) of the first candidate scored on the whole crop
    best = None  # (loss, seconds of one call on the whole crop, predicted seconds) of the best candidate so far
    boxes = None  # where costly candidates are scored: chosen once, the same voxels for all of them
    while True:
        try:
            choice = search.send(loss) if trials else next(search)
        except StopIteration:
            break
        candidate = dict(zip(names, choice))
        kwargs = resolved(candidate)
        whole_op = op_for(kwargs)
        predicted = _predicted_seconds(whole_op, data.shape)
        scored_boxes = None
        if best is not None and reference is not None and whole_op.halo is not None:
            # the best's measured time, scaled by the ratio of the two candidates' predicted times
            expected = best[1] * predicted / max(best[2], 1e-12)
            if expected > max(COSTLY * best[1], MIN_TILED_SECONDS):
                if boxes is None:
                    boxes = _tiles(data.shape, whole_op.halo, max(MIN_SHARE, COSTLY * best[1] / expected),
                                   kept_only=not whole_op.cost.over_halo)
                scored_boxes = boxes
        regions = [(Ellipsis, Ellipsis)] if scored_boxes is None else [
            _read_around(b, whole_op.halo, data.shape) for b in scored_boxes]
        # a filter that computes only the kept part of its block is given the tile as that part
        kept_only = scored_boxes is not None and not whole_op.cost.over_halo

        def box(a, boxes=scored_boxes):
            """``a`` where this candidate is scored: all of it, or its tiles' voxels in a row."""
            return a if boxes is None else np.concatenate([a[b].ravel() for b in boxes])

        outs = []
        slopes = []  # ∂f_i/∂x_i where the filter computes it with its value
        with_slope = exact and whole_op.slope_kernel is not None
        started = time.perf_counter()
        for image_in in inputs:
            pieces = []
            context = None
            for number_in_candidate, (read, keep) in enumerate(regions):
                part = np.ascontiguousarray(image_in[read])
                op = whole_op if scored_boxes is None else op_for(kwargs, part)
                if scored_boxes is not None and op.context is not None:
                    if context is None:  # what a whole-crop call computes on the whole crop (noise level, model)
                        context = whole_op.context(image_in, _scheduler.TileToken(token.flag))
                    op = replace(op, context=partial(_given, context))
                if with_slope:
                    op = op.with_slope()
                start = (number * planned + len(trials) * per_candidate + len(outs)) * _CALL_STEPS
                first = start + _CALL_STEPS * number_in_candidate // len(regions)
                if kept_only:
                    yield (first, total)
                    result = _kept_part(op, part, keep, workers, token)
                elif scored_boxes is None and predicted < INLINE_SECONDS:
                    # a few milliseconds: handing it to worker threads would cost about as much
                    yield (first, total)
                    result = _scheduler.filter_now(op, part, token)
                else:
                    run = _scheduler.steps(op, part, workers=workers, token=token)
                    try:
                        while True:
                            done, call_total = next(run)
                            share_done = done / call_total if call_total else 0.0
                            yield (first + int(_CALL_STEPS * share_done / len(regions)), total)
                    except StopIteration as stop:
                        result = stop.value if scored_boxes is None else stop.value[keep]
                if with_slope:
                    slopes.append(result["slope"] if scored_boxes is None else result["slope"].ravel())
                    result = result["value"]
                if not exact:  # (the exact loss reads the output in its own dtype)
                    result = np.asarray(result, np.float64)
                pieces.append(result if scored_boxes is None else result.ravel())
            outs.append(pieces[0] if scored_boxes is None else np.concatenate(pieces))
        # time per voxel computed: the whole crop, the tiles and their halos, or the tiles alone
        computed = data.size if scored_boxes is None else sum(
            math.prod(s.stop - s.start for s in (keep if kept_only else read)) for read, keep in regions)
        seconds = (time.perf_counter() - started) / per_candidate * data.size / computed
        on = slice(None) if loss_kind == "sure" else box(scored)  # SURE scores every voxel
        if exact:
            # ∂f_i/∂x_i: computed with the value; the diagonal of a linear filter; 1 where a rank filter
            # kept the voxel's own value (None)
            slope = factors = None
            if with_slope:
                slope = slopes[0] if scored_boxes is None else np.concatenate(slopes)
            elif not whole_op.selection:
                diagonal = whole_op.diagonal(data.shape)
                if isinstance(diagonal, SeparableDiagonal) and scored_boxes is None and data.ndim <= 3:
                    factors = diagonal.factors  # (the product is never written out)
                else:
                    slope = box(np.asarray(diagonal))
            # each voxel's term is kept only for the reference (below)
            total_loss, voxel_loss = sure_terms(outs[0], box(noisy), box(variance), slope, slope_factors=factors,
                                                per_voxel=scored_boxes is None and reference is None)
            loss = total_loss / outs[0].size if outs[0].size else float("nan")
        else:
            if loss_kind == "sure":
                residual = outs[0] - box(noisy)
                voxel_loss = residual * residual + 2.0 * box(weights) * (outs[1] - outs[0])
            else:
                voxel_loss = np.zeros(outs[0].shape)
                voxel_loss[on] = (outs[0] - box(noisy))[on] ** 2
            loss = float(np.mean(voxel_loss[on])) if voxel_loss[on].size else float("nan")
        share = 1.0
        if scored_boxes is not None:
            # the crop-wide loss: the whole-crop reference's, plus the difference on the same voxels
            loss += reference[1] - float(np.mean(box(reference[0])[on]))
            share = float(outs[0].size / data.size)
        elif np.isfinite(loss) and reference is None:
            reference = (voxel_loss, loss)
        if np.isfinite(loss) and (best is None or loss < best[0]):
            best = (loss, seconds, predicted)
        trials.append(Trial(candidate, loss, share))
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
        calls=len(trials) * per_candidate,
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
        Most denoiser calls (SURE: 2 per candidate, J-invariant: 1; a
        candidate scored on tiles of the crop counts as one call). Linear
        and rank filters (Gaussian, mean, median) and the bilateral, whose
        divergence is known exactly, make one call per candidate within the
        same search. A grid with more candidates than that, or
        one whose candidates' costs differ more than 5×, is searched one
        parameter at a time from its middle (a costly parameter from its
        cheapest value), downhill (coordinate descent); a numeric grid whose
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
    reading the crop, fitting its noise model and a pass of neighbour means.
    A candidate expected to take more than twice the best one's time (a
    9 × 9 × 9 median) is scored on 3 × 3 tiles through the crop (at least
    1/12 of it; each tile filtered with its halo, so its result is the
    whole-crop call's there) and compared on those voxels; where such halos
    would cover most of the crop, a filter that computes only what it is
    asked for (the bilateral) is scored on evenly spaced single planes
    instead. SURE's divergence comes without a probe call for the linear
    filters (their matrix's diagonal), the median (1 where it keeps a
    voxel's own value) and the bilateral (its slope, computed in the same
    pass, through the variance-stabilising transforms). The loss of every
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
