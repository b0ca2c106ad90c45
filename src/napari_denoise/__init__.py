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

Each filter function keeps its builder as ``function.op``: it returns the
:class:`FilterOp` describing the call, which :mod:`napari_denoise._scheduler`
runs with progress and cancellation (what the widgets do).
"""

from importlib.metadata import PackageNotFoundError, version

from ._filter_op import Cost, FilterOp
from ._scheduler import Cancelled, CancelToken
from . import filters
from .filters import *  # noqa: F403 - the public functions

try:
    __version__ = version("napari-denoise")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "unknown"

from .recipes import Recipe, RecipeError, apply_recipe, load_recipe, recipe_of, save_recipe  # noqa: E402
from ._batch import apply_to_files  # noqa: E402
from .calibration import CalibrationResult, calibrate  # noqa: E402
from .auto import AutoDenoiseReport, auto_denoise  # noqa: E402

__all__ = [
    *filters.__all__,
    "Cancelled",
    "AutoDenoiseReport",
    "CancelToken",
    "CalibrationResult",
    "Cost",
    "FilterOp",
    "Recipe",
    "RecipeError",
    "apply_recipe",
    "apply_to_files",
    "auto_denoise",
    "calibrate",
    "load_recipe",
    "recipe_of",
    "save_recipe",
    "__version__",
]
