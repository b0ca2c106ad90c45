"""What an empty ("auto") field of a widget will use, in words a user can check.

Qt-free. The edge-preserving denoisers default their intensity parameters to
multiples of the noise level estimated on each slice; the widget estimates it
once on a sample of the displayed plane (:func:`sample_noise`, cheap) and
shows the resulting values in the empty fields' placeholders, e.g.
``auto ≈ 24.6 (2 × noise σ)``. The run itself estimates on each whole slice, so
the shown value is approximate ("≈").
"""

from __future__ import annotations

import numpy as np

from ._parsing import format_value
from ._registry import FilterSpec
from .filters import denoise
from .filters.noise import noise_model_of_slice, noise_of_slice

__all__ = ["auto_texts", "sample_noise", "plane_sample", "SAMPLE_SIDE", "uses_noise_level"]

#: The noise level is estimated on at most this many pixels a side of the plane.
SAMPLE_SIDE = 512


def plane_sample(data, plane_index) -> np.ndarray:
    """A central crop (at most SAMPLE_SIDE a side) of the plane ``data[plane_index]``.

    ``plane_index`` indexes every axis but the last two spatial ones (ints),
    leaving slices on those two; lazy data reads only the crop.
    """
    shape = data.shape
    index = list(plane_index)
    for ax, item in enumerate(index):
        if isinstance(item, slice):
            n = shape[ax]
            start = max(0, (n - SAMPLE_SIDE) // 2)
            index[ax] = slice(start, min(n, start + SAMPLE_SIDE))
    return np.asarray(data[tuple(index)], dtype=np.float32)


class SampledNoise(float):
    """The noise level of a sample (a float, image units) and ``photon_limited``:
    whether ``noise_model='auto'`` would stabilise it (its fitted model has a gain)."""

    photon_limited: bool = False


def sample_noise(data, plane_index) -> SampledNoise:
    """Noise standard deviation (image units) on a sample of one displayed plane,
    with whether its fitted Poisson–Gaussian model is photon-limited."""
    sample = plane_sample(data, plane_index)
    noise = SampledNoise(noise_of_slice(sample))
    noise.photon_limited = noise_model_of_slice(sample).kind != "gaussian"
    return noise


# Filters whose empty fields default to multiples of the noise level.
_NOISE_DEFAULTS = frozenset({"bilateral", "total_variation", "wavelet", "non_local_means", "block_matching"})


def uses_noise_level(spec: FilterSpec) -> bool:
    """The filter's "auto" fields are multiples of the estimated noise level."""
    return spec.name in _NOISE_DEFAULTS


def _times(factor: float, sigma_hat: float, what: str = "noise σ") -> str:
    factor_text = format_value(float(factor))
    return f"auto ≈ {format_value(factor * sigma_hat)} ({factor_text} × {what})"


def auto_texts(spec: FilterSpec, values: dict, sigma_hat: float | None, *, shape=None,
               spatial_axes=None, unit: str = "") -> dict[str, str]:
    """Placeholder text of each empty optional field of ``spec``.

    ``values`` are the parsed field values (None for empty); ``sigma_hat``
    the noise level estimated on the displayed plane, or None while unknown;
    ``shape``/``spatial_axes`` the image's, for wavelet levels.
    """
    texts: dict[str, str] = {}
    known = sigma_hat is not None and np.isfinite(sigma_hat)
    noise = "auto (from the noise level of each slice)"
    model = values.get("noise_model", "gaussian")
    photon_limited = getattr(sigma_hat, "photon_limited", None)
    if model == "poisson" or (model == "auto" and photon_limited):
        # the slice is variance-stabilised first: its noise σ is 1 there
        sigma_hat, known = 1.0, True
    elif model not in (None, "gaussian"):
        # 'auto' decides per slice whether to stabilise: the displayed plane's
        # fitted model says which (unknown until sampled)
        known = known and photon_limited is not None
        noise = "auto (from the noise model of each slice)"

    def set_if_empty(name, text):
        if name in values and values[name] is None:
            texts[name] = text

    n_axes = len(spatial_axes) if spatial_axes is not None else 2

    def factor_of(table):
        # defaults that differ for planes and volumes are tables by number of axes
        return denoise._by_axes(table, n_axes) if isinstance(table, dict) else table

    name = spec.name
    if name == "bilateral":
        set_if_empty("sigma_intensity",
                     _times(factor_of(denoise.BILATERAL_INTENSITY_FACTOR), sigma_hat) if known else noise)
    elif name == "total_variation":
        set_if_empty("weight", _times(factor_of(denoise.TV_WEIGHT_FACTOR), sigma_hat) if known else noise)
    elif name == "wavelet":
        set_if_empty("sigma", f"auto ≈ {format_value(sigma_hat)} (noise σ)" if known else noise)
        if values.get("wavelet_levels") is None and shape is not None and spatial_axes is not None:
            texts["wavelet_levels"] = _wavelet_levels_text(values, shape, spatial_axes)
    elif name == "block_matching":
        set_if_empty("sigma", f"auto ≈ {format_value(sigma_hat)} (noise σ)" if known else noise)
    elif name == "non_local_means":
        factor = factor_of(denoise.NLM_H_FACTOR_FAST if values.get("fast_mode", True) else denoise.NLM_H_FACTOR_SLOW)
        sigma = values.get("sigma")
        set_if_empty("sigma", f"auto ≈ {format_value(sigma_hat)} (noise σ)" if known else noise)
        if sigma is not None:
            set_if_empty("h", f"auto = {format_value(factor * sigma)} ({format_value(factor)} × sigma)")
        else:
            set_if_empty("h", _times(factor, sigma_hat) if known else noise)
    elif name == "difference_of_gaussians":
        low = values.get("low_sigma")
        if isinstance(low, (int, float)):
            set_if_empty("high_sigma", f"auto = {format_value(1.6 * low)} {unit} (1.6 × low sigma)".replace("  ", " "))
        else:
            set_if_empty("high_sigma", "auto (1.6 × low sigma)")
    elif name == "canny":
        if values.get("low_threshold") is None and values.get("high_threshold") is None:
            texts["low_threshold"] = "auto: 0.8 quantile of the gradient"
            texts["high_threshold"] = "auto: 0.9 quantile of the gradient"
    return texts


def _wavelet_levels_text(values, shape, spatial_axes) -> str:
    import pywt

    spatial_shape = tuple(shape[ax] for ax in spatial_axes)
    try:
        wavelet = pywt.Wavelet(values.get("wavelet_name") or "db1")
        levels = max(pywt.dwtn_max_level(spatial_shape, wavelet) - 3, 1)
    except (ValueError, TypeError):
        return "auto (3 fewer than the maximum)"
    return f"auto = {levels} (3 fewer than the maximum)"
