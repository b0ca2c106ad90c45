"""A filter's parameter controls, generated from its signature and docstring.

Each parameter of the public function that the layer does not fill (image,
spacing, spatial axes) gets one magicgui control named after it, labelled in
words ("sigma spatial") and with the docstring's description as a plain,
wrapped tooltip: choices for ``Literal`` annotations, check boxes for
booleans, spin boxes for counts, and text fields (one value or one per axis,
empty = auto) for lengths and intensities. A field left empty shows the value
that will be used in its placeholder ("auto ≈ 12.3").
"""

from __future__ import annotations

import contextlib
import inspect
import re
import textwrap
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass

import docstring_parser
from magicgui.widgets import CheckBox, ComboBox, LineEdit, SpinBox
from magicgui.widgets.bases import ValueWidget

from ._parsing import format_value, parse_value
from ._registry import FilterSpec, widget_parameters

__all__ = [
    "Control",
    "make_controls",
    "parameter_tooltips",
    "plain_text",
    "tooltip_text",
    "label_text",
    "align_labels",
    "TOOLTIP_WIDTH",
]

#: Tooltip lines are wrapped to at most this many characters.
TOOLTIP_WIDTH = 60

_ROLE = re.compile(r":[\w:.-]+:`~?([^`<]*?)(?:\s*<[^>]*>)?`")  # :func:`~a.b.c`, :ref:`text <target>`
_LITERAL = re.compile(r"``(.+?)``")
_INTERPRETED = re.compile(r"`([^`]+)`")
_STRONG = re.compile(r"\*\*(.+?)\*\*")
_EMPHASIS = re.compile(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])")


def plain_text(text: str) -> str:
    """Docstring text without reStructuredText markup, on one line.

    ``code`` -> code, :func:`~pkg.mod.name` -> name, *emphasis* -> emphasis.
    """

    def role(match):
        target = match.group(1).strip()
        return target.rsplit(".", 1)[-1] if match.group(0).count("~") else target

    text = _ROLE.sub(role, text or "")
    text = _LITERAL.sub(r"\1", text)
    text = _INTERPRETED.sub(r"\1", text)
    text = _STRONG.sub(r"\1", text)
    text = _EMPHASIS.sub(r"\1", text)
    return " ".join(text.split())


def tooltip_text(*paragraphs: str, width: int = TOOLTIP_WIDTH) -> str:
    """Plain paragraphs wrapped to ``width`` characters, a blank line between them."""
    return "\n\n".join(
        textwrap.fill(plain_text(p), width=width, break_on_hyphens=False) for p in paragraphs if p and p.strip()
    )


def label_text(name: str, unit: str | None = None) -> str:
    """A parameter's label in words: ``"sigma spatial (µm)"``."""
    words = name.replace("_", " ")
    return f"{words} ({unit})" if unit else words


def parameter_tooltips(spec: FilterSpec) -> dict[str, str]:
    """Parameter name -> its docstring description as a plain, wrapped tooltip."""
    parsed = docstring_parser.parse(inspect.getdoc(spec.function) or "")
    tips = {}
    for p in parsed.params:
        # numpydoc allows "low_threshold, high_threshold : float" for several names
        for name in p.arg_name.split(","):
            name = name.strip()
            extra = ""
            if name in spec.lengths:
                extra = "In the widget: in the layer's unit, converted to voxels with its scale."
            tips[name] = tooltip_text(p.description or "", extra)
    return tips


@dataclass
class Control:
    """One parameter's widget, how to read its value, and its default.

    ``default`` is what Reset puts back (for physical lengths the widget
    replaces it with the layer's default, see ``set_value``); ``user_set``
    turns True once the user (or a script) changes the value, so that a new
    layer's default does not overwrite a typed value.
    """

    name: str
    widget: ValueWidget
    read: Callable[[], object]
    default: object
    optional: bool = False
    user_set: bool = False

    def set_value(self, value) -> None:
        """Set the value as a default would (not as a user edit)."""
        self.widget.value = value
        self.user_set = False

    def reset(self) -> None:
        self.set_value(self.default)

    def set_auto_text(self, text: str) -> None:
        """Placeholder of an empty optional field: the value that will be used."""
        if self.optional and isinstance(self.widget, LineEdit):
            with contextlib.suppress(AttributeError, RuntimeError):
                self.widget.native.setPlaceholderText(text)

    @property
    def auto_text(self) -> str:
        with contextlib.suppress(AttributeError, RuntimeError):
            return self.widget.native.placeholderText()
        return ""


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
    label = label_text(name)
    optional = default is None
    if typing.get_origin(annotation) is typing.Literal:
        widget = ComboBox(name=name, label=label, choices=list(typing.get_args(annotation)), value=default)
        return Control(name, widget, lambda w=widget: w.value, default)
    if isinstance(default, bool):
        widget = CheckBox(name=name, value=default, text=label)
        return Control(name, widget, lambda w=widget: bool(w.value), default)
    if name == "wavelet_name":
        import pywt

        widget = ComboBox(name=name, label=label, choices=pywt.wavelist(kind="discrete"), value=default)
        return Control(name, widget, lambda w=widget: w.value, default)
    if isinstance(default, int) and not isinstance(default, bool) and name not in spec.lengths:
        # Counts (iterations, patch sizes); physical lengths stay text fields.
        widget = SpinBox(name=name, label=label, value=default, min=1, max=100_000)
        return Control(name, widget, lambda w=widget: int(w.value), default)
    integer = _is_int(annotation) and name not in spec.lengths
    text_default = "" if optional else format_value(default)
    widget = LineEdit(name=name, label=label, value=text_default)
    control = Control(
        name,
        widget,
        lambda w=widget: parse_value(w.value, name, allow_none=optional, integer=integer),
        text_default,
        optional=optional,
    )
    if optional:
        control.set_auto_text("auto")
    return control


def make_controls(spec: FilterSpec) -> list[Control]:
    """One control per widget parameter of ``spec``, in the signature's order, with tooltips."""
    hints, tips = _hints(spec), parameter_tooltips(spec)
    controls = []
    for parameter in widget_parameters(spec):
        control = _make_control(spec, parameter, hints.get(parameter.name))
        control.widget.tooltip = tips.get(parameter.name, "")
        controls.append(control)
    return controls


def align_labels(container) -> None:
    """Give every label column of a magicgui container the width of its widest label.

    magicgui sizes the label column from the application font, but napari's
    style sheet draws labels in another size, so the widest label pushed its
    field out of line. This measures the labels as drawn (Qt size hints) and
    indents check boxes (which carry their own text) to the field column.
    """
    from qtpy.QtWidgets import QCheckBox, QLabel

    layout = container.native.layout()
    if layout is None:
        return
    rows = [layout.itemAt(i).widget() for i in range(layout.count())]
    labels = []
    for row in rows:
        inner = row.layout() if row is not None else None
        first = inner.itemAt(0).widget() if inner is not None and inner.count() == 2 else None
        if isinstance(first, QLabel):
            labels.append((first, inner))
    if not labels:
        return
    width = max(label.sizeHint().width() for label, _ in labels)
    spacing = max(0, labels[0][1].spacing())
    for label, _ in labels:
        label.setMinimumWidth(width)
    for row in rows:
        if isinstance(row, QCheckBox):
            row.setStyleSheet(f"QCheckBox {{ margin-left: {width + spacing}px; }}")
