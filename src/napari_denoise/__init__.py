"""napari-denoise: classic denoisers and edge filters for microscopy.

The functions here are pure: they take numpy or dask arrays, know nothing of
napari or Qt, and work on headless machines. Sizes are in physical units when
``spacing`` (a napari layer's ``scale``) is given, time and channel axes are
never mixed (``spatial_axes``), results are float32 in the input's units.

>>> import numpy as np, napari_denoise
>>> stack = np.random.default_rng(0).poisson(50, (20, 64, 64)).astype(np.uint16)
>>> smooth = napari_denoise.gaussian(stack, 0.5, spacing=(0.29, 0.26, 0.26))
>>> smooth.dtype, smooth.shape
(dtype('float32'), (20, 64, 64))
"""

from importlib.metadata import PackageNotFoundError, version

from ._execution import Cancelled, Plan
from . import filters
from .filters import *  # noqa: F403 - the public functions

try:
    __version__ = version("napari-denoise")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "unknown"

__all__ = [*filters.__all__, "Cancelled", "Plan", "__version__"]
