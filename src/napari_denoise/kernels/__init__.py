"""Compiled kernels (numba), one module per algorithm.

Internal: the filters in :mod:`napari_denoise.filters` wrap these into
:class:`~napari_denoise.FilterOp` kernels; their signatures may change.

* :mod:`.borders` — border modes as scipy.ndimage defines them, index mapping
  and the 3-D view every kernel works on.
* :mod:`.scratch` — per-thread work arrays, reused from tile to tile.
* :mod:`.separable` — 1-D correlations along any axis (Gaussian, derivatives,
  box), the Gaussian kernel weights, edge magnitudes and derivative sums.
* :mod:`.median` — exact odd-window box median.
* :mod:`.nl_means` — scikit-image's fast-mode non-local means, compiled.
* :mod:`.bilateral`, :mod:`.tv`, :mod:`.wavelet`, :mod:`.block_matching` —
  the other edge-preserving denoisers (:mod:`.threads`: threads inside one
  kernel call).
* :mod:`.finest_detail`, :mod:`.block_statistics`, :mod:`.level_sets` — the
  noise level and the Poisson–Gaussian noise-model fit.
* :mod:`.window_spread`, :mod:`.neighbour_mean`, :mod:`.sure` — calibration:
  choosing its crop, each voxel's noise variance, SURE's per-voxel terms.

The filters' kernels reproduce their reference (scipy.ndimage or
scikit-image) arithmetic exactly or to float32 precision (each module says
which); :mod:`.window_spread` and :mod:`.neighbour_mean` sum in any order
(their results rank crops and evaluate a noise model). Every kernel releases
the GIL (``nogil``); the scheduler (:mod:`napari_denoise._scheduler`) runs
tiles on a thread pool, and global methods share one slice among threads
(:mod:`.threads`).
Kernels that run long poll the run's cancellation flag (a one-element uint8
array, ``token.flag``) and return early once it is set.
"""
