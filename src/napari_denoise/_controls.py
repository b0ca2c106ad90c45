"""A filter's parameter controls, generated from its signature and docstring.

Each parameter of the public function that the layer does not fill (image,
spacing, spatial axes) gets one magicgui control named after it, with the
docstring's description as tooltip: choices for ``Literal`` annotations,
check boxes for booleans, spin boxes for counts, and text fields (one value
or one per axis, empty = auto) for lengths and intensities.
"""

from __future__ import annotations

import contextlib
import inspect
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass

import docstring_parser
from magicgui.widgets import CheckBox, ComboBox, LineEdit, SpinBox
from magicgui.widgets.bases import ValueWidget

from ._parsing import format_value, parse_value
from ._registry import FilterSpec, widget_parameters

__all__ = ["Control", "make_controls", "parameter_tooltips"]


@dataclass(frozen=True)
class Control:
    """One parameter's widget and how to read its value."""

    name: str
    widget: ValueWidget
    read: Callable[[], object]


def parameter_tooltips(spec: FilterSpec) -> dict[str, str]:
    """Parameter name -> its docstring description, on one line."""
    parsed = docstring_parser.parse(inspect.getdoc(spec.function) or "")
    tips = {}
    for p in parsed.params:
        # numpydoc allows "low_threshold, high_threshold : float" for several names
        for name in p.arg_name.split(","):
            tips[name.strip()] = " ".join((p.description or "").split())
    return tips


def _hints(spec: FilterSpec) -> dict:
    try:
        return typing.get_type_hints(spec.function.op)
    except Exception:  # pragma: no cover - unresolvable annotation
        return {}


def _is_int(annotation) -> bool:
    args = typing.get_args(annotation) if isinstance(annotation, types.UnionType) else (annotation,)
    return int in args


def _make_control(spec: FilterSpec, parameter: inspect.Parameter, annotation) -> Control:
    name, default = parameter.name, parameter.default
    optional = default is None
    if typing.get_origin(annotation) is typing.Literal:
        widget = ComboBox(name=name, choices=list(typing.get_args(annotation)), value=default)
        return Control(name, widget, lambda w=widget: w.value)
    if isinstance(default, bool):
        widget = CheckBox(name=name, value=default, label=name)
        return Control(name, widget, lambda w=widget: bool(w.value))
    if name == "wavelet_name":
        import pywt

        widget = ComboBox(name=name, choices=pywt.wavelist(kind="discrete"), value=default)
        return Control(name, widget, lambda w=widget: w.value)
    if isinstance(default, int) and not isinstance(default, bool) and name not in spec.lengths:
        # Counts (iterations, patch sizes); physical lengths stay text fields.
        widget = SpinBox(name=name, value=default, min=1, max=100_000)
        return Control(name, widget, lambda w=widget: int(w.value))
    integer = _is_int(annotation) and name not in spec.lengths
    widget = LineEdit(name=name, value="" if optional else format_value(default))
    if optional:
        with contextlib.suppress(AttributeError):
            widget.native.setPlaceholderText("auto (estimated)" if name not in spec.lengths else "auto")

    def read(w=widget):
        return parse_value(w.value, name, allow_none=optional, integer=integer)

    return Control(name, widget, read)


def make_controls(spec: FilterSpec) -> list[Control]:
    """One control per widget parameter of ``spec``, in the signature's order, with tooltips."""
    hints, tips = _hints(spec), parameter_tooltips(spec)
    controls = []
    for parameter in widget_parameters(spec):
        control = _make_control(spec, parameter, hints.get(parameter.name))
        control.widget.tooltip = tips.get(parameter.name, "")
        controls.append(control)
    return controls
