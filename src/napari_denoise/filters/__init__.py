"""Pure array functions: no napari, no Qt. Grouped by family."""

from .block_matching import block_matching
from .denoise import bilateral, non_local_means, total_variation, wavelet
from .edges import (
    canny,
    difference_of_gaussians,
    gradient_magnitude,
    laplace,
    laplacian_of_gaussian,
    prewitt,
    scharr,
    sobel,
)
from .noise import NoiseModel, estimate_noise, estimate_noise_model
from .smoothing import gaussian, mean, median
from .stabilise import anscombe, inverse_anscombe

__all__ = [
    "gaussian",
    "mean",
    "median",
    "bilateral",
    "total_variation",
    "wavelet",
    "non_local_means",
    "block_matching",
    "sobel",
    "scharr",
    "prewitt",
    "laplace",
    "gradient_magnitude",
    "laplacian_of_gaussian",
    "difference_of_gaussians",
    "canny",
    "estimate_noise",
    "estimate_noise_model",
    "NoiseModel",
    "anscombe",
    "inverse_anscombe",
]
