"""Self-supervised calibration (SURE or J-invariant loss) against oracle sweeps on the clean image."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import ndimage

import napari_denoise as nd
from napari_denoise import _scheduler
from napari_denoise.calibration import DEFAULT_GRIDS, crop_shape

from _numeric_helpers import load, psnr

SPACING = (0.29, 0.26, 0.26)  # the nuclei stack's voxel size (µm)


def clean_plane(index=30, size=192):
    """A real nuclei plane, smoothed (the raw data are noisy themselves), scaled to [0, 1]."""
    plane = load("cells3d_nuclei.npz")[index, :size, :size].astype(np.float64)
    plane = ndimage.gaussian_filter(plane, 1.0)
    return (plane - plane.min()) / np.ptp(plane)


def record_calls(monkeypatch, record):
    """Call ``record(op, image)`` for every call of a denoiser on the crop (worker threads or inline)."""
    real_steps, real_now = _scheduler.steps, _scheduler.filter_now
    monkeypatch.setattr(_scheduler, "steps", lambda op, image, **kw: record(op, image) or real_steps(op, image, **kw))
    monkeypatch.setattr(_scheduler, "filter_now", lambda op, image, token=None: record(op, image) or real_now(
        op, image, token))


def oracle_gap(function, clean, noisy, result, grid=None, **kwargs):
    """dB between the best candidate against the clean image and the calibrated one.

    The candidates are those the calibration tried, or every point of ``grid``
    ({name: values}) and the calibrated choice.
    """
    points = [dict(t.parameters) for t in result.trials]
    if grid is not None:
        names = list(grid)
        points = [dict(zip(names, values)) for values in itertools.product(*grid.values())] + [result.best]
    scores = {repr(p): psnr(clean, function(noisy, **kwargs, **result.fixed, **p), 1.0) for p in points}
    return max(scores.values()) - scores[repr(result.best)], scores


@pytest.mark.parametrize(
    "name, parameters",
    [
        ("gaussian", {"sigma": [0.5, 1.0, 1.5, 2.5, 4.0]}),
        ("total_variation", None),
        ("bilateral", {"sigma_spatial": [1.0, 2.0], "sigma_intensity": [0.05, 0.1, 0.2, 0.4, 0.8]}),
        ("non_local_means", None),
    ],
)
def test_2d_gaussian_noise_picks_near_the_oracle(name, parameters):
    rng = np.random.default_rng(0)
    clean = clean_plane()
    noisy = (clean + rng.normal(0, 0.1, clean.shape)).astype(np.float32)
    function = getattr(nd, name)
    result = nd.calibrate(function, noisy, parameters=parameters)
    grid = parameters or DEFAULT_GRIDS[name](nd.calibration.CropInfo(result.noise, 2))
    # against the best of the whole grid, though the search tried only part of it
    gap, scores = oracle_gap(function, clean, noisy, result, grid)
    assert gap <= 0.3, (result.best, scores)
    # it is a real choice: the candidates differ by much more than the gap
    assert max(scores.values()) - min(scores.values()) > 1.0
    assert result.loss == min(t.loss for t in result.trials)
    # the loss is the true error plus the noise variance: close to 0.1² at the best
    assert 0.01 < result.loss < 0.02


def test_poisson_under_the_noise_model():
    rng = np.random.default_rng(1)
    clean = clean_plane(index=20)
    noisy = (rng.poisson(clean * 20 + 0.5) / 20.0).astype(np.float32)
    result = nd.calibrate(nd.total_variation, noisy, fixed={"noise_model": "poisson"})
    model = result.fixed["noise_model"]
    assert isinstance(model, nd.NoiseModel) and model.kind == "poisson-gaussian"
    assert result.noise == 1.0  # the grid is in units of the stabilised noise
    assert result.loss_kind == "j-invariant"  # the fitted variance of each voxel is not trusted to SURE
    grid = DEFAULT_GRIDS["total_variation"](nd.calibration.CropInfo(1.0, 2))
    assert {t.parameters["weight"] for t in result.trials} <= set(grid["weight"])
    gap, _ = oracle_gap(nd.total_variation, clean + 0.5 / 20, noisy, result, grid)
    assert gap <= 0.3
    out = nd.total_variation(noisy, **result.kwargs)
    assert psnr(clean + 0.5 / 20, out, 1.0) > psnr(clean + 0.5 / 20, noisy, 1.0) + 5


def test_anisotropic_3d_crop_keeps_the_voxel_size():
    rng = np.random.default_rng(2)
    stack = load("cells3d_nuclei.npz")[:, :128, :128].astype(np.float64)
    clean = ndimage.gaussian_filter(stack, (0.8, 1.0, 1.0))
    clean = (clean - clean.min()) / np.ptp(clean)
    noisy = (clean + rng.normal(0, 0.1, clean.shape)).astype(np.float32)
    sigmas = [0.15, 0.3, 0.5, 0.8]  # µm
    result = nd.calibrate(nd.gaussian, noisy, parameters={"sigma": sigmas}, spacing=SPACING)
    extents = [s.stop - s.start for s in result.region]
    assert np.prod(extents) <= nd.calibration.CROP_VOXELS[3] * 1.1
    assert extents[0] == 60  # the whole z range (17 µm) is shorter than the cube's side
    assert extents[1] == extents[2] < 128  # y and x cropped alike: same voxel size
    scores = {s: psnr(clean, nd.gaussian(noisy, s, spacing=SPACING), 1.0) for s in sigmas}
    assert max(scores.values()) - scores[result.best["sigma"]] <= 0.3, (result.best, scores)


def test_crop_shape_is_a_physical_cube_where_it_fits():
    assert crop_shape((60, 256, 256), SPACING) == (60, 66, 66)
    assert crop_shape((200, 400, 400), (1.0, 1.0, 1.0)) == (64, 64, 64)
    z, y, x = crop_shape((200, 400, 400), (2.0, 1.0, 1.0))
    assert abs(z * 2.0 - y) <= 2 and y == x
    assert crop_shape((256, 256), None) == (256, 256)
    assert crop_shape((1000, 50), None) == (1000, 50)  # the narrow axis whole, the long one makes up


def test_time_series_one_slice_or_each():
    rng = np.random.default_rng(3)
    clean = clean_plane(size=96)
    noise = [0.02, 0.2]  # the second frame is ten times noisier
    stack = np.stack([clean + rng.normal(0, s, clean.shape) for s in noise]).astype(np.float32)
    sigmas = {"sigma": [0.5, 1.0, 2.0, 3.0]}
    one = nd.calibrate(nd.gaussian, stack, parameters=sigmas, spatial_axes=(1, 2), slice_index=1)
    assert one.region[0] == slice(1, 2)
    each = nd.calibrate(nd.gaussian, stack, parameters=sigmas, spatial_axes=(1, 2), per_slice=True)
    assert [r.region[0] for r in each] == [slice(0, 1), slice(1, 2)]
    assert each[1].best == one.best
    assert each[0].best["sigma"] < each[1].best["sigma"]  # less noise, less smoothing
    # a frame calibrated alone gives the same as picking it out of the series
    alone = nd.calibrate(nd.gaussian, stack[0], parameters=sigmas)
    assert alone.best == each[0].best and alone.loss == pytest.approx(each[0].loss)


class CountingArray:
    """An array-like that records every region read from it (for dask's from_array)."""

    def __init__(self, data):
        self.data, self.shape, self.dtype, self.ndim = data, data.shape, data.dtype, data.ndim
        self.reads = []

    def __getitem__(self, key):
        self.reads.append(key)
        return self.data[key]


def test_dask_input_reads_only_the_crop():
    da = pytest.importorskip("dask.array")
    rng = np.random.default_rng(4)
    data = (rng.normal(100, 10, (8, 512, 512))).astype(np.float32)
    source = CountingArray(data)
    lazy = da.from_array(source, chunks=(1, 128, 128))
    result = nd.calibrate(nd.gaussian, lazy, parameters={"sigma": [0.5, 1.0]}, spatial_axes=(1, 2))
    read_voxels = sum(int(np.prod([s.stop - s.start for s in key])) for key in source.reads)
    # the crop (256 × 256 of one frame) lies in at most 3 × 3 chunks of 128²: far below the 2 M voxels
    assert 0 < read_voxels <= 9 * 128 * 128
    assert result.region[0] == slice(4, 5)
    eager = nd.calibrate(nd.gaussian, data, parameters={"sigma": [0.5, 1.0]}, spatial_axes=(1, 2),
                         crop=result.region[1:])
    assert eager.trials == result.trials


def test_cost_is_at_most_max_calls_on_the_crop(monkeypatch):
    calls = []
    record_calls(monkeypatch, lambda op, image: calls.append(image.shape))
    rng = np.random.default_rng(5)
    clean = np.pad(clean_plane(size=256), ((0, 128), (0, 128)), mode="reflect")
    noisy = (clean + rng.normal(0, 0.1, (384, 384))).astype(np.float32)
    # 3 × 5 = 15 candidates: searched one parameter at a time within the budget of 10 calls,
    # 2 per candidate with the Monte-Carlo SURE loss (the crop and the crop plus the probe)
    crop = crop_shape((384, 384))
    assert crop == (256, 256)
    result = nd.calibrate(nd.wavelet, noisy, loss="sure")
    assert 4 <= len(calls) <= 10 and 2 * len(result.trials) == len(calls) == result.calls
    assert all(c == crop for c in calls)
    calls.clear()
    # the bilateral's SURE reads the slope it computes: the same budget of 5 candidates, one call each;
    # a costly candidate (spatial σ 3 px) is computed only on tiles of the crop, by its kernel alone
    result = nd.calibrate(nd.bilateral, noisy)
    assert 2 <= len(result.trials) <= 5 and result.calls == len(result.trials)
    assert calls == [crop] * sum(t.share == 1 for t in result.trials) and len(calls) >= 2
    calls.clear()
    result = nd.calibrate(nd.bilateral, noisy, loss="j-invariant")
    assert 4 <= len(calls) <= 10 and len(result.trials) == len(calls)
    calls.clear()
    nd.calibrate(nd.bilateral, noisy, max_calls=3, loss="j-invariant")
    assert len(calls) == 3
    calls.clear()
    nd.calibrate(nd.wavelet, noisy, max_calls=5, loss="sure")
    assert len(calls) == 4


def test_progress_and_cancel():
    rng = np.random.default_rng(6)
    noisy = (clean_plane(size=128) + rng.normal(0, 0.1, (128, 128))).astype(np.float32)
    seen = []
    nd.calibrate(nd.wavelet, noisy, progress=lambda done, total: seen.append((done, total)))
    assert seen[-1][0] == seen[-1][1] > 0
    assert all(b[0] >= a[0] for a, b in zip(seen, seen[1:]))
    assert len({total for _, total in seen}) == 1
    polls = []

    def cancel_after_first_call():
        polls.append(1)
        return len(polls) > 3

    with pytest.raises(nd.Cancelled):
        nd.calibrate(nd.total_variation, noisy, cancel=cancel_after_first_call)
    token = nd.CancelToken()
    token.cancel()
    with pytest.raises(nd.Cancelled):
        nd.calibrate(nd.total_variation, noisy, cancel=token)


def test_name_or_function_and_input_untouched():
    rng = np.random.default_rng(7)
    noisy = (200 + clean_plane(size=96) * 1000 + rng.normal(0, 50, (96, 96))).astype(np.uint16)
    before = noisy.copy()
    by_name = nd.calibrate("wavelet", noisy)
    by_function = nd.calibrate(nd.wavelet, noisy)
    np.testing.assert_array_equal(noisy, before)
    assert by_name.trials == by_function.trials and by_name.function == "wavelet"
    # intensity candidates follow the image's own units (σ̂ ≈ 50, not a [0, 1] rescale)
    assert 20 < by_name.noise < 80
    assert by_name.losses("sigma")[0][0] == pytest.approx(0.5 * by_name.noise)


def test_arguments_checked():
    x = np.random.default_rng(8).normal(0, 1, (40, 40)).astype(np.float32)
    with pytest.raises(TypeError, match="^function"):
        nd.calibrate(np.mean, x)
    with pytest.raises(ValueError, match="^function"):
        nd.calibrate("sharpen", x)
    with pytest.raises(ValueError, match="^parameters"):
        nd.calibrate(nd.gaussian, x, parameters={"radius": [1, 2]})
    with pytest.raises(TypeError, match="^parameters"):
        nd.calibrate(nd.gaussian, x, parameters=[1, 2])
    with pytest.raises(ValueError, match="^parameters"):
        nd.calibrate(nd.sobel, x)  # no default candidates for an edge filter
    with pytest.raises(ValueError, match="^stride"):
        nd.calibrate(nd.gaussian, x, stride=1)
    with pytest.raises(ValueError, match="^max_calls"):
        nd.calibrate(nd.gaussian, x, max_calls=0)
    with pytest.raises(ValueError, match="^max_calls"):
        nd.calibrate(nd.gaussian, x, max_calls=1)  # SURE needs two calls per candidate
    with pytest.raises(ValueError, match="^loss"):
        nd.calibrate(nd.gaussian, x, loss="mse")
    with pytest.raises(ValueError, match="^slice_index"):
        nd.calibrate(nd.gaussian, np.stack([x, x]), spatial_axes=(1, 2), slice_index=2)
    with pytest.raises(ValueError, match="^crop"):
        nd.calibrate(nd.gaussian, x, crop=(slice(0, 2), slice(0, 40)))
    with pytest.raises(ValueError, match="^fixed"):
        nd.calibrate(nd.gaussian, x, fixed={"spacing": (1, 1)})


def run_search(values, loss, budget, **kwargs):
    """The candidates :func:`_search` tries on a known loss function, in order."""
    from napari_denoise.calibration import _search

    tried = []
    search = _search(values, budget, **kwargs)
    try:
        point = next(search)
        while True:
            tried.append(point)
            point = search.send(loss(*point))
    except StopIteration:
        return tried


def test_search_extends_a_grid_whose_minimum_lies_at_its_end():
    # the minimum (σ = 16) lies two doublings past the end of a 1, 2, 4 grid
    tried = run_search([[1.0, 2.0, 4.0]], lambda s: (np.log2(s) - 4) ** 2, budget=10)
    assert [p[0] for p in tried] == [1.0, 2.0, 4.0, 8.0, 16.0]  # at most 2 values past each end
    # evenly spaced grids go on by their step, down no further than one step above zero
    tried = run_search([[3, 5, 7]], lambda s: abs(s - 11), budget=10)
    assert [p[0] for p in tried] == [3, 5, 7, 9, 11] and all(isinstance(p[0], int) for p in tried)
    tried = run_search([[3, 5, 7]], lambda s: s, budget=10)
    assert [p[0] for p in tried] == [3, 5, 7]  # 1 would be the identity: not tried
    # not extended: a minimum inside the grid, non-numbers, and a spent budget
    assert len(run_search([[1.0, 2.0, 4.0]], lambda s: abs(s - 2), budget=10)) == 3
    assert len(run_search([["a", "b"]], lambda s: s == "a", budget=10)) == 2
    assert len(run_search([[1.0, 2.0, 4.0]], lambda s: -s, budget=4)) == 4


def test_search_walks_downhill_within_the_budget():
    grid = [0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0]
    # larger than the budget: from the middle (1.0) towards the minimum, stopping where the loss rises
    tried = run_search([grid], lambda w: (w - 0.5) ** 2, budget=5)
    assert [p[0] for p in tried] == [1.0, 0.75, 0.5, 0.25]
    tried = run_search([grid], lambda w: (w - 2.0) ** 2, budget=5)
    assert [p[0] for p in tried] == [1.0, 0.75, 1.5, 2.0, 3.0]
    # two parameters: one at a time, each walk from the other's best; never more than the budget
    def loss(a, b):
        return (a - 3.0) ** 2 + (np.log2(b) - 1) ** 2

    tried = run_search([[1.0, 2.0, 3.0], [1.0, 2.0, 4.0, 8.0, 16.0]], loss, budget=8)
    assert len(tried) <= 8 and len(set(tried)) == len(tried)
    assert min(tried, key=lambda p: loss(*p)) == (3.0, 2.0)


def test_loss_kind_follows_the_noise_and_the_denoiser():
    rng = np.random.default_rng(12)
    clean = clean_plane(size=96)
    gaussian_noise = (clean + rng.normal(0, 0.1, clean.shape)).astype(np.float32)
    photons = (rng.poisson(clean * 20 + 0.5) / 20.0).astype(np.float32)
    grid = {"weight": [0.5, 1.0]}
    assert nd.calibrate(nd.total_variation, gaussian_noise, parameters={"weight": [0.05, 0.1]}).loss_kind == "sure"
    assert nd.calibrate(nd.total_variation, photons, parameters=grid, fixed={"noise_model": "auto"}).loss_kind \
        == "j-invariant"
    # local filters: SURE whatever the noise (their J-invariant loss over-smooths)
    assert nd.calibrate(nd.gaussian, photons, parameters={"sigma": [1.0, 2.0]}).loss_kind == "sure"
    forced = nd.calibrate(nd.gaussian, photons, parameters={"sigma": [1.0, 2.0]}, loss="j-invariant")
    assert forced.loss_kind == "j-invariant"
    # SURE estimates the true error plus the noise variance, from the noisy image alone
    for sigma in (0.5, 1.0, 3.0):
        sure = nd.calibrate(nd.gaussian, gaussian_noise, parameters={"sigma": [sigma]}, loss="sure")
        truth = float(np.mean((nd.gaussian(gaussian_noise, sigma=sigma) - clean) ** 2)) + 0.1**2
        assert sure.loss == pytest.approx(truth, rel=0.03)


@pytest.mark.parametrize("shape, spacing", [((17, 23), None), ((5, 9, 11), (2.0, 1.0, 1.0)), ((1, 8), None),
                                            ((30,), None), ((2, 3, 1), (1.0, 2.0, 3.0)), ((3, 4, 2, 5), None)])
def test_neighbour_mean_of_every_voxel_equals_the_gathered_one(shape, spacing):
    from napari_denoise.calibration import _neighbour_mean

    crop = np.random.default_rng(3).normal(10, 2, shape).astype(np.float32)
    every = tuple(c.ravel() for c in np.indices(shape))
    # the dense path sums in float32 by sets of axes: the same mean to float32 precision
    np.testing.assert_allclose(_neighbour_mean(crop, None, spacing),
                               _neighbour_mean(crop, every, spacing).reshape(shape), rtol=1e-6)


def test_a_costly_parameter_is_searched_from_its_cheap_end():
    from napari_denoise.calibration import _cost_plan

    sizes = [3, 5, 7, 9]
    # median-like: time grows with the window; the grid is never swept whole
    assert _cost_plan([sizes], lambda p: p[0] ** 3) == ([0], False)
    # the costly parameter starts cheap, the other in its middle
    assert _cost_plan([[3.0, 2.0, 1.0], [1, 2, 4, 8]], lambda p: p[0] ** 3) == ([2, 2], False)
    # times within COSTLY_GRID of each other: from the middle, swept when it fits
    assert _cost_plan([sizes], lambda p: 1.0 + 0.1 * p[0]) == ([2], True)
    # from the low end the walk goes up first and stops where the loss rises
    tried = run_search([sizes], lambda s: abs(s - 5), budget=5, start=[0], sweep=False)
    assert [p[0] for p in tried] == [3, 5, 7]
    tried = run_search([sizes], lambda s: s, budget=5, start=[0], sweep=False)
    assert [p[0] for p in tried] == [3, 5]


@pytest.mark.parametrize("shape", [(24, 100, 80), (90, 120)])
@pytest.mark.parametrize("share", [1 / 16, 0.25])
def test_tiles_give_what_a_whole_crop_call_gives(shape, share):
    from napari_denoise.calibration import MAX_TILED_READ, MIN_SCORED, TILE_GRID, _read_around, _tiles

    rng = np.random.default_rng(21)
    crop = rng.normal(100, 10, shape).astype(np.float32)
    for function, kwargs in [(nd.median, {"size": 5}), (nd.bilateral, {"sigma_spatial": 1.0, "sigma_intensity": 20.0,
                                                                         "noise_model": "gaussian"})]:
        op = function.op(crop, **kwargs)
        boxes = _tiles(crop.shape, op.halo, share)
        assert len(boxes) == TILE_GRID**2
        reads = [_read_around(b, op.halo, shape) for b in boxes]
        # at most half the crop read, at least MIN_SCORED of it scored
        assert sum(crop[r].size for r, _ in reads) <= MAX_TILED_READ * crop.size
        assert sum(crop[b].size for b in boxes) >= MIN_SCORED * crop.size
        # distinct boxes, spread over the crop's last two axes (the first one crossed whole)
        marks = np.zeros(shape, int)
        for b in boxes:
            marks[b] += 1
        assert marks.max() == 1
        for axis in (-2, -1):
            covered = np.flatnonzero(marks.any(axis=tuple(a for a in range(len(shape)) if a != axis % len(shape))))
            assert covered.min() < shape[axis] / 4 and covered.max() > 3 * shape[axis] / 4
        whole = function(crop, **kwargs)
        for b, (read, keep) in zip(boxes, reads):  # each box read with its halo (clipped at the crop's border)
            np.testing.assert_array_equal(function(crop[read], **kwargs)[keep], whole[b])
    assert _tiles(crop.shape, (2,) * crop.ndim, 0.9) is None  # most of the crop: run it whole
    assert _tiles(crop.shape, (12,) * crop.ndim, 1 / 16) is None  # halos too wide for the crop


def test_costly_candidates_are_scored_on_tiles_and_choose_as_the_whole_crop(monkeypatch):
    from napari_denoise import calibration

    rng = np.random.default_rng(22)
    clean = load("cells3d_nuclei.npz")[20:44, :96, :96].astype(np.float64)
    clean = ndimage.gaussian_filter(clean, 1.0)
    clean = (clean - clean.min()) / np.ptp(clean)
    for sigma in (0.05, 0.2, 0.3):
        noisy = (clean + rng.normal(0, sigma, clean.shape)).astype(np.float32)
        result = nd.calibrate(nd.median, noisy, spacing=SPACING)
        shares = {t.parameters["size"]: t.share for t in result.trials}
        assert shares[min(shares)] == 1 and all(s < 1 for v, s in shares.items() if v > min(shares))
        monkeypatch.setattr(calibration, "COSTLY", float("inf"))  # every candidate on the whole crop
        whole = nd.calibrate(nd.median, noisy, spacing=SPACING)
        monkeypatch.undo()
        assert all(t.share == 1 for t in whole.trials)
        quality = [psnr(clean, nd.median(noisy, spacing=SPACING, **r.best), 1.0) for r in (result, whole)]
        assert quality[0] > quality[1] - 0.3, (sigma, result.best, whole.best, quality)
    assert result.best["size"] > min(shares)  # strong noise: a costly candidate won, from its tiles


@pytest.mark.parametrize("mode", ["reflect", "mirror", "nearest", "wrap", "constant"])
def test_separable_diagonal_is_the_filters_own(mode):
    shape = (9, 7)
    cases = [(nd.gaussian, {"sigma": 1.3}), (nd.gaussian, {"sigma": (0.0, 6.0)}),  # 6 σ: folded into 7 pixels
             (nd.mean, {"size": 3}), (nd.mean, {"size": (4, 9)})]  # even, and longer than the axis
    for function, kwargs in cases:
        op = function.op(np.zeros(shape, np.float32), mode=mode, **kwargs)
        jacobian = np.empty(shape)
        for index in np.ndindex(shape):
            unit = np.zeros(shape, np.float64)
            unit[index] = 1.0
            # linear (cval 0): the output at the unit's voxel is the matrix's diagonal entry there
            jacobian[index] = function(unit.astype(np.float32), mode=mode, **kwargs)[index]
        np.testing.assert_allclose(op.diagonal(shape), jacobian, atol=1e-6)
    median = nd.median.op(np.zeros(shape, np.float32))
    assert median.diagonal is None and median.selection


def test_linear_filters_get_exact_sure_in_one_call_each(monkeypatch):
    from napari_denoise.filters.noise import noise_model_of_slice

    calls = []
    record_calls(monkeypatch, lambda op, image: calls.append(op))
    rng = np.random.default_rng(23)
    noisy = (clean_plane(size=96) + rng.normal(0, 0.1, (96, 96))).astype(np.float32)
    result = nd.calibrate(nd.gaussian, noisy, crop="full", parameters={"sigma": [0.5, 1.0, 2.0]})
    assert result.loss_kind == "sure" and len(calls) == len(result.trials) >= 3  # one call per candidate
    model = noise_model_of_slice(noisy)
    assert model.kind == "gaussian"
    for trial in result.trials:
        out = nd.gaussian(noisy, **trial.parameters).astype(np.float64)
        diagonal = nd.gaussian.op(noisy, **trial.parameters).diagonal(noisy.shape)
        expected = np.mean((out - noisy) ** 2) + 2 * model.read_sigma**2 * np.mean(diagonal)
        assert trial.loss == pytest.approx(expected, rel=1e-6)


def test_a_bilateral_gets_exact_sure_from_the_slope_it_computes(monkeypatch):
    from napari_denoise.filters.noise import noise_model_of_slice

    ops = []
    record_calls(monkeypatch, lambda op, image: ops.append(op))
    rng = np.random.default_rng(25)
    clean = clean_plane(size=96)
    noisy = (clean + rng.normal(0, 0.1, clean.shape)).astype(np.float32)
    grid = {"sigma_spatial": [1.0, 2.0], "sigma_intensity": [0.1, 0.3]}
    result = nd.calibrate(nd.bilateral, noisy, crop="full", parameters=grid)
    assert result.loss_kind == "sure" and len(ops) == len(result.trials) == result.calls  # one call each
    assert all(op.out_dtype.names == ("value", "slope") for op in ops)
    variance = noise_model_of_slice(noisy).read_sigma ** 2
    for trial in result.trials:
        both = _scheduler.run(nd.bilateral.op(noisy, **trial.parameters).with_slope(), noisy)
        residual = np.mean((both["value"] - noisy.astype(np.float64)) ** 2)
        divergence = np.mean(both["slope"].astype(np.float64))
        assert trial.loss == pytest.approx(residual + 2 * variance * divergence, rel=1e-6)
        # with the true noise variance, SURE is the true error plus that variance, within 2 %
        truth = np.mean((both["value"] - clean) ** 2) + 0.01
        assert residual + 2 * 0.01 * divergence == pytest.approx(truth, rel=0.02)


def test_wide_halos_score_planes_computed_alone_as_the_whole_crop_does():
    from napari_denoise import calibration
    from napari_denoise.calibration import MIN_SCORED, _kept_part, _read_around, _tiles

    rng = np.random.default_rng(26)
    crop = rng.normal(100, 10, (30, 40, 36)).astype(np.float32)
    op = nd.bilateral.op(crop, 2.0, 20.0, noise_model="gaussian")  # halo 6: 3 x 3 tiles would read it all
    assert not op.cost.over_halo and _tiles(crop.shape, op.halo, 0.1) is None
    planes = _tiles(crop.shape, op.halo, 0.1, kept_only=True)
    assert all(b[1].stop - b[1].start == 1 for b in planes)  # single planes across the longest axis
    assert MIN_SCORED * crop.shape[1] <= len(planes) <= crop.shape[1] // 2
    whole = _scheduler.run(op.with_slope(), crop)
    token = _scheduler.CancelToken()
    for b in planes:
        read, keep = _read_around(b, op.halo, crop.shape)
        part = _kept_part(op.with_slope(), np.ascontiguousarray(crop[read]), keep, 2, token)
        np.testing.assert_array_equal(part, whole[b])
    assert _tiles(crop.shape, op.halo, 0.6, kept_only=True) is None  # most of the crop: run it whole
    token.cancel()
    with pytest.raises(nd.Cancelled):
        _kept_part(op, crop, (slice(None),) * 3, 2, token)
    assert calibration.MAX_TILED_READ < 1


def test_a_median_gets_exact_sure_from_the_voxels_it_keeps(monkeypatch):
    from napari_denoise.calibration import SELECTION_DITHER
    from napari_denoise.filters.noise import noise_model_of_slice

    calls = []
    record_calls(monkeypatch, lambda op, image: calls.append(image))
    rng = np.random.default_rng(24)
    clean = clean_plane(size=96)
    noisy = np.round((clean + rng.normal(0, 0.1, clean.shape)) * 20 + 100).astype(np.uint16)  # many ties
    result = nd.calibrate(nd.median, noisy, crop="full", parameters={"size": [3, 5]})
    assert result.loss_kind == "sure" and len(calls) == len(result.trials)
    dithered = calls[0].astype(np.float64)
    # ties left only where float32 rounds two dithered values together (rarely within one window)
    assert 0 < np.abs(dithered - noisy).max() < 0.2 and len(np.unique(dithered)) > 0.9 * dithered.size
    variance = noise_model_of_slice(noisy).read_sigma ** 2 * (1 + SELECTION_DITHER**2)
    for trial in result.trials:
        out = nd.median(calls[0], **trial.parameters).astype(np.float64)
        expected = np.mean((out - dithered) ** 2) + 2 * variance * np.mean(out == dithered)
        assert trial.loss == pytest.approx(expected, rel=1e-6)
    # the true error of each size, plus the noise variance, within a few per cent
    for trial in result.trials:
        truth = np.mean((nd.median(noisy, **trial.parameters) - clean * 20 - 100) ** 2) + 4.0
        assert trial.loss == pytest.approx(truth, rel=0.05)
