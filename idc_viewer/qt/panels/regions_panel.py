"""Flagged regions: a table sorted by max probability; selecting a row zooms onto it."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from idc_viewer.core.regions import Region, find_regions
from idc_viewer.qt.state import AppState

#: Short headers (the dock is narrow); each says its unit, the tooltip says more.
COLUMNS = ("#", "Patches", "mm²", "Max P", "Mean P")
COLUMN_TIPS = (
    "Region number",
    "Flagged patches in the region",
    "Area in square millimetres",
    "Highest P(IDC) in the region",
    "Mean P(IDC) of its patches",
)


class _NumberItem(QTableWidgetItem):
    """A cell that sorts by its number, not its text."""

    def __init__(self, value: float, text: str) -> None:
        super().__init__(text)
        self.setData(Qt.ItemDataRole.UserRole, value)
        self.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)

    def __lt__(self, other: QTableWidgetItem) -> bool:
        mine = self.data(Qt.ItemDataRole.UserRole)
        theirs = other.data(Qt.ItemDataRole.UserRole)
        return float(mine) < float(theirs)


class RegionsPanel(QWidget):
    """Regions of the current heatmap at the current threshold.

    Recomputed (at most every ``refresh_ms``) when the heatmap or the threshold changes.

    Signals
    -------
    region_selected(object)
        The :class:`~idc_viewer.core.regions.Region` of the selected row.
    export_requested(), export_png_requested()
    """

    region_selected = Signal(object)
    export_requested = Signal()
    export_png_requested = Signal()

    def __init__(self, state: AppState, parent: QWidget | None = None, refresh_ms: int = 300):
        super().__init__(parent)
        self._state = state
        self.regions: list[Region] = []
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        # Columns as wide as their header and numbers (never cut); the table asks for that width.
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        for col, tip in enumerate(COLUMN_TIPS):
            item = self.table.horizontalHeaderItem(col)
            if item is not None:
                item.setToolTip(tip)
        self.summary = QLabel("No heatmap yet.")
        self.export_button = QPushButton("Export…")
        self.export_png_button = QPushButton("Export view as PNG…")
        buttons = QHBoxLayout()
        buttons.addWidget(self.export_button)
        buttons.addWidget(self.export_png_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addWidget(self.table)
        layout.addLayout(buttons)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(refresh_ms)
        self._timer.timeout.connect(self.refresh)
        self.table.itemSelectionChanged.connect(self._on_selection_changed)
        self.export_button.clicked.connect(self.export_requested)
        self.export_png_button.clicked.connect(self.export_png_requested)
        state.heatmap_changed.connect(self._on_heatmap_changed)
        state.threshold_changed.connect(self._on_heatmap_changed)
        self.refresh()

    def _on_heatmap_changed(self, *_: object) -> None:
        if not self._timer.isActive():
            self._timer.start()

    def refresh(self) -> None:
        """Recompute the regions now."""
        heatmap = self._state.decision_map()
        self.regions = [] if heatmap is None else find_regions(heatmap, self._state.threshold)
        has = heatmap is not None
        self.export_button.setEnabled(has)
        self.export_png_button.setEnabled(self._state.slide is not None)
        self.table.setSortingEnabled(False)
        self.table.blockSignals(True)
        self.table.setRowCount(len(self.regions))
        for row, region in enumerate(self.regions):
            cells = (
                _NumberItem(region.region_id, str(region.region_id)),
                _NumberItem(region.n_patches, str(region.n_patches)),
                _NumberItem(region.area_mm2, f"{region.area_mm2:.3f}"),
                _NumberItem(region.max_probability, f"{region.max_probability:.3f}"),
                _NumberItem(region.mean_probability, f"{region.mean_probability:.3f}"),
            )
            for col, item in enumerate(cells):
                item.setData(Qt.ItemDataRole.UserRole + 1, row)
                self.table.setItem(row, col, item)
        self.table.blockSignals(False)
        self.table.setSortingEnabled(True)
        self.table.sortItems(3, Qt.SortOrder.DescendingOrder)
        self._fit_columns()
        if heatmap is None:
            self.summary.setText("No heatmap yet.")
        else:
            area = sum(r.area_mm2 for r in self.regions)
            self.summary.setText(
                f"{len(self.regions)} regions, {area:.2f} mm² at P ≥ {self._state.threshold:.2f}"
            )

    def _fit_columns(self) -> None:
        """Make the table (and so its dock) wide enough for every column: no cut numbers."""
        header = self.table.horizontalHeader()
        needed = sum(
            max(header.sectionSizeHint(c), self.table.sizeHintForColumn(c))
            for c in range(self.table.columnCount())
        )
        scroll = self.table.verticalScrollBar().sizeHint().width()
        self.table.setMinimumWidth(needed + 2 * self.table.frameWidth() + scroll)

    def region_at_row(self, table_row: int) -> Region:
        """The region shown in ``table_row`` (the table may be re-sorted by the user)."""
        item = self.table.item(table_row, 0)
        assert item is not None
        return self.regions[int(item.data(Qt.ItemDataRole.UserRole + 1))]

    def _on_selection_changed(self) -> None:
        rows = self.table.selectionModel().selectedRows()
        if rows:
            self.region_selected.emit(self.region_at_row(rows[0].row()))
