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
from .noise import estimate_noise
from .smoothing import gaussian, mean, median

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
]
