"""Length units as microscopy files write them, and conversions between them.

napari layers carry pint units ("µm"); OME-Zarr axes use UDUNITS names
("micrometer"); OME-TIFF and ImageJ write "µm", "um", "micron". This table
maps them onto one short name per unit, so that a recipe made in µm replays
exactly on a file in µm (no arithmetic: equal units are never converted) and
correctly on a file in nm.
"""

from __future__ import annotations

__all__ = ["unit_name", "same_unit", "convert_lengths", "ome_unit", "is_pixel_unit"]

# short name -> (metres, spellings)
_UNITS = {
    "Å": (1e-10, ("å", "angstrom", "ångström")),
    "nm": (1e-9, ("nm", "nanometer", "nanometre")),
    "µm": (1e-6, ("µm", "μm", "um", "micron", "microns", "micrometer", "micrometre", "\\u00b5m")),
    "mm": (1e-3, ("mm", "millimeter", "millimetre")),
    "cm": (1e-2, ("cm", "centimeter", "centimetre")),
    "m": (1.0, ("m", "meter", "metre")),
}
_BY_SPELLING = {spelling: short for short, (_, spellings) in _UNITS.items() for spelling in spellings}
_OME_NAMES = {"Å": "angstrom", "nm": "nanometer", "µm": "micrometer", "mm": "millimeter", "cm": "centimeter", "m": "meter"}
_PIXEL = frozenset({"", "px", "pixel", "pixels", "none"})


def is_pixel_unit(unit) -> bool:
    return unit is None or str(unit).strip().lower() in _PIXEL


def unit_name(unit) -> str | None:
    """The short name of a length unit ("µm"), the text itself if unknown, None for pixels."""
    if is_pixel_unit(unit):
        return None
    text = str(unit).strip()
    return _BY_SPELLING.get(text.lower(), _BY_SPELLING.get(text, text))


def same_unit(a, b) -> bool:
    return unit_name(a) == unit_name(b)


def convert_lengths(values, from_unit, to_unit) -> tuple[float, ...]:
    """``values`` in ``from_unit`` expressed in ``to_unit``; unchanged when the units are equal."""
    source, target = unit_name(from_unit), unit_name(to_unit)
    if source == target:
        return tuple(float(v) for v in values)
    if source not in _UNITS or target not in _UNITS:
        raise ValueError(f"spacing: cannot convert voxel sizes from {from_unit!r} to {to_unit!r}")
    factor = _UNITS[source][0] / _UNITS[target][0]
    return tuple(float(v) * factor for v in values)


def ome_unit(unit) -> str | None:
    """The OME-Zarr (UDUNITS) name of a length unit ("micrometer"), or None if unknown."""
    return _OME_NAMES.get(unit_name(unit))
