"""The one table of filters: widgets, manifest entries and docs follow from it.

Each entry names a public function of :mod:`napari_denoise.filters` and says
how it appears in napari. Parameters, defaults, tooltips and types come from
the function's own signature and docstring, so nothing is written twice.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

from . import filters

__all__ = [
    "FilterSpec",
    "FILTERS",
    "FAMILIES",
    "by_name",
    "widget_parameters",
    "COMMON_PARAMETERS",
    "DEFAULT_VOXELS",
    "default_voxels",
    "PANEL_NAME",
]

# Family -> submenu label under Layers > Filter.
FAMILIES = {"denoise": "Denoise", "edges": "Edges"}

# Arguments the widget fills from the layer rather than from a control.
COMMON_PARAMETERS = ("image", "spacing", "spatial_axes")

# Display name of the one dock that serves every filter (fixed once published).
PANEL_NAME = "Denoise & edges"

# Widget default of each physical length, in voxels along the layer's finest
# spatial axis: the field shows this many voxel sizes in the layer's unit, so
# that a default means the same on 0.1 µm and on 2 µm voxels (a fixed 3 µm
# median was 11x11x11 voxels on the nuclei sample and ran for 50 s). One to
# three voxels: the smallest kernels that still smooth (σ of 1 voxel, a 3-wide
# window). filters.smoothing.DEFAULT_VOXELS, when it exists (the denoising
# quality study), overrides these entries, in the same format.
DEFAULT_VOXELS = {
    "gaussian": {"sigma": 1.0},
    "mean": {"size": 3.0},
    "median": {"size": 3.0},
    "bilateral": {"sigma_spatial": 1.0},
    "gradient_magnitude": {"sigma": 1.0},
    "laplacian_of_gaussian": {"sigma": 1.0},
    "difference_of_gaussians": {"low_sigma": 1.0},
    "canny": {"sigma": 1.0},
}

# How a parameter is written in layer names.
SYMBOLS = {"sigma": "σ", "sigma_spatial": "σ", "low_sigma": "σ", "size": "size"}


@dataclass(frozen=True)
class FilterSpec:
    """How one filter appears in napari.

    name: public function name (``napari_denoise.<name>``), also the command id.
    display_name: widget title, fixed (scripts dock widgets by it).
    family: key of :data:`FAMILIES`.
    lengths: parameters given in the layer's physical units (converted to voxels
        with the layer's scale); ``sizes`` are the ones rounded to odd voxel counts.
    planar: the filter works plane by plane on the last two spatial axes, so
        its lengths have one value per plane axis only.
    """

    name: str
    display_name: str
    family: str
    lengths: tuple[str, ...] = ()
    sizes: tuple[str, ...] = ()
    planar: bool = False

    @property
    def function(self):
        return getattr(filters, self.name)

    @property
    def command_id(self) -> str:
        return f"napari-denoise.{self.name}"

    @property
    def widget_class_name(self) -> str:
        return "".join(part.capitalize() for part in self.name.split("_")) + "Widget"

    @property
    def python_name(self) -> str:
        return f"napari_denoise._widgets:{self.widget_class_name}"

    @property
    def summary(self) -> str:
        return inspect.getdoc(self.function).splitlines()[0]


FILTERS: tuple[FilterSpec, ...] = (
    FilterSpec("gaussian", "Gaussian", "denoise", lengths=("sigma",)),
    FilterSpec("mean", "Mean", "denoise", lengths=("size",), sizes=("size",)),
    FilterSpec("median", "Median", "denoise", lengths=("size",), sizes=("size",)),
    FilterSpec("bilateral", "Bilateral", "denoise", lengths=("sigma_spatial",)),
    FilterSpec("total_variation", "Total variation", "denoise"),
    FilterSpec("wavelet", "Wavelet", "denoise"),
    FilterSpec("non_local_means", "Non-local means", "denoise"),
    FilterSpec("block_matching", "Block matching (BM3D/BM4D)", "denoise"),
    FilterSpec("sobel", "Sobel", "edges"),
    FilterSpec("scharr", "Scharr", "edges"),
    FilterSpec("prewitt", "Prewitt", "edges"),
    FilterSpec("laplace", "Laplace", "edges"),
    FilterSpec("gradient_magnitude", "Gradient magnitude", "edges", lengths=("sigma",)),
    FilterSpec("laplacian_of_gaussian", "Laplacian of Gaussian", "edges", lengths=("sigma",)),
    FilterSpec(
        "difference_of_gaussians",
        "Difference of Gaussians",
        "edges",
        lengths=("low_sigma", "high_sigma"),
    ),
    FilterSpec("canny", "Canny", "edges", lengths=("sigma",), planar=True),
)


def by_name(name: str) -> FilterSpec:
    for spec in FILTERS:
        if name in (spec.name, spec.display_name):
            return spec
    raise KeyError(name)


def default_voxels(spec: FilterSpec) -> dict[str, float]:
    """``{length parameter: default in voxels along the finest axis}`` for ``spec``."""
    from .filters import smoothing

    table = {name: dict(entry) for name, entry in DEFAULT_VOXELS.items()}
    for name, entry in (getattr(smoothing, "DEFAULT_VOXELS", None) or {}).items():
        table.setdefault(name, {}).update(entry)
    return {k: float(v) for k, v in table.get(spec.name, {}).items() if k in spec.lengths}


def widget_parameters(spec: FilterSpec) -> list[inspect.Parameter]:
    """The function's parameters that get a control in the widget, in order."""
    signature = inspect.signature(spec.function.op)
    return [p for name, p in signature.parameters.items() if name not in COMMON_PARAMETERS]
