"""GUI tests of #11 point 2: an extreme value typed in any field of any widget is shown in
the info line, naming the parameter and the range allowed, before Run; nothing escapes
(no OverflowError), and Run refuses it with the same message or runs to a finite result."""

from __future__ import annotations

import numpy as np
import pytest

from napari_denoise._registry import FILTERS

from conftest import noisy_stack, wait_done

#: Typed into every text field: overflowing, underflowing, absurdly long and huge numbers.
EXTREME_TEXT = ["1e308", "5e-324", "1" + "0" * 400, "1e10", "-1e-300"]


def _text_fields(widget):
    from magicgui.widgets import LineEdit

    return [c for c in widget._controls if isinstance(c.widget, LineEdit)]


@pytest.mark.parametrize("spec", FILTERS, ids=[s.name for s in FILTERS])
def test_extreme_values_shown_before_run(spec, viewer, dock, qtbot, notifications):
    source = viewer.add_image(noisy_stack((6, 24, 24)), scale=(0.29, 0.26, 0.26), units="µm")
    before = source.data.copy()
    widget = dock(spec.display_name)
    fields = _text_fields(widget)
    assert fields or spec.name in ("sobel", "scharr", "prewitt", "laplace")
    for control in fields:
        default = control.widget.value
        for text in EXTREME_TEXT:
            control.widget.value = text  # the info line is refreshed on every change
            info = widget.info.value
            shown = [line for line in info.splitlines() if line.startswith("⚠ ") and ":" in line]
            errors = [line[2:] for line in shown if line[2:].split(":")[0] in {c.name for c in widget._controls}]
            worker = widget()
            if worker is None:  # refused: the info line said so first, with the same message
                assert widget.last_error is not None
                assert widget.last_error.startswith(f"{control.name}:"), (control.name, text, widget.last_error)
                assert widget.last_error in errors, (control.name, text, info, widget.last_error)
            else:
                assert not errors, (control.name, text, info)
                wait_done(qtbot, widget)
                result = viewer.layers[-1]
                assert result is not source
                assert np.all(np.isfinite(np.asarray(result.data, dtype=np.float64))), (control.name, text)
                viewer.layers.remove(result)
        control.widget.value = default
    np.testing.assert_array_equal(source.data, before)
