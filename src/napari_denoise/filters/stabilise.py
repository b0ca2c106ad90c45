"""Variance stabilisation of Poisson–Gaussian noise: the generalised Anscombe transform.

Photon-limited images have noise whose variance grows with the signal
(:class:`~napari_denoise.NoiseModel`). The generalised Anscombe transform
(GAT) maps such an image to one whose noise has standard deviation ≈ 1
everywhere, where the denoisers made for additive Gaussian noise work with
σ = 1; the exact unbiased inverse then maps the denoised image back to the
image's units without the bias the plain algebraic inverse has at low
counts.

:func:`stabilised` applies this around any :class:`~napari_denoise.FilterOp`
(the ``noise_model=`` option of the edge-preserving denoisers): the op's
context fits the model on the whole slice, each tile is transformed, denoised
and inverted pointwise, so tiled and untiled runs stay identical. Both
transforms compute in float64 a piece of the array at a time and store
float32, so they hold no full-size float64 temporaries.

References
----------
F. J. Anscombe, "The transformation of Poisson, binomial and negative-binomial
data", Biometrika 35, 1948. J.-L. Starck, F. Murtagh and A. Bijaoui, "Image
processing and data analysis: the multiscale approach", 1998 (the generalised
transform). M. Mäkitalo and A. Foi, "Optimal inversion of the Anscombe
transformation in low-count Poisson image denoising", IEEE Trans. Image
Process. 20(1), 2011; "A closed-form approximation of the exact unbiased
inverse of the Anscombe variance-stabilizing transformation", IEEE Trans.
Image Process. 20(9), 2011; "Optimal inversion of the generalized Anscombe
transformation for Poisson-Gaussian noise", IEEE Trans. Image Process. 22(1),
2013.
"""

from __future__ import annotations

import dataclasses
import functools
from functools import partial
from typing import Literal

import numpy as np
from scipy import special

from .._filter_op import VALUE_AND_SLOPE, Cost, FilterOp
from .._params import as_image, check_choice, is_lazy
from ..kernels.exact_inverse import ExactInverseTable, closed_form_photons, exact_photons
from ..kernels.threads import Team, split_evenly, threads_of
from .noise import NoiseModel, assumed_noise_level, noise_model_of_slice

__all__ = [
    "NOISE_MODEL_CHOICES",
    "NoiseModelChoice",
    "anscombe",
    "inverse_anscombe",
    "check_noise_model",
    "stabilised",
]

NoiseModelChoice = Literal["gaussian", "poisson", "auto"]
NOISE_MODEL_CHOICES = ("gaussian", "poisson", "auto")
INVERSE_METHODS = ("exact", "closed-form", "algebraic")

#: The classic Anscombe transform's model: photon counts, no offset, no read noise.
PHOTON_COUNTS = NoiseModel(1.0, 0.0, 0.0)

# Read noise above this many photons' worth makes the transform affine to
# float precision: it is then computed as the affine map itself, which keeps
# float32 values small (2·σ/gain would dwarf the unit noise).
_AFFINE_READ_PHOTONS = 1000.0
# The exact inverse is tabulated up to this mean photon count; beyond, the
# closed-form approximation agrees with it to better than 1e-6 photons.
_TABLE_PHOTONS = 300.0


def _affine(model: NoiseModel) -> bool:
    return model.gain == 0 or model.read_sigma > _AFFINE_READ_PHOTONS * model.gain


def _forward64(values: np.ndarray, model: NoiseModel) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if _affine(model):
        return (values - model.offset) / model.read_sigma
    gain = model.gain
    radicand = gain * values + 0.375 * gain * gain + model.read_sigma**2 - gain * model.offset
    return (2.0 / gain) * np.sqrt(np.maximum(radicand, 0.0))


def _check_model(model) -> NoiseModel:
    if model is None:
        return PHOTON_COUNTS
    if not isinstance(model, NoiseModel):
        raise TypeError(f"model: expected a NoiseModel, got {model!r}")
    if model.gain == 0 and model.read_sigma == 0:
        raise ValueError("model: a noise-free model (gain 0, read_sigma 0) cannot be stabilised")
    return model


def anscombe(image, model: NoiseModel | None = None):
    """Generalised Anscombe transform: noise of standard deviation ≈ 1 everywhere.

    ``f(z) = 2/g · sqrt(max(g·z + 3/8·g² + σ² − g·o, 0))`` for a model of
    gain ``g``, offset ``o`` and read noise ``σ``; with the default model
    (``gain=1, offset=0, read_sigma=0``) the classic ``2·sqrt(z + 3/8)``.
    For a model without Poisson part (or whose read noise exceeds 1000
    photons) the transform is the affine map ``(z − o) / σ``, its limit.

    Parameters
    ----------
    image : array_like or dask array
        Image in the model's units.
    model : NoiseModel, optional
        Noise of the image (:func:`~napari_denoise.estimate_noise_model`).
        Default: photon counts.

    Returns
    -------
    numpy.ndarray or dask.array.Array
        float32 array of the image's shape, in units of the noise standard
        deviation (computed in float64).
    """
    image = as_image(image)
    model = _check_model(model)
    if is_lazy(image):
        return image.map_blocks(_forward_block, model=model, dtype=np.float32)
    return _forward_block(image, model)


# The transforms compute in float64 a piece of about this many values at a time (2 MiB
# temporaries, in cache) and store float32: a whole-slice float64 expression held ~4 float64
# arrays of the slice at once (32 B per voxel; a stabilised 3-D run peaked at ~10x its output).
_PIECE_VALUES = 1 << 18


def _pieces(shape, values: int = _PIECE_VALUES):
    """Index tuples cutting an array of ``shape`` into pieces of about ``values``
    elements along its leading axes (whole trailing axes), in order."""
    if not shape:
        yield ()
        return
    inner = int(np.prod(shape[1:], dtype=np.int64))
    if len(shape) > 1 and inner > values:
        for i in range(shape[0]):
            for rest in _pieces(shape[1:], values):
                yield (i, *rest)
        return
    step = max(1, values // max(1, inner))
    for start in range(0, shape[0], step):
        yield (slice(start, min(start + step, shape[0])),)


def _piecewise(function, block, out, threads: int = 1):
    """``out[...] = function(block)`` for an elementwise ``function``, piece by piece
    (:func:`_pieces`): the same values, without full-size temporaries; the pieces
    shared among up to ``threads`` threads (NumPy's loops and the compiled lookup
    release the GIL), which leaves every value as it is."""
    pieces = list(_pieces(block.shape))

    def run(first, stop):
        for index in pieces[first:stop]:
            out[index] = function(block[index])

    parts = max(1, min(threads, len(pieces)))
    with Team(parts) as team:
        team.map(run, split_evenly(len(pieces), parts))
    return out


def _forward_block(block, model, threads: int = 1):
    block = np.asarray(block)
    return _piecewise(partial(_forward64, model=model), block, np.empty(block.shape, np.float32), threads)


def inverse_anscombe(image, model: NoiseModel | None = None, *, method: str = "exact"):
    """Inverse of :func:`anscombe` for a denoised image, back in the model's units.

    Parameters
    ----------
    image : array_like or dask array
        Denoised stabilised image (an estimate of the transform's mean).
    model : NoiseModel, optional
        The model the image was stabilised with. Default: photon counts.
    method : {'exact', 'closed-form', 'algebraic'}, default 'exact'
        'exact': the exact unbiased inverse, which maps ``E[f(z)]`` back to
        the mean signal (Mäkitalo & Foi 2011/2013), tabulated for the model
        up to 300 photons and given by its closed-form approximation beyond.
        'closed-form': the closed-form approximation everywhere (accurate to
        a few hundredths of a photon above ~1 photon). 'algebraic': the plain
        inverse ``f⁻¹``, biased at low counts (for comparison).

    Returns
    -------
    numpy.ndarray or dask.array.Array
        float32 array in the model's units; signals below the model's zero
        photon level come back as that level.
    """
    image = as_image(image)
    model = _check_model(model)
    method = check_choice(method, INVERSE_METHODS, "method")
    if is_lazy(image):
        return image.map_blocks(_inverse_block, model=model, method=method, dtype=np.float32)
    return _inverse_block(image, model, method)


def _inverse_block(block, model, method="exact", out=None, threads: int = 1):
    block = np.asarray(block)
    return _piecewise(partial(_inverse64, model=model, method=method), block,
                      np.empty(block.shape, np.float32) if out is None else out, threads)


def _inverse64(block, model, method):
    """The inverse of a piece, in float64 (see :func:`inverse_anscombe`)."""
    values = np.asarray(block, dtype=np.float64)
    if _affine(model):
        signal = model.offset + model.read_sigma * values
    else:
        normalised_sigma = model.read_sigma / model.gain
        if method == "algebraic":
            photons = np.maximum((values / 2.0) ** 2 - 0.375 - normalised_sigma**2, 0.0)
        elif method == "closed-form":
            photons = closed_form_photons(values, normalised_sigma)
        else:
            photons = _exact_photons(values, normalised_sigma)
        signal = model.offset + model.gain * photons
    return signal


@functools.lru_cache(maxsize=32)
def _exact_table(normalised_sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """``(E[f(z)], λ)`` on a grid of mean photon counts λ ∈ [0, 300].

    ``z = p + n`` with ``p ~ Poisson(λ)``, ``n ~ N(0, σ²)`` (σ in photons) and
    ``f(z) = 2·sqrt(max(z + 3/8 + σ², 0))``; the expectation over the Gaussian
    is a quadrature on ±8σ, over the Poisson a sum over counts.
    """
    photons = np.unique(np.concatenate([np.linspace(0, 4, 161), np.geomspace(4, _TABLE_PHOTONS, 400)]))
    counts = np.arange(int(_TABLE_PHOTONS + 12 * np.sqrt(_TABLE_PHOTONS) + 40), dtype=np.float64)
    shift = 0.375 + normalised_sigma**2
    if normalised_sigma > 0:
        n = np.linspace(-8.0, 8.0, 1601)
        weights = np.exp(-0.5 * n * n)
        weights /= weights.sum()
        inside = counts[:, None] + shift + normalised_sigma * n[None, :]
        per_count = (2.0 * np.sqrt(np.maximum(inside, 0.0))) @ weights
    else:
        per_count = 2.0 * np.sqrt(counts + shift)
    # Poisson probabilities in log space (no overflow at large counts); the
    # first grid point, λ = 0, puts all its mass on zero counts.
    rates = photons[1:, None]
    log_p = counts[None, :] * np.log(rates) - rates - special.gammaln(counts + 1)[None, :]
    expectation = np.concatenate([[per_count[0]], np.exp(log_p) @ per_count])
    return expectation, photons


@functools.lru_cache(maxsize=32)
def _exact_lookup(normalised_sigma: float) -> ExactInverseTable:
    return ExactInverseTable(*_exact_table(normalised_sigma))


def _exact_photons(values: np.ndarray, normalised_sigma: float) -> np.ndarray:
    """``np.interp(values, expectation, photons, left=0)`` on the table, the closed form
    beyond it and NaN for NaN, through the compiled lookup (:mod:`..kernels.exact_inverse`:
    the same numbers, without a bisection per value)."""
    return exact_photons(values, _exact_lookup(round(float(normalised_sigma), 6)), normalised_sigma)


# -- the noise_model option of the denoisers -----------------------------------------------
def check_noise_model(noise_model):
    """``"gaussian"``, ``"poisson"``, ``"auto"`` or a :class:`NoiseModel`; else a clear error."""
    if isinstance(noise_model, NoiseModel):
        return noise_model
    if isinstance(noise_model, str):
        return check_choice(noise_model, NOISE_MODEL_CHOICES, "noise_model")
    raise TypeError(
        "noise_model: expected 'gaussian', 'poisson', 'auto' or a NoiseModel, "
        f"got {noise_model!r}"
    )


def stabilised(op: FilterOp, noise_model) -> FilterOp:
    """``op`` run on the variance-stabilised image and mapped back (see :func:`anscombe`).

    ``noise_model``: ``"gaussian"`` returns ``op`` itself; ``"poisson"`` fits
    the model on each whole slice and stabilises; ``"auto"`` stabilises the
    slices whose fitted model is Poisson–Gaussian; a :class:`NoiseModel` is
    used as it is for every slice. Inside, the noise level the op's defaults
    derive from is exactly 1 (:func:`~napari_denoise.filters.noise.assumed_noise_level`).
    """
    choice = check_noise_model(noise_model)
    if isinstance(choice, str) and choice == "gaussian":
        return op
    if isinstance(choice, NoiseModel):
        _check_model(choice)
    recorded = choice if isinstance(choice, str) else dataclasses.asdict(choice)
    return dataclasses.replace(
        op,
        kernel=partial(_stabilised_kernel, inner=op.kernel),
        context=partial(_stabilised_context, inner=op.context, choice=choice),
        # the stabilised float32 copy of the tile and the inner result, which the inverse maps
        # into the output (both transforms run piece by piece: no full-size float64 temporaries)
        cost=Cost(op.cost.seconds + 2e-8, op.cost.work_arrays + 2.0, op.cost.over_halo),
        params={**op.params, "noise_model": recorded},
        # the slope through the transforms (chain rule); a linear filter's diagonal no longer holds
        slope_kernel=None if op.slope_kernel is None else partial(_stabilised_slope_kernel, inner=op.slope_kernel),
        diagonal=None,
        selection=False,
    )


def _slice_model(piece, choice, token) -> NoiseModel | None:
    """The model a slice is stabilised with, or None to run the op unchanged."""
    if isinstance(choice, NoiseModel):
        return choice
    model = noise_model_of_slice(piece, token)
    if model.gain == 0 and model.read_sigma == 0:
        return None  # noise-free: nothing to stabilise
    if choice == "auto" and model.kind == "gaussian":
        return None
    return model


class _StabilisedSlice:
    """A slice's stabilised values (:func:`_forward_block`), computed when first read as an array.

    The denoisers' contexts read a stabilised slice only for its noise level,
    which is 1 by construction (:func:`assumed_noise_level`), so they never
    read it: transforming the whole slice for them cost a pass over it and
    4 bytes per voxel for nothing. A context that does read it gets the values.
    """

    def __init__(self, piece, model):
        self._piece, self._model, self._values = piece, model, None
        self.shape, self.ndim, self.size, self.dtype = piece.shape, piece.ndim, piece.size, np.dtype(np.float32)

    def __array__(self, dtype=None, copy=None):
        if self._values is None:
            self._values = _forward_block(self._piece, self._model)
        return self._values if dtype is None else self._values.astype(dtype, copy=bool(copy))


def _stabilised_context(piece, token, *, inner, choice):
    model = _slice_model(piece, choice, token)
    if model is None:
        return None, (None if inner is None else inner(piece, token))
    if inner is None:
        return model, None
    with assumed_noise_level(1.0):
        return model, inner(_StabilisedSlice(np.asarray(piece), model), token)


def _on_stabilised(block, keep, out, context, token, inner):
    """``(model, result)``: ``inner`` on the stabilised block, or, for a slice left as it is
    (model None), on the block itself and into ``out``."""
    model, inner_context = context
    if model is None:
        return None, inner(block, keep, out, inner_context, token)
    with assumed_noise_level(1.0):
        return model, inner(_forward_block(block, model, threads_of(token)), keep, None, inner_context, token)


def _stabilised_kernel(block, keep, out, context, token, *, inner):
    model, result = _on_stabilised(block, keep, out, context, token, inner)
    return result if model is None else _inverse_block(result, model, "exact", out, threads_of(token))


#: Step of the central difference that gives the inverse transform's slope, in
#: units of the stabilised noise (whose standard deviation is 1).
_INVERSE_STEP = 1e-3


def _forward_slope(values: np.ndarray, model: NoiseModel) -> np.ndarray:
    """``∂f/∂z`` of the forward transform at ``values`` (float64; 0 where it is clamped)."""
    values = np.asarray(values, dtype=np.float64)
    if _affine(model):
        return np.full(values.shape, 1.0 / model.read_sigma)
    gain = model.gain
    radicand = gain * values + 0.375 * gain * gain + model.read_sigma**2 - gain * model.offset
    with np.errstate(divide="ignore"):
        return np.where(radicand > 0, 1.0 / np.sqrt(np.maximum(radicand, 1e-300)), 0.0)


def _inverse_slope(values: np.ndarray, model: NoiseModel) -> np.ndarray:
    """``∂f⁻¹/∂v`` of the exact unbiased inverse at ``values`` (float64, central difference)."""
    if _affine(model):
        return np.full(np.shape(values), float(model.read_sigma))
    values = np.asarray(values, dtype=np.float64)
    above = _inverse_block(values + _INVERSE_STEP, model, out=np.empty(values.shape))  # float64 out: no rounding
    below = _inverse_block(values - _INVERSE_STEP, model, out=np.empty(values.shape))
    return (above - below) / (2.0 * _INVERSE_STEP)


def _stabilised_slope_kernel(block, keep, out, context, token, *, inner):
    """:func:`_stabilised_kernel` of a ``slope_kernel``: value and slope back in the image's units."""
    model, result = _on_stabilised(block, keep, out, context, token, inner)
    if model is None:
        return result
    if out is None:
        out = np.empty(result.shape, VALUE_AND_SLOPE)
    denoised = result["value"]
    out["value"] = _inverse_block(denoised, model, "exact")
    # chain rule: the inverse's slope at the denoised value × the inner slope × the forward's at the input
    out["slope"] = _inverse_slope(denoised, model) * result["slope"] * _forward_slope(block[tuple(keep)], model)
    return out
