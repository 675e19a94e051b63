"""Slide information: file, format, size, µm/px (and where it came from), levels, stain check.

Values are short enough for the dock (the full list of levels is the Levels tooltip), and
the Heatmap line counts patches as the analysis panel does (both read the state).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QFormLayout, QLabel, QWidget

from idc_viewer.core.formatting import format_count, patches
from idc_viewer.qt.state import AppState


def levels_text(level_dimensions: tuple[tuple[int, int], ...]) -> str:
    """``3 (4443×3567 … 1110×891)``: the count and the extremes, short enough for one line."""
    dims = [f"{w}×{h}" for w, h in level_dimensions]
    if len(dims) <= 1:
        return f"{len(dims)} ({dims[0]})" if dims else "0"
    return f"{len(dims)} ({dims[0]} … {dims[-1]})"


class SlideInfoPanel(QWidget):
    """Shows :attr:`AppState.slide`'s metadata and where the heatmap came from."""

    FIELDS = ("File", "Format", "Size (px)", "µm/px", "Levels", "Objective", "Stain", "Heatmap")

    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._state = state
        layout = QFormLayout(self)
        self.values: dict[str, QLabel] = {}
        for name in self.FIELDS:
            label = QLabel("–")
            label.setWordWrap(name in ("Stain", "Heatmap", "File"))
            label.setObjectName(f"info_{name}")
            self.values[name] = label
            layout.addRow(name, label)
        state.slide_changed.connect(self._on_slide_changed)
        state.slide_info_changed.connect(self._on_slide_changed)
        state.heatmap_changed.connect(self._on_heatmap_changed)
        self._on_slide_changed()

    def _on_slide_changed(self) -> None:
        slide = self._state.slide
        if slide is None:
            for label in self.values.values():
                label.setText("–")
                label.setToolTip("")
            return
        info = slide.info
        mpp = f"{info.mpp:.4g} ({info.mpp_source})" if info.mpp else "unknown (Slide › Set scale…)"
        self.values["File"].setText(Path(info.path).name)
        self.values["File"].setToolTip(info.path)
        self.values["Format"].setText(info.format)
        self.values["Size (px)"].setText(f"{info.l0_width} × {info.l0_height}")
        self.values["µm/px"].setText(mpp)
        self.values["Levels"].setText(levels_text(info.level_dimensions))
        self.values["Levels"].setToolTip(
            "\n".join(f"level {i}: {w}×{h}" for i, (w, h) in enumerate(info.level_dimensions))
        )
        power = info.objective_power
        self.values["Objective"].setText(f"{power:g}×" if power else "–")
        warning = self._state.slide_warning
        self.values["Stain"].setText(f"Not H&E? {warning}" if warning else "looks like H&E")
        self.values["Stain"].setStyleSheet("color: #c0392b;" if warning else "")
        self._on_heatmap_changed()

    def _on_heatmap_changed(self) -> None:
        coverage = self._state.coverage()
        if coverage is None:
            self.values["Heatmap"].setText("none (run the analysis)")
            return
        source = self._state.heatmap_source or "?"
        done, total = coverage
        count = format_count(done, total) if done < total else patches(total)
        self.values["Heatmap"].setText(f"{count}, model {source}")
