"""Reading widget text fields: one number, a number per axis, or empty (auto).

Kept apart from the widgets (no Qt) so it is tested on its own.
"""

from __future__ import annotations

import ast
import math
import numbers

__all__ = ["parse_value", "format_value"]


def parse_value(text, name: str, *, allow_none: bool = False, integer: bool = False):
    """Parse a field: ``"0.5"``, ``"0.5, 0.26, 0.26"``, ``"(1, 2)"`` or ``""``.

    Numbers and sequences set from a script pass through. Returns a float (or
    int), a tuple, or None (empty field, when ``allow_none``); raises
    ``ValueError`` naming the parameter otherwise.
    """
    if text is None or (isinstance(text, str) and not text.strip()) or (
        isinstance(text, str) and text.strip().lower() in ("auto", "none")
    ):
        if allow_none:
            return None
        raise ValueError(f"{name}: a value is required")
    value = text
    if isinstance(text, str):
        cleaned = text.strip().replace(";", ",")
        try:
            value = ast.literal_eval(cleaned)
        except (ValueError, SyntaxError):
            try:
                value = tuple(ast.literal_eval(part) for part in cleaned.split())
            except (ValueError, SyntaxError):
                raise ValueError(
                    f"{name}: could not read {text!r} as a number or a list of numbers"
                ) from None
    if isinstance(value, (list, tuple)):
        if not value:
            raise ValueError(f"{name}: empty list")
        return tuple(_number(v, name, integer) for v in value)
    return _number(value, name, integer)


def _number(value, name, integer):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name}: {value!r} is not a number")
    try:
        value = float(value)
    except OverflowError:  # a whole number typed with hundreds of digits
        raise ValueError(f"{name}: must be finite, got a number of {len(str(abs(value)))} digits") from None
    if math.isnan(value) or math.isinf(value):
        raise ValueError(f"{name}: must be finite, got {value}")
    if integer:
        if value != int(value):
            raise ValueError(f"{name}: expected a whole number, got {value}")
        return int(value)
    return value


def format_value(value) -> str:
    """Short text for a number or per-axis tuple (used in names and recipes)."""
    if value is None:
        return "auto"
    if isinstance(value, (tuple, list)):
        return "(" + ", ".join(format_value(v) for v in value) + ")"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
