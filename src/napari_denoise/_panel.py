"""One dock for every filter: the "Denoise & edges" panel.

A filter picker on top; the parameter fields below change with it (each
filter keeps what was typed for it), and the image, preview, run, cancel and
Reset controls are shared. Scripts choose the filter by its display name:
``panel.filter.value = "Median"; panel.size.value = "0.8"; panel()``.
"""

from __future__ import annotations

from magicgui.widgets import ComboBox

from ._controls import tooltip_text
from ._registry import FAMILIES, FILTERS, PANEL_NAME, by_name
from ._widgets import FilterWidget

__all__ = ["DenoisePanel", "PANEL_NAME"]


class DenoisePanel(FilterWidget):
    """Every filter of the table in one dock, chosen from a list."""

    spec = FILTERS[0]
    specs = FILTERS

    def _header_widgets(self) -> list:
        self._filter = ComboBox(
            name="filter",
            label="filter",
            choices=[spec.display_name for spec in FILTERS],
            value=self.spec.display_name,
        )
        families = ", ".join(f"{label.lower()} ({sum(s.family == key for s in FILTERS)})" for key, label in FAMILIES.items())
        self._filter.tooltip = tooltip_text(
            f"The filter to run: {families}. The fields below change with it; each filter keeps its own values."
        )
        self._filter.changed.connect(self._on_filter_changed)
        return [self._filter]

    def _header_widgets_made(self) -> list:
        return [self._filter]

    def _on_filter_changed(self, display_name) -> None:
        # A run in progress goes on with the filter it started with.
        self.spec = by_name(display_name)
        self._show_spec()
        self._sample_noise()
        self._on_any_change()
