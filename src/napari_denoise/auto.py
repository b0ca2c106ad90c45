"""Auto denoise: fit the noise, calibrate every candidate denoiser, keep the best.

:func:`auto_denoise` fits the Poisson–Gaussian noise model
(:func:`~napari_denoise.estimate_noise_model`) on a representative crop,
calibrates each candidate method there by its self-supervised loss
(:func:`~napari_denoise.calibrate`: SURE on Gaussian noise, the J-invariant
loss on Poisson–Gaussian noise; the same loss, crop, probe or scored voxels
and mask for every method, so the losses compare across methods), and runs the
method with the lowest loss on the whole image. Denoisers that take
``noise_model`` run on the variance-stabilised image when the noise is
signal-dependent. The report says what was chosen and why.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from . import _scheduler
from ._params import as_image, resolve_spacing, resolve_spatial_axes
from .calibration import CalibrationResult, _check_slice_index, _region, calibration_steps
from .filters.noise import NoiseModel, noise_model_of_slice

__all__ = ["AutoDenoiseReport", "DEFAULT_METHODS", "auto_denoise", "auto_denoise_steps"]

#: Methods tried by default, fastest first. Mean and median are left out:
#: on every case measured the Gaussian of calibrated σ did as well or better.
DEFAULT_METHODS = ("gaussian", "wavelet", "total_variation", "bilateral", "non_local_means", "block_matching")

# Progress units per stage (each method's calibration, then the final run).
_STAGE_STEPS = 1000


@dataclass(frozen=True)
class AutoDenoiseReport:
    """What :func:`auto_denoise` chose and why.

    Attributes
    ----------
    method : str
        Public name of the chosen denoiser.
    parameters : dict
        Keyword arguments it was called with (besides ``spacing`` and
        ``spatial_axes``); ``noise_model`` is ``"poisson"`` (the model refitted
        on each slice of the image) or ``"gaussian"`` for denoisers that take it.
    noise_model : NoiseModel
        The model fitted on the crop.
    calibrations : dict
        :class:`~napari_denoise.CalibrationResult` per method tried, in order.
    region : tuple of slice
        The crop the methods were calibrated on.
    seconds : float
        Wall-clock time of the calibrations and the final run.
    """

    method: str
    parameters: dict
    noise_model: NoiseModel
    calibrations: dict
    region: tuple
    seconds: float

    @property
    def losses(self) -> dict[str, float]:
        """Lowest self-supervised loss of each method (image units²)."""
        return {name: result.loss for name, result in self.calibrations.items()}

    def table(self) -> list[tuple[str, dict, float]]:
        """``(method, best parameters, loss)`` per method, best first."""
        rows = [(name, dict(result.best), result.loss) for name, result in self.calibrations.items()]
        return sorted(rows, key=lambda row: row[2])

    def as_dict(self) -> dict:
        """The report as plain data (numbers, strings, lists): for ``layer.metadata`` or JSON."""
        return {
            "method": self.method,
            "parameters": {k: _plain(v) for k, v in self.parameters.items()},
            "noise_model": {
                "kind": self.noise_model.kind,
                "gain": self.noise_model.gain,
                "offset": self.noise_model.offset,
                "read_sigma": self.noise_model.read_sigma,
            },
            "region": [[int(s.start), int(s.stop)] for s in self.region],
            "seconds": self.seconds,
            "losses": [
                {
                    "method": name,
                    "best": {k: _plain(v) for k, v in result.best.items()},
                    "loss": result.loss,
                    "trials": [
                        {"parameters": {k: _plain(v) for k, v in t.parameters.items()}, "loss": t.loss}
                        for t in result.trials
                    ],
                }
                for name, result in self.calibrations.items()
            ],
        }


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (tuple, list, np.ndarray)):
        return [_plain(v) for v in value]
    return value


def _check_methods(methods) -> tuple:
    from . import filters
    from .calibration import DEFAULT_GRIDS

    if methods is None:
        return DEFAULT_METHODS
    if isinstance(methods, str):
        methods = (methods,)
    methods = tuple(methods)
    if not methods:
        raise ValueError("methods: expected at least one denoiser name")
    for name in methods:
        if not isinstance(name, str) or name not in DEFAULT_GRIDS or not hasattr(filters, name):
            raise ValueError(f"methods: {name!r} is not one of the denoisers {sorted(DEFAULT_GRIDS)}")
    if len(set(methods)) != len(methods):
        raise ValueError(f"methods: listed twice in {list(methods)}")
    return methods


def auto_denoise_steps(
    image,
    *,
    spacing=None,
    spatial_axes=None,
    methods=None,
    crop=None,
    slice_index=None,
    max_calls: int = 10,
    workers: int | None = None,
    token: _scheduler.CancelToken | None = None,
):
    """:func:`auto_denoise` as a generator: yields ``(done, total)``, returns ``(result, report)``.

    Cancel through ``token``; :class:`~napari_denoise.Cancelled` is raised.
    """
    from . import filters

    started = time.perf_counter()
    image = as_image(image)
    methods = _check_methods(methods)
    axes = resolve_spatial_axes(image.ndim, spatial_axes)
    spacing = resolve_spacing(spacing, len(axes))
    token = _scheduler.CancelToken() if token is None else token
    lead_axes = [ax for ax in range(image.ndim) if ax not in axes]
    index = _check_slice_index(slice_index, tuple(image.shape[ax] for ax in lead_axes))
    # One crop for every method, so that their losses are on the same voxels.
    region, data = _region(image, axes, lead_axes, index, crop, spacing)
    window = tuple(region[ax] for ax in axes)
    model = noise_model_of_slice(data, token)
    choice = "poisson" if model.kind == "poisson-gaussian" else "gaussian"
    total = (len(methods) + 1) * _STAGE_STEPS
    calibrations: dict[str, CalibrationResult] = {}
    for number, name in enumerate(methods):
        function = getattr(filters, name)
        takes_model = "noise_model" in _parameters(function)
        steps = calibration_steps(
            function, image, spacing=spacing if "spacing" in _parameters(function) else None,
            spatial_axes=axes, crop=window, slice_index=index,
            fixed={"noise_model": model if choice == "poisson" else "gaussian"} if takes_model else None,
            # one kind of loss for every method, so that their losses compare
            loss="sure" if choice == "gaussian" else "j-invariant",
            max_calls=max_calls, workers=workers, token=token,
        )
        try:
            while True:
                done, stage_total = next(steps)
                yield (number * _STAGE_STEPS + (_STAGE_STEPS * done // stage_total if stage_total else 0), total)
        except StopIteration as stop:
            calibrations[name] = stop.value
    best = min(calibrations, key=lambda name: calibrations[name].loss)
    function = getattr(filters, best)
    parameters = dict(calibrations[best].best)
    if "noise_model" in _parameters(function):
        parameters["noise_model"] = choice
    call = dict(parameters, spatial_axes=axes)
    if "spacing" in _parameters(function) and spacing is not None:
        call["spacing"] = spacing
    op = function.op(image, **call)
    run = _scheduler.steps(op, image, workers=workers, token=token)
    start = len(methods) * _STAGE_STEPS
    try:
        while True:
            done, run_total = next(run)
            yield (start + (_STAGE_STEPS * done // run_total if run_total else 0), total)
    except StopIteration as stop:
        result = stop.value
    yield (total, total)
    report = AutoDenoiseReport(best, parameters, model, calibrations, window, time.perf_counter() - started)
    return result, report


def _parameters(function):
    import inspect

    return inspect.signature(function.op).parameters


def auto_denoise(
    image,
    *,
    spacing=None,
    spatial_axes=None,
    methods=None,
    crop=None,
    slice_index=None,
    max_calls: int = 10,
    workers: int | None = None,
    progress: Callable[[int, int], Any] | None = None,
    cancel=None,
):
    """Denoise with the method and parameters of lowest self-supervised loss.

    Fits the noise model, calibrates each method in ``methods`` on one
    representative crop (:func:`~napari_denoise.calibrate`), picks the
    method and parameters whose self-supervised loss is lowest and runs it on the
    whole image. The clean image is never needed.

    Parameters
    ----------
    image : array_like or dask array
        The noisy image (never modified). Dask input: only the crop is read
        to choose, and the result is an uncomputed dask array.
    spacing : sequence of float, optional
        Voxel size along each spatial axis (lengths are chosen in its units).
    spatial_axes : sequence of int, optional
        Axes forming one image (default: all of a 2-D/3-D image, the last
        three otherwise); time and channel axes are never mixed.
    methods : sequence of str, optional
        Denoisers to try (names of napari_denoise functions). Default:
        :data:`DEFAULT_METHODS` (Gaussian, wavelet, total variation,
        bilateral, non-local means, block matching).
    crop : 'auto', 'full' or tuple of slice, optional
        Region of the spatial axes to calibrate on (see :func:`~napari_denoise.calibrate`).
    slice_index : int or tuple of int, optional
        The time point / channel to calibrate on (default: the middle one).
    max_calls : int, default 10
        Most calls of each denoiser on the crop.
    workers : int, optional
        Threads per call (default: every core).
    progress : callable, optional
        ``progress(done, total)`` as the work advances.
    cancel : callable or CancelToken, optional
        When it returns True (or the token is cancelled) the run stops and
        :class:`~napari_denoise.Cancelled` is raised.

    Returns
    -------
    result : numpy.ndarray or dask.array.Array
        float32 denoised image in the input's units.
    report : AutoDenoiseReport
        The chosen ``method`` and ``parameters``, the ``noise_model``, each
        method's calibration (its loss table) and the time taken.

    Notes
    -----
    All losses are of one kind (SURE on Gaussian noise, J-invariant on
    Poisson–Gaussian noise) and measured on the same crop and probe, or
    scored voxels and mask, in the image's units: they differ between methods
    by their (estimated) true mean squared error only (Ramani et al. 2008;
    Batson & Royer 2019), so the lowest is the best estimate.

    References
    ----------
    J. Batson and L. Royer, "Noise2Self: blind denoising by self-supervision",
    ICML 2019. A. Foi et al., "Practical Poissonian-Gaussian noise modeling
    and fitting for single-image raw-data", IEEE TIP 17(10), 2008.
    """
    if isinstance(cancel, _scheduler.CancelToken):
        token, poll = cancel, None
    else:
        token, poll = _scheduler.CancelToken(), cancel
    steps = auto_denoise_steps(
        image, spacing=spacing, spatial_axes=spatial_axes, methods=methods, crop=crop, slice_index=slice_index,
        max_calls=max_calls, workers=workers, token=token,
    )
    return _scheduler.drive(steps, token, progress, poll)
