"""Slide information: file, format, size, µm/px (and where it came from), levels."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QFormLayout, QLabel, QWidget

from idc_viewer.qt.state import AppState


class SlideInfoPanel(QWidget):
    """Shows :attr:`AppState.slide`'s metadata and where the heatmap came from."""

    FIELDS = ("File", "Format", "Size (px)", "µm/px", "Levels", "Objective", "Heatmap")

    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._state = state
        layout = QFormLayout(self)
        self.values: dict[str, QLabel] = {}
        for name in self.FIELDS:
            label = QLabel("–")
            label.setWordWrap(True)
            label.setObjectName(f"info_{name}")
            self.values[name] = label
            layout.addRow(name, label)
        state.slide_changed.connect(self._on_slide_changed)
        state.heatmap_changed.connect(self._on_heatmap_changed)
        self._on_slide_changed()

    def _on_slide_changed(self) -> None:
        slide = self._state.slide
        if slide is None:
            for label in self.values.values():
                label.setText("–")
            return
        info = slide.info
        mpp = f"{info.mpp:.4g} ({info.mpp_source})" if info.mpp else "unknown"
        levels = ", ".join(f"{w}×{h}" for w, h in info.level_dimensions)
        self.values["File"].setText(Path(info.path).name)
        self.values["File"].setToolTip(info.path)
        self.values["Format"].setText(info.format)
        self.values["Size (px)"].setText(f"{info.l0_width} × {info.l0_height}")
        self.values["µm/px"].setText(mpp)
        self.values["Levels"].setText(f"{info.level_count}: {levels}")
        power = info.objective_power
        self.values["Objective"].setText(f"{power:g}×" if power else "–")
        self._on_heatmap_changed()

    def _on_heatmap_changed(self) -> None:
        heatmap = self._state.heatmap
        if heatmap is None:
            self.values["Heatmap"].setText("none (run the analysis)")
            return
        n = heatmap.analysed_count
        source = self._state.heatmap_source or "?"
        self.values["Heatmap"].setText(f"{n} patches, model {source}")
