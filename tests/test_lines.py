"""Sharing a pass along one axis among threads (kernels/lines.py)."""

import numpy as np
import pytest

from napari_denoise.kernels import lines
from napari_denoise.kernels.threads import Team


def test_as_lines():
    assert lines.as_lines((4, 5, 6), 0) == (1, 4, 30)
    assert lines.as_lines((4, 5, 6), 1) == (4, 5, 6)
    assert lines.as_lines((4, 5, 6), 2) == (20, 6, 1)
    assert lines.as_lines((7,), 0) == (1, 7, 1)


@pytest.mark.parametrize("before, after", [(10, 1), (1, 10), (2, 9), (3, 3), (1, 1)])
@pytest.mark.parametrize("threads", [1, 2, 3, 4])
def test_pieces_cover_every_value_once(before, after, threads, monkeypatch):
    monkeypatch.setattr(lines, "_MIN_VALUES_PER_THREAD", 1)
    covered = np.zeros((before, after), int)
    pieces = lines.line_pieces(before, after, before * after, threads)
    for b_lo, b_hi, a_lo, a_hi in pieces:
        covered[b_lo:b_hi, a_lo:a_hi] += 1
    assert (covered == 1).all()
    assert len(pieces) == min(threads, max(before, after))


def test_small_passes_stay_on_one_thread():
    assert lines.parts_for(lines._MIN_VALUES_PER_THREAD * 2 - 1, 8) == 1
    assert lines.parts_for(lines._MIN_VALUES_PER_THREAD * 3, 8) == 3
    assert lines.parts_for(0, 8) == 1


def _double_general(src, dst, flag, b_lo, b_hi, a_lo, a_hi):
    dst[b_lo:b_hi, :, a_lo:a_hi] = 2 * src[b_lo:b_hi, :, a_lo:a_hi]
    return not flag[0]


def _double_along_last(src, dst, flag, b_lo, b_hi):
    assert src.ndim == dst.ndim == 2 and dst.flags.c_contiguous
    dst[b_lo:b_hi] = 2 * src[b_lo:b_hi]
    return not flag[0]


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_map_over_lines_runs_the_pass_for_the_axis(axis, monkeypatch):
    monkeypatch.setattr(lines, "_MIN_VALUES_PER_THREAD", 8)
    x = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)
    out = np.zeros_like(x)
    shape = lines.as_lines(x.shape, axis)
    views = (x.reshape(shape), out.reshape(shape))
    with Team(3) as team:
        assert lines.map_over_lines(team, _double_general, _double_along_last,
                                    (*views, np.zeros(1, np.uint8)), shape, out.size)
        assert not lines.map_over_lines(team, _double_general, _double_along_last,
                                        (*views, np.ones(1, np.uint8)), shape, out.size)
    np.testing.assert_array_equal(out, 2 * x)
