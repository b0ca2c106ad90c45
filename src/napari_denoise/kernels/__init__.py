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

Every kernel reproduces its reference (scipy.ndimage or scikit-image)
arithmetic exactly, releases the GIL (``nogil``) and is single-threaded: the
scheduler (:mod:`napari_denoise._scheduler`) runs tiles on a thread pool.
Kernels that run long poll the run's cancellation flag (a one-element uint8
array, ``token.flag``) and return early once it is set.
"""
