"""Documentation of the parameters many filters share, written once.

A filter's docstring names a shared entry as ``%(spacing)s`` on its own line;
:func:`fill_doc` substitutes the entry, indented like that line (the idea of
scipy's ``docfiller``). Widget tooltips and ``docs/filters.md`` are built
from the filled docstrings, so they follow too.
"""

from __future__ import annotations

import re
import textwrap

__all__ = ["PARAMETER_DOCS", "fill_doc"]

_SPATIAL_AXES_RULE = (
    "default all axes of a 2-D/3-D image, the last three of a 4-D/5-D one.\n"
    "    Every other axis (time, channel) is processed slice by slice, never mixed."
)

PARAMETER_DOCS = {
    "image": """\
image : array_like or dask array
    Image of any real dtype. It is never modified.""",
    "spacing": """\
spacing : sequence of float, optional
    Voxel size along each spatial axis (a napari layer's ``scale`` on
    those axes). Lengths are then in its unit (e.g. µm). Default: 1 pixel.""",
    "spacing_derivative": """\
spacing : sequence of float, optional
    Voxel size along each spatial axis. Each axis' derivative is divided by
    it, giving a gradient per physical unit. Default: 1 pixel.""",
    "spatial_axes": f"""\
spatial_axes : sequence of int, optional
    Axes filtered across: {_SPATIAL_AXES_RULE}""",
    "mode": """\
mode : {'reflect', 'nearest', 'mirror', 'constant', 'wrap'}, default 'reflect'
    Border handling, with scipy.ndimage's names and meaning.""",
    "cval": """\
cval : float, default 0.0
    Value outside the image for ``mode='constant'``.""",
    "truncate": """\
truncate : float, default 4.0
    Kernel radius in standard deviations (radius = int(truncate·σ + 0.5) px).""",
    "returns_float32": """\
numpy.ndarray or dask.array.Array
    float32 array of the input's shape, in the input's intensity units.""",
    "noise_model": """\
noise_model : {'gaussian', 'poisson', 'auto'} or NoiseModel, default {default}
    'gaussian': noise of constant level, the intensity parameters are in
    the image's units. 'poisson': photon (shot) noise growing with the
    signal: a Poisson–Gaussian model is fitted on each slice
    (:func:`~napari_denoise.estimate_noise_model`), the slice is
    variance-stabilised (generalised Anscombe transform), denoised with
    noise σ = 1 and mapped back by the exact unbiased inverse; intensity
    parameters given explicitly are then in units of the noise σ. 'auto':
    'poisson' where the fitted model is Poisson–Gaussian, else 'gaussian'.
    A NoiseModel (fitted beforehand) is used as it is for every slice.""",
    "run_parameters": """\
workers : int, optional
    Threads for eager (numpy) input; default: every available core
    (``NAPARI_DENOISE_WORKERS`` overrides). Ignored for dask input.
progress : callable, optional
    ``progress(done, total)``, called every 50 ms while the filter runs
    and once it is done.
cancel : callable, optional
    Polled every 50 ms while the filter runs; when it returns True the run
    stops and :class:`napari_denoise.Cancelled` is raised.""",
}

_PLACEHOLDER = re.compile(r"^(?P<indent>[ \t]*)%\((?P<key>\w+)\)s[ \t]*$", re.MULTILINE)


def fill_doc(obj):
    """Replace each ``%(name)s`` line of ``obj.__doc__`` by :data:`PARAMETER_DOCS`'s entry."""

    def substitute(match):
        key = match.group("key")
        if key not in PARAMETER_DOCS:
            raise KeyError(f"{obj.__qualname__}: no shared documentation for %({key})s")
        return textwrap.indent(PARAMETER_DOCS[key], match.group("indent"))

    obj.__doc__ = _PLACEHOLDER.sub(substitute, obj.__doc__ or "")
    return obj
